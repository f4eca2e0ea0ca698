"""The kernel as the oracle: load rulesets into namespace pairs (tests/netns_pairs.py) with the real
nft or iptables-restore, read them back as csaudit would (`nft -j list ruleset`, iptables-save,
`ip -j addr`), probe real TCP connects and UDP exchanges through them, and compare every probe with
the evaluator's verdict for the same flow."""

from __future__ import annotations

import dataclasses

from csaudit.judge.packetfilter.flowcheck import Side, trace
from csaudit.judge.packetfilter.interfaces import parse_ip_addr_json
from csaudit.judge.packetfilter.load import load_ruleset
from csaudit.model.firewalls import RulesetText
from csaudit.model.flows import Endpoint, Flow
from tests.judge.packetfilter.generators import PORTS, Case, instantiate
from tests.netns_pairs import RECHECK_WAIT, PairLab, Probe

VERDICTS = {"accepted": "accept", "dropped": "drop", "rejected": "reject", "unknown": "unknown"}
EMPTY_FILTER = "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n"
RESTORE = {"iptables-nft": ("iptables-nft-restore", "ip6tables-nft-restore"),
           "iptables-legacy": ("iptables-legacy-restore", "ip6tables-legacy-restore")}
SAVE = {"iptables-nft": ("iptables-nft-save", "ip6tables-nft-save"), "iptables-legacy": ("iptables-legacy-save", "ip6tables-legacy-save")}


@dataclasses.dataclass
class Mismatch:
    case: Case
    probe: Probe
    kernel: str
    evaluator: str
    why: str

    def __str__(self) -> str:
        return (f"{self.probe.protocol}/{self.probe.port} IPv{self.probe.family}: kernel {self.kernel}, evaluator {self.evaluator} "
                f"({self.why})\n{self.case.describe()}")


@dataclasses.dataclass
class Checked:
    rulesets: int = 0
    probes: int = 0
    unknown: int = 0
    verdicts: dict = dataclasses.field(default_factory=dict)  # kernel verdict -> count
    seen: dict = dataclasses.field(default_factory=dict)  # (pair, family, protocol, port) -> the kernel's verdict


def addresses(lab: PairLab, index: int) -> dict[str, str]:
    pair = lab.pairs[index]
    return {"S4": pair.source_v4, "T4": pair.target_v4, "S6": pair.source_v6, "T6": pair.target_v6}


def load(lab: PairLab, cases: list[Case]) -> None:
    """Every namespace of the batch gets its case's ruleset, or none: what the previous batch left goes."""
    jobs = []
    for index, case in enumerate(cases):
        pair = lab.pairs[index]
        for namespace, text in ((pair.target, case.target), (pair.source, case.source)):
            text = instantiate(text, addresses(lab, index))
            jobs.append((namespace, ("nft", "-f", "-"), "flush ruleset\n" + (text if case.backend == "nft" else "")))
    failed = [(job, done) for job, done in zip(jobs, lab.run_many(jobs), strict=True) if done.returncode]
    assert not failed, f"nft refused a generated ruleset: {failed[0][1].stderr}\n{failed[0][0][2]}"
    jobs = []
    for index, case in enumerate(cases):
        pair = lab.pairs[index]
        for namespace, text in ((pair.target, case.target), (pair.source, case.source)):
            body = {family: instantiate(text, addresses(lab, index)) if text and family == case.family else EMPTY_FILTER for family in (4, 6)}
            if case.backend == "iptables-legacy":
                jobs += [(namespace, (restore,), body[family]) for family, restore in zip((4, 6), RESTORE[case.backend], strict=True)]
                lab.legacy.add(namespace)
                continue
            if namespace in lab.legacy:  # iptables-legacy's tables outlive `nft flush ruleset`: empty them
                jobs += [(namespace, (restore,), EMPTY_FILTER) for restore in RESTORE["iptables-legacy"]]
                lab.legacy.discard(namespace)
            if case.backend == "iptables-nft":
                jobs += [(namespace, (restore,), body[family]) for family, restore in zip((4, 6), RESTORE[case.backend], strict=True)]
    failed = [(job, done) for job, done in zip(jobs, lab.run_many(jobs), strict=True) if done.returncode]
    assert not failed, f"{failed[0][0][1][0]} refused a generated ruleset: {failed[0][1].stderr}\n{failed[0][0][2]}"


def read_back(lab: PairLab, cases: list[Case]) -> list[tuple[Side, Side]]:
    """Each pair's two machines as csaudit reads them: their rulesets as dumped by the kernel's tools."""
    jobs, owners = [], []
    for index, case in enumerate(cases):
        pair = lab.pairs[index]
        for role, namespace in (("source", pair.source), ("target", pair.target)):
            commands = [("nft", "-j", "list", "ruleset")]
            if case.backend != "nft":
                commands += [(SAVE[case.backend][0],), (SAVE[case.backend][1],)]
            for command in commands:
                jobs.append((namespace, command, None))
                owners.append((index, role, " ".join(command)))
    texts: dict[tuple[int, str], list[RulesetText]] = {}
    for (index, role, command), done in zip(owners, lab.run_many(jobs), strict=True):
        assert done.returncode == 0, f"{command} failed: {done.stderr}"
        if command.startswith("nft") or any(line.startswith("*") for line in done.stdout.splitlines()):
            texts.setdefault((index, role), []).append(RulesetText(f"{role}{index}: {command}", done.stdout))
    sides = []
    for index in range(len(cases)):
        pair = lab.pairs[index]
        made = []
        for role, namespace in (("source", pair.source), ("target", pair.target)):
            interfaces = parse_ip_addr_json(lab.interfaces(namespace), f"{namespace}: ip -j addr")
            made.append(Side(f"{role}{index}", load_ruleset(texts[(index, role)]), interfaces))
        sides.append(tuple(made))
    return sides


def probes_of(index: int) -> list[Probe]:
    return [Probe(index, family, protocol, port) for family in (4, 6) for protocol in ("tcp", "udp") for port in PORTS]


def flow_of(lab: PairLab, probe: Probe) -> Flow:
    pair = lab.pairs[probe.pair]
    return Flow(f"probe:{probe}", "K01", "kernel oracle", None,
                Endpoint("host", f"source{probe.pair}", pair.address("source", probe.family)),
                Endpoint("host", f"target{probe.pair}", pair.address("target", probe.family)),
                probe.protocol, probe.port, None, "open", "tcp", False, "")


def evaluate(lab: PairLab, sides, probe: Probe) -> tuple[str, str]:
    source, target = sides[probe.pair]
    result = trace(flow_of(lab, probe), source, target)
    assert not result.problem and len(result.parts) == 1, result
    part = result.parts[0]
    why = part.reason or (part.decision.text() if part.decision else "")
    return VERDICTS[part.verdict], why


def agrees(kernel: str, evaluator: str, modelled: bool) -> bool:
    if evaluator == "unknown":
        return not modelled
    if kernel == "local-block":  # the source's own output refused the datagram (EPERM): dropped or rejected there
        return evaluator in ("drop", "reject")
    return kernel == evaluator


def check_batch(lab: PairLab, cases: list[Case], modelled: bool, checked: Checked) -> list[Mismatch]:
    load(lab, cases)
    sides = read_back(lab, cases)
    probes = [probe for index in range(len(cases)) for probe in probes_of(index)]
    expected = {probe: evaluate(lab, sides, probe) for probe in probes}
    seen = lab.probe(probes)
    doubtful = [p for p in probes if seen[p] == "drop" and expected[p][0] not in ("drop", "unknown")]
    if doubtful:  # a late answer looks like a drop: probe those once more, waiting longer
        seen.update(lab.probe(doubtful, wait=RECHECK_WAIT))
    mismatches = []
    for probe in probes:
        verdict, why = expected[probe]
        checked.probes += 1
        checked.unknown += verdict == "unknown"
        checked.verdicts[seen[probe]] = checked.verdicts.get(seen[probe], 0) + 1
        checked.seen[(probe.pair, probe.family, probe.protocol, probe.port)] = seen[probe]
        if not agrees(seen[probe], verdict, modelled):
            mismatches.append(Mismatch(cases[probe.pair], probe, seen[probe], verdict, why))
    checked.rulesets += len(cases)
    return mismatches
