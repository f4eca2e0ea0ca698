"""Hypothesis strategies for rulesets: nft scripts and iptables-restore files made of random chains,
sets, ranges, policies, jumps and verdicts, with placeholders for one pair's addresses ({S4} {T4}
{S6} {T6}: source and target, IPv4 and IPv6) that `instantiate` fills in.

`modelled=True` stays within what the evaluator models, where it must never answer unknown.
`modelled=False` mixes in what it does not model (marks, rate limits, fib, socket owners, partial
ephemeral source port ranges, statements that mark packets): there, every answer it gives must be
the kernel's, and unknown is allowed.

The generators keep to what the kernel loads: a reject only in chains on the input and output
hooks (and the chains only they reach), a TCP reset only after a TCP match, one family and one
transport protocol per rule, distinct priorities per hook (equal ones have no defined order).
"""

from __future__ import annotations

import dataclasses

from hypothesis import strategies as st

PORTS = (22, 80, 443, 3306, 8080, 8250)  # the ports probed; rules name them, their neighbours and ranges
PORT_VALUES = (*PORTS, 21, 23, 79, 81, 444, 8000, 8249, 8251)
PORT_RANGES = ((20, 25), (80, 443), (1, 1024), (1025, 65535), (8000, 8300), (3305, 3307), (444, 8079))
# source port matches that hold for every ephemeral port or for none (the modelled subset)
WHOLE_SPORTS_NFT = ("1024-65535", "0-1023", "!= 22", "{ 22, 80 }", ">= 1024", "< 32768", "32768-60999", ">= 61000", "!= 443")
WHOLE_SPORTS_IPT = ("1024:65535", "0:1023", "! 22", "32768:60999", "61000:65535", ":1023")
PARTIAL_SPORTS_NFT = ("40000-50000", "< 45000", "{ 33000-33500 }", "!= 40000-41000")
PARTIAL_SPORTS_IPT = ("40000:50000", ":45000", "! 33000:34000")
V4 = ("{S4}", "{T4}", "{S4}/30", "10.218.0.0/16", "10.0.0.0/8", "192.0.2.0/24", "{S4}-{T4}", "198.51.100.1", "10.220.0.0/16")
V6 = ("{S6}", "{T6}", "{S6}/64", "fd5a::/16", "fd00::/8", "2001:db8::/32", "{S6}-{T6}", "fe80::/10")
INTERFACES = ('"eth0"', '"eth1"', '"src0"', '"src1"', '"lo"', '"eth*"', '"src*"', '"e*"', '"veth7"')
IPT_INTERFACES = ("eth0", "eth1", "src0", "lo", "eth+", "src+", "e+", "veth7")
CT_STATES = ("new", "established", "related", "invalid", "untracked")
ICMPX = ("port-unreachable", "admin-prohibited", "host-unreachable", "no-route")
ICMP4 = ("port-unreachable", "host-unreachable", "admin-prohibited", "net-unreachable", "host-prohibited")
ICMP6 = ("port-unreachable", "admin-prohibited", "no-route", "addr-unreachable")
IPT_REJECT4 = ("icmp-port-unreachable", "icmp-host-unreachable", "icmp-admin-prohibited", "icmp-net-unreachable", "icmp-host-prohibited")
IPT_REJECT6 = ("icmp6-port-unreachable", "icmp6-adm-prohibited", "icmp6-no-route", "icmp6-addr-unreachable")
ICMP_MATCHES_NFT = ("icmp type destination-unreachable", "icmp type { echo-request, destination-unreachable }", "icmp type != echo-request",
                    "icmp type destination-unreachable icmp code port-unreachable", "icmp code admin-prohibited",
                    "icmpv6 type destination-unreachable", "icmpv6 type { echo-request, nd-neighbor-solicit }",
                    "icmpv6 type destination-unreachable icmpv6 code port-unreachable", "icmpv6 code admin-prohibited")
ICMP_MATCHES_IPT = {4: ("-m icmp --icmp-type 3", "-m icmp --icmp-type 13", "-m icmp --icmp-type 3/3", "-m icmp ! --icmp-type 8",
                        "-m icmp --icmp-type 3/13", "-m icmp --icmp-type any"),
                    6: ("-m icmp6 --icmpv6-type 1", "-m icmp6 --icmpv6-type 1/4", "-m icmp6 --icmpv6-type 128", "-m icmp6 ! --icmpv6-type 1")}
UNMODELLED_NFT = ("meta mark 0x1", "meta mark != 0x2", "limit rate 2/second", "fib daddr type local", "meta pkttype host",
                  "ct mark 0x0", "meta length < 100", "ct direction original")
UNMODELLED_IPT = ("-m mark --mark 0x1", "-m limit --limit 2/second", "-m addrtype --dst-type LOCAL", "-m length --length 0:100",
                  "-m pkttype --pkt-type unicast", "-m connmark --mark 0x0")


@dataclasses.dataclass(frozen=True)
class Case:
    """A generated ruleset for one side, or both, of a pair."""

    backend: str  # nft, iptables-nft, iptables-legacy
    target: str  # the text for the target namespace ("" none)
    source: str  # the text for the source namespace ("" none)
    family: int = 4  # iptables: which of iptables-restore and ip6tables-restore takes it

    def describe(self) -> str:
        return f"[{self.backend}] target:\n{self.target or '(none)'}\nsource:\n{self.source or '(none)'}"


def instantiate(text: str, addresses: dict[str, str]) -> str:
    for name, value in addresses.items():
        text = text.replace("{" + name + "}", value)
    return text


# ---------------------------------------------------------------- nft
@st.composite
def nft_cases(draw, modelled: bool = True) -> Case:
    where = draw(st.sampled_from(("target", "target", "source", "both")))
    target = draw(nft_scripts(modelled)) if where in ("target", "both") else ""
    source = draw(nft_scripts(modelled)) if where in ("source", "both") else ""
    return Case("nft", target, source)


@st.composite
def nft_scripts(draw, modelled: bool) -> str:
    families = draw(st.lists(st.sampled_from(("inet", "ip", "ip6")), min_size=1, max_size=2, unique=True))
    hooks_used: dict[str, set[int]] = {}
    tables = []
    for number, family in enumerate(families):
        tables.append(draw(_nft_table(f"t{number}", family, modelled, hooks_used)))
    return "\n".join(tables)


@st.composite
def _nft_table(draw, name: str, family: str, modelled: bool, hooks_used: dict[str, set[int]]) -> str:
    sets = []
    named: dict[str, str] = {}  # kind -> set name
    if family in ("ip", "inet") and draw(st.booleans()):
        elements = draw(st.lists(st.sampled_from(V4), min_size=0, max_size=3, unique=True))
        sets.append(f"  set a4 {{ type ipv4_addr; flags interval; auto-merge;{_elements(elements)} }}")
        named["v4"] = "@a4"
    if family in ("ip6", "inet") and draw(st.booleans()):
        elements = draw(st.lists(st.sampled_from(V6), min_size=0, max_size=3, unique=True))
        sets.append(f"  set a6 {{ type ipv6_addr; flags interval; auto-merge;{_elements(elements)} }}")
        named["v6"] = "@a6"
    if draw(st.booleans()):
        elements = draw(st.lists(st.one_of(st.sampled_from(PORT_VALUES).map(str), st.sampled_from(PORT_RANGES).map(lambda r: f"{r[0]}-{r[1]}")),
                                 min_size=1, max_size=3, unique=True))
        sets.append(f"  set ports {{ type inet_service; flags interval; auto-merge;{_elements(elements)} }}")
        named["ports"] = "@ports"
    if draw(st.booleans()):
        entries = draw(st.lists(st.tuples(st.sampled_from(PORTS), st.sampled_from(("accept", "drop"))), min_size=1, max_size=3,
                                unique_by=lambda e: e[0]))
        sets.append("  map verdicts { type inet_service : verdict; elements = { " + ", ".join(f"{p} : {v}" for p, v in entries) + " } }")
        named["vmap"] = "@verdicts"
    chains = []
    base_count = draw(st.integers(1, 3))
    for index in range(base_count):
        hook = draw(st.sampled_from(("input", "input", "output", "prerouting", "postrouting")))
        free = [p for p in (-150, -100, -10, 0, 10, 50, 100) if p not in hooks_used.setdefault(hook, set())]
        priority = draw(st.sampled_from(free))
        hooks_used[hook].add(priority)
        rejects = hook in ("input", "output")
        helpers = [f"c{index}_{n}" for n in range(draw(st.integers(0, 2)))]
        policy = draw(st.sampled_from(("accept", "accept", "drop")))
        rules = draw(st.lists(_nft_rule(family, helpers, rejects, named, modelled, hook), max_size=6))
        chains.append(f"  chain b{index} {{\n    type filter hook {hook} priority {priority}; policy {policy};\n"
                      + "".join(f"    {r}\n" for r in rules) + "  }")
        for n, helper in enumerate(helpers):
            later = helpers[n + 1:]  # a chain jumps only to chains after it: no loops
            rules = draw(st.lists(_nft_rule(family, later, rejects, named, modelled, hook, regular=True), max_size=5))
            chains.append(f"  chain {helper} {{\n" + "".join(f"    {r}\n" for r in rules) + "  }")
    return f"table {family} {name} {{\n" + "\n".join(sets + chains) + "\n}"


def _elements(elements: list[str]) -> str:
    return f" elements = {{ {', '.join(elements)} }};" if elements else ""


@st.composite
def _nft_rule(draw, family: str, jumps: list[str], rejects: bool, named: dict, modelled: bool, hook: str, regular: bool = False) -> str:
    l3 = draw(st.sampled_from({"inet": ("", "ip", "ip6"), "ip": ("", "ip"), "ip6": ("", "ip6")}[family]))
    l4 = draw(st.sampled_from(("", "tcp", "udp", "th", "l4", "icmp")))
    parts = []
    if l3 == "ip":
        for field in draw(st.lists(st.sampled_from(("saddr", "daddr")), max_size=2, unique=True)):
            parts.append(f"ip {field} {draw(_negation())}{draw(_addresses(V4, named.get('v4')))}")
    elif l3 == "ip6":
        for field in draw(st.lists(st.sampled_from(("saddr", "daddr")), max_size=2, unique=True)):
            parts.append(f"ip6 {field} {draw(_negation())}{draw(_addresses(V6, named.get('v6')))}")
    nfproto = l3 and family == "inet" and draw(st.integers(0, 4)) == 0
    if nfproto:  # not before a TCP reset: nft's listing leaves it out there (README, Firewall checks)
        parts.append(f"meta nfproto {'ipv4' if l3 == 'ip' else 'ipv6'}")
    if l4 in ("tcp", "udp"):
        if draw(st.booleans()):
            parts.append(f"{l4} dport {draw(_ports(named.get('ports')))}")
        if draw(st.integers(0, 3)) == 0:
            parts.append(f"{l4} sport {draw(st.sampled_from(WHOLE_SPORTS_NFT if modelled else WHOLE_SPORTS_NFT + PARTIAL_SPORTS_NFT))}")
        if l4 == "tcp" and draw(st.integers(0, 4)) == 0:
            parts.append(draw(st.sampled_from(("tcp flags syn", "tcp flags & (syn|ack) == syn", "tcp flags != syn",
                                               "tcp flags & (syn|ack) == syn|ack", "tcp flags & (rst) == rst"))))
    elif l4 == "th":  # th only after an l4proto match: an ICMP answer's bytes there are a checksum, not modelled
        parts.append(f"meta l4proto {{ tcp, udp }} th dport {draw(_ports(named.get('ports')))}")
    elif l4 == "l4":
        parts.append(f"meta l4proto {draw(st.sampled_from(('tcp', 'udp', '{ tcp, udp }', 'icmp', 'icmpv6', '!= tcp', '{ icmp, icmpv6 }')))}")
    elif l4 == "icmp":  # what a reject's answer meets on its way back
        choices = [c for c in ICMP_MATCHES_NFT if (l3 != "ip6" or "icmpv6" in c) and (l3 != "ip" or "icmpv6" not in c)
                   and (family != "ip" or "icmpv6" not in c) and (family != "ip6" or "icmpv6" in c)]
        parts.append(draw(st.sampled_from(choices)))
    if draw(st.integers(0, 3)) == 0:
        key = draw(st.sampled_from(("iifname", "oifname")))
        names = draw(st.lists(st.sampled_from(INTERFACES), min_size=1, max_size=2, unique=True))
        parts.append(f"{key} {draw(_negation())}{names[0] if len(names) == 1 else '{ ' + ', '.join(names) + ' }'}")
    if draw(st.integers(0, 2)) == 0:
        states = draw(st.lists(st.sampled_from(CT_STATES), min_size=1, max_size=3, unique=True))
        parts.append(f"ct state {'!= ' if len(states) == 1 and draw(st.booleans()) else ''}{','.join(states)}")
    if l3 == "ip" and l4 == "tcp" and draw(st.integers(0, 4)) == 0:
        pairs = ", ".join(f"{a} . {p}" for a, p in draw(st.lists(st.tuples(st.sampled_from(("{S4}", "{T4}", "198.51.100.1")),
                                                                            st.sampled_from(PORTS)), min_size=1, max_size=3, unique=True)))
        parts.append(f"ip saddr . tcp dport {{ {pairs} }}")
    if not modelled and draw(st.integers(0, 2)) == 0:
        extra = list(UNMODELLED_NFT) + (["meta skuid 0"] if hook == "output" else []) + (["ip ttl 64"] if l3 == "ip" else [])
        parts.append(draw(st.sampled_from(extra)))
    if draw(st.integers(0, 3)) == 0:
        parts.append("counter")
    if not modelled and draw(st.integers(0, 6)) == 0:
        parts.append("meta mark set 0x1")  # changes the packet: where reached, the outcome is unknown
    verdict = draw(_nft_verdict(family, l3, l4, jumps, rejects, named, regular))
    if nfproto and "tcp reset" in verdict:
        verdict = "reject"
    parts.append(verdict)
    return " ".join(p for p in parts if p)


@st.composite
def _nft_verdict(draw, family, l3, l4, jumps, rejects, named, regular) -> str:
    choices = ["accept", "accept", "drop", "", "continue"]
    if regular:
        choices.append("return")
    if jumps:
        choices += [f"jump {draw(st.sampled_from(jumps))}", f"goto {draw(st.sampled_from(jumps))}"]
    if rejects:
        choices += ["reject", "reject"]
    if "vmap" in named:
        choices.append("tcp dport vmap @verdicts" if l4 in ("", "tcp") else "")
    if l4 in ("", "tcp"):
        entries = draw(st.lists(st.sampled_from(PORTS), min_size=1, max_size=3, unique=True))
        targets = ["accept", "drop"] + [f"jump {j}" for j in jumps]
        choices.append("tcp dport vmap { " + ", ".join(f"{p} : {draw(st.sampled_from(targets))}" for p in entries) + " }")
    verdict = draw(st.sampled_from(choices))
    if verdict == "reject":
        kind = draw(st.sampled_from(("plain", "reset", "icmpx", "icmp")))
        if kind == "reset" and l4 == "tcp":
            return "reject with tcp reset"
        if kind == "reset" and l4 == "":
            return "meta l4proto tcp reject with tcp reset"
        if kind == "icmpx" and family == "inet":
            return f"reject with icmpx type {draw(st.sampled_from(ICMPX))}"
        if kind == "icmp" and (family == "ip" or l3 == "ip"):
            return f"reject with icmp type {draw(st.sampled_from(ICMP4))}"
        if kind == "icmp" and (family == "ip6" or l3 == "ip6"):
            return f"reject with icmpv6 type {draw(st.sampled_from(ICMP6))}"
        return "reject"
    return verdict


@st.composite
def _negation(draw) -> str:
    return "!= " if draw(st.integers(0, 3)) == 0 else ""


@st.composite
def _addresses(draw, pool, named: str | None) -> str:
    kind = draw(st.sampled_from(("one", "one", "set") + (("named",) if named else ())))
    if kind == "named":
        return named
    if kind == "set":
        return "{ " + ", ".join(draw(st.lists(st.sampled_from(pool), min_size=1, max_size=3, unique=True))) + " }"
    return draw(st.sampled_from(pool))


@st.composite
def _ports(draw, named: str | None) -> str:
    kind = draw(st.sampled_from(("one", "range", "set", "not", "compare") + (("named",) if named else ())))
    if kind == "named":
        return named
    if kind == "one":
        return str(draw(st.sampled_from(PORT_VALUES)))
    if kind == "range":
        low, high = draw(st.sampled_from(PORT_RANGES))
        return f"{low}-{high}"
    if kind == "not":
        return f"!= {draw(st.sampled_from(PORT_VALUES))}"
    if kind == "compare":
        return f"{draw(st.sampled_from(('<', '<=', '>', '>=')))} {draw(st.sampled_from(PORT_VALUES))}"
    values = draw(st.lists(st.one_of(st.sampled_from(PORT_VALUES).map(str), st.sampled_from(PORT_RANGES).map(lambda r: f"{r[0]}-{r[1]}")),
                           min_size=1, max_size=3, unique=True))
    return "{ " + ", ".join(values) + " }"


# ---------------------------------------------------------------- iptables-restore
@st.composite
def iptables_cases(draw, backend: str, modelled: bool = True) -> Case:
    family = draw(st.sampled_from((4, 4, 6)))
    where = draw(st.sampled_from(("target", "target", "source", "both")))
    target = draw(iptables_files(family, modelled)) if where in ("target", "both") else ""
    source = draw(iptables_files(family, modelled)) if where in ("source", "both") else ""
    return Case(backend, target, source, family)


@st.composite
def iptables_files(draw, family: int, modelled: bool) -> str:
    users = [f"U{n}" for n in range(draw(st.integers(0, 3)))]
    lines = ["*filter"]
    for chain in ("INPUT", "FORWARD", "OUTPUT"):
        lines.append(f":{chain} {draw(st.sampled_from(('ACCEPT', 'ACCEPT', 'DROP')))} [0:0]")
    lines += [f":{u} - [0:0]" for u in users]
    for chain in ("INPUT", "OUTPUT"):
        for rule in draw(st.lists(_ipt_rule(family, users, chain, modelled), max_size=6)):
            lines.append(f"-A {chain} {rule}")
    for n, user in enumerate(users):
        for rule in draw(st.lists(_ipt_rule(family, users[n + 1:], user, modelled), max_size=5)):
            lines.append(f"-A {user} {rule}")
    lines.append("COMMIT")
    return "\n".join(lines) + "\n"


@st.composite
def _ipt_rule(draw, family: int, jumps: list[str], chain: str, modelled: bool) -> str:
    pool = V4 if family == 4 else V6
    parts = []
    for option in draw(st.lists(st.sampled_from(("-s", "-d")), max_size=2, unique=True)):
        address = draw(st.sampled_from([a for a in pool if "-" not in a]))
        parts.append(f"{'! ' if draw(st.integers(0, 3)) == 0 else ''}{option} {address}")
    protocol = draw(st.sampled_from(("", "tcp", "tcp", "udp", "all", "icmp" if family == 4 else "ipv6-icmp")))
    if protocol:
        parts.append(f"{'! ' if protocol == 'tcp' and draw(st.integers(0, 5)) == 0 else ''}-p {protocol}")
        negated = parts[-1].startswith("!")
    else:
        negated = False
    interface_options = {"INPUT": ("-i",), "OUTPUT": ("-o",)}.get(chain, ("-i", "-o"))
    if draw(st.integers(0, 3)) == 0:
        parts.append(f"{'! ' if draw(st.integers(0, 3)) == 0 else ''}{draw(st.sampled_from(interface_options))} "
                     f"{draw(st.sampled_from(IPT_INTERFACES))}")
    if protocol in ("tcp", "udp") and not negated:
        kind = draw(st.sampled_from(("", "dport", "multiport", "sport", "flags")))
        if kind == "dport":
            parts.append(f"-m {protocol} {'! ' if draw(st.integers(0, 3)) == 0 else ''}--dport {draw(_ipt_ports())}")
        elif kind == "sport":
            sport = draw(st.sampled_from(WHOLE_SPORTS_IPT if modelled else WHOLE_SPORTS_IPT + PARTIAL_SPORTS_IPT))
            negation, _, value = sport.rpartition(" ")
            parts.append(f"-m {protocol} {negation + ' ' if negation else ''}--sport {value}")
        elif kind == "multiport":
            values = ",".join(draw(st.lists(_ipt_ports(), min_size=1, max_size=3, unique=True)))
            option = draw(st.sampled_from(("--dports", "--dports", "--ports") + (() if modelled else ("--sports",))))
            if option == "--sports":
                values = draw(st.sampled_from(("40000:50000", "1024:65535", "22,80")))
            parts.append(f"-m multiport {'! ' if draw(st.integers(0, 4)) == 0 else ''}{option} {values}")
        elif kind == "flags" and protocol == "tcp":
            parts.append(draw(st.sampled_from(("-m tcp --syn", "-m tcp ! --syn", "-m tcp --tcp-flags SYN,ACK SYN,ACK",
                                               "-m tcp --tcp-flags RST RST"))))
    if protocol in ("icmp", "ipv6-icmp") and draw(st.booleans()):
        parts.append(draw(st.sampled_from(ICMP_MATCHES_IPT[family])))
    if draw(st.integers(0, 2)) == 0:
        states = ",".join(s.upper() for s in draw(st.lists(st.sampled_from(CT_STATES), min_size=1, max_size=3, unique=True)))
        module, option = draw(st.sampled_from((("state", "--state"), ("conntrack", "--ctstate"))))
        parts.append(f"-m {module} {'! ' if draw(st.integers(0, 4)) == 0 else ''}{option} {states}")
    if family == 4 and draw(st.integers(0, 6)) == 0:
        parts.append(f"-m iprange {'! ' if draw(st.booleans()) else ''}--src-range {{S4}}-{{T4}}")
    if draw(st.integers(0, 5)) == 0:
        parts.append('-m comment --comment "generated rule"')
    if not modelled and draw(st.integers(0, 2)) == 0:
        parts.append(draw(st.sampled_from(UNMODELLED_IPT)))
    targets = ["ACCEPT", "ACCEPT", "DROP", "REJECT", "REJECT", ""]
    if chain.startswith("U"):
        targets.append("RETURN")
    if jumps:
        targets += [draw(st.sampled_from(jumps)), f"-g {draw(st.sampled_from(jumps))}"]
    if not modelled and draw(st.integers(0, 6)) == 0:
        targets.append("MARK --set-mark 0x1")
    target = draw(st.sampled_from(targets))
    if target == "REJECT":
        kinds = list(IPT_REJECT4 if family == 4 else IPT_REJECT6) + (["tcp-reset"] if protocol == "tcp" and not negated else [])
        target = f"REJECT --reject-with {draw(st.sampled_from(kinds))}"
    if target.startswith("-g "):
        parts.append(target)
    elif target:
        parts.append(f"-j {target}")
    return " ".join(parts) or "-m comment --comment empty"


@st.composite
def _ipt_ports(draw) -> str:
    if draw(st.booleans()):
        return str(draw(st.sampled_from(PORT_VALUES)))
    low, high = draw(st.sampled_from(PORT_RANGES))
    return f"{low}:{high}"
