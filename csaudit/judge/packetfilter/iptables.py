"""iptables-save / ip6tables-save text -> Ruleset.

Each table's built-in chains become base chains at the kernel's priorities (raw -300, mangle -150,
nat -100 before routing and 100 after, filter 0, security 50), so iptables rules sit on the same
hooks as nft chains. Modelled: policies, user chains (-j and -g), RETURN; -s/-d with prefixes or
masks, -p, -i/-o (with `+`), each with `!`; -m tcp/udp --dport/--sport (ranges) and --tcp-flags/--syn;
-m multiport --dports/--sports/--ports; -m state --state and -m conntrack --ctstate; -m iprange;
-m comment; ACCEPT, DROP, REJECT (--reject-with), LOG and NFLOG. Any other match forks the packet,
any other target ends it as unknown, each with its text.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import shlex

from csaudit.judge.packetfilter.intervals import PORTS, Intervals
from csaudit.judge.packetfilter.ruleset import (
    CT_STATES,
    ICMP,
    ICMPV6,
    PROTOCOL_NUMBERS,
    TCP,
    TCP_FLAGS,
    UDP,
    Always,
    AnyPort,
    Base,
    Chain,
    CtState,
    InNames,
    InSet,
    InterfaceKey,
    Key,
    Never,
    Rule,
    RuleRef,
    Ruleset,
    TcpFlags,
    Unmodelled,
    Unsupported,
    Verdict,
)
from csaudit.model.errors import UsageError

# table -> built-in chain -> (hook, priority, chain type); FORWARD is not on a local packet's path
BUILT_IN = {
    "raw": {"PREROUTING": ("prerouting", -300, "filter"), "OUTPUT": ("output", -300, "filter")},
    "mangle": {"PREROUTING": ("prerouting", -150, "filter"), "INPUT": ("input", -150, "filter"), "FORWARD": None,
               "OUTPUT": ("output", -150, "route"), "POSTROUTING": ("postrouting", -150, "filter")},
    "nat": {"PREROUTING": ("prerouting", -100, "nat"), "INPUT": ("input", 100, "nat"), "OUTPUT": ("output", -100, "nat"),
            "POSTROUTING": ("postrouting", 100, "nat")},
    "filter": {"INPUT": ("input", 0, "filter"), "FORWARD": None, "OUTPUT": ("output", 0, "filter")},
    "security": {"INPUT": ("input", 50, "filter"), "FORWARD": None, "OUTPUT": ("output", 50, "filter")},
}
HARMLESS_TARGETS = ("LOG", "NFLOG", "ULOG", "TRACE")
TCP_FLAG_NAMES = {name.upper(): bit for name, bit in TCP_FLAGS.items()}
TCP_FLAG_NAMES["ALL"] = 0x3F
TCP_FLAG_NAMES["NONE"] = 0
REJECT_TYPES = {
    "tcp-reset": "tcp reset", "icmp-port-unreachable": "icmp port-unreachable", "icmp-net-unreachable": "icmp net-unreachable",
    "icmp-host-unreachable": "icmp host-unreachable", "icmp-proto-unreachable": "icmp prot-unreachable",
    "icmp-net-prohibited": "icmp net-prohibited", "icmp-host-prohibited": "icmp host-prohibited",
    "icmp-admin-prohibited": "icmp admin-prohibited", "icmp6-port-unreachable": "icmp port-unreachable",
    "port-unreach": "icmp port-unreachable", "icmp6-no-route": "icmp no-route", "no-route": "icmp no-route",
    "icmp6-adm-prohibited": "icmp admin-prohibited", "adm-prohibited": "icmp admin-prohibited",
    "icmp6-addr-unreachable": "icmp addr-unreachable", "addr-unreach": "icmp addr-unreachable",
}
BASE_OPTIONS = {"-s", "--source", "--src", "-d", "--destination", "--dst", "-p", "--protocol", "-i", "--in-interface",
                "-o", "--out-interface", "-f", "--fragment", "-m", "--match", "-j", "--jump", "-g", "--goto", "-c", "--set-counters"}


@dataclasses.dataclass(frozen=True)
class IptablesText:
    """What a save file says about itself: its family and which kernel back end it was read from."""

    family: str  # ip or ip6
    backend: str | None  # nft (iptables-nft: its tables are nft tables), legacy, or None when the header does not say
    ruleset: Ruleset


def looks_like_iptables_save(text: str) -> bool:
    """Its first line that is not a comment opens a table (`*filter`): read on, and say what is wrong, if anything."""
    first = next((line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")), "")
    return first.startswith("*")


def parse_iptables_save(text: str, origin: str) -> IptablesText:
    family, backend = _header(text)
    chains: dict[tuple[str, str, str], Chain] = {}
    table = None
    declared: dict[str, tuple[str, int]] = {}  # chain -> (policy, line)
    rules: dict[str, list[Rule]] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        where = f"{origin}: line {number}"
        if line.startswith("*"):
            if table is not None:
                raise UsageError(f"{where}: table *{line[1:]} starts before COMMIT of *{table}")
            table, declared, rules = line[1:].strip(), {}, {}
            if table not in BUILT_IN:
                raise UsageError(f"{where}: unknown table *{table}")
            continue
        if table is None:
            raise UsageError(f"{where}: `{line[:40]}` outside a table (*filter ... COMMIT): not iptables-save output")
        if line == "COMMIT":
            chains.update(_table_chains(family, table, declared, rules, origin))
            table = None
            continue
        if line.startswith(":"):
            fields = line[1:].split()
            if len(fields) < 2:
                raise UsageError(f"{where}: a chain line needs a name and a policy: {line!r}")
            declared[fields[0]] = (fields[1], number)
            rules.setdefault(fields[0], [])
            continue
        tokens = _tokens(line, where)
        if tokens and tokens[0].startswith("[") and tokens[0].endswith("]"):
            tokens = tokens[1:]  # iptables-save -c: the rule's counters
        if len(tokens) < 2 or tokens[0] not in ("-A", "--append"):
            raise UsageError(f"{where}: expected `-A CHAIN ...`, found {line[:60]!r}")
        chain = tokens[1]
        if chain not in declared:
            raise UsageError(f"{where}: rule for chain {chain}, which no `:{chain}` line declares")
        ref = RuleRef(origin, family, table, chain, f"line {number}", line)
        rules[chain].append(Rule(ref, tuple(_RuleParser(tokens[2:], family, declared, where).steps())))
    if table is not None:
        raise UsageError(f"{origin}: table *{table} has no COMMIT")
    return IptablesText(family, backend, Ruleset(chains, (origin,)))


def _header(text: str) -> tuple[str, str | None]:
    """ip6tables-save says so in its first line; without a header, IPv6 addresses tell (else IPv4)."""
    for line in text.splitlines()[:5]:
        if line.startswith("# Generated by"):
            family = "ip6" if "ip6tables" in line else "ip"
            backend = "nft" if "nf_tables" in line or "-nft-" in line else "legacy"
            return family, backend
    for line in text.splitlines():
        tokens = line.split()
        if line.startswith("-A") and any(":" in value for option, value in zip(tokens, tokens[1:], strict=False)
                                         if option in ("-s", "-d", "--source", "--destination", "--src-range", "--dst-range")):
            return "ip6", None
        if "icmp6" in line or "ipv6-icmp" in line:
            return "ip6", None
    return "ip", None


def _tokens(line: str, where: str) -> list[str]:
    try:
        return shlex.split(line)
    except ValueError as exc:
        raise UsageError(f"{where}: cannot read the rule ({exc})") from None


def _table_chains(family: str, table: str, declared: dict, rules: dict, origin: str) -> dict:
    made = {}
    for name, (policy, number) in declared.items():
        built_in = BUILT_IN[table].get(name, False)
        base = None
        if built_in:
            hook, priority, kind = built_in
            if policy not in ("ACCEPT", "DROP"):
                raise UsageError(f"{origin}: line {number}: policy {policy} of {name}: only ACCEPT or DROP")
            base = Base(hook, priority, kind, policy.lower(),
                        RuleRef(origin, family, table, name, f"line {number}", f"policy {policy}"))
        elif built_in is None:
            continue  # FORWARD: not on a local packet's path
        made[(family, table, name)] = Chain(family, table, name, tuple(rules.get(name, ())), base)
    return made


class _RuleParser:
    """One rule's options, in order: the ip header matches first (as the kernel tests them), then the
    matches of each -m module, then the target."""

    def __init__(self, tokens: list[str], family: str, chains: dict, where: str):
        self.tokens, self.family, self.chains, self.where = tokens, family, chains, where
        self.number = 4 if family == "ip" else 6
        self.protocol: int | None = None

    def fail(self, message: str):
        raise UsageError(f"{self.where}: {message}")

    def steps(self) -> list:
        header, modules, target = [], [], None
        tokens, i, negate = self.tokens, 0, False
        current: list | None = None  # the options of the -m module being read
        while i < len(tokens):
            token = tokens[i]
            if token == "!":
                negate = True
                i += 1
                continue
            if token in ("-m", "--match"):
                current = [self._argument(i)]
                modules.append(current)
                i += 2
            elif token in ("-j", "--jump", "-g", "--goto"):
                target = (token, self._argument(i), tokens[i + 2:])
                break
            elif token in ("-c", "--set-counters"):
                i += 3
            elif token in BASE_OPTIONS:
                header.append(self._header_match(token, self._argument(i) if token not in ("-f", "--fragment") else "", negate))
                i += 1 if token in ("-f", "--fragment") else 2
            elif token.startswith("--"):
                if current is None:  # `-p tcp --dport 22` without `-m tcp`: the protocol's own match
                    current = [{TCP: "tcp", UDP: "udp"}.get(self.protocol, "?")]
                    modules.append(current)
                values = []
                i += 1
                while i < len(tokens) and not tokens[i].startswith("-") and tokens[i] != "!":
                    values.append(tokens[i])
                    i += 1
                current.append((token, negate, values))
            else:
                self.fail(f"cannot read `{token}`")
            negate = False
        steps = header + [step for module in modules for step in self._module(module[0], module[1:])]
        if target is not None:
            steps.append(self._target(*target))
        return steps

    def _argument(self, i: int) -> str:
        if i + 1 >= len(self.tokens):
            self.fail(f"{self.tokens[i]} without a value")
        return self.tokens[i + 1]

    # ------------------------------------------------------------ -s -d -p -i -o -f
    def _header_match(self, option: str, value: str, negate: bool):
        text = f"{'! ' if negate else ''}{option} {value}".strip()
        if option in ("-s", "--source", "--src", "-d", "--destination", "--dst"):
            field = "saddr" if option in ("-s", "--source", "--src") else "daddr"
            return InSet(Key(field, family=self.number), self._network(value), negate, text)
        if option in ("-p", "--protocol"):
            if value == "all" or value == "0":
                return InSet(Key("l4proto"), Intervals.of(0, 255), negate, text)
            number = PROTOCOL_NUMBERS.get(value.lower(), int(value) if value.isdigit() else None)
            if number is None:
                return Unmodelled(text)
            if not negate:
                self.protocol = number
            return InSet(Key("l4proto"), Intervals.of(number), negate, text)
        if option in ("-i", "--in-interface", "-o", "--out-interface"):
            key = InterfaceKey("iif" if option in ("-i", "--in-interface") else "oif")
            return InNames(key, (value[:-1] + "*" if value.endswith("+") else value,), negate, text)
        if option in ("-f", "--fragment"):  # a probe's packets are never fragments
            return Never(text) if not negate else InSet(Key("l4proto"), Intervals.of(0, 255), False, text)
        self.fail(f"cannot read `{option}`")

    def _network(self, value: str) -> Intervals:
        try:
            network = ipaddress.ip_network(value, strict=False)
        except ValueError:
            self.fail(f"not an address or network: {value!r} (iptables-save writes addresses, not names)")
        if network.version != self.number:
            self.fail(f"{value} is not an IPv{self.number} address, in an {'ip6' if self.number == 6 else 'ip'}tables file")
        return Intervals.of(int(network.network_address), int(network.broadcast_address))

    # ------------------------------------------------------------ -m modules
    def _module(self, name: str, options: list[tuple[str, bool, list[str]]]) -> list:
        text = f"-m {name} " + " ".join(f"{'! ' if neg else ''}{opt} {' '.join(values)}".strip() for opt, neg, values in options)
        text = text.strip()
        if not options:
            return [] if name in ("tcp", "udp", "icmp", "icmp6", "comment", "multiport", "state", "conntrack") else [Unmodelled(text)]
        try:
            steps = []
            for option, negate, values in options:
                made = self._option(name, option, negate, values, text)
                steps += made if isinstance(made, list) else [made]
            return steps
        except _NotModelled:
            return [Unmodelled(text)]

    def _option(self, module: str, option: str, negate: bool, values: list[str], text: str):
        shown = f"{'! ' if negate else ''}{option} {' '.join(values)}".strip()
        if module == "comment":
            return Always()
        if module in ("tcp", "udp") and option in ("--dport", "--destination-port", "--sport", "--source-port"):
            field = "dport" if option in ("--dport", "--destination-port") else "sport"
            protocol = TCP if module == "tcp" else UDP
            return InSet(Key(field, protocols=frozenset({protocol})), self._ports(values[0]), negate, shown)
        if module == "tcp" and option == "--tcp-flags":
            mask, value = (_flags(v) for v in values[:2])
            return TcpFlags((lambda flags: flags & mask != value) if negate else (lambda flags: flags & mask == value), shown)
        if module == "tcp" and option == "--syn":
            mask, value = 0x17, 0x02  # SYN,RST,ACK,FIN: SYN
            return TcpFlags((lambda flags: flags & mask != value) if negate else (lambda flags: flags & mask == value), shown)
        if module == "multiport":
            if self.protocol not in (TCP, UDP, 33, 132, 136):
                raise _NotModelled
            ports = Intervals(span for part in values[0].split(",") for span in self._ports(part).spans)
            protocols = frozenset({self.protocol})
            if option in ("--dports", "--destination-ports"):
                return InSet(Key("dport", protocols=protocols), ports, negate, shown)
            if option in ("--sports", "--source-ports"):
                return InSet(Key("sport", protocols=protocols), ports, negate, shown)
            if option == "--ports":
                return AnyPort(protocols, ports, negate, shown)
        if (module, option) in (("state", "--state"), ("conntrack", "--ctstate")):
            states = {state.lower() for state in values[0].split(",")}
            if not states <= set(CT_STATES):
                raise _NotModelled
            return CtState(frozenset(states), negate, shown)
        if (module, option) in (("icmp", "--icmp-type"), ("icmp6", "--icmpv6-type")):
            protocols = frozenset({ICMP if module == "icmp" else ICMPV6})
            if values[0] == "any":
                return InSet(Key("l4proto"), Intervals.of(ICMP if module == "icmp" else ICMPV6), negate, shown)
            kind, _, code = values[0].partition("/")
            if not kind.isdigit() or code and not code.isdigit():
                raise _NotModelled  # a name: iptables-save writes numbers
            if negate and code:
                raise _NotModelled  # not (type and code): no single split of the two
            steps = [InSet(Key("icmp_type", protocols=protocols), Intervals.of(int(kind)), negate, shown)]
            if code:
                steps.append(InSet(Key("icmp_code", protocols=protocols), Intervals.of(int(code)), False, shown))
            return steps
        if module == "iprange" and option in ("--src-range", "--dst-range"):
            first, _, last = values[0].partition("-")
            low, high = ipaddress.ip_address(first), ipaddress.ip_address(last or first)
            if low.version != self.number or high.version != self.number:
                self.fail(f"{values[0]} is not an IPv{self.number} range")
            field = "saddr" if option == "--src-range" else "daddr"
            return InSet(Key(field, family=self.number), Intervals.of(int(low), int(high)), negate, shown)
        raise _NotModelled

    def _ports(self, text: str) -> Intervals:
        first, colon, last = text.partition(":")
        try:
            low = int(first) if first else PORTS[0]
            high = (int(last) if last else PORTS[1]) if colon else low
        except ValueError:
            raise _NotModelled from None  # a service name: iptables-save writes numbers
        if not PORTS[0] <= low <= high <= PORTS[1]:
            self.fail(f"not a port or port range: {text!r}")
        return Intervals.of(low, high)

    # ------------------------------------------------------------ -j -g
    def _target(self, option: str, target: str, rest: list[str]):
        if option in ("-g", "--goto"):
            if target not in self.chains:
                self.fail(f"-g {target}: no such chain")
            return Verdict("goto", target=target)
        if target in ("ACCEPT", "DROP", "RETURN"):
            return Verdict(target.lower())
        if target == "REJECT":
            kind = rest[rest.index("--reject-with") + 1] if "--reject-with" in rest[:-1] else "icmp-port-unreachable"
            if kind not in REJECT_TYPES:
                return Unsupported(f"-j REJECT --reject-with {kind}")
            return Verdict("reject", reject=REJECT_TYPES[kind])
        if target in HARMLESS_TARGETS:
            return Always()
        if target in self.chains:
            return Verdict("jump", target=target)
        return Unsupported(" ".join(["-j", target, *rest]))


class _NotModelled(Exception):
    pass


def _flags(text: str) -> int:
    bits = 0
    for name in text.split(","):
        if name.upper() not in TCP_FLAG_NAMES:
            raise _NotModelled
        bits |= TCP_FLAG_NAMES[name.upper()]
    return bits

