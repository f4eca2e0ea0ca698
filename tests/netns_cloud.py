"""A realistic CloudStack cloud made of network namespaces: segments, a router with its firewall, host firewalls,
real sshd on every machine an operator or CloudStack logs in to, and the services each port really has (needs root).

                      ws (the operator's workstation: runs csaudit, owns none of the cloud's addresses)
                       |  10.219.0.0/24
    rtr (the router: forwards between the segments through an nft forward filter; null-routes link-local)
       |  mgmt 10.216.0.0/24                 |  stor 10.217.0.0/24        |  pub 10.218.0.0/24 (stands for a public net)
    ms1 ms2 db kvm01 kvm02 esxi01 vcenter    nfs                          outside (the internet: a host, the zone's
    infra (internal DNS, NTP)                                             upstream DNS), system VMs' public NICs
    system VMs' private NICs (eth1)
    kvm01 [cloud0 169.254.0.1/16] -- s-1-VM (SSVM), v-2-VM (CPVM) eth0       kvm02 [cloud0] -- r-3-VM (VR) eth0

The segments are bridges in one switch namespace (sw); every other machine is a namespace of its own. System VMs
are reachable as in CloudStack only: sshd on 3922 of their link-local address, from their host, for KVM; on the
private (control) address with the MS's key for the VMware SSVM s-5-VM. The MSs see a private /root and a /var
overlay holding the MS key at /var/cloudstack/management/.ssh/id_rsa; the KVM hosts' /root holds id_rsa.cloud;
this machine's /root and /var are never written (tests/netns_kit.private_mounts).

Firewalls are written as an operator would have them (not derived from csaudit's flows), with planted faults:
  agent-dropped      ms2 drops kvm02's connections to the agent port 8250
  nfs-rejected       the router rejects the SSVM's (s-1-VM) NFS 2049 to storage with a TCP reset
  integration-open   ms1 accepts the integration API 8096 from the whole management network (meant: itself only);
                     the router keeps the workstation out, so only a peer MS or a host sees it
  vnc-partly-open    kvm01 accepts VNC from the CPVM on 5900-5902 only, and drops the rest of 5900-6100
  agent-published    the router forwards the outside host to ms1's agent port 8250
  vcenter-dropped    vCenter drops the VMware SSVM's 443 (found only through an MS: no other way to s-5-VM)

Every name carries this process's pid; everything is removed on exit (also on failure), and what a killed run
left is removed by the next one (bench.netns.remove_stale). No link leads to this machine's own namespace, so
the cloud's addresses (private test subnets) exist only inside these namespaces and no packet leaves them.
"""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
import sys

from csaudit.collect.saved import inventory_to_dict
from csaudit.lab import sshd
from csaudit.model.inventory import (
    Cluster,
    Database,
    Host,
    ImageStore,
    Inventory,
    ManagementServer,
    Pod,
    Router,
    StoragePool,
    SystemVm,
    VCenter,
    Zone,
)
from tests.netns_kit import (
    BASH_ONLY_TOOLS,
    REPO,
    Namespaces,
    ServedPorts,
    bash_only_bin,
    bridge,
    exec_in,
    link_up,
    load_nft,
    private_mounts,
    route,
    run,
    start_sshd,
    veth,
)

PREFIX = "csa15-"
# What the cloud runs beyond Python and `ip` (a test that uses it marks itself netns and programs(*PROGRAMS)):
# nft for the firewalls, sysctl for the router's forwarding, sshd and ssh for every login and hop, unshare and
# mount (overlay) for private /root and /var, the bash-only CPVM's coreutils.
PROGRAMS = ("nft", "sysctl", "sshd", "ssh", "unshare", "mount", *BASH_ONLY_TOOLS)

SEGMENTS = {"mgmt": "10.216.0", "stor": "10.217.0", "pub": "10.218.0"}  # /24 each; the router is .1 on each
WORKSTATION_NET = "10.219.0"  # ws .10, the router .1
LINK_LOCAL_GATEWAY = "169.254.0.1"  # cloud0 on each KVM host

MGMT, STOR, PUB = (SEGMENTS[s] for s in ("mgmt", "stor", "pub"))
ADDRESS = {  # the machines' addresses, as the CloudStack API lists them
    "ms1": f"{MGMT}.11", "ms2": f"{MGMT}.12", "db": f"{MGMT}.20", "kvm01": f"{MGMT}.31", "kvm02": f"{MGMT}.32",
    "esxi01": f"{MGMT}.41", "vcenter": f"{MGMT}.45", "internal-dns": f"{MGMT}.53", "ntp": f"{MGMT}.123",
    "s-1-VM": f"{MGMT}.101", "v-2-VM": f"{MGMT}.102", "s-5-VM": f"{MGMT}.105",
    "nfs": f"{STOR}.40", "outside": f"{PUB}.200", "zone-dns": f"{PUB}.53", "ws": f"{WORKSTATION_NET}.10",
}
PUBLIC = {"s-1-VM": f"{PUB}.101", "v-2-VM": f"{PUB}.102", "r-3-VM": f"{PUB}.103", "s-5-VM": f"{PUB}.105"}
LINK_LOCAL = {"s-1-VM": "169.254.1.1", "v-2-VM": "169.254.1.2", "r-3-VM": "169.254.1.3"}
RUNS_ON = {"s-1-VM": "kvm01", "v-2-VM": "kvm01", "r-3-VM": "kvm02"}  # KVM system VMs and their host

# Each machine's NICs on the segments: (interface, segment, addresses), and the segment of its default gateway.
NICS = {
    "ms1": (("eth0", "mgmt", ("ms1",)),), "ms2": (("eth0", "mgmt", ("ms2",)),), "db": (("eth0", "mgmt", ("db",)),),
    "kvm01": (("eth0", "mgmt", ("kvm01",)),), "kvm02": (("eth0", "mgmt", ("kvm02",)),),
    "esxi01": (("vmk0", "mgmt", ("esxi01",)),), "vcenter": (("eth0", "mgmt", ("vcenter",)),),
    "infra": (("eth0", "mgmt", ("internal-dns", "ntp")),),
    "nfs": (("eth0", "stor", ("nfs",)),),
    "outside": (("eth0", "pub", ("outside", "zone-dns")),),
    # System VMs as CloudStack wires them: eth0 control (link-local, on the host), eth1 private, eth2 public.
    "s-1-VM": (("eth1", "mgmt", ("s-1-VM",)), ("eth2", "pub", ("s-1-VM@pub",))),
    "v-2-VM": (("eth1", "mgmt", ("v-2-VM",)), ("eth2", "pub", ("v-2-VM@pub",))),
    "r-3-VM": (("eth2", "pub", ("r-3-VM@pub",)),),
    "s-5-VM": (("eth1", "mgmt", ("s-5-VM",)), ("eth2", "pub", ("s-5-VM@pub",))),
}
GATEWAY = {"nfs": "stor", "outside": "pub", "s-1-VM": "pub", "v-2-VM": "pub", "r-3-VM": "pub", "s-5-VM": "pub"}  # else mgmt
MACHINES = ("ws", *NICS)


def _address(name: str) -> str:
    return PUBLIC[name.split("@")[0]] if name.endswith("@pub") else ADDRESS[name]


# ---------------------------------------------------------------- firewalls (nft), as the operator wrote them
ESTABLISHED = "    ct state established,related accept\n    iif lo accept\n    meta l4proto icmp accept\n"

ROUTER = f"""table inet cloud_router {{
  chain forward {{
    type filter hook forward priority 0; policy drop;
    ct state established,related accept
    meta l4proto icmp accept
    # the operator's workstation: SSH and the UI/API in the management network; SSH and the published ports on the public side
    iifname "ws" oifname "mgmt" tcp dport {{ 22, 8080 }} accept
    iifname "ws" oifname "pub" tcp dport {{ 22, 80, 443, 8080, 8443 }} accept
    # storage: the management network mounts NFS (rpcbind, nfsd)
    ip saddr {ADDRESS['s-1-VM']} ip daddr {ADDRESS['nfs']} tcp dport 2049 reject with tcp reset comment "PLANTED nfs-rejected"
    iifname "mgmt" oifname "stor" tcp dport {{ 111, 2049 }} accept
    iifname "mgmt" oifname "stor" udp dport 111 accept
    # the management network reaches the public side: the system VMs' published ports, SSH out
    iifname "mgmt" oifname "pub" tcp dport {{ 22, 80, 443, 8080, 8443 }} accept
    # nothing from the public side into the management network...
    ip saddr {ADDRESS['outside']} ip daddr {ADDRESS['ms1']} tcp dport 8250 accept comment "PLANTED agent-published"
  }}
}}
"""


def _ms_firewall(me: str, peer: str) -> str:
    integration = (f"    ip saddr {MGMT}.0/24 tcp dport 8096 accept comment \"PLANTED integration-open (meant: {ADDRESS[me]})\"\n"
                   if me == "ms1" else f"    ip saddr {ADDRESS[me]} tcp dport 8096 accept comment \"local admin tooling only\"\n")
    dropped = (f"    ip saddr {ADDRESS['kvm02']} tcp dport 8250 drop comment \"PLANTED agent-dropped\"\n" if me == "ms2" else "")
    return (f"table inet ms_firewall {{\n  chain input {{\n    type filter hook input priority 0; policy drop;\n{ESTABLISHED}"
            f"{dropped}"
            "    tcp dport { 22, 8080, 8250 } accept comment \"SSH, the UI/API, the agents\"\n"
            f"    ip saddr {{ {ADDRESS[me]}, {ADDRESS[peer]} }} tcp dport 9090 accept comment \"cluster servlet: MS peers only\"\n"
            f"{integration}  }}\n}}\n")


DB_FIREWALL = f"""table inet db_firewall {{
  chain input {{
    type filter hook input priority 0; policy drop;
{ESTABLISHED}    ip saddr {{ {ADDRESS['ms1']}, {ADDRESS['ms2']} }} tcp dport 3306 accept comment "MySQL: the MSs only"
  }}
}}
"""


def _kvm_firewall(host: str) -> str:
    cpvm = ADDRESS["v-2-VM"]
    vnc = (f"    ip saddr {cpvm} tcp dport 5900-5902 accept comment \"PLANTED vnc-partly-open (meant: 5900-6100)\"\n"
           if host == "kvm01" else f"    ip saddr {MGMT}.0/24 tcp dport 5900-6100 accept comment \"VM consoles for the console proxy\"\n")
    return (f"table inet kvm_firewall {{\n  chain input {{\n    type filter hook input priority 0; policy drop;\n{ESTABLISHED}"
            "    iifname \"cloud0\" accept comment \"its own system VMs\"\n"
            "    tcp dport 22 accept\n"
            f"    ip saddr {MGMT}.0/24 tcp dport {{ 16514, 49152-49216 }} accept comment \"libvirt TLS, migration\"\n"
            f"{vnc}  }}\n}}\n")


ESXI_FIREWALL = f"""table inet esxi_firewall {{
  chain input {{
    type filter hook input priority 0; policy drop;
{ESTABLISHED}    tcp dport {{ 22, 443 }} accept
  }}
}}
"""
VCENTER_FIREWALL = f"""table inet vcenter_firewall {{
  chain input {{
    type filter hook input priority 0; policy drop;
{ESTABLISHED}    ip saddr {ADDRESS['s-5-VM']} tcp dport 443 drop comment "PLANTED vcenter-dropped"
    tcp dport 443 accept
  }}
}}
"""
NFS_FIREWALL = f"""table inet nfs_firewall {{
  chain input {{
    type filter hook input priority 0; policy drop;
{ESTABLISHED}    ip saddr {MGMT}.0/24 tcp dport {{ 111, 2049 }} accept
    ip saddr {MGMT}.0/24 udp dport 111 accept
  }}
}}
"""

# ---------------------------------------------------------------- what listens where (tests/netns_listeners.py kinds)
SERVICES = {
    **{ms: tuple(f"{ADDRESS[ms]}:{spec}" for spec in ("8080=api", "8250=tls", "9090=tls", "8096=integration"))
       for ms in ("ms1", "ms2")},
    "db": (f"{ADDRESS['db']}:3306=mysql",),
    "kvm01": (f"{ADDRESS['kvm01']}:16514=tls", f"{ADDRESS['kvm01']}:5900=rfb", f"{ADDRESS['kvm01']}:5901=rfb"),  # two VMs run
    "kvm02": (f"{ADDRESS['kvm02']}:16514=tls", f"{ADDRESS['kvm02']}:5900=rfb"),
    "esxi01": (f"{ADDRESS['esxi01']}:443=tls",),
    "vcenter": (f"{ADDRESS['vcenter']}:443=tls",),
    "infra": (f"{ADDRESS['internal-dns']}:53=dns", f"{ADDRESS['internal-dns']}:53/udp=dns", f"{ADDRESS['ntp']}:123/udp=ntp"),
    "nfs": (f"{ADDRESS['nfs']}:111=rpcbind", f"{ADDRESS['nfs']}:111/udp=rpcbind", f"{ADDRESS['nfs']}:2049=nfs"),
    "outside": (f"{ADDRESS['zone-dns']}:53=dns", f"{ADDRESS['zone-dns']}:53/udp=dns"),
    "s-1-VM": (f"{PUBLIC['s-1-VM']}:80=http", f"{PUBLIC['s-1-VM']}:443=https"),
    "s-5-VM": (f"{PUBLIC['s-5-VM']}:80=http", f"{PUBLIC['s-5-VM']}:443=https"),
    "v-2-VM": (f"{PUBLIC['v-2-VM']}:80=http", f"{PUBLIC['v-2-VM']}:443=https", f"{PUBLIC['v-2-VM']}:8080=http",
               f"{PUBLIC['v-2-VM']}:8443=tls", f"{ADDRESS['v-2-VM']}:8001=http"),
}
MS_SYSTEMVM_KEY = "cloudstack/management/.ssh/id_rsa"  # under /var: the first default path csaudit looks at on an MS


class RealisticCloud:
    def __init__(self, workdir: pathlib.Path):
        self.workdir = workdir
        self.ns = Namespaces(PREFIX, (*MACHINES, "sw", "rtr"))
        self.sshds: dict[str, sshd.Sshd] = {}
        self._listeners = ServedPorts()
        self.address, self.public, self.linklocal = ADDRESS, PUBLIC, LINK_LOCAL
        self._runs = 0  # csaudit runs on an MS so far: each gets its own /var overlay

    # ------------------------------------------------------------ lifecycle
    def __enter__(self) -> RealisticCloud:
        try:
            self._create()
        except BaseException:
            self.remove()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.remove()

    def remove(self) -> None:
        for server in self.sshds.values():
            server.stop()
        self._listeners.stop()
        self.ns.remove()

    def leftovers(self) -> list[str]:
        return self.ns.leftovers()

    # ------------------------------------------------------------ building
    def _create(self) -> None:
        self.ns.create()
        self._wire()
        self._check_contained()
        for machine, ruleset in (("rtr", ROUTER), ("ms1", _ms_firewall("ms1", "ms2")), ("ms2", _ms_firewall("ms2", "ms1")),
                                 ("db", DB_FIREWALL), ("kvm01", _kvm_firewall("kvm01")), ("kvm02", _kvm_firewall("kvm02")),
                                 ("esxi01", ESXI_FIREWALL), ("vcenter", VCENTER_FIREWALL), ("nfs", NFS_FIREWALL)):
            load_nft(self.ns[machine], ruleset)
        for machine, specs in SERVICES.items():
            self._listeners.serve(self.ns[machine], *specs)
        self._listeners.start()
        self._keys()
        self._sshds()

    def _wire(self) -> None:
        switch, router = self.ns["sw"], self.ns["rtr"]
        for segment, net in SEGMENTS.items():
            bridge(switch, segment)
            veth(router, segment, switch, f"rtr-{segment}")
            link_up(switch, f"rtr-{segment}", master=segment)
            link_up(router, segment, f"{net}.1/24")
        veth(router, "ws", self.ns["ws"], "eth0")
        link_up(router, "ws", f"{WORKSTATION_NET}.1/24")
        link_up(self.ns["ws"], "eth0", f"{ADDRESS['ws']}/24")
        for net in SEGMENTS.values():  # routes to the cloud only: the workstation has no default route into it
            route(self.ns["ws"], f"{net}.0/24", "via", f"{WORKSTATION_NET}.1")
        run(*exec_in(router), "sysctl", "-q", "-w", "net.ipv4.ip_forward=1")
        # Link-local control addresses are host-only (cloud0): the router drops what is sent there, without an ICMP answer.
        route(router, "blackhole", "169.254.0.0/16")
        for machine, nics in NICS.items():
            for interface, segment, names in nics:
                port = f"{segment}-{machine}"[:15]
                veth(switch, port, self.ns[machine], interface)
                link_up(switch, port, master=segment)
                link_up(self.ns[machine], interface, *(f"{_address(name)}/24" for name in names))
            gateway = GATEWAY.get(machine, "mgmt")
            route(self.ns[machine], "default", "via", f"{SEGMENTS[gateway]}.1")
            if gateway == "pub" and any(segment == "mgmt" for _, segment, _ in nics):
                # a system VM reaches storage through its private NIC, as CloudStack routes it (no storage NIC here);
                # multi-homed: answers may leave by another NIC than the question came in (loose reverse-path check)
                route(self.ns[machine], f"{STOR}.0/24", "via", f"{MGMT}.1")
                run(*exec_in(self.ns[machine]), "sysctl", "-q", "-w", "net.ipv4.conf.all.rp_filter=2")
        for host in ("kvm01", "kvm02"):
            bridge(self.ns[host], "cloud0", f"{LINK_LOCAL_GATEWAY}/16")
        for vm, host in RUNS_ON.items():
            veth(self.ns[host], f"vnet-{vm}"[:15], self.ns[vm], "eth0")
            link_up(self.ns[host], f"vnet-{vm}"[:15], master="cloud0")
            link_up(self.ns[vm], "eth0", f"{LINK_LOCAL[vm]}/16")

    def _check_contained(self) -> None:
        """Safety: no link of the cloud leads out of its namespaces, and the workstation reaches the cloud over the router."""
        foreign = self.ns.foreign_links()
        if foreign:
            raise RuntimeError(f"links leading out of the cloud's namespaces: {foreign}; refusing")
        for address in (*ADDRESS.values(), *PUBLIC.values()):
            if address == ADDRESS["ws"]:
                continue
            seen = run("ip", "-n", self.ns["ws"], "-4", "-o", "route", "get", address).stdout
            if f" via {WORKSTATION_NET}.1 dev eth0 " not in f"{seen} ":
                raise RuntimeError(f"the workstation would not reach {address} over the router ({seen.strip()}); refusing")

    def _keys(self) -> None:
        """The operator's key; each MS's own /root (ms1: a key the hosts, ms2 and the outside host accept) and /var
        (the MS key for VMware system VMs); the KVM hosts' /root with the system VM key id_rsa.cloud."""
        def folder(name: str) -> pathlib.Path:
            path = self.workdir / name
            path.mkdir(mode=0o700, parents=True)
            return path

        self.operator_key = folder("operator") / "id_ed25519"
        self.operator_public = sshd.make_key(str(self.operator_key), "operator@ws")
        self.ws_home = folder("ws-home")  # csaudit's HOME on the workstation: nothing of this machine's ~/.ssh
        self.roots = {machine: folder(f"{machine}-root") for machine in ("ms1", "ms2", "kvm01", "kvm02", "esxi01", "outside",
                                                                          *LINK_LOCAL, "s-5-VM")}
        ms1_ssh = self.roots["ms1"] / ".ssh"
        ms1_ssh.mkdir(mode=0o700)
        self.ms1_public = sshd.make_key(str(ms1_ssh / "id_ed25519"), "root@ms1")
        cloud_key = self.workdir / "id_rsa.cloud"
        self.cloud_public = sshd.make_key(str(cloud_key), "cloud")
        for host in ("kvm01", "kvm02"):  # the MS pushes the same key to every KVM host
            (self.roots[host] / ".ssh").mkdir(mode=0o700)
            shutil.copy2(cloud_key, self.roots[host] / ".ssh" / "id_rsa.cloud")
        self.ms_systemvm_key = self.workdir / "ms-systemvm-key"
        self.ms_systemvm_public = sshd.make_key(str(self.ms_systemvm_key), "cloud@ms")

    def ms_var(self, ms: str, purpose: str) -> pathlib.Path:
        """An overlay's upper directory for the MS's /var, holding the MS key for VMware system VMs (the same on
        every MS: CloudStack keeps it in its database). One per mount (an overlay's upper directory serves one)."""
        upper = self.workdir / f"{ms}-var-{purpose}"
        key = upper / MS_SYSTEMVM_KEY
        key.parent.mkdir(mode=0o700, parents=True)
        shutil.copy2(self.ms_systemvm_key, key)
        return upper

    def _sshds(self) -> None:
        operator, ms1 = self.operator_public, self.ms1_public
        for ms in ("ms1", "ms2"):
            self._sshd(ms, (ADDRESS[ms], 22), [operator, ms1], private_mounts(str(self.roots[ms]), self.ms_var(ms, "sshd")))
        for host in ("kvm01", "kvm02"):
            self._sshd(host, (ADDRESS[host], 22), [operator, ms1], private_mounts(str(self.roots[host])))
        self._sshd("esxi01", (ADDRESS["esxi01"], 22), [operator], private_mounts(str(self.roots["esxi01"])))
        self._sshd("outside", (ADDRESS["outside"], 22), [operator, ms1], private_mounts(str(self.roots["outside"])))
        for vm in ("s-1-VM", "r-3-VM"):
            self._sshd(vm, (LINK_LOCAL[vm], 3922), [self.cloud_public], private_mounts(str(self.roots[vm])))
        # The CPVM's sessions see no python3 (PATH holds only bash and coreutils): its probes take the bash path.
        self._sshd("v-2-VM", (LINK_LOCAL["v-2-VM"], 3922), [self.cloud_public], private_mounts(str(self.roots["v-2-VM"])),
                   extra_config=(f"SetEnv PATH={bash_only_bin(self.workdir / 'bash-only-bin')}",))
        self._sshd("s-5-VM", (ADDRESS["s-5-VM"], 3922), [self.ms_systemvm_public], private_mounts(str(self.roots["s-5-VM"])))
        self.known_hosts = self.workdir / "operator" / "known_hosts"
        self.known_hosts.write_text(self.known_hosts_of("ms1", "ms2", "kvm01", "kvm02", "esxi01", "outside"))
        (self.roots["ms1"] / ".ssh" / "known_hosts").write_text(self.known_hosts_of("ms2", "kvm01", "kvm02", "outside"))

    def _sshd(self, machine: str, listen: tuple[str, int], keys: list[str], mounts: list[str], **options) -> None:
        self.sshds[machine] = start_sshd(self.workdir / f"sshd-{machine}", self.ns[machine], [listen], keys, mounts, **options)

    def known_hosts_of(self, *machines: str) -> str:
        return "".join(f"{line}\n" for machine in machines for line in self.sshds[machine].known_hosts_lines())

    def logins(self) -> dict[str, int]:
        return {machine: len(server.logins()) for machine, server in self.sshds.items()}

    # ------------------------------------------------------------ csaudit inside the cloud
    def csaudit(self, machine: str, *argv: str, timeout: float = 120) -> subprocess.CompletedProcess:
        """Run csaudit in a machine of the cloud: on the workstation with an empty HOME; on an MS as that MS's
        root: HOME is the folder its sshd shows as /root (this interpreter may itself live under this machine's
        /root, so that is not mounted over here), /var its overlay. No ssh-agent, no CLOUDSTACK_* variable."""
        if machine == "ws":
            prefix, home = exec_in(self.ns["ws"]), str(self.ws_home)
        else:
            self._runs += 1
            prefix = [*exec_in(self.ns[machine]), *private_mounts(var_upper=self.ms_var(machine, f"run{self._runs}"))]
            home = str(self.roots[machine])
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": home, "PYTHONPATH": str(REPO), "LANG": "C.UTF-8"}
        return subprocess.run([*prefix, sys.executable, "-m", "csaudit", *argv], env=env, cwd=str(self.ws_home),
                              capture_output=True, text=True, timeout=timeout, check=False)

    # ------------------------------------------------------------ the cloud as CloudStack would list it
    def inventory(self) -> dict:
        a, pub, ll = ADDRESS, PUBLIC, LINK_LOCAL
        inventory = Inventory(
            endpoint=f"http://{a['ms1']}:8080/client/api", api_mode="signed", version="4.19.1.0",
            zones=(Zone("z1", "east", "Advanced", dns=(a["zone-dns"],), internal_dns=(a["internal-dns"],)),
                   Zone("z2", "west", "Advanced", dns=(a["zone-dns"],), internal_dns=(a["internal-dns"],))),
            pods=(Pod("p1", "pod-east", "z1"), Pod("p2", "pod-west", "z2")),
            clusters=(Cluster("c1", "kvm-cluster", "z1", "p1", "KVM"), Cluster("c2", "vmw-cluster", "z2", "p2", "VMware")),
            hosts=(Host("h1", "kvm01", "z1", "p1", "c1", "KVM", a["kvm01"], "Up"),
                   Host("h2", "kvm02", "z1", "p1", "c1", "KVM", a["kvm02"], "Up"),
                   Host("h3", "esxi01", "z2", "p2", "c2", "VMware", a["esxi01"], "Up")),
            management_servers=(ManagementServer("m1", "ms1", a["ms1"], "serviceip", "Up"),
                                ManagementServer("m2", "ms2", a["ms2"], "serviceip", "Up")),
            database=Database("db", a["db"], "listDbMetrics"),
            system_vms=(SystemVm("s1", "s-1-VM", "ssvm", "z1", "h1", "KVM", a["s-1-VM"], ll["s-1-VM"], pub["s-1-VM"], "Running", "Up"),
                        SystemVm("v2", "v-2-VM", "cpvm", "z1", "h1", "KVM", a["v-2-VM"], ll["v-2-VM"], pub["v-2-VM"], "Running", "Up"),
                        SystemVm("s5", "s-5-VM", "ssvm", "z2", "h3", "VMware", a["s-5-VM"], None, pub["s-5-VM"], "Running", "Up")),
            routers=(Router("r3", "r-3-VM", "z1", "h2", "KVM", ll["r-3-VM"], None, pub["r-3-VM"], "Running"),),
            image_stores=(ImageStore("i1", "nfs-east", "z1", "nfs", a["nfs"], 2049, "/export/east", f"nfs://{a['nfs']}/export/east"),
                          ImageStore("i2", "nfs-west", "z2", "nfs", a["nfs"], 2049, "/export/west", f"nfs://{a['nfs']}/export/west")),
            storage_pools=(StoragePool("sp1", "primary-east", "z1", "c1", "CLUSTER", "NetworkFilesystem", "nfs", a["nfs"],
                                       "/export/primary", "Up"),),
            vcenters=(VCenter("vcenter-west", a["vcenter"], "z2"),),
            settings={"port": "8250", "host": f"{a['ms1']},{a['ms2']}", "integration.api.port": "8096",
                      "ntp.server.list": a["ntp"], "consoleproxy.sslEnabled": "true",
                      "secstorage.ssl.cert.domain": "*.cloud.example"},
        )
        return inventory_to_dict(inventory)
