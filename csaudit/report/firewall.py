"""The flow plan as firewall rules, for a network engineer to review or apply: nft and iptables.

Flows that must be open become accept rules from their source to target:port/protocol; deny
rules (must be closed) become drop rules. A deny rule whose source is `user` or `outside` stands for
any place, so its drop has no source match; one rule that several flows call for is written once. Accepts come first: they are the narrow
exceptions (e.g. MS -> MS 8096) that the broad drops (anyone -> MS 8096) must not shadow.
A flow whose address is unknown, or is a name rather than an IP address, stays a comment that
says why: a firewall must not resolve names at load time.
"""

from __future__ import annotations

import dataclasses
import ipaddress

from csaudit.report.common import printable

NFT_TABLE = "csaudit"
NFT_CHAIN = "flows"
IPTABLES_CHAIN = "CSAUDIT-FLOWS"
NFT_COMMENT_MAX = 128  # bytes; nft refuses longer comments


@dataclasses.dataclass(frozen=True)
class FirewallRule:
    flow_id: str
    citation: str
    verdict: str  # "accept" or "drop"
    version: int  # 4 or 6
    source: str | None  # None: any source
    target: str
    protocol: str
    port: int
    port_end: int | None


@dataclasses.dataclass(frozen=True)
class Unwritable:
    flow_id: str
    why: str


def plan_rules(flows: list[dict]) -> tuple[list[FirewallRule], list[Unwritable]]:
    rules, skipped, written = [], [], set()
    for flow in flows:
        rule = _rule(flow)
        if isinstance(rule, Unwritable):
            skipped.append(rule)
            continue
        match = dataclasses.astuple(rule)[2:]  # all but the flow id and citation
        if match not in written:  # e.g. D01 from this machine and from outside: one "drop any -> MS 8096"
            written.add(match)
            rules.append(rule)
    rules.sort(key=lambda r: r.verdict != "accept")  # stable: accepts first, each in plan order
    return rules, skipped


def _rule(flow: dict) -> FirewallRule | Unwritable:
    target = _ip(flow["target"])
    if isinstance(target, str):
        return Unwritable(flow["id"], target)
    any_source = flow["source"]["role"] in ("user", "outside")  # this machine, or the outside: any client
    source = None if any_source else _ip(flow["source"])
    if isinstance(source, str):
        return Unwritable(flow["id"], source)
    if source is not None and source.version != target.version:
        return Unwritable(flow["id"], f"source {source} and target {target} are not of the same IP version")
    return FirewallRule(flow["id"], flow.get("citation") or "", "drop" if flow["expect"] == "closed" else "accept",
                        target.version, str(source) if source else None, str(target), flow["protocol"],
                        flow["port"], flow.get("port_end"))


def _ip(endpoint: dict) -> ipaddress.IPv4Address | ipaddress.IPv6Address | str:
    """The endpoint's IP address, or why there is none to write."""
    address = endpoint.get("address")
    what = f"{endpoint['role']} {endpoint['name']}"
    if not address:
        hint = " (pass --db-host)" if endpoint["role"] == "db" else ""
        return f"the address of {what} is unknown{hint}"
    try:
        return ipaddress.ip_address(address)
    except ValueError:
        return f"the address of {what} is the name {address!r}: resolve it and write this rule by hand"


def _header(rules: list[FirewallRule], skipped: list[Unwritable], flows: int, how: list[str]) -> list[str]:
    accepts = sum(r.verdict == "accept" for r in rules)
    shared = flows - len(rules) - len(skipped)
    return [
        f"# csaudit firewall plan: {flows} flows -> {accepts} accept rules, {len(rules) - accepts} drop rules, "
        f"{len(skipped)} flows left as comments" + (f", {shared} flows met by a rule written for another." if shared else "."),
        "# Each rule follows a comment with its flow id and citation; the rule's own comment holds the flow id.",
        *(f"# {line}" for line in how),
    ]


def _comment_line(rule: FirewallRule) -> str:
    return f"# {_one_line(rule.flow_id)} | {_one_line(rule.citation)}"


def _skipped_lines(skipped: list[Unwritable]) -> list[str]:
    if not skipped:
        return []
    return ["# Flows with no rule:", *(f"#   {_one_line(s.flow_id)}: {_one_line(s.why)}" for s in skipped)]


def _one_line(text: str) -> str:
    return " ".join(printable(text).split())


def _quoted(text: str, limit: int) -> str:
    """A comment string for the rule itself: no double quotes, at most `limit` bytes of UTF-8."""
    text = _one_line(text).replace('"', "'").replace("\\", "/")
    data = text.encode("utf-8")
    if len(data) > limit:
        text = data[: limit - 3].decode("utf-8", errors="ignore") + "..."
    return f'"{text}"'


# nft ------------------------------------------------------------------------------------------

def render_nft(flows: list[dict]) -> str:
    rules, skipped = plan_rules(flows)
    how = [
        f"Load with `nft -f FILE`. The chain {NFT_CHAIN} has no hook, so loading it filters nothing until",
        "a base chain of this table jumps to it, e.g.:",
        f"  nft add chain inet {NFT_TABLE} forward '{{ type filter hook forward priority 0; policy accept; }}'",
        f"  nft add rule inet {NFT_TABLE} forward jump {NFT_CHAIN}",
    ]
    lines = ["#!/usr/sbin/nft -f", *_header(rules, skipped, len(flows), how), "",
             # declare then delete: reloading the file replaces the table instead of adding twice
             f"table inet {NFT_TABLE}", f"delete table inet {NFT_TABLE}", "",
             f"table inet {NFT_TABLE} {{", f"\tchain {NFT_CHAIN} {{"]
    for rule in rules:
        family = "ip" if rule.version == 4 else "ip6"
        source = f"{family} saddr {rule.source} " if rule.source else ""
        ports = f"{rule.port}-{rule.port_end}" if rule.port_end else str(rule.port)
        lines.append(f"\t\t{_comment_line(rule)}")
        lines.append(f"\t\t{source}{family} daddr {rule.target} {rule.protocol} dport {ports} {rule.verdict}"
                     f" comment {_quoted(rule.flow_id, NFT_COMMENT_MAX)}")
    lines += ["\t}", "}"]
    return "\n".join(lines + _skipped_lines(skipped)) + "\n"


# iptables -------------------------------------------------------------------------------------

def render_iptables(flows: list[dict]) -> str:
    rules, skipped = plan_rules(flows)
    how = [
        f"iptables-restore format. Load with `iptables-restore --noflush FILE` (keeps your other rules). The chain {IPTABLES_CHAIN}",
        f"filters nothing until a built-in chain jumps to it: iptables -A FORWARD -j {IPTABLES_CHAIN}",
        "IPv6 rules are written as comments: they belong in ip6tables-restore.",
    ]
    lines = [*_header(rules, skipped, len(flows), how), "*filter", f":{IPTABLES_CHAIN} - [0:0]"]
    for rule in rules:
        source = f"-s {rule.source}/{32 if rule.version == 4 else 128} " if rule.source else ""
        ports = f"{rule.port}:{rule.port_end}" if rule.port_end else str(rule.port)
        text = (f"-A {IPTABLES_CHAIN} {source}-d {rule.target}/{32 if rule.version == 4 else 128} -p {rule.protocol}"
                f" -m {rule.protocol} --dport {ports} -m comment --comment {_quoted(rule.flow_id, 256)}"
                f" -j {rule.verdict.upper()}")
        lines.append(_comment_line(rule))
        lines.append(text if rule.version == 4 else f"# ip6tables: {text}")
    lines.append("COMMIT")
    return "\n".join(lines + _skipped_lines(skipped)) + "\n"
