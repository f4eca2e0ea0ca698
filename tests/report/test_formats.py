"""Every renderer against golden files built from one fixed report (tests/golden_report.py), and
each output read back by a real reader: junitparser, csv, graphviz `dot`, `nft -c`, iptables-restore.

To accept a deliberate change: CSAUDIT_UPDATE_GOLDEN=1 python -m pytest tests/report
rewrites the files that differ (those tests still fail in that run), then review `git diff tests/data/golden`
and run the tests again without the variable.
"""

import csv
import dataclasses
import io
import json
import re
import subprocess
import xml.etree.ElementTree as ET

import junitparser
import pytest

from csaudit.report.diagram import build_diagram
from csaudit.report.document import render_table
from csaudit.report.firewall import plan_rules
from csaudit.report.formats import FILE_FORMATS, render_plan, render_report
from csaudit.report.groups import group_flows
from csaudit.report.terminal import write_report
from tests.conftest import find_program
from tests.golden_report import ODD_NAME, assert_golden, golden_document, golden_results


def plan_flows():
    """The plan of the same flows, as `csaudit flows --format json` gives them (no results)."""
    return [dataclasses.asdict(r.flow) for r in golden_results()]


def tool(name: str) -> str:
    """A program the test's `programs` mark names (`tests/run` installs it), found where the mark found it."""
    return find_program(name)


@pytest.mark.parametrize("fmt,name", [(fmt, f"report.{ext}") for fmt, ext in zip(
    FILE_FORMATS, ("json", "junit.xml", "csv", "md", "mmd", "dot", "prom", "html"), strict=True)])
def test_report_renderers_match_their_golden_files(fmt, name):
    assert_golden(name, render_report(fmt, golden_document()))


def test_table_matches_its_golden_file():
    assert_golden("report.table.txt", render_table(golden_results()))


@pytest.mark.parametrize("fmt,name", [("nft", "plan.nft"), ("iptables", "plan.iptables"), ("csv", "plan.csv"),
                                      ("mermaid", "plan.mmd"), ("dot", "plan.dot")])
def test_plan_renderers_match_their_golden_files(fmt, name):
    assert_golden(name, render_plan(fmt, plan_flows()))


def test_json_report_carries_waiver_and_summary():
    document = golden_document()
    assert document["summary"] == {"pass": 4, "fail": 3, "unverified": 2, "error": 2, "waived": 1,
                                   "coverage": {"verified": 8, "flows": 12, "unverified": {"no-address": 1, "not-judgeable": 1}}}
    waived = next(f for f in document["flows"] if f["status"] == "waived")
    assert waived["waiver"] == {"reason": "xen01 is retired in April (CHG-1234)", "expires": "2099-04-30", "rule": "F12", "flow": None}
    assert waived["observed"] == "timeout" and waived["reason"].startswith("must be open")  # what was seen stays
    assert all(f["waiver"] is None for f in document["flows"] if f["status"] != "waived")


def test_junit_reads_back_with_a_junit_reader(tmp_path):
    path = tmp_path / "r.xml"
    path.write_text(render_report("junit", golden_document()))
    xml = junitparser.JUnitXml.fromfile(str(path))
    suites = {suite.name: suite for suite in xml}
    assert list(suites) == ["management tier", "zone-east", "zone-west"]
    cases = {case.name: (suite.name, case) for suite in xml for case in suite}
    assert len(cases) == len(golden_results())
    for result in golden_results():
        suite, case = cases[f"{result.flow.id} ({result.flow.title})"]
        assert suite == (result.flow.zone or "management tier")
        kinds = [type(r).__name__ for r in case.result]
        expected = {"pass": [], "fail": ["Failure"], "error": ["Error"], "unverified": ["Skipped"], "waived": ["Skipped"]}
        assert kinds == expected[result.status], result.flow.id
        if result.status in ("fail", "error", "unverified"):
            assert result.reason in case.result[0].message
        if result.status == "waived":
            assert "xen01 is retired in April" in case.result[0].message and "2099-04-30" in case.result[0].message
    east = suites["zone-east"]
    assert (east.tests, east.failures, east.errors, east.skipped) == (7, 1, 1, 2)
    assert (xml.tests, xml.failures, xml.errors, xml.skipped) == (12, 3, 2, 3)


def test_csv_reads_back_with_every_value():
    rows = list(csv.DictReader(io.StringIO(render_report("csv", golden_document()))))
    flows = golden_document()["flows"]
    assert [r["id"] for r in rows] == [f["id"] for f in flows]
    odd = next(r for r in rows if r["rule"] == "F23")
    assert odd["target_name"] == ODD_NAME and odd["citation"] == 'src: "NfsSecondaryStorageResource.java" <mount> & co'
    waived = next(r for r in rows if r["status"] == "waived")
    assert (waived["waiver_reason"], waived["waiver_expires"]) == ("xen01 is retired in April (CHG-1234)", "2099-04-30")
    assert next(r for r in rows if r["rule"] == "F34")["port_end"] == "6100"
    plan = list(csv.DictReader(io.StringIO(render_plan("csv", plan_flows()))))
    assert "status" not in plan[0] and len(plan) == len(flows)


def test_markdown_escapes_what_would_break_a_table():
    text = render_report("markdown", golden_document())
    row = next(line for line in text.splitlines() if line.startswith("| `F23") and "zone-west" not in line)
    assert row.count(" | ") == 6  # seven cells: the | in the name is escaped
    assert "&lt;west&gt;" not in row and "&lt;west>" in row and "\\|\\*x\\*" in row
    assert "## Failures" in text and text.index("## management tier") < text.index("## zone-east") < text.index("## zone-west")


@pytest.mark.programs("dot")
@pytest.mark.parametrize("source", ["report", "plan"])
def test_dot_renders_to_svg_with_graphviz(tmp_path, source):
    text = render_report("dot", golden_document()) if source == "report" else render_plan("dot", plan_flows())
    run = subprocess.run([tool("dot"), "-Tsvg"], input=text, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    svg = ET.fromstring(run.stdout)
    assert svg.tag.endswith("svg")
    assert ODD_NAME in run.stdout.replace("&quot;", '"').replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    if source == "report":
        assert 'stroke="#c62828"' in run.stdout and 'stroke="#2e7d32"' in run.stdout  # red fail, green pass edges


def test_diagram_groups_objects_and_colours_edges():
    diagram = build_diagram(golden_document())
    groups = {n.name: n.group for n in diagram.nodes}
    assert groups["ms1"] == groups["this machine"] == groups["db1"] == "management tier"
    assert groups["kvm01"] == "zone-east" and groups[ODD_NAME] == "zone-west"
    assert {e.status for e in diagram.edges} == {"pass", "fail", "unverified", "error", "waived"}
    deny = [e for e in diagram.edges if e.deny]
    assert deny and all(e.label.startswith("deny ") for e in deny)
    mermaid = render_report("mermaid", golden_document())
    links = [line for line in mermaid.splitlines() if "-->" in line or "-.->" in line]
    assert len(links) == len(diagram.edges)
    styled = sorted(int(i) for line in mermaid.splitlines() if line.strip().startswith("linkStyle")
                    for i in line.split()[1].split(","))
    assert styled == list(range(len(diagram.edges)))  # every edge has its status colour
    assert "sec #quot;nfs#quot; #lt;west#gt; #amp; co#124;*x*" in mermaid  # no raw quote, markup or bar in a label


def test_firewall_plan_rules_and_what_stays_a_comment():
    rules, skipped = plan_rules(plan_flows())
    why = {s.flow_id.split(":")[0]: s.why for s in skipped}
    assert set(why) == {"F04", "F15"}
    assert "db db1 is unknown (pass --db-host)" in why["F04"]
    assert "is the name 'vc.example.org'" in why["F15"]
    verdicts = [r.verdict for r in rules]
    assert verdicts == sorted(verdicts)  # every accept before every drop
    d01 = next(r for r in rules if r.flow_id.startswith("D01"))
    assert (d01.verdict, d01.source, d01.target, d01.port) == ("drop", None, "192.0.2.11", 8096)  # from anywhere
    f08 = next(r for r in rules if r.flow_id.startswith("F08"))
    assert (f08.verdict, f08.source, f08.target, f08.port) == ("accept", "192.0.2.21", "192.0.2.11", 8250)
    nft = render_plan("nft", plan_flows())
    assert "ip6 saddr 2001:db8::21 ip6 daddr 2001:db8::41 tcp dport 2049 accept" in nft
    assert "tcp dport 5900-6100 accept" in nft and "udp dport 111 accept" in nft
    for rule in rules:  # each rule carries its flow id (rule comment) and citation (line above)
        assert f'comment "{rule.flow_id.replace(chr(34), chr(39))}"' in nft
        assert rule.citation.split(" ")[0] in nft


def nft_check(path) -> subprocess.CompletedProcess:
    """`nft -c -f path`: needs root (CAP_NET_ADMIN), so its callers carry the root and programs("nft") marks."""
    return subprocess.run([tool("nft"), "-c", "-f", str(path)], capture_output=True, text=True, timeout=60)


@pytest.mark.root
@pytest.mark.programs("nft")
def test_nft_export_loads_with_nft_check(tmp_path):
    path = tmp_path / "plan.nft"
    path.write_text(render_plan("nft", plan_flows()))
    run = nft_check(path)
    assert run.returncode == 0, run.stderr
    broken = tmp_path / "broken.nft"  # the check is real: nft refuses what is wrong
    broken.write_text(path.read_text().replace("tcp dport 8250 accept", "tcp dport 8250 acept"))
    assert nft_check(broken).returncode != 0


@pytest.mark.root
@pytest.mark.programs("nft")
def test_nft_comment_is_cut_to_what_nft_accepts(tmp_path):
    long_name = "h" * 200 + "→é"
    flows = plan_flows()[:1]
    flows[0] = {**flows[0], "id": f"F01:this machine->{long_name}:8080/tcp"}
    path = tmp_path / "long.nft"
    path.write_text(render_plan("nft", flows))
    run = nft_check(path)
    assert run.returncode == 0, run.stderr


@pytest.mark.root
@pytest.mark.programs("iptables-restore")
def test_iptables_export_passes_iptables_restore_test(tmp_path):
    path = tmp_path / "plan.iptables"
    path.write_text(render_plan("iptables", plan_flows()))
    run = subprocess.run([tool("iptables-restore"), "--test", "--noflush", str(path)], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert "# ip6tables: -A CSAUDIT-FLOWS -s 2001:db8::21/128" in path.read_text()


def test_renderers_accept_a_saved_report(tmp_path):
    """A report written to disk and read back renders the same: the renderers need only the JSON."""
    saved = json.loads(render_report("json", golden_document()))
    for fmt in FILE_FORMATS:
        assert render_report(fmt, saved) == render_report(fmt, golden_document())


def test_the_table_ends_with_coverage_by_gap_and_what_would_verify_them():
    lines = render_table(golden_results()).splitlines()
    assert lines[-4:] == [
        "coverage: 8 of 12 flows verified (67 %)",
        "  1 no-address: the API does not give an address they need (the MySQL server: --db-host)",
        "  1 not-judgeable: a connect cannot judge them (each flow's reason says why)",
        "summary: 4 pass, 3 fail, 2 unverified, 2 error, 1 waived"]


def grouped(document: dict, width: int = 120, colour: bool = False) -> str:
    buffer = io.StringIO()
    write_report(group_flows(document["flows"]), buffer, document["summary"], colour=colour, width=width)
    return buffer.getvalue()


def test_the_grouped_report_matches_its_golden_file():
    assert_golden("report.grouped.txt", grouped(golden_document()))


def test_the_grouped_report_leads_with_failures_and_ends_with_the_summary():
    lines = grouped(golden_document()).splitlines()
    tags = [line.split()[0] for line in lines if line.startswith(("FAIL ", "ERROR ", "UNVERIFIED ", "WAIVED "))]
    assert tags == ["FAIL"] * 3 + ["ERROR"] * 2 + ["UNVERIFIED"] * 2 + ["WAIVED"]
    assert lines[0].startswith("== 5 flows failed") and lines[-1] == "summary: 4 pass, 3 fail, 2 unverified, 2 error, 1 waived"
    assert "    on the KVM host: sshd listens on 22 and the firewall accepts the MS" in lines
    assert "      $ ss -ltnp 'sport = :22'" in lines
    assert "4 flows passed (--all lists every flow)" in lines


def test_the_grouped_report_cuts_lines_to_the_width_and_colours_only_the_tag():
    text = grouped(golden_document(), width=60, colour=True)
    plain = re.sub(r"\x1b\[[0-9;]*m", "", text)
    assert max(map(len, plain.splitlines())) == 60 and "…" in plain
    assert "\x1b[31;1mFAIL\x1b[0m F11" in text and text.count("\x1b[0m") == 3 + 2 + 2 + 1
    assert "\x1b[" not in grouped(golden_document(), width=60)


def test_an_old_saved_report_without_failure_gap_or_remedy_keys_still_renders():
    old = json.loads(render_report("json", golden_document()))
    old["flows"] = [{k: v for k, v in f.items() if k not in ("remedy", "failure", "gap")} for f in old["flows"]]
    assert "F11 ms → host 22/tcp: 1 of 1 is refused — MS to KVM host SSH" in grouped(old)
    assert "F11 ms → host 22/tcp: 1 of 1 is refused — MS to KVM host SSH" in render_report("markdown", old)
    for fmt in FILE_FORMATS:
        render_report(fmt, old)


def test_the_grouped_report_names_the_rule_that_drops_a_flow_of_the_group():
    document = golden_document()
    f11 = next(f for f in document["flows"] if f["rule"] == "F11")
    f11["firewall"] = "dropped by `tcp dport 22 drop` (table inet filter, chain input, handle 7) on kvm02 (target, input)"
    assert "    firewall (ms1 → kvm02): dropped by `tcp dport 22 drop` (table inet filter, chain input, handle 7) on kvm02 (target,…" \
        in grouped(document).splitlines()
