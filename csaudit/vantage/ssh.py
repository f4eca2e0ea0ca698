"""Remote vantages over SSH: hypervisor hosts, and system VMs (SSVM, CPVM, routers) on port 3922.

Who stands for a flow's source (README, Remote vantages; upstream: NetworkOrchestrator.getSystemVMAccessDetails,
scripts/network/domr/router_proxy.sh):
  host                    ssh:host/NAME      SSH to the host's management IP (22 unless configured).
  system VM on KVM/LXC/   ssh:systemvm/NAME  from inside that host's session, as CloudStack does:
  XenServer                                  ssh -p 3922 -i /root/.ssh/id_rsa.cloud root@<link-local>.
  system VM on VMware/    ssh:systemvm/NAME  straight to its private (control) IP on 3922 with the
  Hyper-V                                    management server's key, optionally through a jump host.

One SSH connection per host carries its own probes and those of every system VM it runs; one per
directly reached system VM; one per jump host. Each vantage's probes go in a single remote command
(remote.py and its agents). A vantage that cannot be reached leaves its flows unverified with the exact reason.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import time
from collections.abc import Callable, Iterable

import asyncssh

from csaudit.collector import collector_running
from csaudit.model.firewalls import MachineFirewall
from csaudit.model.flows import Flow
from csaudit.model.inventory import Inventory
from csaudit.model.probes import Observation, ProbeOptions, ProbeTarget, Unverifiable, VantageState
from csaudit.model.vocabulary import LINK_LOCAL_CONTROL, UDP_KINDS, Gap, Hypervisor, Role, VantageStatus
from csaudit.vantage.remote import (
    SYSTEMVM_PORT,
    SYSTEMVM_USER,
    batch_bound,
    hop_command,
    parse_output,
    probe_command,
    probe_input,
)
from csaudit.vantage.rulesets import READ_BOUND, firewall_command, new_boundary, parse_firewall_output
from csaudit.vantage.ssh_settings import RemoteSettings, SshAccess

REMOTE_ROLES = (Role.HOST, Role.SSVM, Role.CPVM, Role.VR)
THROUGH_HOST = LINK_LOCAL_CONTROL  # system VMs reached over the host's link-local bridge
DIRECT = frozenset({Hypervisor.VMWARE, Hypervisor.HYPERV})  # the MS opens 3922 itself
CHANNELS_PER_CONNECTION = 8  # OpenSSH's MaxSessions defaults to 10 sessions per connection
REMOTE_CONCURRENCY = 32  # connects in flight inside one remote command
WAKE_UP = 0.2  # seconds; how often the run looks at the stop flag and the deadline


@dataclasses.dataclass(frozen=True)
class Remote:
    """One remote vantage and how to get there."""

    label: str  # ssh:host/NAME or ssh:systemvm/NAME
    role: str
    name: str
    kind: str  # host | hop (through its host) | direct
    access: SshAccess | None = None  # host, direct
    host_label: str | None = None  # hop: the host whose session carries it
    hop_address: str | None = None  # hop: the link-local control IP
    hop_key: str | None = None  # hop: the key's path on the host


@dataclasses.dataclass(frozen=True)
class Unavailable:
    state: VantageStatus
    reason: str


class SshVantages:
    """Every remote vantage of the cloud, planned per flow and run together in one event loop."""

    name = "ssh"

    def __init__(self, inventory: Inventory, settings: RemoteSettings, owns: Callable[[str], bool] = lambda _: False):
        self.settings = settings
        self._owns = owns
        self._remotes: dict[tuple[str, str], Remote | Unverifiable] = {}
        self._states: dict[str, VantageState] = {}
        # A run probes zone by zone: one event loop and one set of jump-host connections serve them all.
        self._loop: asyncio.AbstractEventLoop | None = None
        self._jumps: _JumpHosts | None = None
        hosts = {host.id: host for host in inventory.hosts}
        for host in inventory.hosts:
            if (host.hypervisor or "").lower() == Hypervisor.VMWARE and not settings.named_esxi(host.name):
                self._remotes[("host", host.name)] = Unverifiable(
                    f"ESXi host {host.name}: CloudStack needs no SSH to ESXi, so csaudit does not try it; name it in "
                    f"--ssh-settings ([host.{host.name}] or [vmware]) to probe from it", Gap.NO_VANTAGE)
                continue
            access = settings.host_access(host.name, host.address, host.hypervisor)
            self._remotes[("host", host.name)] = access if isinstance(access, str) else \
                Remote(f"ssh:host/{host.name}", "host", host.name, "host", access=access)
        for vm in inventory.system_vms:
            self._remotes[(vm.role, vm.name)] = self._system_vm(vm.role, vm.name, vm.hypervisor, vm.host_id,
                                                                vm.linklocal_ip, vm.private_ip, hosts)
        for router in inventory.routers:
            # A router's control IP (linklocalip) is link-local on KVM/Xen, a pod private IP on VMware.
            self._remotes[("vr", router.name)] = self._system_vm("vr", router.name, router.hypervisor, router.host_id,
                                                                 router.linklocal_ip, router.linklocal_ip, hosts)
        self._by_label = {r.label: r for r in self._remotes.values() if isinstance(r, Remote)}

    def _system_vm(self, role, name, hypervisor, host_id, linklocal, private, hosts) -> Remote | Unverifiable:
        host = hosts.get(host_id)
        kind = (hypervisor or (host.hypervisor if host else None) or "").lower()
        label = f"ssh:systemvm/{name}"
        if kind in THROUGH_HOST:
            if host is None:
                return Unverifiable(f"{role} {name} runs on no host csaudit knows (host id {host_id}), and only that host "
                                    "can reach it", Gap.NO_VANTAGE)
            host_remote = self._remotes.get(("host", host.name))
            if not isinstance(host_remote, Remote):
                return Unverifiable(f"only its host {host.name} can reach {name}, and: {host_remote}", host_remote.gap)
            address = self.settings.hop_address(name, linklocal)
            if not address:
                return Unverifiable(f"no link-local control address known for {role} {name}", Gap.NO_ADDRESS)
            return Remote(label, role, name, "hop", host_label=host_remote.label, hop_address=address,
                          hop_key=self.settings.systemvm_key_on_host(name, kind))
        if kind in DIRECT:
            access = self.settings.direct_access(name, private, kind)
            return access if isinstance(access, str) else Remote(label, role, name, "direct", access=access)
        if kind == "simulator":
            return Unverifiable(f"{role} {name} runs on the CloudStack simulator, which has no SSH", Gap.NOT_JUDGEABLE)
        return Unverifiable(f"{role} {name}: no SSH path known for hypervisor {hypervisor or 'unknown'}", Gap.NO_VANTAGE)

    # ---------------------------------------------------------------- Vantage protocol
    def plan(self, flow: Flow, options: ProbeOptions) -> ProbeTarget | Unverifiable | str:
        """"" means "not mine, no comment": the local vantage says why for generic cases (UDP, ...)."""
        if flow.source.role not in REMOTE_ROLES or flow.probe == "none" or not flow.target.address or flow.outside \
                or (flow.protocol == "udp" and flow.probe not in UDP_KINDS) or flow.protocol not in ("tcp", "udp"):
            return ""
        remote = self._remotes.get((flow.source.role, flow.source.name))
        if remote is None:
            return ""
        if isinstance(remote, Unverifiable):
            return Unverifiable(f"no SSH vantage: {remote}", remote.gap)
        # This machine owning the source address means it is that machine: a local probe is from the
        # true source with no credentials. An object named in --ssh-settings is probed over SSH anyway.
        if flow.source.address and self._owns(flow.source.address) and not self.settings.named(remote.role, remote.name):
            return ""
        # The protocol probe runs remotely where python3 does (agent/probe.py); under bash, a connect.
        return ProbeTarget(flow.target.address, flow.port, flow.protocol, kind=flow.probe, via=remote.label)

    def probe(self, targets: list[ProbeTarget], options: ProbeOptions) -> dict[ProbeTarget, Observation | str]:
        groups: dict[str, list[ProbeTarget]] = {}
        for target in targets:
            groups.setdefault(target.via or "", []).append(target)
        results: dict[ProbeTarget, Observation | str] = {}
        self._states = {}
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
            self._jumps = _JumpHosts(self)
        with collector_running():  # the pipeline pauses it, but asyncio and asyncssh objects make cycles
            self._loop.run_until_complete(self._run(groups, options, results, self._jumps))
        return results

    def close(self) -> None:
        """Close the jump-host connections and the event loop (the end of a run)."""
        if self._loop is None:
            return
        with collector_running():
            self._loop.run_until_complete(self._jumps.close())
            self._loop.run_until_complete(self._loop.shutdown_asyncgens())
            self._loop.run_until_complete(self._loop.shutdown_default_executor())  # name lookups ran there
        self._loop.close()
        self._loop = self._jumps = None

    def __enter__(self) -> SshVantages:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def states(self) -> list[VantageState]:
        return [self._states[label] for label in sorted(self._states)]

    # ---------------------------------------------------------------- the run
    async def _run(self, groups: dict[str, list[ProbeTarget]], options: ProbeOptions, results: dict, jumps: _JumpHosts) -> None:
        by_host: dict[str, tuple[list[ProbeTarget], list[tuple[Remote, list[ProbeTarget]]]]] = {}
        direct: list[tuple[Remote, list[ProbeTarget]]] = []
        for label, targets in groups.items():
            remote = self._by_label.get(label)
            if remote is None:
                results.update(dict.fromkeys(targets, f"unknown vantage {label}"))
            elif remote.kind == "host":
                by_host.setdefault(label, ([], []))[0].extend(targets)
            elif remote.kind == "hop":
                by_host.setdefault(remote.host_label, ([], []))[1].append((remote, targets))
            else:
                direct.append((remote, targets))
        slots = asyncio.Semaphore(max(1, self.settings.concurrency))
        work = [self._host_session(self._by_label[label], own, hops, options, results, slots, jumps)
                for label, (own, hops) in sorted(by_host.items())]
        work += [self._direct_session(remote, targets, options, results, slots, jumps) for remote, targets in direct]
        everything = asyncio.ensure_future(asyncio.gather(*work))
        try:
            while not everything.done():
                await asyncio.wait({everything}, timeout=WAKE_UP)
                if _halted(options) and not everything.done():
                    everything.cancel()  # the targets not yet answered stay out of `results`: not probed
                    break
            if everything.done() and not everything.cancelled():
                everything.result()
        finally:
            try:
                await everything
            except asyncio.CancelledError:
                pass

    async def _host_session(self, host: Remote, own: list[ProbeTarget], hops: list[tuple[Remote, list[ProbeTarget]]],
                            options: ProbeOptions, results: dict, slots: asyncio.Semaphore, jumps: _JumpHosts) -> None:
        async with slots:
            conn = await self._connect(host.access, jumps)
            if isinstance(conn, Unavailable):
                self._fail(host, own, conn, results)
                for remote, targets in hops:
                    self._fail(remote, targets, Unavailable(VantageStatus.NOT_RUN, f"only its host {host.name} can reach it, and "
                                                                       f"{host.label} is {conn.state}: {conn.reason}"), results)
                return
            async with conn:
                channels = asyncio.Semaphore(CHANNELS_PER_CONNECTION)
                await asyncio.gather(
                    self._batch(conn, host, own, options, results, channels),
                    *(self._batch(conn, remote, targets, options, results, channels, through=host) for remote, targets in hops))

    async def _direct_session(self, remote: Remote, targets: list[ProbeTarget], options: ProbeOptions, results: dict,
                              slots: asyncio.Semaphore, jumps: _JumpHosts) -> None:
        async with slots:
            conn = await self._connect(remote.access, jumps)
            if isinstance(conn, Unavailable):
                self._fail(remote, targets, conn, results)
                return
            async with conn:
                await self._batch(conn, remote, targets, options, results, asyncio.Semaphore(1))

    async def _batch(self, conn, remote: Remote, targets: list[ProbeTarget], options: ProbeOptions, results: dict,
                     channels: asyncio.Semaphore, through: Remote | None = None) -> None:
        """One remote command for all of this vantage's probes; one result line per probe."""
        concurrency = max(1, min(options.concurrency, REMOTE_CONCURRENCY))
        bound = batch_bound(len(targets), options.timeout, concurrency, sum(t.kind != "tcp" for t in targets))
        command = probe_command(options.timeout, concurrency)
        if through is not None:
            command = hop_command(command, remote.hop_address, remote.hop_key, self.settings.connect_timeout, bound)
            bound += self.settings.connect_timeout + 5
        async with channels:
            try:
                process = await conn.create_process(command, encoding="utf-8", errors="replace")
                try:
                    process.stdin.write(probe_input(targets))
                    process.stdin.write_eof()
                except BrokenPipeError:
                    pass  # the command ended before reading its input (a hop problem): its output says why
                done = await process.wait(check=False, timeout=bound)
                stdout, stderr, status = done.stdout or "", done.stderr or "", done.exit_status
            except asyncssh.TimeoutError as exc:  # keep what came back before the bound
                stdout, stderr, status = exc.stdout or "", exc.stderr or "", None
            except (asyncssh.Error, OSError) as exc:
                self._fail(remote, targets, Unavailable(VantageStatus.ERROR, f"the SSH session broke: {_text(exc)}"), results)
                return
        answer = parse_output(stdout, targets, options.timeout)
        if answer.engine is None or answer.engine == "none":
            problem = self._why_no_answer(remote, through, answer, stderr, status, bound)
            self._fail(remote, targets, problem, results)
            return
        results.update(answer.observations)
        results.update({t: f"{remote.label}: {why}" for t, why in answer.unchecked.items()})
        missing = [t for t in targets if t not in answer.observations and t not in answer.unchecked]
        results.update(dict.fromkeys(missing, f"{remote.label} gave no result for it within {bound:g} s"))
        self._record(remote, VantageStatus.OK, len(answer.observations), "", answer.engine)

    def _why_no_answer(self, remote: Remote, through: Remote | None, answer, stderr: str, status, bound: float) -> Unavailable:
        last = " ".join(stderr.strip().splitlines()[-1:]) or f"exit status {status}"
        if answer.engine == "none":
            return Unavailable(VantageStatus.UNUSABLE, f"neither python3 nor bash with coreutils timeout on {remote.name}")
        if through is None:
            return Unavailable(VantageStatus.ERROR, f"the probe command failed on {remote.name}: {last}")
        where = f"{SYSTEMVM_USER}@{remote.hop_address}:{SYSTEMVM_PORT} from {through.name}"
        if answer.hop_problem == "key-missing":
            return Unavailable(VantageStatus.UNUSABLE, f"key missing: {remote.hop_key} does not exist on {through.name}")
        if answer.hop_problem == "key-unreadable":
            return Unavailable(VantageStatus.UNUSABLE, f"key {remote.hop_key} on {through.name} is not readable by the SSH user")
        if answer.hop_problem == "no-ssh-client":
            return Unavailable(VantageStatus.UNUSABLE, f"no ssh client on {through.name}")
        if status == 124 or status is None:
            return Unavailable(VantageStatus.ERROR, f"{where}: no answer within {bound:g} s")
        lowered = stderr.lower()
        if "permission denied" in lowered:
            return Unavailable(VantageStatus.DENIED, f"auth refused by {where} (key {remote.hop_key})")
        for words in ("connection refused", "timed out", "no route to host", "network is unreachable", "host is unreachable"):
            if words in lowered:
                return Unavailable(VantageStatus.UNREACHABLE, f"{where}: {last.split(': ')[-1]}")
        return Unavailable(VantageStatus.ERROR, f"{where}: ssh exit status {status}: {last}")

    # ---------------------------------------------------------------- connections
    async def _connect(self, access: SshAccess, jumps: _JumpHosts, tunnel=None):
        """An SSH connection, or why not (the exact reason goes to the report)."""
        where = access.describe()
        if access.key and not os.path.isfile(access.key):
            return Unavailable(VantageStatus.UNUSABLE, f"key missing: {access.key} does not exist on this machine")
        if tunnel is None and access.jump_host:
            tunnel = await jumps.get(access.jump_host)
            if isinstance(tunnel, Unavailable):
                return Unavailable(tunnel.state, f"jump host {access.jump_host}: {tunnel.reason}")
        options: dict = {"connect_timeout": self.settings.connect_timeout, "login_timeout": self.settings.connect_timeout}
        if access.port:
            options["port"] = access.port
        if access.user:
            options["username"] = access.user
        if access.key:
            options["client_keys"] = [access.key]
            options["agent_path"] = None  # exactly the key asked for
        if not access.check_host_key:
            options["known_hosts"] = None  # system VMs: see remote.hop_command and README
        elif access.known_hosts:
            options["known_hosts"] = access.known_hosts
        if tunnel is not None:
            options["tunnel"] = tunnel
        try:
            conn = await asyncssh.connect(access.address, **options)
        except asyncssh.PermissionDenied:
            return Unavailable(VantageStatus.DENIED, f"auth refused by {where}")
        except asyncssh.HostKeyNotVerifiable as exc:
            return Unavailable(VantageStatus.DENIED, f"host key of {where} not trusted ({_text(exc)}); check its fingerprint "
                                         "and add it to known_hosts (csaudit never adds one)")
        except (asyncssh.KeyImportError, asyncssh.KeyEncryptionError) as exc:
            return Unavailable(VantageStatus.UNUSABLE, f"cannot use key {access.key}: {_text(exc)} (load it into ssh-agent "
                                           "and leave --ssh-key out)")
        except ConnectionRefusedError:
            return Unavailable(VantageStatus.UNREACHABLE, f"host unreachable: {where} refused the connection (no sshd listening?)")
        except TimeoutError:
            return Unavailable(VantageStatus.UNREACHABLE, f"host unreachable: no answer from {where} within "
                                              f"{self.settings.connect_timeout:g} s")
        except OSError as exc:
            return Unavailable(VantageStatus.UNREACHABLE, f"host unreachable: {where}: {exc.strerror or exc}")
        except asyncssh.Error as exc:
            return Unavailable(VantageStatus.ERROR, f"SSH to {where} failed: {_text(exc)}")
        except ValueError as exc:  # asyncssh reports unusable option values this way
            return Unavailable(VantageStatus.UNUSABLE, f"SSH to {where}: {exc}")
        return conn

    # ---------------------------------------------------------------- bookkeeping
    def _record(self, remote: Remote, state: str, probes: int, reason: str = "", engine: str | None = None) -> None:
        self._states[remote.label] = VantageState(remote.label, state, probes, reason, remote.role, remote.name, engine)

    def _fail(self, remote: Remote, targets: list[ProbeTarget], problem: Unavailable, results: dict) -> None:
        self._record(remote, problem.state, 0, problem.reason)
        results.update(dict.fromkeys(targets, f"{remote.label} {problem.state}: {problem.reason}"))

    # ---------------------------------------------------------------- run --collect-firewall
    def read_firewalls(self, objects: Iterable[tuple[str, str]]) -> dict[tuple[str, str], MachineFirewall | str]:
        """Read, read-only, the packet filter and the interfaces of these objects (role, name), each the
        way its vantage is reached (rulesets.py has the command); an object without a vantage gets why."""
        found: dict[tuple[str, str], MachineFirewall | str] = {}
        wanted = []
        for key in dict.fromkeys(objects):
            remote = self._remotes.get(key)
            if remote is None:
                found[key] = f"no SSH vantage stands for {key[0]} {key[1]}"
            elif isinstance(remote, Unverifiable):
                found[key] = str(remote)
            elif remote.label in self._states and self._states[remote.label].state != VantageStatus.OK:
                state = self._states[remote.label]  # it could not be used for the probes a moment ago: no second try
                found[key] = f"{remote.label} {state.state}: {state.reason}"
            else:
                wanted.append(remote)
        if wanted:
            if self._loop is None:
                self._loop = asyncio.new_event_loop()
                self._jumps = _JumpHosts(self)
            with collector_running():
                self._loop.run_until_complete(self._read_firewalls(wanted, found))
        return found

    async def _read_firewalls(self, wanted: list[Remote], found: dict) -> None:
        slots = asyncio.Semaphore(max(1, self.settings.concurrency))
        await asyncio.gather(*(self._read_firewall(remote, found, slots) for remote in wanted))

    async def _read_firewall(self, remote: Remote, found: dict, slots: asyncio.Semaphore) -> None:
        key = (remote.role, remote.name)
        through = self._by_label.get(remote.host_label) if remote.kind == "hop" else None
        async with slots:
            conn = await self._connect(through.access if through else remote.access, self._jumps)
            if isinstance(conn, Unavailable):
                found[key] = f"{(through or remote).label} {conn.state}: {conn.reason}"
                return
            boundary = new_boundary()
            command, bound = firewall_command(boundary), READ_BOUND
            if through is not None:
                command = hop_command(command, remote.hop_address, remote.hop_key, self.settings.connect_timeout, bound)
                bound += self.settings.connect_timeout + 5
            async with conn:
                try:
                    done = await conn.run(command, check=False, timeout=bound, encoding="utf-8", errors="replace")
                except asyncssh.TimeoutError:
                    found[key] = f"{remote.label}: no answer within {bound:g} s"
                    return
                except (asyncssh.Error, OSError) as exc:
                    found[key] = f"{remote.label}: the SSH session broke: {_text(exc)}"
                    return
        read = parse_firewall_output(done.stdout or "", boundary, remote.role, remote.name, remote.label)
        if not read.rulesets and done.stderr and done.stderr.strip():  # a hop that failed says why on stderr
            read = dataclasses.replace(read, problems=(*read.problems, done.stderr.strip().splitlines()[-1][:200]))
        found[key] = read


class _JumpHosts:
    """One connection per jump host, shared by every connection that goes through it."""

    def __init__(self, owner: SshVantages):
        self._owner = owner
        self._open: dict[str, asyncio.Future] = {}

    async def get(self, jump_host: str):
        opened = self._open.get(jump_host)
        if opened is None or (opened.done() and not opened.cancelled() and not isinstance(opened.result(), Unavailable)
                              and opened.result().is_closed()):  # gone since an earlier zone: log in again
            access = self._owner.settings.jump_access(jump_host)
            self._open[jump_host] = asyncio.ensure_future(self._owner._connect(access, self))
        return await asyncio.shield(self._open[jump_host])

    async def close(self) -> None:
        for future in self._open.values():
            if future.done() and not future.cancelled() and not isinstance(future.result(), Unavailable):
                future.result().close()
            elif not future.done():
                future.cancel()


def _halted(options: ProbeOptions) -> bool:
    return (options.stop is not None and options.stop.is_set()) or \
        (options.deadline is not None and time.monotonic() >= options.deadline)


def _text(exc: BaseException) -> str:
    return str(getattr(exc, "reason", "") or exc).strip() or type(exc).__name__
