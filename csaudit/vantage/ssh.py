"""Remote vantages over SSH: management servers, hypervisor hosts, system VMs (SSVM, CPVM, routers)
on port 3922, and a machine outside the management network.

Who stands for a flow's source (README, Remote vantages; upstream: NetworkOrchestrator.getSystemVMAccessDetails,
scripts/network/domr/router_proxy.sh, VmwareManagerImpl.getSystemVMKeyFile):
  management server       ssh:ms/NAME        SSH to its address from the API (22 unless configured).
  host                    ssh:host/NAME      SSH to the host's management IP (22 unless configured).
  system VM on KVM/LXC/   ssh:systemvm/NAME  from inside that host's session, as CloudStack does:
  XenServer                                  ssh -p 3922 -i /root/.ssh/id_rsa.cloud root@<link-local>.
  system VM on VMware/    ssh:systemvm/NAME  to its private (control) IP on 3922 with the management
  Hyper-V                                    server's key: from this machine when the key is here,
                                             else from inside an MS session, with the key on the MS.
  outside                 ssh:outside/HOST   the --outside-host, for the deny rules meant for outside.

One SSH connection per MS or host carries its own probes and those of every system VM reached through
it; one per directly reached system VM; one per jump host. Each vantage's probes go in a single remote
command (remote.py and its agents). A vantage that cannot be reached leaves its flows unverified with
the exact reason.
"""

from __future__ import annotations

import asyncio
import contextlib
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
from csaudit.vantage.listening import READ_COMMAND, parse_proc_net_tcp
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

REMOTE_ROLES = (Role.MS, Role.HOST, Role.SSVM, Role.CPVM, Role.VR, Role.OUTSIDE, Role.USAGE)
KEPT_ROLES = (Role.MS, Role.OUTSIDE)  # their flows are in every zone: one login for the whole run
# Hosts whose listeners a zone reads for its port ranges, kept open until the zone's probes: at most so many
# (the others' ranges get the spread sample alone), so that a zone of 2,000 hosts holds no 2,000 connections.
MAX_LISTENER_READS = 256
THROUGH_HOST = LINK_LOCAL_CONTROL  # system VMs reached over the host's link-local bridge
DIRECT = frozenset({Hypervisor.VMWARE, Hypervisor.HYPERV})  # the MS opens 3922 itself
CHANNELS_PER_CONNECTION = 8  # OpenSSH's MaxSessions defaults to 10 sessions per connection
REMOTE_CONCURRENCY = 32  # connects in flight inside one remote command
WAKE_UP = 0.2  # seconds; how often the run looks at the stop flag and the deadline


@dataclasses.dataclass(frozen=True)
class Remote:
    """One remote vantage and how to get there."""

    label: str  # ssh:ms/NAME, ssh:host/NAME, ssh:systemvm/NAME or ssh:outside/HOST
    role: str
    name: str
    kind: str  # host (a login of its own: MS, host, outside) | hop (through a host's or an MS's session) | direct
    access: SshAccess | None = None  # host, direct
    host_label: str | None = None  # hop: the host or MS whose session carries it
    hop_address: str | None = None  # hop: the control IP (link-local from a host, private from an MS)
    hop_keys: tuple[str, ...] = ()  # hop: the key's paths to try over there
    address: str | None = None  # host, MS: its address as the API gives it (a flow's target address)


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
        # A run probes zone by zone: one event loop and the kept connections (jump hosts, MSs, outside) serve them all.
        self._loop: asyncio.AbstractEventLoop | None = None
        self._kept: _KeptConnections | None = None
        self._zone_kept: set[SshAccess] = set()  # hosts logged in to read their listeners: kept until the zone's probes
        hosts = {host.id: host for host in inventory.hosts}
        for ms in inventory.management_servers:
            access = settings.ms_access(ms.name, ms.address)
            if isinstance(access, SshAccess) and access.jump_host and settings.jump_access(access.jump_host).address == access.address:
                access = settings.jump_access(access.jump_host)  # the jump host itself: one connection serves both
            self._remotes[("ms", ms.name)] = access if isinstance(access, str) else \
                Remote(f"ssh:ms/{ms.name}", "ms", ms.name, "host", access=access, address=ms.address)
        outside = settings.outside_access()
        if outside is not None:
            self._remotes[("outside", "outside")] = Remote(f"ssh:outside/{outside.address}", "outside", outside.address,
                                                           "host", access=outside)
        for host in inventory.hosts:
            if (host.hypervisor or "").lower() == Hypervisor.VMWARE and not settings.named_esxi(host.name):
                self._remotes[("host", host.name)] = Unverifiable(
                    f"ESXi host {host.name}: CloudStack needs no SSH to ESXi, so csaudit does not try it; name it in "
                    f"--ssh-settings ([host.{host.name}] or [vmware]) to probe from it", Gap.NO_VANTAGE)
                continue
            access = settings.host_access(host.name, host.address, host.hypervisor)
            self._remotes[("host", host.name)] = access if isinstance(access, str) else \
                Remote(f"ssh:host/{host.name}", "host", host.name, "host", access=access, address=host.address)
        for vm in inventory.system_vms:
            self._remotes[(vm.role, vm.name)] = self._system_vm(vm.role, vm.name, vm.hypervisor, vm.host_id,
                                                                vm.linklocal_ip, vm.private_ip, hosts)
        for router in inventory.routers:
            # A router's control IP (linklocalip) is link-local on KVM/Xen, a pod private IP on VMware.
            self._remotes[("vr", router.name)] = self._system_vm("vr", router.name, router.hypervisor, router.host_id,
                                                                 router.linklocal_ip, router.linklocal_ip, hosts)
        for service in inventory.services:  # the usage server on an MS node probes from that MS's vantage
            server = next((ms for ms in inventory.management_servers if ms.address == service.address), None)
            if service.role == Role.USAGE and server is not None and ("ms", server.name) in self._remotes:
                self._remotes[(Role.USAGE, service.name)] = self._remotes[("ms", server.name)]
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
                          hop_keys=(self.settings.systemvm_key_on_host(name, kind),))
        if kind in DIRECT:
            access = self.settings.direct_access(name, private, kind)
            if isinstance(access, SshAccess):
                return Remote(label, role, name, "direct", access=access)
            ms = self._ms_for_system_vms()
            if access.gap != Gap.VANTAGE_UNAVAILABLE or ms is None:  # no address, or no key here and no MS to use
                return access
            # The MS opens 3922 itself with a key that stays on it: so does csaudit, from inside an MS session.
            return Remote(label, role, name, "hop", host_label=ms.label, hop_address=self.settings.hop_address(name, private),
                          hop_keys=self.settings.systemvm_keys_on_ms(ms.name))
        if kind == "simulator":
            return Unverifiable(f"{role} {name} runs on the CloudStack simulator, which has no SSH", Gap.NOT_JUDGEABLE)
        return Unverifiable(f"{role} {name}: no SSH path known for hypervisor {hypervisor or 'unknown'}", Gap.NO_VANTAGE)

    def _ms_for_system_vms(self) -> Remote | None:
        """The MS whose session reaches VMware/Hyper-V system VMs: the first one this machine is not."""
        servers = [r for (role, _), r in sorted(self._remotes.items()) if role == "ms" and isinstance(r, Remote)]
        return next((r for r in servers if not self._owns(r.access.address)), None)

    # ---------------------------------------------------------------- Vantage protocol
    def plan(self, flow: Flow, options: ProbeOptions) -> ProbeTarget | Unverifiable | str:
        """"" means "not mine, no comment": the local vantage says why for generic cases (UDP, ...)."""
        if flow.source.role not in REMOTE_ROLES or flow.probe == "none" or not flow.target.address \
                or (flow.protocol == "udp" and flow.probe not in UDP_KINDS) or flow.protocol not in ("tcp", "udp"):
            return ""
        remote = self._remotes.get(("outside", "outside") if flow.outside else (flow.source.role, flow.source.name))
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
        with collector_running():  # the pipeline pauses it, but asyncio and asyncssh objects make cycles
            self._event_loop().run_until_complete(self._run(groups, options, results, self._kept))
            self._loop.run_until_complete(self._kept.release(self._zone_kept))
        self._zone_kept = set()
        return results

    def listening(self, addresses: set[str], options: ProbeOptions) -> dict[str, frozenset[tuple[str, int]]]:
        """The listening TCP sockets of the MSs and hosts at these addresses, from their /proc/net/tcp{,6}
        (read-only). Each connection is kept for the probes of the same zone: still one login per vantage."""
        readers = sorted((r for r in self._by_label.values() if r.kind == "host" and r.address in addresses),
                         key=lambda r: r.label)[:MAX_LISTENER_READS]
        if not readers or _halted(options):
            return {}
        with collector_running():
            return self._event_loop().run_until_complete(self._read_listeners(readers))

    def _event_loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
            self._kept = _KeptConnections(self)
        return self._loop

    def close(self) -> None:
        """Close the jump-host connections and the event loop (the end of a run)."""
        if self._loop is None:
            return
        with collector_running():
            self._loop.run_until_complete(self._kept.close())
            self._loop.run_until_complete(self._loop.shutdown_asyncgens())
            self._loop.run_until_complete(self._loop.shutdown_default_executor())  # name lookups ran there
        self._loop.close()
        self._loop = self._kept = None

    def __enter__(self) -> SshVantages:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def states(self) -> list[VantageState]:
        return [self._states[label] for label in sorted(self._states)]

    async def _read_listeners(self, readers: list[Remote]) -> dict[str, frozenset[tuple[str, int]]]:
        slots = asyncio.Semaphore(max(1, self.settings.concurrency))
        bound = self.settings.connect_timeout + 5

        async def read(remote: Remote) -> tuple[str, frozenset[tuple[str, int]]] | None:
            async with slots:
                if remote.role not in KEPT_ROLES:
                    self._zone_kept.add(remote.access)
                conn = await self._kept.get(remote.access)
                if isinstance(conn, Unavailable):
                    return None  # the probes of the zone say why
                try:
                    done = await conn.run(READ_COMMAND, check=False, timeout=bound, encoding="ascii", errors="replace")
                except (asyncssh.Error, OSError):
                    return None  # the sample alone; the session's own probes report a broken session
                return remote.address, parse_proc_net_tcp(done.stdout or "")

        answers = await asyncio.gather(*(read(remote) for remote in readers))
        return dict(answer for answer in answers if answer is not None)

    # ---------------------------------------------------------------- the run
    async def _run(self, groups: dict[str, list[ProbeTarget]], options: ProbeOptions, results: dict, pool: _KeptConnections) -> None:
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
        work = [self._host_session(self._by_label[label], own, hops, options, results, slots, pool)
                for label, (own, hops) in sorted(by_host.items())]
        work += [self._direct_session(remote, targets, options, results, slots, pool) for remote, targets in direct]
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
                            options: ProbeOptions, results: dict, slots: asyncio.Semaphore, pool: _KeptConnections) -> None:
        async with slots:
            conn, kept = await self._login(host, pool)
            if isinstance(conn, Unavailable):
                self._fail(host, own, conn, results)
                whose = "its host" if host.role == "host" else "the management server"
                for remote, targets in hops:
                    self._fail(remote, targets, Unavailable(VantageStatus.NOT_RUN, f"only {whose} {host.name} can reach it, and "
                                                                       f"{host.label} is {conn.state}: {conn.reason}"), results)
                return
            async with contextlib.nullcontext(conn) if kept else conn:
                channels = asyncio.Semaphore(CHANNELS_PER_CONNECTION)
                await asyncio.gather(
                    self._batch(conn, host, own, options, results, channels),
                    *(self._batch(conn, remote, targets, options, results, channels, through=host) for remote, targets in hops))

    async def _direct_session(self, remote: Remote, targets: list[ProbeTarget], options: ProbeOptions, results: dict,
                              slots: asyncio.Semaphore, pool: _KeptConnections) -> None:
        async with slots:
            conn = await self._connect(remote.access, pool)
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
            command = hop_command(command, remote.hop_address, remote.hop_keys, self.settings.connect_timeout, bound)
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
        keys = remote.hop_keys[0] if len(remote.hop_keys) == 1 else f"the first of {', '.join(remote.hop_keys)}"
        if answer.hop_problem == "key-missing":
            missing = f"{keys} does not exist" if len(remote.hop_keys) == 1 else f"none of {', '.join(remote.hop_keys)} exists"
            return Unavailable(VantageStatus.UNUSABLE, f"key missing: {missing} on {through.name}")
        if answer.hop_problem == "key-unreadable":
            return Unavailable(VantageStatus.UNUSABLE, f"key {keys} on {through.name} is not readable by the SSH user")
        if answer.hop_problem == "no-ssh-client":
            return Unavailable(VantageStatus.UNUSABLE, f"no ssh client on {through.name}")
        if status == 124 or status is None:
            return Unavailable(VantageStatus.ERROR, f"{where}: no answer within {bound:g} s")
        lowered = stderr.lower()
        if "permission denied" in lowered:
            return Unavailable(VantageStatus.DENIED, f"auth refused by {where} (key {keys})")
        for words in ("connection refused", "timed out", "no route to host", "network is unreachable", "host is unreachable"):
            if words in lowered:
                return Unavailable(VantageStatus.UNREACHABLE, f"{where}: {last.split(': ')[-1]}")
        return Unavailable(VantageStatus.ERROR, f"{where}: ssh exit status {status}: {last}")

    # ---------------------------------------------------------------- connections
    async def _login(self, remote: Remote, pool: _KeptConnections):
        """The connection to an MS, host or outside vantage, or why not; and whether the pool keeps it
        (an MS's serves the whole run, a host whose listeners were read its zone): then use it, never close it."""
        kept = remote.role in KEPT_ROLES or remote.access in self._zone_kept
        return await (pool.get(remote.access) if kept else self._connect(remote.access, pool)), kept

    async def _connect(self, access: SshAccess, pool: _KeptConnections, tunnel=None):
        """An SSH connection, or why not (the exact reason goes to the report)."""
        where = access.describe()
        if access.key and not os.path.isfile(access.key):
            return Unavailable(VantageStatus.UNUSABLE, f"key missing: {access.key} does not exist on this machine")
        if tunnel is None and access.jump_host:
            tunnel = await pool.get(self.settings.jump_access(access.jump_host))
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
            with collector_running():
                self._event_loop().run_until_complete(self._read_firewalls(wanted, found))
        return found

    async def _read_firewalls(self, wanted: list[Remote], found: dict) -> None:
        slots = asyncio.Semaphore(max(1, self.settings.concurrency))
        await asyncio.gather(*(self._read_firewall(remote, found, slots) for remote in wanted))

    async def _read_firewall(self, remote: Remote, found: dict, slots: asyncio.Semaphore) -> None:
        key = (remote.role, remote.name)
        through = self._by_label.get(remote.host_label) if remote.kind == "hop" else None
        async with slots:
            conn, kept = await self._login(through or remote, self._kept)
            if isinstance(conn, Unavailable):
                found[key] = f"{(through or remote).label} {conn.state}: {conn.reason}"
                return
            boundary = new_boundary()
            command, bound = firewall_command(boundary), READ_BOUND
            if through is not None:
                command = hop_command(command, remote.hop_address, remote.hop_keys, self.settings.connect_timeout, bound)
                bound += self.settings.connect_timeout + 5
            async with contextlib.nullcontext(conn) if kept else conn:
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


class _KeptConnections:
    """Connections kept for the whole run (audited zone by zone): one per jump host, shared by every
    connection through it, and one per management server or outside vantage, whose flows are in
    every zone. A host's flows are all in its zone: its connection ends with the zone."""

    def __init__(self, owner: SshVantages):
        self._owner = owner
        self._open: dict[SshAccess, asyncio.Future] = {}

    async def get(self, access: SshAccess):
        """The connection for `access`, or why not: an MS that is also the jump host is one login."""
        opened = self._open.get(access)
        if opened is None or (opened.done() and not opened.cancelled() and not isinstance(opened.result(), Unavailable)
                              and opened.result().is_closed()):  # gone since an earlier zone: log in again
            self._open[access] = asyncio.ensure_future(self._owner._connect(access, self))
        return await asyncio.shield(self._open[access])

    async def release(self, accesses: set[SshAccess]) -> None:
        """Close the connections kept for one zone only."""
        for access in accesses:
            future = self._open.pop(access, None)
            if future is not None and future.done() and not future.cancelled() and not isinstance(future.result(), Unavailable):
                future.result().close()

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
