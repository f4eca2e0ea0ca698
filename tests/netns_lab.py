"""A small CloudStack zone made of network namespaces, real sshd and real listeners (needs root).

    root ns (csaudit) --veth-- [lan: bridge 10.215.N.0/24] --veth-- ms, nfs, kvm01, SSVM/CPVM eth1, VMware SSVM
                                                   kvm01 [cloud0 169.254.0.1/16] --veth-- s-1-VM eth0, v-2-VM eth0

kvm01 runs sshd on 22 and sees a temp dir as /root (private mount namespace), so the system VM key
sits at the real default path /root/.ssh/id_rsa.cloud without touching this machine's /root. The
system VMs run sshd on their link-local IP, port 3922, reachable only from kvm01 (as on a real KVM
host). The VMware SSVM runs sshd on its private IP, 3922. ms runs sshd on 22 too (the jump host).
kvm02, r-3-VM and the zone DNS exist only in the inventory: nothing answers there.
nft plants faults: ms drops 8250 from kvm01 (timeout); nfs rejects 2049 from s-1-VM (refused).

Every name carries this process's pid; everything is removed on exit (also on failure), and
namespaces left by a killed run are removed by the next one (bench.netns.remove_stale).
Traffic stays in these namespaces: the root namespace only reaches 10.215.N.0/24 over its veth.
"""

from __future__ import annotations

import ipaddress
import os
import pathlib

from csaudit.collect.saved import inventory_to_dict
from csaudit.lab import sshd
from csaudit.model.inventory import Cluster, Host, ImageStore, Inventory, ManagementServer, Pod, Router, SystemVm, Zone
from tests.netns_kit import (
    BASH_ONLY_TOOLS,
    Namespaces,
    ServedPorts,
    bash_only_bin,
    input_filter,
    load_nft,
    run,
    start_sshd,
)

PREFIX = "csa5-"


# What the lab runs beyond Python and `ip` (a test that uses it marks itself netns and programs(*PROGRAMS)):
# nft plants the faults, sshd serves every node, whose hop to a system VM runs ssh; unshare and mount give
# a node its own /root; the CPVM's sessions have only bash and coreutils (timeout, date, head, cat, base64, wc).
PROGRAMS = ("nft", "sshd", "ssh", "unshare", "mount", *BASH_ONLY_TOOLS)


class NetnsCloud:
    def __init__(self, workdir: pathlib.Path):
        pid = os.getpid()
        self.workdir = workdir
        self.tag = f"{pid % 100000}"
        self.net = ipaddress.ip_network(f"10.215.{pid % 250 + 1}.0/24")
        host = lambda n: str(self.net.network_address + n)  # noqa: E731
        self.ip = {"root": host(1), "ms": host(10), "kvm01": host(21), "kvm02": host(22), "esxi01": host(31),
                   "nfs": host(40), "dns": host(53), "s-1-VM": host(101), "v-2-VM": host(102), "s-5-VM": host(105)}
        self.linklocal = {"kvm01": "169.254.0.1", "s-1-VM": "169.254.1.1", "v-2-VM": "169.254.1.2", "r-3-VM": "169.254.1.3"}
        self.ns = Namespaces(PREFIX, ("lan", "ms", "nfs", "kvm01", "ssvm", "cpvm", "vmssvm"))
        self.root_if = f"c5{self.tag}r"
        self.sshds: dict[str, sshd.Sshd] = {}
        self._listeners = ServedPorts()
        self.created = False

    # ------------------------------------------------------------ lifecycle
    def __enter__(self) -> NetnsCloud:
        if any(f" {self.net.network_address + 1}/" in line or f" {self.net}" in line
               for line in run("ip", "-4", "-o", "addr", "show").stdout.splitlines()):
            raise RuntimeError(f"{self.net} is already in use on this machine")
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
        if run("ip", "link", "show", self.root_if, check=False).returncode == 0:
            run("ip", "link", "del", self.root_if, check=False)

    def leftovers(self) -> list[str]:
        names = self.ns.leftovers()
        if run("ip", "link", "show", self.root_if, check=False).returncode == 0:
            names.append(self.root_if)
        return names

    # ------------------------------------------------------------ building
    def _create(self) -> None:
        self.ns.create()
        lan = self.ns["lan"]
        run("ip", "-n", lan, "link", "add", "br0", "type", "bridge")
        run("ip", "-n", lan, "link", "set", "br0", "up")
        # The root namespace's door to the lab: one veth, one /24 that exists only here.
        run("ip", "link", "add", self.root_if, "type", "veth", "peer", "name", "up0", "netns", lan)
        run("ip", "addr", "add", f"{self.ip['root']}/24", "dev", self.root_if)
        run("ip", "link", "set", self.root_if, "up")
        run("ip", "-n", lan, "link", "set", "up0", "master", "br0", "up")
        for node, role in (("ms", "ms"), ("nfs", "nfs"), ("kvm01", "kvm01"), ("ssvm", "s-1-VM"),
                           ("cpvm", "v-2-VM"), ("vmssvm", "s-5-VM")):
            self._wire(lan, f"p{node}", self.ns[node], "eth1", self.ip[role], 24, bridge="br0")
        kvm = self.ns["kvm01"]
        run("ip", "-n", kvm, "link", "add", "cloud0", "type", "bridge")
        run("ip", "-n", kvm, "addr", "add", f"{self.linklocal['kvm01']}/16", "dev", "cloud0")
        run("ip", "-n", kvm, "link", "set", "cloud0", "up")
        for node, role in (("ssvm", "s-1-VM"), ("cpvm", "v-2-VM")):
            self._wire(kvm, f"v{node}", self.ns[node], "eth0", self.linklocal[role], 16, bridge="cloud0")
        load_nft(self.ns["ms"], input_filter("csaudit_lab", f"    ip saddr {self.ip['kvm01']} tcp dport 8250 drop\n"))
        load_nft(self.ns["nfs"], input_filter("csaudit_lab", f"    ip saddr {self.ip['s-1-VM']} tcp dport 2049 reject with tcp reset\n"))
        # Safety: the lab's addresses must be reached over our veth, never over a real route.
        for role in ("ms", "kvm01", "kvm02", "s-5-VM"):
            route = run("ip", "-4", "-o", "route", "get", self.ip[role]).stdout
            if f" dev {self.root_if} " not in f"{route} ":
                raise RuntimeError(f"{self.ip[role]} would not go over {self.root_if} ({route.strip()}); refusing")
        self.created = True
        # The ports whose flows carry a protocol probe speak that protocol, so a remote vantage's probe meets
        # the right service; the MS API answers like a signed CloudStack API (401 to an unsigned request).
        ms, nfs, kvm = self.ip["ms"], self.ip["nfs"], self.ip["kvm01"]
        self._listeners.serve(self.ns["ms"], f"{ms}:8250=tls", f"{ms}:8080=api")
        self._listeners.serve(self.ns["nfs"], f"{nfs}:111=rpcbind", f"{nfs}:111/udp=rpcbind", f"{nfs}:2049=nfs")
        # two VM consoles: 5900, and 5907 (none of the five ports sampled of 5900-6100)
        self._listeners.serve(self.ns["kvm01"], f"{kvm}:5900=rfb", f"{kvm}:5907=rfb", f"{kvm}:16514=tls")
        self._listeners.start()
        self._keys()
        self._sshd("kvm01", [(self.ip["kvm01"], 22)], [self.client_public], root_dir=str(self.workdir / "kvm01-root"))
        self._sshd("ms", [(self.ip["ms"], 22)], [self.client_public])
        self._sshd("ssvm", [(self.linklocal["s-1-VM"], 3922)], [self.cloud_public], root_dir=self._empty_root("ssvm"))
        # The CPVM's sessions see no python3 (PATH holds only bash and coreutils): its probes take the bash path.
        self._sshd("cpvm", [(self.linklocal["v-2-VM"], 3922)], [self.cloud_public], root_dir=self._empty_root("cpvm"),
                   extra_config=(f"SetEnv PATH={bash_only_bin(self.workdir / 'bash-only-bin')}",))
        self._sshd("vmssvm", [(self.ip["s-5-VM"], 3922)], [self.ms_public], root_dir=self._empty_root("vmssvm"))
        self.known_hosts = self.workdir / "known_hosts"
        self.known_hosts.write_text("".join(f"{line}\n" for name in ("kvm01", "ms")
                                            for line in self.sshds[name].known_hosts_lines()))

    def _wire(self, outer_ns: str, outer: str, inner_ns: str, inner: str, address: str, prefixlen: int, bridge: str) -> None:
        outer_name = f"{outer[:6]}{self.tag}"[:15]
        run("ip", "-n", outer_ns, "link", "add", outer_name, "type", "veth", "peer", "name", inner, "netns", inner_ns)
        run("ip", "-n", outer_ns, "link", "set", outer_name, "master", bridge, "up")
        run("ip", "-n", inner_ns, "addr", "add", f"{address}/{prefixlen}", "dev", inner)
        run("ip", "-n", inner_ns, "link", "set", inner, "up")

    def _keys(self) -> None:
        """csaudit's key (hosts, jump host), the cloud key on kvm01's /root, the MS key for VMware."""
        self.client_key = str(self.workdir / "csaudit_id")
        self.client_public = sshd.make_key(self.client_key)
        host_root = self.workdir / "kvm01-root" / ".ssh"
        host_root.mkdir(parents=True, mode=0o700)
        self.cloud_public = sshd.make_key(str(host_root / "id_rsa.cloud"), "cloud")
        sshd.make_key(str(host_root / "not-the-cloud-key"), "other")
        self.ms_key = str(self.workdir / "ms_id_rsa")
        self.ms_public = sshd.make_key(self.ms_key, "cloud@ms")

    def _empty_root(self, node: str) -> str:
        """What a system VM's sessions see as /root: nothing of this machine's (no .bashrc, no keys)."""
        folder = self.workdir / f"{node}-root"
        folder.mkdir(mode=0o700)
        return str(folder)

    def _sshd(self, node: str, listen, keys, root_dir: str | None = None, extra_config: tuple[str, ...] = ()) -> None:
        self.sshds[node] = start_sshd(self.workdir / f"sshd-{node}", self.ns[node], listen, keys,
                                      root_dir=root_dir, extra_config=extra_config)

    # ------------------------------------------------------------ the cloud as CloudStack would list it
    def inventory(self) -> dict:
        ip = self.ip
        inventory = Inventory(
            endpoint=f"http://{ip['ms']}:8080/client/api", api_mode="signed", version="4.19.1.0",
            zones=(Zone("z1", "east", "Advanced", dns=(ip["dns"],)), Zone("z2", "west", "Advanced")),
            pods=(Pod("p1", "pod-east", "z1"), Pod("p2", "pod-west", "z2")),
            clusters=(Cluster("c1", "kvm-cluster", "z1", "p1", "KVM"), Cluster("c2", "vmw-cluster", "z2", "p2", "VMware")),
            hosts=(Host("h1", "kvm01", "z1", "p1", "c1", "KVM", ip["kvm01"], "Up"),
                   Host("h2", "kvm02", "z1", "p1", "c1", "KVM", ip["kvm02"], "Up"),
                   Host("h3", "esxi01", "z2", "p2", "c2", "VMware", ip["esxi01"], "Up")),
            management_servers=(ManagementServer("m1", "ms1", ip["ms"], "serviceip", "Up"),),
            system_vms=(SystemVm("s1", "s-1-VM", "ssvm", "z1", "h1", "KVM", ip["s-1-VM"], self.linklocal["s-1-VM"], None, "Running", "Up"),
                        SystemVm("v2", "v-2-VM", "cpvm", "z1", "h1", "KVM", ip["v-2-VM"], self.linklocal["v-2-VM"], None, "Running", "Up"),
                        SystemVm("s5", "s-5-VM", "ssvm", "z2", "h3", "VMware", ip["s-5-VM"], None, None, "Running", "Up")),
            routers=(Router("r3", "r-3-VM", "z1", "h1", "KVM", self.linklocal["r-3-VM"], None, None, "Running"),),
            image_stores=(ImageStore("i1", "nfs-east", "z1", "nfs", ip["nfs"], 2049, "/export", f"nfs://{ip['nfs']}/export"),),
            settings={"port": "8250", "host": ip["ms"]},
        )
        return inventory_to_dict(inventory)
