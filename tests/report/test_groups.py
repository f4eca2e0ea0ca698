"""group_flows: the failed, errored, unverified and waived flows of a report by rule and cause."""

from csaudit.report.groups import UNVERIFIED_ADVICE, group_flows
from tests.golden_report import golden_document

REMEDY = {"on": "the KVM host", "check": "host= in agent.properties", "commands": ["grep host= agent.properties"], "citation": "docs: x"}


def flow(rule, source, target, status, failure=None, gap=None, title="agent to MS", remedy=REMEDY, waiver=None):
    return {"rule": rule, "title": title, "source": {"role": "host", "name": source}, "target": {"role": "ms", "name": target},
            "status": status, "failure": failure, "gap": gap, "remedy": remedy, "waiver": waiver, "port": 8250, "protocol": "tcp"}


def test_groups_by_status_rule_and_cause_in_report_order():
    flows = [flow("F08", f"kvm{i}", "ms1", "pass") for i in range(10)]
    flows += [flow("F08", f"kvm{i}", "ms1", "fail", failure="timeout") for i in range(20, 32)]
    flows += [flow("F08", "kvm40", "ms1", "fail", failure="refused")]
    flows += [flow("F11", "ms1", f"kvm{i}", "fail", failure="refused", title="MS to host SSH") for i in range(3)]
    flows += [flow("F46", "kvm1", "ps1", "unverified", gap="not-judgeable")]
    flows += [flow("F12", "ms1", "xen1", "waived", failure="timeout", waiver={"reason": "retired in April"})]
    flows += [flow("F15", "ms1", "vc1", "error", failure="probe-error")]
    groups = group_flows(flows, sample=4)
    assert [(g.status, g.rule, g.cause, g.count) for g in groups] == [
        ("fail", "F08", "timeout", 12), ("fail", "F11", "refused", 3), ("fail", "F08", "refused", 1),
        ("error", "F15", "probe-error", 1), ("unverified", "F46", "not-judgeable", 1), ("waived", "F12", "retired in April", 1)]
    timeout = groups[0]
    assert timeout.of == 23  # every F08 flow, passing ones too
    assert timeout.objects == ("kvm20", "kvm21", "kvm22", "kvm23") and timeout.more == 8 and timeout.side == "source"
    assert timeout.ports == ("8250/tcp",) and timeout.role == "host"
    assert timeout.remedy == REMEDY and timeout.advice is None and timeout.example["source"]["name"] == "kvm20"
    ssh = groups[1]
    assert ssh.side == "target" and ssh.objects == ("kvm0", "kvm1", "kvm2") and ssh.more == 0  # one source: its targets named
    unverified = groups[4]
    assert unverified.remedy is None and unverified.advice == UNVERIFIED_ADVICE["not-judgeable"]


def test_repeated_objects_count_once():
    groups = group_flows([flow("F08", f"kvm{i % 2}", "ms1", "fail", failure="timeout") for i in range(6)], sample=8)
    assert groups[0].count == 6 and groups[0].objects == ("kvm0", "kvm1") and groups[0].more == 0


def test_old_saved_documents_without_failure_gap_or_remedy_keys_group():
    old = [{k: v for k, v in f.items() if k not in ("failure", "gap", "remedy")} for f in golden_document()["flows"]]
    groups = group_flows(old)
    assert sum(g.count for g in groups) == 8  # 3 fail + 2 error + 2 unverified + 1 waived
    assert all(g.remedy is None and g.cause for g in groups)


def test_groups_stream_a_generator_once():
    produced = (flow("F08", f"kvm{i}", "ms1", "fail", failure="timeout") for i in range(100_000))
    (group,) = group_flows(produced)
    assert group.count == 100_000 and len(group.objects) == 8 and group.more == 100_000 - 8


def test_the_terminal_report_keeps_its_failure_details_to_a_budget():
    """60 failing rules: each still shows its headline and objects; remedies stop at the budget, and say where the rest are."""
    import io

    from csaudit.report.terminal import PROBLEM_LINES, write_report

    flows = [flow(f"F{n:02d}", f"kvm{i}", "ms1", "fail", failure="timeout", title=f"rule {n}",
                  remedy={**REMEDY, "check": f"check {n}"}) for n in range(60) for i in range(n + 1)]
    out = io.StringIO()
    count = write_report(group_flows(flows), out, {"fail": len(flows)}, width=100)
    lines = out.getvalue().splitlines()
    assert count == len(lines) < PROBLEM_LINES + 10
    assert sum(line.startswith("FAIL F") for line in lines) == 60
    assert lines[1].startswith("FAIL F59 host → ms 8250/tcp: 60 of 60 time out — rule 59") and "    on the KVM host: check 59" in lines  # largest first, in full
    assert "    on the KVM host: check 0" not in lines
    assert any(line.startswith("(") and "without what to do" in line for line in lines)


def test_report_width_comes_from_columns_the_terminal_or_the_pipe_default():
    import io

    from csaudit.model.environment import PIPED_COLUMNS, Environment

    assert Environment(stdout=io.StringIO(), env={}).columns == PIPED_COLUMNS == 120
    assert Environment(stdout=io.StringIO(), env={"COLUMNS": "80"}).columns == 80
    assert Environment(stdout=io.StringIO(), env={"COLUMNS": "wide"}).columns == PIPED_COLUMNS


def test_objects_are_told_apart_per_zone_and_the_ones_without_a_zone_count_once():
    def across(zone, source, target, source_role="host", target_role="ms"):
        return {**flow("F08", source, target, "fail", failure="timeout"), "zone": zone,
                "source": {"role": source_role, "name": source}, "target": {"role": target_role, "name": target}}

    hosts = [across(zone, f"kvm{i}", "ms1") for zone in ("east", "west") for i in range(3)]  # kvm0 of east is not kvm0 of west
    (group,) = group_flows(hosts)
    assert group.distinct == 6 and group.side == "source"
    to_hosts = [across(zone, "ms1", f"kvm{i}", "ms", "host") for zone in ("east", "west") for i in range(3)]
    (group,) = group_flows(to_hosts)
    assert (group.side, group.distinct, group.role) == ("target", 6, "host")  # ms1 is one source in every zone
