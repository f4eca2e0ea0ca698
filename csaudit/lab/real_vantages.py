"""Remote vantages for the embedded cloud: real sshd processes on the lab's 127.x addresses.

The demo gives csaudit real SSH vantages where this machine can run sshd (root, OpenSSH server):
  - the first KVM host that runs system VMs gets an sshd on its address, port 22;
  - the system VMs and routers on it get one sshd on their link-local control IPs, port 3922, that
    accepts only the "cloud" key, which csaudit uses from inside the host's session (as on KVM);
  - VMware system VMs get an sshd on their private IP, port 3922, with the "management server" key;
  - a host the API calls Up but that serves nothing (fault api-state-mismatch) is named too: csaudit
    tries it, cannot reach it, and reports the disagreement as a finding.
These objects are named in the SSH settings, so SSH wins over a local probe even though this machine
owns every 127.x address. Keys, host keys and logs live in a temp dir removed at the end.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile

from csaudit.lab import sshd
from csaudit.lab.schema import Topology
from csaudit.vantage.ssh_settings import RemoteSettings


@dataclasses.dataclass(frozen=True)
class RemotePlan:
    host: str | None = None  # gets sshd on 22
    through_host: tuple[str, ...] = ()  # system VMs / routers on that host: sshd on control IP:3922
    direct: tuple[str, ...] = ()  # VMware system VMs: sshd on private IP:3922
    silent_hosts: tuple[str, ...] = ()  # named, but nothing listens (api-state-mismatch)

    @property
    def served_elsewhere(self) -> frozenset[tuple[str, int]]:
        """(object, port) the lab's own listeners leave to the sshds."""
        return frozenset({(self.host, 22)} if self.host else set()) | \
            {(name, 3922) for name in (*self.through_host, *self.direct)}


def plan_remote(topology: Topology) -> RemotePlan:
    host_kind = {h.name: c.hypervisor for z in topology.zones for c in z.clusters for h in c.hosts}
    vms = [(vm.name, vm.host) for z in topology.zones for vm in (*z.system_vms, *z.routers)]
    kvm_host = next((host for _, host in vms if host_kind.get(host) == "KVM"), None)
    silent = tuple(name for fault in topology.faults if fault.kind == "api-state-mismatch"
                   for name in fault.objects if host_kind.get(name) in ("KVM", "XenServer") and name != kvm_host)
    return RemotePlan(
        host=kvm_host,
        through_host=tuple(name for name, host in vms if host == kvm_host),
        direct=tuple(vm.name for z in topology.zones for vm in z.system_vms if host_kind.get(vm.host) == "VMware"),
        silent_hosts=silent,
    )


class RemoteVantages:
    """Starts the sshds of a plan on a running lab's addresses; `settings` tells csaudit how to use them."""

    def __init__(self, plan: RemotePlan):
        self.plan = plan
        self.settings = RemoteSettings(enabled=False)
        self._workdir: str | None = None
        self._sshds: list[sshd.Sshd] = []

    def start(self, topology: Topology) -> RemoteSettings:
        self._workdir = tempfile.mkdtemp(prefix="csaudit-demo-ssh-")
        try:
            self.settings = self._start(topology, self._workdir)
        except BaseException:
            self.stop()
            raise
        return self.settings

    def _start(self, topology: Topology, work: str) -> RemoteSettings:
        host_address = {h.name: h.address for z in topology.zones for c in z.clusters for h in c.hosts}
        control = {vm.name: vm.control_address for z in topology.zones for vm in z.system_vms}
        control.update({r.name: r.linklocal for z in topology.zones for r in z.routers})
        client_key, cloud_key, ms_key = (os.path.join(work, n) for n in ("csaudit_id", "id_rsa.cloud", "ms_id_rsa"))
        client, cloud, ms = sshd.make_key(client_key), sshd.make_key(cloud_key, "cloud"), sshd.make_key(ms_key, "cloud@ms")
        known_hosts = os.path.join(work, "known_hosts")
        sections: list[tuple[str, tuple]] = []
        lines = []
        if self.plan.host:
            host = self._run(os.path.join(work, "host"), [(host_address[self.plan.host], 22)], [client])
            lines += host.known_hosts_lines()
            sections.append((f"host.{self.plan.host}", ()))
        if self.plan.through_host:
            self._run(os.path.join(work, "vms"), [(control[n], 3922) for n in self.plan.through_host], [cloud])
        if self.plan.direct:
            self._run(os.path.join(work, "vmware-vms"), [(control[n], 3922) for n in self.plan.direct], [ms])
        with open(known_hosts, "w", encoding="ascii") as handle:
            handle.write("".join(f"{line}\n" for line in lines))
        sections += [(f"host.{name}", ()) for name in self.plan.silent_hosts]
        sections += [(f"systemvm.{name}", ()) for name in (*self.plan.through_host, *self.plan.direct)]
        return RemoteSettings(enabled=True, connect_timeout=3.0, file=(
            ("defaults", (("key", client_key), ("known_hosts", known_hosts), ("user", "root"))),
            ("kvm", (("systemvm_key", cloud_key),)),  # on the "host": this machine plays it
            ("vmware", (("systemvm_key", ms_key),)),
            *sections))

    def _run(self, workdir: str, listen, keys) -> sshd.Sshd:
        server = sshd.Sshd(workdir, listen, keys)
        self._sshds.append(server)
        return server.start()

    def stop(self) -> None:
        for server in self._sshds:
            server.stop()
        self._sshds.clear()
        if self._workdir:
            sshd.remove_dir(self._workdir)
            self._workdir = None

    def describe(self) -> list[str]:
        plan = self.plan
        lines = []
        if plan.host:
            lines.append(f"host {plan.host}: real sshd on port 22 (ssh:host/{plan.host})")
        if plan.through_host:
            lines.append(f"{', '.join(plan.through_host)}: real sshd on their control IPs, port 3922, "
                         f"reached from inside {plan.host}'s session with the cloud key")
        if plan.direct:
            lines.append(f"{', '.join(plan.direct)} (VMware): real sshd on their private IPs, port 3922, "
                         "reached directly with the management server's key")
        if plan.silent_hosts:
            lines.append(f"{', '.join(plan.silent_hosts)}: named for SSH, but nothing listens there")
        return lines

    def __enter__(self) -> RemoteVantages:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
