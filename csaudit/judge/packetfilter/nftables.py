"""`nft -j list ruleset` (libnftables JSON, schema 1) -> Ruleset.

Modelled: tables of the ip, ip6 and inet families; base chains by hook, priority and policy
(filter, nat and route types); jump, goto, return, continue; verdict maps; anonymous and named sets
(also with intervals) of addresses, prefixes, ranges, ports, protocols and interface names, and
concatenations of them; `ip/ip6 saddr/daddr`, `ip protocol`, `ip6 nexthdr`, `meta l4proto`,
`meta nfproto`, `meta protocol`, `th/tcp/udp/sctp/dccp/udplite sport/dport`, `tcp flags`,
`iifname/oifname/iif/oif`, `ct state`; accept, drop, reject, counter, log.
Every other match forks the packet (`Unmodelled`), every other statement ends it as unknown
(`Unsupported`), each with its text. Base chains of the bridge and netdev families make the
verdict on that side unknown (they are not modelled); arp tables never see an IP packet.
"""

from __future__ import annotations

import ipaddress
import json

from csaudit.judge.packetfilter.intervals import IPV4, PORTS, PROTOCOLS, Intervals
from csaudit.judge.packetfilter.ruleset import (
    CT_STATES,
    ICMP,
    ICMP_TYPES,
    ICMPV6,
    ICMPV6_TYPES,
    PROTOCOL_NUMBERS,
    TCP,
    TCP_FLAGS,
    UNREACHABLE,
    Always,
    Base,
    Chain,
    Concat,
    CtState,
    InNames,
    InSet,
    InterfaceKey,
    Key,
    Rule,
    RuleRef,
    Ruleset,
    TcpFlags,
    Unmodelled,
    Unsupported,
    Verdict,
    VerdictMap,
)
from csaudit.model.errors import UsageError

STANDARD_PRIORITIES = {"raw": -300, "mangle": -150, "dstnat": -100, "filter": 0, "security": 50, "srcnat": 100}
PATH_HOOKS = ("prerouting", "input", "output", "postrouting")
MODELLED_FAMILIES = ("ip", "ip6", "inet")
PORT_PROTOCOLS = {"tcp": TCP, "udp": 17, "dccp": 33, "sctp": 132, "udplite": 136}
HARMLESS = ("counter", "log")  # statements that leave the packet and its fate as they are
NFPROTO = {"ipv4": 4, "ipv6": 6, "ip": 4, "ip6": 6, 2: 4, 10: 6}


class NotModelled(Exception):
    """An expression outside the modelled subset; its text becomes an Unmodelled match or an Unsupported statement."""


def parse_nft_json(text: str, origin: str) -> Ruleset:
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"{origin}: not valid JSON (line {exc.lineno}: {exc.msg})") from None
    items = document.get("nftables") if isinstance(document, dict) else None
    if not isinstance(items, list):
        raise UsageError(f"{origin}: JSON without an \"nftables\" list: not the output of `nft -j list ruleset`")
    try:
        return _Builder(origin).build([item for item in items if isinstance(item, dict)])
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise UsageError(f"{origin}: not the output of `nft -j list ruleset` ({type(exc).__name__}: {exc})") from None


class _Builder:
    def __init__(self, origin: str):
        self.origin = origin
        self.sets: dict[tuple[str, str, str], dict] = {}

    def build(self, items: list[dict]) -> Ruleset:
        for item in items:
            for kind in ("set", "map"):
                if kind in item:
                    entry = item[kind]
                    self.sets[(entry["family"], entry["table"], entry["name"])] = entry
        chains: dict[tuple[str, str, str], dict] = {}
        rules: dict[tuple[str, str, str], list[Rule]] = {}
        opaque = []
        for item in items:
            if "chain" in item:
                entry = item["chain"]
                key = (entry["family"], entry["table"], entry["name"])
                chains[key] = entry
                rules.setdefault(key, [])
        for item in items:
            if "rule" in item:
                entry = item["rule"]
                key = (entry["family"], entry["table"], entry["chain"])
                if entry["family"] in MODELLED_FAMILIES:
                    rules.setdefault(key, []).append(self._rule(entry))
                elif key in chains:
                    chains[key].setdefault("_rules", 0)
                    chains[key]["_rules"] += 1
        built = {}
        for key, entry in chains.items():
            family = entry["family"]
            if family not in MODELLED_FAMILIES:
                if family in ("bridge", "netdev") and entry.get("hook") and (entry.get("_rules") or entry.get("policy") == "drop"):
                    side = "out" if entry["hook"] in ("output", "postrouting", "egress") else "in"
                    opaque.append((side, f"the {family} family chain {entry['table']}/{entry['name']} (hook {entry['hook']}) "
                                         "is not modelled and could drop the packet"))
                continue
            base = None
            if entry.get("hook"):
                if entry["hook"] not in PATH_HOOKS:
                    continue  # forward and ingress chains are not on a local packet's path
                policy = entry.get("policy", "accept")
                ref = RuleRef(self.origin, family, entry["table"], entry["name"], "policy", f"policy {policy}")
                base = Base(entry["hook"], _priority(entry.get("prio", 0)), entry.get("type", "filter"), policy, ref)
            built[key] = Chain(family, entry["table"], entry["name"], tuple(rules.get(key, ())), base)
        return Ruleset(built, (self.origin,), tuple(opaque))

    # ------------------------------------------------------------ rules
    def _rule(self, entry: dict) -> Rule:
        family, table = entry["family"], entry["table"]
        text = render_rule(entry)
        ref = RuleRef(self.origin, family, table, entry["chain"], f"handle {entry.get('handle', '?')}", text)
        steps = []
        for expression in entry.get("expr", ()):
            steps.append(self._step(expression, family, table))
            if isinstance(steps[-1], (Verdict, VerdictMap, Unsupported)):
                implied = _implied_by_reject(expression)
                if implied is not None:
                    steps.insert(0, implied)
                break
        return Rule(ref, tuple(steps))

    def _step(self, expression: dict, family: str, table: str):
        (name, body), = expression.items()
        if name in ("accept", "drop", "continue", "return"):
            return Verdict(name)
        if name in ("jump", "goto"):
            return Verdict(name, target=body["target"])
        if name == "reject":
            return Verdict("reject", reject=_reject(body))
        if name in HARMLESS:
            return Always()
        if name == "set" and isinstance(body, dict) and body.get("op") in ("add", "update"):
            return Always()  # fills a dynamic set; lookups of a dynamic set are not modelled anyway
        if name == "mangle" and body.get("key") == {"meta": {"key": "nftrace"}}:
            return Always()
        text = render_expression(expression)
        if name == "match":
            try:
                return self._match(body, family, table, text)
            except NotModelled:
                return Unmodelled(text)
        if name == "vmap":
            try:
                return self._vmap(body, family, table, text)
            except NotModelled:
                return Unsupported(text)
        if name in ("limit", "quota", "ct count", "meter") or (name == "xt" and body.get("type") == "match"):
            return Unmodelled(text)  # it may or may not match this packet
        return Unsupported(text)

    def _match(self, body: dict, family: str, table: str, text: str):
        op, left, right = body.get("op", "=="), body["left"], body["right"]
        if isinstance(left, dict) and "&" in left:
            return self._flags(left["&"], op, right, text)
        if isinstance(left, dict) and "concat" in left:
            keys = tuple(self._key(part, family) for part in left["concat"])
            if op not in ("==", "!=", "in"):
                raise NotModelled
            return Concat(keys, self._concat_elements(keys, right, family, table), op == "!=", text)
        if isinstance(left, dict) and left.get("ct", {}).get("key") == "state":
            states = self._names(right, family, table)
            if not set(states) <= set(CT_STATES) or op not in ("==", "!=", "in"):
                raise NotModelled
            return CtState(frozenset(states), op == "!=", text)
        if isinstance(left, dict) and left.get("payload", {}).get("protocol") == "tcp" and left["payload"].get("field") == "flags":
            return self._flags([left, 0xFF], op, right, text)
        key = self._key(left, family)
        if isinstance(key, InterfaceKey):
            if op not in ("==", "!=", "in"):
                raise NotModelled
            return InNames(key, tuple(self._names(right, family, table)), op == "!=", text)
        values = self._values(key, right, family, table)
        if op in ("==", "in"):
            return InSet(key, values, False, text)
        if op == "!=":
            return InSet(key, values, True, text)
        bound = values.single()
        if bound is None:
            raise NotModelled
        low, high = key.domain
        if op in ("<", "lt"):
            return InSet(key, Intervals.of(low, bound - 1) if bound > low else Intervals(), False, text)
        if op in ("<=", "le"):
            return InSet(key, Intervals.of(low, bound), False, text)
        if op in (">", "gt"):
            return InSet(key, Intervals.of(bound + 1, high) if bound < high else Intervals(), False, text)
        if op in (">=", "ge"):
            return InSet(key, Intervals.of(bound, high), False, text)
        raise NotModelled

    def _flags(self, operands, op: str, right, text: str):
        """`tcp flags & (fin|syn|rst|ack) == syn`, `tcp flags syn` (any of them set), `tcp flags != syn`."""
        field, mask = operands
        if field != {"payload": {"protocol": "tcp", "field": "flags"}}:
            raise NotModelled
        mask_bits, value_bits = _flag_bits(mask), _flag_bits(right)
        if op == "in":
            return TcpFlags(lambda flags: bool(flags & mask_bits & value_bits), text)
        if op == "==":
            return TcpFlags(lambda flags: flags & mask_bits == value_bits, text)
        if op == "!=":
            return TcpFlags(lambda flags: flags & mask_bits != value_bits, text)
        raise NotModelled

    def _vmap(self, body: dict, family: str, table: str, text: str) -> VerdictMap:
        left = body["key"]
        parts = left["concat"] if isinstance(left, dict) and "concat" in left else [left]
        keys = tuple(self._key(part, family) for part in parts)
        data = body["data"]
        if isinstance(data, str) and data.startswith("@"):
            named = self._named(data, family, table)
            if named.get("map") != "verdict":
                raise NotModelled
            elements = named.get("elem", [])
        elif isinstance(data, dict) and "set" in data:
            elements = data["set"]
        else:
            raise NotModelled
        entries = []
        for element in elements:
            key_value, verdict = element if isinstance(element, list) else (element["elem"]["val"], element["elem"]["data"])
            entries.append((self._element(keys, key_value), self._verdict(verdict)))
        return VerdictMap(keys, tuple(entries), text)

    def _verdict(self, data: dict) -> Verdict:
        (name, body), = data.items()
        if name in ("accept", "drop", "continue", "return"):
            return Verdict(name)
        if name in ("jump", "goto"):
            return Verdict(name, target=body["target"])
        raise NotModelled

    # ------------------------------------------------------------ keys and values
    def _key(self, expression, family: str):
        if not isinstance(expression, dict):
            raise NotModelled
        if "payload" in expression:
            payload = expression["payload"]
            protocol, field = payload.get("protocol"), payload.get("field")
            if protocol in ("ip", "ip6") and field in ("saddr", "daddr"):
                return Key(field, family=4 if protocol == "ip" else 6, label=f"{protocol} {field}")
            if (protocol, field) in (("ip", "protocol"), ("ip6", "nexthdr")):
                return Key("l4proto", family=4 if protocol == "ip" else 6, label=f"{protocol} {field}")
            if protocol in PORT_PROTOCOLS and field in ("sport", "dport"):
                return Key(field, protocols=frozenset({PORT_PROTOCOLS[protocol]}), label=f"{protocol} {field}")
            if protocol == "th" and field in ("sport", "dport"):
                return Key(field, label=f"th {field}")
            if protocol in ("icmp", "icmpv6") and field in ("type", "code"):
                return Key(f"icmp_{field}", protocols=frozenset({ICMP if protocol == "icmp" else ICMPV6}), label=f"{protocol} {field}")
            raise NotModelled
        if "meta" in expression:
            meta = expression["meta"]["key"]
            if meta == "l4proto":
                return Key("l4proto", label="meta l4proto")
            if meta in ("nfproto", "protocol"):
                return Key("family", label=f"meta {meta}")
            if meta in ("iifname", "oifname", "iif", "oif"):
                return InterfaceKey(meta[0] + "if")
            raise NotModelled
        raise NotModelled

    def _values(self, key: Key, right, family: str, table: str) -> Intervals:
        if isinstance(right, str) and right.startswith("@"):
            named = self._named(right, family, table)
            return Intervals(span for element in named.get("elem", []) for span in self._value(key, element).spans)
        if isinstance(right, dict) and "set" in right:
            return Intervals(span for element in right["set"] for span in self._value(key, element).spans)
        return self._value(key, right)

    def _value(self, key: Key, value) -> Intervals:
        if isinstance(value, dict) and "elem" in value:
            value = value["elem"]["val"]
        if isinstance(value, dict) and "range" in value:
            low, high = (self._scalar(key, v) for v in value["range"])
            return Intervals.of(low, high)
        if isinstance(value, dict) and "prefix" in value:
            network = ipaddress.ip_network(f"{value['prefix']['addr']}/{value['prefix']['len']}", strict=False)
            if key.field not in ("saddr", "daddr") or (network.version == 4) != (key.domain == IPV4):
                raise NotModelled
            return Intervals.of(int(network.network_address), int(network.broadcast_address))
        if isinstance(value, (dict, list)):
            raise NotModelled
        return Intervals.of(self._scalar(key, value))

    def _scalar(self, key: Key, value) -> int:
        if key.field in ("saddr", "daddr"):
            address = ipaddress.ip_address(value)
            if (address.version == 4) != (key.domain == IPV4):
                raise NotModelled
            return int(address)
        if key.field == "family":
            if value not in NFPROTO:
                raise NotModelled
            return NFPROTO[value]
        if key.field in ("icmp_type", "icmp_code"):
            names = (ICMP_TYPES if ICMP in key.protocols else ICMPV6_TYPES) if key.field == "icmp_type" else \
                UNREACHABLE[4 if ICMP in key.protocols else 6][1]
            number = names.get(value, value)
            if not isinstance(number, int) or isinstance(number, bool) or not 0 <= number <= 255:
                raise NotModelled
            return number
        if key.field == "l4proto":
            number = PROTOCOL_NUMBERS.get(value, value)
            if not isinstance(number, int) or isinstance(number, bool) or not PROTOCOLS[0] <= number <= PROTOCOLS[1]:
                raise NotModelled
            return number
        if isinstance(value, int) and not isinstance(value, bool) and PORTS[0] <= value <= PORTS[1]:
            return value
        if isinstance(value, str) and value.isdigit():
            return int(value)
        raise NotModelled  # a service name: nft -j prints numbers, unless told otherwise

    def _names(self, right, family: str, table: str) -> list[str]:
        if isinstance(right, str) and right.startswith("@"):
            elements = self._named(right, family, table).get("elem", [])
        elif isinstance(right, dict) and "set" in right:
            elements = right["set"]
        elif isinstance(right, list):
            elements = right
        else:
            elements = [right]
        names = []
        for element in elements:
            if isinstance(element, dict) and "elem" in element:
                element = element["elem"]["val"]
            if not isinstance(element, str) or "\\" in element:
                raise NotModelled  # an escaped, literal `*` in a name
            names.append(element)  # a trailing `*` is a wildcard, as interface_matches reads it
        return names

    def _concat_elements(self, keys, right, family: str, table: str):
        if isinstance(right, str) and right.startswith("@"):
            elements = self._named(right, family, table).get("elem", [])
        elif isinstance(right, dict) and "set" in right:
            elements = right["set"]
        else:
            elements = [right]
        return tuple(self._element(keys, element) for element in elements)

    def _element(self, keys, element):
        if isinstance(element, dict) and "elem" in element:
            element = element["elem"]["val"]
        parts = element["concat"] if isinstance(element, dict) and "concat" in element else [element]
        if len(parts) != len(keys):
            raise NotModelled
        made = []
        for key, part in zip(keys, parts, strict=True):
            if isinstance(key, InterfaceKey):
                if not isinstance(part, str):
                    raise NotModelled
                made.append((part,))
            else:
                made.append(self._value(key, part))
        return tuple(made)

    def _named(self, reference: str, family: str, table: str) -> dict:
        named = self.sets.get((family, table, reference[1:]))
        if named is None:
            raise NotModelled
        flags = set(named.get("flags", ()))
        if flags - {"interval", "constant"} or any(isinstance(e, dict) and "elem" in e and ("timeout" in e["elem"] or "expires" in e["elem"])
                                                   for e in named.get("elem", [])):
            raise NotModelled  # a set packets fill (dynamic, timeout): its content is not fixed
        return named


def _implied_by_reject(expression: dict):
    """What nft adds to a reject and leaves out of its JSON: `reject with tcp reset` holds only for TCP,
    `reject with icmp type ...` (in an inet table) only for IPv4, `with icmpv6 type ...` only for IPv6."""
    body = expression.get("reject") if isinstance(expression, dict) and "reject" in expression else None
    if not isinstance(body, dict):
        return None
    kind = body.get("type")
    if kind == "tcp reset":
        return InSet(Key("l4proto"), Intervals.of(TCP), text="(reject with tcp reset: TCP only)")
    if kind in ("icmp", "icmpv6"):
        return InSet(Key("family"), Intervals.of(4 if kind == "icmp" else 6), text=f"(reject with {kind}: IPv{4 if kind == 'icmp' else 6} only)")
    return None


def _priority(value) -> int:
    if isinstance(value, int):
        return value
    text = str(value).replace(" ", "")
    for name, number in STANDARD_PRIORITIES.items():
        if text.startswith(name):
            rest = text[len(name):]
            return number + (int(rest) if rest else 0)
    return int(text)


def _reject(body) -> str:
    if not body:
        return "icmp port-unreachable"
    kind = body.get("type", "icmpx")
    if kind == "tcp reset":
        return "tcp reset"
    return f"icmp {body.get('expr', 'port-unreachable')}"


def _flag_bits(value) -> int:
    if isinstance(value, int):
        return value
    names = value if isinstance(value, list) else [value]
    bits = 0
    for name in names:
        if isinstance(name, int):
            bits |= name
        elif name in TCP_FLAGS:
            bits |= TCP_FLAGS[name]
        else:
            raise NotModelled
    return bits


# ---------------------------------------------------------------- rules as nft writes them
def render_rule(entry: dict) -> str:
    text = " ".join(render_expression(e) for e in entry.get("expr", ()) if not (isinstance(e, dict) and "counter" in e))
    if entry.get("comment"):
        text += f' comment "{entry["comment"]}"'
    return text or "(empty rule)"


def render_expression(expression) -> str:
    if not isinstance(expression, dict) or len(expression) != 1:
        return json.dumps(expression, separators=(",", ":"))
    (name, body), = expression.items()
    if name == "match":
        op = body.get("op", "==")
        shown = "" if op in ("==", "in") else f"{op} "
        names = isinstance(body["left"], dict) and body["left"].get("meta", {}).get("key") in ("iifname", "oifname", "iif", "oif")
        return f"{_render_value(body['left'])} {shown}{_render_value(body['right'], names)}"
    if name in ("accept", "drop", "continue", "return"):
        return name
    if name in ("jump", "goto"):
        return f"{name} {body['target']}"
    if name == "reject":
        if not body:
            return "reject"
        if body.get("type") == "tcp reset":
            return "reject with tcp reset"
        return f"reject with {body.get('type', 'icmpx')} {body.get('expr', '')}".rstrip()
    if name == "counter":
        return "counter"
    if name == "log":
        return "log" + (f' prefix "{body["prefix"]}"' if isinstance(body, dict) and body.get("prefix") else "")
    if name == "limit" and isinstance(body, dict):
        return f"limit rate {'over ' if body.get('inv') else ''}{body.get('rate')}/{body.get('per')}"
    if name == "vmap":
        return f"{_render_value(body['key'])} vmap {_render_value(body['data'])}"
    if name == "xt":
        return f"xt {body.get('type')} {body.get('name')}"
    return json.dumps(expression, separators=(",", ":"))


def _render_value(value, quoted: bool = False) -> str:
    """`quoted`: interface names, which nft writes in quotes."""
    if isinstance(value, str):
        return f'"{value}"' if quoted and not value.startswith("@") else value
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, list):
        if len(value) == 2 and isinstance(value[1], dict) and len(value[1]) == 1:  # a map element: key : verdict
            return f"{_render_value(value[0])} : {render_expression(value[1])}"
        return ",".join(_render_value(v, quoted) for v in value)  # flags: `ct state established,related`
    if isinstance(value, dict):
        if "payload" in value:
            payload = value["payload"]
            if "protocol" in payload:
                return f"{payload['protocol']} {payload['field']}"
            return f"@{payload.get('base')},{payload.get('offset')},{payload.get('len')}"
        if "meta" in value:
            key = value["meta"]["key"]
            return key if key in ("iifname", "oifname", "iif", "oif") else f"meta {key}"
        if "ct" in value:
            return f"ct {value['ct']['key']}"
        if "set" in value:
            return "{ " + ", ".join(_render_value(v, quoted) for v in value["set"]) + " }"
        if "range" in value:
            return "-".join(_render_value(v) for v in value["range"])
        if "prefix" in value:
            return f"{value['prefix']['addr']}/{value['prefix']['len']}"
        if "concat" in value:
            return " . ".join(_render_value(v) for v in value["concat"])
        if "elem" in value:
            return _render_value(value["elem"]["val"], quoted)
        if "&" in value:
            return f"{_render_value(value['&'][0])} & ({_render_value(value['&'][1])})"
        if "fib" in value:
            return f"fib {' . '.join(value['fib'].get('flags', []))} {value['fib'].get('result')}"
    return json.dumps(value, separators=(",", ":"))
