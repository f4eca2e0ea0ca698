"""Two phases: the fast connect engine finds the open ports, then only those (and UDP targets)
get the short protocol exchange that tells which service answers."""

from __future__ import annotations

from csaudit.model.probes import Observation, ProbeOptions, ProbeTarget
from csaudit.vantage.exchange import Exchange, exchange_many
from csaudit.vantage.local import tcp_connect_many


def probe_with_protocols(targets: list[ProbeTarget], options: ProbeOptions) -> dict[ProbeTarget, Observation]:
    """Every target gets an observation, except those the stop flag or the deadline left out."""
    tcp = [t for t in targets if t.protocol == "tcp"]
    udp = [t for t in targets if t.protocol == "udp"]
    # Flows of different kinds on one address and port share a single connect.
    connect_target = {t: t if t.kind == "tcp" else ProbeTarget(t.address, t.port, "tcp", t.source) for t in tcp}
    connected = tcp_connect_many(list(dict.fromkeys(connect_target.values())), options.timeout, options.concurrency,
                                 options.per_target, stop=options.stop, deadline=options.deadline, progress=options.progress)
    results: dict[ProbeTarget, Observation] = {}
    talk: list[ProbeTarget] = []
    for target in tcp:
        observation = connected.get(connect_target[target])
        if observation is None:
            continue  # not probed (interrupted, deadline)
        if target.kind == "tcp" or observation.state != "open":
            results[target] = observation
        else:
            talk.append(target)
    exchanged = exchange_many(talk + udp, options.timeout, options.concurrency, stop=options.stop, deadline=options.deadline)
    for target, outcome in exchanged.items():
        results[target] = observation_of(outcome, connected.get(connect_target.get(target)))
    return results


def observation_of(outcome: Exchange, connect: Observation | None = None) -> Observation:
    """An exchange as the verdict stage reads it; the connect phase's latency wins (it measured the SYN)."""
    latency = connect.latency_ms if connect is not None and connect.latency_ms is not None else outcome.latency_ms
    answer = outcome.answer
    if answer is None:
        return Observation(outcome.state, outcome.reason, latency)
    if answer.matched:
        reason = f"{answer.service} answers: {answer.detail}"
    else:
        reason = f"{outcome.reason}, but {answer.detail}"
    return Observation(outcome.state, reason, latency, service=answer.service, detail=answer.detail,
                       mismatch=None if answer.matched else answer.detail, problem=answer.problem,
                       warnings=answer.warnings, danger=answer.danger)
