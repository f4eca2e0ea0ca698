"""The result log: a run's judged flows kept on disk as report lines, read back by renderers."""

import json

import pytest

from csaudit.judge.verdict import summarize
from csaudit.report.document import flow_json
from csaudit.report.resultlog import ResultLog, encode_line
from tests.golden_report import golden_results


def test_lines_are_the_report_flows_in_order_and_the_summary_counts_them():
    results = golden_results()
    log = ResultLog()
    log.append(results[:3])
    log.append([])
    log.append(results[3:])
    assert len(log) == len(results)
    assert log.summary == summarize(results)
    assert list(log.lines()) == [json.dumps(flow_json(r)) for r in results]  # the same text json.dumps writes
    assert list(log) == [json.loads(json.dumps(flow_json(r))) for r in results]
    log.close()


def test_two_readers_keep_their_own_place(monkeypatch):
    monkeypatch.setattr("csaudit.report.resultlog.READ_CHUNK", 64)  # lines span chunk boundaries
    results = golden_results()
    log = ResultLog()
    log.append(results)
    first, second = log.lines(), log.lines()
    pairs = [(next(first), next(second)) for _ in results]
    assert all(a == b for a, b in pairs) and len({a for a, _ in pairs}) == len(results)
    assert next(first, None) is None and next(second, None) is None


def test_the_reused_encoder_writes_what_json_dumps_writes():
    values = [flow_json(r) for r in golden_results()] + [{"x": float("inf"), "é": "\u2603\n\"", "n": [None, True, 1.25]}, {}]
    assert [encode_line(v) for v in values] == [json.dumps(v) for v in values]


@pytest.mark.root
@pytest.mark.programs("mount")
def test_a_full_temporary_folder_is_one_clear_line_and_exit_2(cli, tmp_path, monkeypatch, raw_small_cloud):
    """A real 16 KiB tmpfs as the temporary folder: the run's result lines do not fit (ENOSPC)."""
    import subprocess
    import tempfile

    from tests.cli.test_main import write_inventory

    inventory = write_inventory(tmp_path, raw_small_cloud)
    small = tmp_path / "small-tmp"
    small.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16k", "tmpfs", str(small)], capture_output=True, text=True)
    assert mounted.returncode == 0, f"mounting a 16 KiB tmpfs failed: {mounted.stderr.strip()}"
    try:
        monkeypatch.setattr(tempfile, "tempdir", str(small))
        result = cli("run", "--inventory", inventory, "--no-remote", "--timeout", "0.3", "--format", "json")
    finally:
        subprocess.run(["umount", str(small)], check=True)
    assert result.exit_code == 2 and result.stdout == ""
    assert f"cannot keep the results in a temporary file ({small}): No space left on device" in result.stderr
    assert "Traceback" not in result.stderr
