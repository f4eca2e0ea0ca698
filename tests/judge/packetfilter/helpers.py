"""Small makers for the unit tests: flows between two addresses, a machine from ruleset texts."""

from __future__ import annotations

import json

from csaudit.judge.packetfilter.flowcheck import Side, trace
from csaudit.judge.packetfilter.interfaces import Interfaces, parse_iface_options
from csaudit.judge.packetfilter.load import load_ruleset
from csaudit.model.firewalls import RulesetText
from csaudit.model.flows import Endpoint, Flow


def flow(source: str | None, target: str, port: int, protocol: str = "tcp", port_end: int | None = None, expect: str = "open",
         source_name: str = "src", target_name: str = "dst") -> Flow:
    return Flow(f"T01:{source_name}->{target_name}:{port}/{protocol}", "T01", "a test flow", None,
                Endpoint("user" if source is None else "host", source_name if source else "this machine", source),
                Endpoint("host", target_name, target), protocol, port, port_end, expect, "tcp", False, "")


def machine(name: str, *texts: str, interfaces: Interfaces | list[str] | None = None) -> Side:
    """A machine from nft JSON documents (dicts or lists of their items) or iptables-save texts."""
    made = []
    for number, text in enumerate(texts):
        if isinstance(text, list):
            text = {"nftables": text}
        if isinstance(text, dict):
            text = json.dumps(text)
        made.append(RulesetText(f"test{number}", text))
    if isinstance(interfaces, list):
        interfaces = parse_iface_options(interfaces)
    return Side(name, load_ruleset(made), interfaces or Interfaces())


def verdicts(result) -> list[tuple[str, str]]:
    """(ports, verdict) of each part of a trace."""
    return [(part.ports.text(), part.verdict) for part in result.parts]


def into(side: Side, made: Flow):
    return trace(made, None, side)


def out_of(side: Side, made: Flow):
    return trace(made, side, None)


# nft -j building blocks
def table(family="inet", name="t"):
    return {"table": {"family": family, "name": name, "handle": 1}}


def chain(name, hook=None, priority=0, policy="accept", family="inet", table_name="t", kind="filter"):
    body = {"family": family, "table": table_name, "name": name, "handle": 1}
    if hook:
        body.update({"type": kind, "hook": hook, "prio": priority, "policy": policy})
    return {"chain": body}


_handles = iter(range(100, 100000))


def rule(chain_name, *expr, family="inet", table_name="t"):
    return {"rule": {"family": family, "table": table_name, "chain": chain_name, "handle": next(_handles), "expr": list(expr)}}


def match(left, right, op="=="):
    return {"match": {"op": op, "left": left, "right": right}}


def payload(protocol, field):
    return {"payload": {"protocol": protocol, "field": field}}


def meta(key):
    return {"meta": {"key": key}}


ACCEPT, DROP, RETURN = {"accept": None}, {"drop": None}, {"return": None}
