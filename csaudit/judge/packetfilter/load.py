"""One machine's ruleset from the texts that describe it: `nft -j list ruleset` JSON and
iptables-save / ip6tables-save text, told apart by their content.

On a machine whose iptables is iptables-nft, `nft -j list ruleset` shows iptables' own tables with
`xt` expressions (the compatibility layer) that the JSON does not spell out; iptables-nft-save
(its header says nf_tables) describes those same tables in full, so its tables replace the nft
ones of the same family and name. iptables-legacy's tables are separate kernel hooks that run
beside nftables: they are added.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from csaudit.judge.packetfilter.iptables import looks_like_iptables_save, parse_iptables_save
from csaudit.judge.packetfilter.nftables import parse_nft_json
from csaudit.judge.packetfilter.ruleset import Ruleset
from csaudit.model.errors import UsageError
from csaudit.model.firewalls import RulesetText


def load_ruleset(texts: Iterable[RulesetText]) -> Ruleset:
    nft: list[Ruleset] = []
    iptables = []
    for item in texts:
        body = item.text.lstrip()
        if body.startswith("{"):
            nft.append(parse_nft_json(item.text, item.origin))
        elif looks_like_iptables_save(item.text):
            iptables.append(parse_iptables_save(item.text, item.origin))
        elif not body:
            raise UsageError(f"{item.origin}: empty: give the output of `nft -j list ruleset` or of iptables-save")
        else:
            raise UsageError(f"{item.origin}: neither `nft -j list ruleset` JSON nor iptables-save text")
    chains = {}
    origins: list[str] = []
    opaque: list[tuple[str, str]] = []
    for ruleset in nft:
        chains.update(ruleset.chains)
        origins += ruleset.origins
        opaque += ruleset.opaque
    for saved in iptables:
        added = saved.ruleset.chains
        if saved.backend == "nft":  # the same kernel tables the nft JSON shows through xt expressions
            tables = {table for family, table, _ in added}
            chains = {key: chain for key, chain in chains.items() if not (key[0] == saved.family and key[1] in tables)}
        elif any(key in chains for key in added):  # iptables-legacy beside nft tables of the same names: both run
            added = _renamed(added, " (legacy)")
        chains.update(added)
        origins += saved.ruleset.origins
    return Ruleset(chains, tuple(origins), tuple(opaque))


def _renamed(chains: dict, suffix: str) -> dict:
    """The same chains in tables named `filter (legacy)`: their jumps stay inside their own table."""
    renamed = {}
    for (family, table, name), chain in chains.items():
        rules = tuple(dataclasses.replace(rule, ref=dataclasses.replace(rule.ref, table=table + suffix)) for rule in chain.rules)
        base = chain.base
        if base is not None and base.policy_ref is not None:
            base = dataclasses.replace(base, policy_ref=dataclasses.replace(base.policy_ref, table=table + suffix))
        renamed[(family, table + suffix, name)] = dataclasses.replace(chain, table=table + suffix, rules=rules, base=base)
    return renamed
