"""`csaudit diff`: the sections, the exit codes (0 same, 1 changed, 2 bad input) and golden outputs."""

import json

import pytest

from csaudit.report.diff import diff_reports
from tests.golden_report import assert_golden, golden_document, later_document


def write(tmp_path, name, document):
    path = tmp_path / name
    path.write_text(json.dumps(document))
    return str(path)


def test_sections_sort_every_change():
    diff = diff_reports(golden_document(), later_document())
    ids = {section: [c.id.split(":")[0] for c in getattr(diff, section)]
           for section in ("new_failures", "fixed", "changed", "added", "removed")}
    assert ids == {"new_failures": ["F08"], "fixed": ["F11"], "changed": ["D01", "F46"], "added": ["F40"], "removed": ["F15"]}
    f08 = diff.new_failures[0]
    assert (f08.old["status"], f08.new["status"], f08.new["observed"]) == ("pass", "fail", "timeout")


def test_same_report_is_no_change(cli, tmp_path):
    old = write(tmp_path, "a.json", golden_document())
    result = cli("diff", old, old)
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "no change: 12 flows, same statuses"


def test_latency_and_reason_wording_alone_are_no_change(cli, tmp_path):
    """Addresses move (the lab relocates, DHCP) and timings vary: only status and observation count."""
    later = golden_document()
    for flow in later["flows"]:
        flow["latency_ms"] = (flow["latency_ms"] or 0) + 5
        flow["reason"] = flow["reason"].replace("192.0.2.", "127.43.")
    result = cli("diff", write(tmp_path, "a.json", golden_document()), write(tmp_path, "b.json", later))
    assert result.exit_code == 0, result.stdout


def test_changes_exit_1_text_and_json_match_golden(cli, tmp_path):
    old = write(tmp_path, "old.json", golden_document())
    new = write(tmp_path, "new.json", later_document())
    text = cli("diff", old, new)
    assert text.exit_code == 1 and text.stderr == ""
    assert_golden("diff.txt", text.stdout.replace(str(tmp_path) + "/", ""))
    as_json = cli("diff", old, new, "--format", "json")
    assert as_json.exit_code == 1
    document = as_json.json()
    assert document["schema"] == "csaudit/diff/v1" and document["changed_anything"] is True
    assert_golden("diff.json", as_json.stdout.replace(str(tmp_path) + "/", ""))


@pytest.mark.parametrize("content,message", [
    (None, "cannot read {path}: No such file or directory"),
    ("{not json", "{path}: not a csaudit report (not JSON: Expecting property name enclosed in double quotes at line 1)"),
    ('{"schema": "csaudit/inventory/v1", "flows": []}', "{path}: not a csaudit report (schema 'csaudit/inventory/v1', expected 'csaudit/report/v1'"),
    ("[1, 2]", "{path}: not a csaudit report (schema None"),
    ('{"schema": "csaudit/report/v1", "flows": [{"id": 1}]}', "{path}: a csaudit/report/v1 document needs 'flows'"),
])
def test_bad_input_exits_2_with_one_clear_message(cli, tmp_path, content, message):
    good = write(tmp_path, "good.json", golden_document())
    bad = tmp_path / "bad.json"
    if content is not None:
        bad.write_text(content)
    for argv in ((str(bad), good), (good, str(bad))):
        result = cli("diff", *argv)
        assert result.exit_code == 2
        assert result.stdout == ""
        assert result.stderr.startswith("csaudit: " + message.format(path=bad)), result.stderr
        assert len(result.stderr.splitlines()) == 1 and "Traceback" not in result.stderr


def test_missing_argument_is_a_usage_error(cli, tmp_path):
    result = cli("diff", write(tmp_path, "a.json", golden_document()))
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr.splitlines()[-1] == "csaudit: error: the following arguments are required: NEW.json"
