"""Issue 18: the firewall evaluator at scale (`python -m bench.firewall [HOSTS] [RULES]`).

The embedded lab serves one generated zone (`generate_topology(1, HOSTS, 2.5 × HOSTS)`: 2,000 hosts
and 5,000 routers by default) in this process; csaudit reads it through its API client and derives its
flows. A ruleset of RULES rules (1,000 by default, and 10 as the baseline of the same run) is
written as an nft script shaped like a large host's input chain, loaded with the real nft into a
network namespace of the benchmark's own and read back with `nft -j list ruleset`, as csaudit
would read it. Timed: every flow of the zone through that ruleset as its target's (`trace`: the
request, the reply, the later packets), and, for comparison, deriving those flows.

Checked: no flow from a known source may come out unknown (the ruleset is within the modelled
subset, and the target's interface is given; flows from any client, this machine, may depend on the
source address), and a sample of flows must get the same verdicts from the evaluator without its
chain index (a plain walk of every rule) as with it.
"""

from __future__ import annotations

import io
import ipaddress
import json
import os
import sys
import time

from bench.netns import require_netns, run
from csaudit.collect.config import ApiConfig
from csaudit.judge.packetfilter.flowcheck import Side, trace
from csaudit.judge.packetfilter.interfaces import parse_iface_options
from csaudit.judge.packetfilter.load import load_ruleset
from csaudit.model.environment import Environment
from csaudit.model.firewalls import RulesetText
from csaudit.pipeline import AuditRequest, collect_inventory
from csaudit.plan.catalogue import load_catalogue
from csaudit.plan.derive import derive_flows

SAMPLE = 300  # flows checked again without the chain index


def nft_script(rules: int, hosts: list[str]) -> str:
    """A host-style input chain of about `rules` rules: conntrack first, then per-source accepts (one
    address, one port set), a named set of subnets, jumps into a per-service chain, rejects of
    unused ports, and a default drop."""
    body = ["ct state established,related accept", "ct state invalid drop", 'iifname "lo" accept',
            "meta l4proto { icmp, ipv6-icmp } accept", "ip saddr @management tcp dport { 22, 8080, 8250 } accept",
            "tcp dport { 16509, 16514, 5900-6100 } jump services"]
    services = ["ip saddr 10.0.0.0/8 tcp dport 16514 accept", "tcp dport 16509 reject with tcp reset",
                "ip saddr 10.0.0.0/8 tcp dport 5900-6100 accept", "return"]
    ports = (22, 111, 2049, 3306, 8080, 8250, 8443, 9090, 3922, 53)
    n = 0
    while len(body) + len(services) < rules - 2:
        host = hosts[n % len(hosts)]
        body.append(f"ip saddr {host} tcp dport {{ {ports[n % len(ports)]}, {ports[(n + 3) % len(ports)]} }} accept" if n % 7 else
                    f"ip saddr {host} udp dport {ports[n % len(ports)]} reject")
        n += 1
    body += ["tcp dport 1-1023 reject with tcp reset", "udp dport 1-1023 reject"]
    return ("table inet filter {\n  set management { type ipv4_addr; flags interval; elements = { 10.0.0.0/16, 192.0.2.0/24 } }\n"
            "  chain input {\n    type filter hook input priority filter; policy drop;\n"
            + "".join(f"    {line}\n" for line in body) + "  }\n  chain services {\n"
            + "".join(f"    {line}\n" for line in services) + "  }\n}\n")


def read_back(script: str, name: str) -> str:
    """The ruleset as `nft -j list ruleset` gives it, from a namespace made for this and removed."""
    namespace = f"csaudit-bench-{os.getpid()}-fw"
    run("ip", "netns", "add", namespace)
    try:
        run("ip", "netns", "exec", namespace, "nft", "-f", "-", stdin=script)
        return run("ip", "netns", "exec", namespace, "nft", "-j", "list", "ruleset").stdout
    finally:
        run("ip", "netns", "del", namespace, check=False)


def zone_flows(hosts: int, routers: int):
    from csaudit.lab import Lab, generate_topology

    with Lab(generate_topology(1, hosts, routers)) as lab:
        quiet = Environment(stdout=io.StringIO(), stderr=io.StringIO(), env={}, cwd=os.getcwd())
        inventory = collect_inventory(AuditRequest(api_config=ApiConfig(lab.endpoint, key=lab.key, secret=lab.secret)), quiet)
    rules = tuple(load_catalogue())
    started = time.perf_counter()
    flows = derive_flows(rules, inventory)
    return inventory, flows, time.perf_counter() - started


def evaluate_all(flows, ruleset, indexed: bool = True) -> tuple[dict[str, int], float, list]:
    """Each flow through the ruleset as its target's, whose eth0 holds the target's address (and
    reaches every network); counts by verdict ("unknown from a known source" apart)."""
    from csaudit.judge.packetfilter import evaluate

    evaluate.INDEXED = indexed
    counts: dict[str, int] = {}
    verdicts = []
    started = time.perf_counter()
    sides: dict[str, Side] = {}  # one per target machine, as each would have its own
    for flow in flows:
        side = sides.get(flow.target.address)
        if side is None:
            side = sides[flow.target.address] = Side("target", ruleset, parse_iface_options([f"eth0={flow.target.address}/0"]))
        result = trace(flow, None, side)
        parts = tuple((p.ports.spans, p.verdict) for p in result.parts) or (("problem", result.problem),)
        verdicts.append(parts)
        for _, verdict in parts:
            key = "unknown from a known source" if verdict == "unknown" and flow.source.address else verdict
            counts[key] = counts.get(key, 0) + 1
    evaluate.INDEXED = True
    return counts, time.perf_counter() - started, verdicts


def measure(hosts: int = 2000, rules: int = 1000, routers: int | None = None) -> dict:
    """`routers` per zone: 2.5 per host by default (5,000 for 2,000 hosts, as bench/scale.py)."""
    require_netns("the firewall benchmark")
    inventory, flows, derive_seconds = zone_flows(hosts, routers if routers is not None else hosts * 5 // 2)
    addresses = sorted({h.address for h in inventory.hosts if h.address}, key=lambda a: ipaddress.ip_address(a))
    flows = [f for f in flows if f.target.address]  # the others have nothing to evaluate (an address the API does not give)
    results = {"flows": len(flows), "hosts": hosts, "derive_seconds": derive_seconds, "runs": []}
    for count in (10, rules):
        text = read_back(nft_script(count, addresses), f"{count}-rules")
        ruleset = load_ruleset([RulesetText(f"{count} rules: nft -j list ruleset", text)])
        verdicts, seconds, each = evaluate_all(flows, ruleset)
        step = max(1, len(flows) // SAMPLE)
        sample = flows[::step][:SAMPLE]
        _, _, plain = evaluate_all(sample, ruleset, indexed=False)
        # Where the plain walk knows the verdict, the index must give the same; it may know more (the plain
        # walk of a thousand rules can run out of its budget of cases first)
        same = all(b == a for a, b in zip(plain, each[::step][:SAMPLE], strict=True) if not any(v == "unknown" for _, v in a))
        results["runs"].append({"rules": ruleset.rule_count(), "seconds": seconds, "verdicts": verdicts,
                                "sample_agrees": same, "sample": len(sample)})
    return results


def rows(hosts: int = 2000, rules: int = 1000) -> tuple[list, bool, list[str]]:
    return table_of(measure(hosts, rules))


def table_of(result: dict) -> tuple[list, bool, list[str]]:
    hosts = result["hosts"]
    table, notes, ok = [], [], True
    name = f"firewall: {result['flows']:,} flows of a {hosts:,}-host zone"
    table.append([f"{name}: derive the flows (baseline)", f"{result['derive_seconds']:.2f}", "", "", "", "", ""])
    baseline = result["runs"][0]["seconds"]
    for run_ in result["runs"]:
        unknown = run_["verdicts"].get("unknown from a known source", 0)  # from any client (this machine), honest
        correct = unknown == 0 and run_["sample_agrees"]
        ok &= correct
        table.append([f"{name} through a {run_['rules']:,}-rule ruleset", f"{run_['seconds']:.2f}", "",
                      f"{run_['seconds'] / baseline:.1f}× the {result['runs'][0]['rules']}-rule run", "< 60 s",
                      "yes" if run_["seconds"] < 60 else "NO",
                      "yes" if correct else f"{unknown} unknown; sample agrees: {run_['sample_agrees']}"])
        notes.append(f"{run_['rules']} rules: verdicts {json.dumps(run_['verdicts'], sort_keys=True)}")
    return table, ok, notes


if __name__ == "__main__":
    hosts, rules = (int(a) for a in (sys.argv[1:3] if len(sys.argv) > 2 else (2000, 1000)))
    from tabulate import tabulate

    table, ok, notes = rows(hosts, rules)
    print(tabulate(table, headers=["benchmark", "csaudit (s)", "", "ratio", "target", "met", "results correct"], tablefmt="github"))
    for note in notes:
        print(f"note: {note}")
    sys.exit(0 if ok else 1)
