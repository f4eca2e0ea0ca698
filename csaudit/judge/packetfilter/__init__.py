"""Firewall checks (`csaudit firewall check|diff`, `run --collect-firewall`): a machine's nftables
or iptables ruleset, read as data, against the flows that enter and leave it. Pure: texts in,
verdicts out; reading files and machines happens elsewhere (collect, vantage).

  ruleset.py    one vocabulary for both: chains, rules, matches, verdicts, packets
  nftables.py   `nft -j list ruleset` -> Ruleset
  iptables.py   iptables-save / ip6tables-save -> Ruleset
  load.py       a machine's texts (nft JSON and iptables-save together) -> one Ruleset
  interfaces.py `ip -j addr` or --iface -> which interface a packet crosses
  evaluate.py   one packet through one side of a machine
  flowcheck.py  a flow's packets (request, reply, a reject's answer) through both ends
  whatif.py     a machine's flows judged against the catalogue; two rulesets compared
  explain.py    why a probed flow failed, from the rulesets read on its machines
"""
