"""The packet walk: what a ruleset does to one packet on one side of a machine (in: prerouting then
input; out: output then postrouting), as the kernel does it.

Base chains run by hook, then by priority; an accept ends one base chain and the packet goes on to
the next, a drop or a reject is final. Inside a chain: jump pushes a return point, goto does not,
return (or the end of a regular chain) goes back, the end of a base chain (or a return from it) is
its policy. A match that holds for part of what the packet could be (its ephemeral source port, the
ports of a range) splits it, and each part walks on; a match or statement the evaluator does not
model forks it or ends it as unknown. The result is every outcome, each with the packet it holds for.
In a long chain only the rules the packet can match are visited (index.py).
"""

from __future__ import annotations

import dataclasses

from csaudit.judge.packetfilter.index import MIN_RULES, ChainIndex
from csaudit.judge.packetfilter.ruleset import (
    CONNTRACK_PRIORITY,
    HOOK_PATHS,
    Chain,
    Concat,
    Context,
    InSet,
    Key,
    Packet,
    RuleRef,
    Ruleset,
    Unsupported,
    Verdict,
    VerdictMap,
)

MAX_STEPS = 500_000  # rule visits for one packet: bounds a malformed ruleset that loops
MAX_CASES = 256  # outcomes for one packet: beyond, the answer is unknown
MAX_ADDRESS_SPLITS = 16  # any client's address through rules that name many addresses: beyond, unknown (and cheap)
NO_CONTEXT = Context()
BEFORE_CONNTRACK = Context(before_conntrack=True)
INDEXED = True  # visit only the rules a packet can match (index.py); False: every rule, as a check of the index


@dataclasses.dataclass(frozen=True, slots=True)
class Outcome:
    verdict: str  # accept, drop, reject, unknown
    packet: Packet  # what the packet is, for this outcome (its split sets narrowed)
    ref: RuleRef | None = None  # the rule or policy that decided (accept: the last base chain's)
    accepted_by: tuple[RuleRef | None, ...] = ()  # each base chain's accepting rule or policy
    reject: str | None = None  # how a reject answers: "tcp reset" or "icmp <type>"
    reason: str = ""  # unknown: why
    forks: tuple[str, ...] = ()  # the unmodelled matches this outcome assumed one way


@dataclasses.dataclass(frozen=True, slots=True)
class _State:
    """Where a packet stands in the walk: the next rule to test, and how it got there."""

    packet: Packet
    base_index: int
    chain: Chain | None
    index: int
    stack: tuple[tuple[Chain, int], ...]
    accepted: tuple[RuleRef | None, ...]
    forks: tuple[str, ...]
    pending: tuple[Verdict, RuleRef] | None = None  # a verdict map's verdict, to apply first


def evaluate(ruleset: Ruleset, packet: Packet, side: str) -> list[Outcome]:
    """Every outcome of `packet` going `side` ("in" or "out") through this machine's ruleset."""
    opaque = [why for where, why in ruleset.opaque if where == side]
    if opaque:
        return [Outcome("unknown", packet, reason=opaque[0])]
    bases = ruleset.base_chains(packet.family, HOOK_PATHS[side], packet.ct_state == "new")
    outcomes: list[Outcome] = []
    work = [_State(packet, 0, None, 0, (), (), ())]
    budget = [MAX_STEPS, MAX_ADDRESS_SPLITS]
    while work:
        if len(outcomes) + len(work) > MAX_CASES:
            reason = f"more than {MAX_CASES} cases to follow (rules split the packet by its addresses or ports that many ways)"
            return outcomes + [Outcome("unknown", state.packet, reason=reason, forks=state.forks) for state in work]
        _walk(work.pop(), ruleset, bases, work, outcomes, budget)
    return outcomes


def _walk(state: _State, ruleset: Ruleset, bases: list[Chain], work: list[_State], outcomes: list[Outcome], budget: list[int]) -> None:
    packet, base_index, chain, index, stack, accepted, forks = (
        state.packet, state.base_index, state.chain, state.index, state.stack, state.accepted, state.forks)
    pending = state.pending
    context = NO_CONTEXT
    if chain is not None:
        context = BEFORE_CONNTRACK if bases[base_index].base.priority < CONNTRACK_PRIORITY else NO_CONTEXT
    masked, mask = None, 0  # the chain whose candidate rules `mask` holds
    while True:
        if pending is not None:
            (verdict, ref), pending = pending, None
        else:
            if chain is None:  # the next base chain, or the end of the hooks: accepted
                if base_index == len(bases):
                    outcomes.append(Outcome("accept", packet, accepted[-1] if accepted else None, accepted, forks=forks))
                    return
                chain, index, stack = bases[base_index], 0, ()
                context = BEFORE_CONNTRACK if chain.base.priority < CONNTRACK_PRIORITY else NO_CONTEXT
            if chain is not masked:
                masked, mask = chain, _candidates(ruleset, chain, packet)
            rest = mask >> index
            index = index + (rest & -rest).bit_length() - 1 if rest else len(chain.rules)
            if index >= len(chain.rules):  # the end of a chain: back to the caller, or the base chain's policy
                if stack:
                    (chain, index), stack = stack[-1], stack[:-1]
                    continue
                base = bases[base_index].base
                verdict, ref = Verdict(base.policy), base.policy_ref
            else:
                budget[0] -= 1
                if budget[0] < 0:
                    outcomes.append(Outcome("unknown", packet, reason=f"more than {MAX_STEPS} rule visits (a loop?)", forks=forks))
                    return
                rule = chain.rules[index]
                index += 1
                verdict, packet, forks = _rule(rule, packet, forks, context, (base_index, chain, index, stack, accepted), work, budget)
                if packet is None:  # this state ended in the rule: an unknown outcome, or a verdict map took every case
                    if isinstance(verdict, Outcome):
                        outcomes.append(verdict)
                    return
                if verdict is None:
                    continue
                ref = rule.ref
        kind = verdict.kind
        if kind == "accept":
            accepted = (*accepted, ref)
            base_index, chain = base_index + 1, None
        elif kind in ("drop", "reject"):
            outcomes.append(Outcome(kind, packet, ref, accepted, reject=verdict.reject, forks=forks))
            return
        elif kind == "return":
            if stack:
                (chain, index), stack = stack[-1], stack[:-1]
            else:  # a return from the base chain (or a chain it went to with goto): its policy
                chain = bases[base_index]
                index = len(chain.rules)
        elif kind in ("jump", "goto"):
            target = ruleset.chain(chain.family, chain.table, verdict.target)
            if target is None:
                outcomes.append(Outcome("unknown", packet, ref, reason=f"{ref.describe()} jumps to chain {verdict.target}, "
                                                                       "which the ruleset does not define", forks=forks))
                return
            if kind == "jump":
                stack = (*stack, (chain, index))
            chain, index = target, 0
        # continue: on with the next rule


def _candidates(ruleset: Ruleset, chain: Chain, packet: Packet) -> int:
    """The rules of the chain this packet can match, as a bit per rule (a superset: each is still tested)."""
    if not INDEXED or len(chain.rules) < MIN_RULES:
        return (1 << len(chain.rules)) - 1
    index = ruleset.indexes.get(chain.key)
    if index is None:
        index = ruleset.indexes[chain.key] = ChainIndex(chain.rules)
    return index.candidates(packet)


def _rule(rule, packet: Packet, forks: tuple[str, ...], context: Context, where: tuple, work: list[_State], budget: list[int]):
    """Run one rule's steps. Returns (verdict or None, packet, forks); packet None: this state ended here
    (the verdict is then an unknown Outcome, or None when a verdict map took every case). `where`: the
    state after this rule, for the part of a split that goes on with the next one."""
    for step in rule.steps:  # a match that fails for the whole packet fails for every part of it: no split before it
        if isinstance(step, (Verdict, VerdictMap, Unsupported)):
            break
        if step.split(packet, context)[0] is None:
            return None, packet, forks
    for step in rule.steps:
        if isinstance(step, Verdict):
            return step, packet, forks
        if isinstance(step, VerdictMap):
            return _verdict_map(step, rule.ref, packet, forks, where, work)
        if isinstance(step, Unsupported):
            return Outcome("unknown", packet, rule.ref, reason=f"{rule.ref.describe()}: `{step.text}` is not modelled",
                           forks=forks), None, forks
        matched, missed, why = step.split(packet, context)
        if matched is None:
            return None, missed, forks  # not this rule: go on with the next one
        if missed is not None:  # both ways: the part that misses goes on with the next rule
            if why:
                forks = (*forks, f"{why} (rule {rule.ref.describe()})")
            elif matched.saddr is not packet.saddr or matched.daddr is not packet.daddr:
                budget[1] -= 1
                if budget[1] < 0:
                    return Outcome("unknown", packet, rule.ref, forks=forks, reason=(
                        f"it depends on the address: more than {MAX_ADDRESS_SPLITS} rules split it (the last {rule.ref.describe()})")), \
                        None, forks
            work.append(_State(missed, *where, forks))
        packet = matched
    return None, packet, forks  # a rule without a verdict (a counter, a log): go on


def _verdict_map(step: VerdictMap, ref: RuleRef, packet: Packet, forks, where: tuple, work: list[_State]):
    remaining = packet
    for values, verdict in step.entries:
        matched, missed, why = _map_split(step.keys, values, remaining)
        if matched is not None:
            taken = (*forks, f"{why} (rule {ref.describe()})") if why else forks
            work.append(_State(matched, *where, taken, (verdict, ref)))
        if missed is None:
            return None, None, forks
        remaining = missed
    return None, remaining, forks


def _map_split(keys, values, packet: Packet):
    """One element of a verdict map: a single numeric key splits the packet like a match; others
    (a concatenation, an interface name) are decided only when the packet's values are exact."""
    if len(keys) == 1 and isinstance(keys[0], Key):
        return InSet(keys[0], values[0], text="verdict map key").split(packet, NO_CONTEXT)
    return Concat(keys, (values,), text="verdict map key").split(packet, NO_CONTEXT)
