"""Why a probed flow failed (`run --collect-firewall`): its ports through the rulesets read on its
source and its target, named rule by rule; and when no rule that was read explains the failure,
that is said too, with the machines whose ruleset could not be read."""

from __future__ import annotations

from csaudit.judge.packetfilter.flowcheck import Side, trace
from csaudit.judge.packetfilter.interfaces import Interfaces, parse_ip_addr_json
from csaudit.judge.packetfilter.intervals import Intervals
from csaudit.judge.packetfilter.load import load_ruleset
from csaudit.judge.packetfilter.whatif import describe_part
from csaudit.model.errors import UsageError
from csaudit.model.firewalls import MachineFirewall
from csaudit.model.results import FlowResult
from csaudit.model.vocabulary import State

Read = MachineFirewall | str  # what was read on a machine, or why nothing could be


def machine_side(read: MachineFirewall) -> Side | str:
    """The machine's ruleset and interfaces, or why they cannot be used."""
    if not read.rulesets:
        return "; ".join(read.problems) or "nothing was read"
    try:
        ruleset = load_ruleset(read.rulesets)
    except UsageError as exc:
        return f"its ruleset could not be read: {exc.message}"
    interfaces = Interfaces()
    if read.interfaces:
        try:
            interfaces = parse_ip_addr_json(read.interfaces, f"{read.name}: ip -j addr")
        except UsageError:
            pass  # rules on interface names then stay unknown, and say why
    return Side(read.name, ruleset, interfaces)


def failing_ports(result: FlowResult) -> list[int]:
    """The ports whose probe made the flow fail (a range: the sampled ports that did)."""
    flow = result.flow
    if not result.ports:
        return [flow.port]
    if flow.expect == "closed":
        return [port for port, state in result.ports if state == State.OPEN]
    (first, state), rest = result.ports[0], result.ports[1:]  # the first port is judged alone: it must be open
    return ([first] if state != State.OPEN else []) + [port for port, state in rest if state not in (State.OPEN, State.REFUSED)]


def explain(result: FlowResult, source: Read | None, target: Read | None) -> str:
    flow = result.flow
    sides: dict[str, Side] = {}
    unread = []
    for role, endpoint, read in (("source", flow.source, source), ("target", flow.target, target)):
        if read is None:
            unread.append(f"{endpoint.name} ({role}): not read")
            continue
        side = machine_side(read) if isinstance(read, MachineFirewall) else read
        if isinstance(side, str):
            unread.append(f"{endpoint.name} ({role}): {side}")
        else:
            sides[role] = side
    if not sides:
        return "no ruleset could be read: " + "; ".join(unread)
    found = trace(flow, sides.get("source"), sides.get("target"))
    if found.problem:
        return f"cannot tell: {found.problem}"
    ports = failing_ports(result) or [flow.port]
    said = []
    for part in found.parts:
        hit = [port for port in ports if port in part.ports]
        if not hit:
            continue
        where = f"port {Intervals((p, p) for p in hit).text()}: " if flow.port_end else ""
        if (flow.expect == "open" and part.verdict == "accepted") or (flow.expect == "closed" and part.verdict != "accepted"):
            read = " and ".join(f"{side.name} ({role})" for role, side in sides.items())
            said.append(f"{where}{part.verdict} by the rulesets read on {read}: no rule read explains the failure")
        else:
            said.append(where + describe_part(part))
    text = "; ".join(said)
    return text + (f" [{'; '.join(unread)}]" if unread else "")
