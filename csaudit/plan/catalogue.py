"""Load and validate the flow catalogue (catalogue.toml): rules as data, not code."""

from __future__ import annotations

import dataclasses
import importlib.resources
import re
import tomllib

from csaudit.collect.textfile import read_text
from csaudit.model.errors import ConfigError
from csaudit.model.flows import Remedy
from csaudit.model.vocabulary import ANY_HYPERVISOR, TCP_KINDS, UDP_KINDS, Hypervisor, ProbeKind, Protocol, Role

ROLES = frozenset(Role)
PROTOCOLS = frozenset(Protocol)
HYPERVISORS = frozenset({ANY_HYPERVISOR, *Hypervisor})
PAIRINGS = frozenset({"zone", "local", "peers", "self", "cluster-ring", "other-zone"})
ADDRESS_KINDS = frozenset({"default", "private", "public", "linklocal", "guest", "control"})
# probe kind -> the protocols it can run over ("none": not probed at all)
PROBE_PROTOCOLS = {
    kind: ("tcp", "udp") if kind in (ProbeKind.TCP, ProbeKind.NONE) else
    tuple(protocol for protocol, kinds in (("tcp", TCP_KINDS), ("udp", UDP_KINDS)) if kind in kinds)
    for kind in ProbeKind
}
PROBES = frozenset(ProbeKind)
CONDITIONS = frozenset({"equals", "not_equals", "above", "set", "includes", "pattern"})
ZONE_FACTS = frozenset({"isolation_methods"})  # zone fields a `when` may test (when = { zone = "...", includes = "..." })
REQUIRED = ("id", "title", "source", "target", "ports", "protocol", "expect", "hypervisors", "citation", "remedy")
OPTIONAL = (
    "seed", "pairing", "source_address", "target_address", "target_protocol", "hypervisor_of",
    "when", "probe", "note", "port_from", "self_allowed",
)
PORT_OPTIONS = {
    "api-port": "server.properties http.port",
    "db-port": "db.properties db.cloud.port",
    "cluster-port": "db.properties cluster.servlet.port",
}
_ID = re.compile(r"^[FD]\d{2}$")
_RANGE = re.compile(r"^(\d+)-(\d+)$")


@dataclasses.dataclass(frozen=True)
class Condition:
    setting: str | None  # a CloudStack setting, or None when the condition tests a zone fact
    operator: str
    value: object
    zone: str | None = None  # a zone field (ZONE_FACTS), comma-joined when it is a list

    def describe(self) -> str:
        """The condition in words, for the flows it makes exist."""
        subject = f"setting '{self.setting}'" if self.setting is not None else f"the zone's {self.zone.replace('_', ' ')}"
        phrase = {
            "equals": f"is '{self.value}'",
            "not_equals": f"is not '{self.value}'",
            "above": f"is above {self.value}",
            "set": "is set" if self.value else "is empty",
            "includes": f"include {self.value}" if self.zone else f"includes '{self.value}'",
            "pattern": f"matches '{self.value}'",
        }[self.operator]
        return f"{subject} {phrase}"

    def holds(self, actual: str | None) -> bool:
        actual = (actual or "").strip()
        if self.operator == "includes":  # a comma-separated list holds the value
            return str(self.value).lower() in (a.strip().lower() for a in actual.split(","))
        if self.operator == "pattern":
            return re.fullmatch(str(self.value), actual) is not None
        if self.operator == "set":
            return bool(actual) == bool(self.value)
        if self.operator == "equals":
            return actual.lower() == str(self.value).lower()
        if self.operator == "not_equals":
            return actual.lower() != str(self.value).lower()
        try:  # "above"
            return float(actual) > float(self.value)
        except ValueError:
            return False


@dataclasses.dataclass(frozen=True)
class PortSpec:
    first: int
    last: int | None = None  # a range when set

    def __str__(self) -> str:
        return f"{self.first}-{self.last}" if self.last else str(self.first)


@dataclasses.dataclass(frozen=True)
class Rule:
    id: str
    title: str
    sources: tuple[str, ...]
    targets: tuple[str, ...]
    ports: tuple[PortSpec, ...]
    protocols: tuple[str, ...]
    expect: str
    hypervisors: tuple[str, ...]  # lower-case; ("any",) matches everything
    citation: str
    seed: str | None = None
    pairing: str = "zone"
    source_address: str = "default"
    target_address: str = "default"
    target_protocol: str | None = None
    hypervisor_of: str | None = None
    when: Condition | None = None
    probe: str = "tcp"
    note: str | None = None
    port_from: str | None = None  # "setting:NAME" or "option:NAME"
    self_allowed: bool = False  # deny rule: the target's own machine may use the port (local admin tooling)
    remedy: Remedy | None = None


def default_catalogue_text() -> str:
    return importlib.resources.files("csaudit.plan").joinpath("catalogue.toml").read_text(encoding="utf-8")


def load_catalogue(path: str | None = None) -> tuple[Rule, ...]:
    origin = path or "built-in catalogue.toml"
    content = default_catalogue_text() if path is None else read_text(path, "catalogue", ConfigError)
    return parse_catalogue(content, origin)


def parse_catalogue(content: str, origin: str = "catalogue") -> tuple[Rule, ...]:
    try:
        document = tomllib.loads(content)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{origin}: not valid TOML: {exc}") from None
    unknown_top = set(document) - {"flow"}
    if unknown_top:
        raise ConfigError(f"{origin}: unknown top-level key(s) {sorted(unknown_top)}; expected [[flow]] tables")
    entries = document.get("flow", [])
    if not isinstance(entries, list) or not entries:
        raise ConfigError(f"{origin}: no [[flow]] entries")
    rules = tuple(_rule(entry, f"{origin}: flow #{n} ({entry.get('id', '?')})") for n, entry in enumerate(entries, 1))
    seen = set()
    for rule in rules:
        key = (rule.id, rule.ports, rule.protocols, rule.sources, rule.targets, rule.when)
        if key in seen:
            raise ConfigError(f"{origin}: flow {rule.id} is defined twice with the same ports, protocol and condition")
        seen.add(key)
    return rules


def _rule(entry: dict, where: str) -> Rule:
    if not isinstance(entry, dict):
        raise ConfigError(f"{where}: must be a table")
    unknown = set(entry) - set(REQUIRED) - set(OPTIONAL)
    if "outside" in unknown:
        raise ConfigError(f"{where}: 'outside = true' is now written source = \"outside\" (the outside vantage)")
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {sorted(unknown)}")
    missing = [k for k in REQUIRED if k not in entry]
    if missing:
        raise ConfigError(f"{where}: missing key(s) {missing}")
    if not isinstance(entry["id"], str) or not _ID.match(entry["id"]):
        raise ConfigError(f"{where}: id must look like F08 or D01")
    sources = _roles(entry["source"], where, "source")
    targets = _roles(entry["target"], where, "target")
    protocols = _names(entry["protocol"], PROTOCOLS, where, "protocol")
    hypervisors = tuple(h.lower() for h in _names(entry["hypervisors"], None, where, "hypervisors"))
    bad = [h for h in hypervisors if h not in HYPERVISORS]
    if bad:
        raise ConfigError(f"{where}: unknown hypervisor(s) {bad}; known: {sorted(HYPERVISORS)}")
    expect = entry["expect"]
    if expect not in ("open", "closed"):
        raise ConfigError(f"{where}: expect must be 'open' or 'closed', not {expect!r}")
    choices = {
        "pairing": PAIRINGS,
        "source_address": ADDRESS_KINDS,
        "target_address": ADDRESS_KINDS,
        "probe": PROBES,
        "hypervisor_of": {"source", "target", "both"},
    }
    for key, allowed in choices.items():
        if key in entry and entry[key] not in allowed:
            raise ConfigError(f"{where}: {key} must be one of {sorted(allowed)}, not {entry[key]!r}")
    probe = entry.get("probe", "tcp")
    wrong = [p for p in protocols if p not in PROBE_PROTOCOLS.get(probe, protocols)]
    if wrong:
        raise ConfigError(f"{where}: probe {probe!r} cannot run over {'/'.join(wrong)}")
    if "self_allowed" in entry and (entry["self_allowed"] is not True or expect != "closed"):
        raise ConfigError(f"{where}: self_allowed = true is for deny rules (expect = \"closed\") only")
    port_from = entry.get("port_from")
    if port_from is not None:
        kind, _, name = str(port_from).partition(":")
        if kind == "range":
            if name.count(":") != 1 or len(entry["ports"]) != 1 or not isinstance(entry["ports"][0], str):
                raise ConfigError(f"{where}: port_from = \"range:START_SETTING:SIZE_SETTING\" needs exactly one range "
                                  "(the default) in ports")
        elif kind == "target" and not name:
            if len(entry["ports"]) != 1 or not isinstance(entry["ports"][0], int):
                raise ConfigError(f"{where}: port_from needs exactly one port (the default) in ports")
        elif kind not in ("setting", "option") or not name or (kind == "option" and name not in PORT_OPTIONS):
            raise ConfigError(f"{where}: port_from must be \"setting:NAME\", \"target\", \"range:START:SIZE\" or "
                              f"\"option:\" + one of {sorted(PORT_OPTIONS)}")
        elif len(entry["ports"]) != 1 or not isinstance(entry["ports"][0], int):
            raise ConfigError(f"{where}: port_from needs exactly one port (the default) in ports")
    for key in ("title", "citation", "seed", "note", "target_protocol"):
        if key in entry and not (isinstance(entry[key], str) and entry[key].strip()):
            raise ConfigError(f"{where}: {key} must be a non-empty string")
    return Rule(
        id=entry["id"],
        title=entry["title"],
        sources=sources,
        targets=targets,
        ports=_ports(entry["ports"], where),
        protocols=protocols,
        expect=expect,
        hypervisors=hypervisors,
        citation=entry["citation"],
        seed=entry.get("seed"),
        pairing=entry.get("pairing", "zone"),
        source_address=entry.get("source_address", "default"),
        target_address=entry.get("target_address", "default"),
        target_protocol=entry.get("target_protocol"),
        hypervisor_of=entry.get("hypervisor_of"),
        when=_condition(entry.get("when"), where),
        probe=probe,
        note=entry.get("note"),
        port_from=port_from,
        self_allowed=entry.get("self_allowed", False),
        remedy=_remedy(entry["remedy"], where),
    )


REMEDY_KEYS = {"on": True, "check": True, "commands": False, "citation": True}  # key: required


def _remedy(value, where: str) -> Remedy:
    """remedy = { on = "...", check = "...", commands = ["read-only command", ...], citation = "..." }"""
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: remedy must be a table {{ on, check, commands, citation }}")
    unknown = set(value) - set(REMEDY_KEYS)
    missing = [k for k, required in REMEDY_KEYS.items() if required and k not in value]
    if unknown or missing:
        raise ConfigError(f"{where}: remedy has unknown key(s) {sorted(unknown)} or lacks {missing}")
    for key in ("on", "check", "citation"):
        if not (isinstance(value[key], str) and value[key].strip()):
            raise ConfigError(f"{where}: remedy.{key} must be a non-empty string")
    commands = value.get("commands", [])
    if not isinstance(commands, list) or not all(isinstance(c, str) and c.strip() for c in commands):
        raise ConfigError(f"{where}: remedy.commands must be a list of non-empty strings")
    return Remedy(on=value["on"], check=value["check"], commands=tuple(commands), citation=value["citation"])


def _names(value, allowed, where: str, key: str) -> tuple[str, ...]:
    values = [value] if isinstance(value, str) else value
    if not isinstance(values, list) or not values or not all(isinstance(v, str) for v in values):
        raise ConfigError(f"{where}: {key} must be a string or a non-empty list of strings")
    if allowed is not None:
        bad = [v for v in values if v not in allowed]
        if bad:
            raise ConfigError(f"{where}: unknown {key} {bad}; known: {sorted(allowed)}")
    return tuple(values)


def _roles(value, where: str, key: str) -> tuple[str, ...]:
    return _names(value, ROLES, where, f"{key} role")


def _ports(value, where: str) -> tuple[PortSpec, ...]:
    if not isinstance(value, list) or not value:
        raise ConfigError(f"{where}: ports must be a non-empty list")
    ports = []
    for port in value:
        if isinstance(port, int) and not isinstance(port, bool) and 0 < port < 65536:
            ports.append(PortSpec(port))
            continue
        match = _RANGE.match(port) if isinstance(port, str) else None
        if match and 0 < int(match.group(1)) < int(match.group(2)) < 65536:
            ports.append(PortSpec(int(match.group(1)), int(match.group(2))))
            continue
        raise ConfigError(f"{where}: {port!r} is not a port (1-65535) or a range like \"5900-6100\"")
    return tuple(ports)


def _condition(value, where: str) -> Condition | None:
    if value is None:
        return None
    subjects = [k for k in ("setting", "zone") if isinstance(value, dict) and isinstance(value.get(k), str)]
    if len(subjects) != 1:
        raise ConfigError(f"{where}: when must be a table with a 'setting' name (or a 'zone' fact: {sorted(ZONE_FACTS)})")
    subject = subjects[0]
    if subject == "zone" and value["zone"] not in ZONE_FACTS:
        raise ConfigError(f"{where}: when.zone must be one of {sorted(ZONE_FACTS)}")
    operators = set(value) - {subject}
    if len(operators) != 1 or not operators <= CONDITIONS:
        raise ConfigError(f"{where}: when needs exactly one of {sorted(CONDITIONS)}")
    operator = operators.pop()
    if operator == "pattern":
        try:
            re.compile(str(value[operator]))
        except re.error as exc:
            raise ConfigError(f"{where}: when.pattern is not a regular expression: {exc}") from None
    if subject == "zone":
        return Condition(None, operator, value[operator], zone=value["zone"])
    return Condition(value["setting"], operator, value[operator])
