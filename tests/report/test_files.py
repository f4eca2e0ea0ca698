"""Report files are written whole or not at all: a temporary file beside the target, then a rename."""

import io
import os
import stat

import pytest

from csaudit.model.environment import Environment
from csaudit.model.errors import CsauditError
from csaudit.report.files import write_file


def env():
    return Environment(stdout=io.StringIO(), stderr=io.StringIO(), env={})


def test_a_report_replaces_the_old_one_in_one_rename_and_keeps_its_mode(tmp_path):
    target = tmp_path / "csaudit.prom"
    target.write_text("old\n")
    os.chmod(target, 0o640)
    before = target.stat().st_ino
    write_file(str(target), "new\n", env())
    assert target.read_text() == "new\n"
    assert target.stat().st_ino != before  # a new file took the name: a reader had the old one or the new one
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["csaudit.prom"]  # no temporary file left


def test_a_new_report_gets_the_usual_mode_and_a_stream_is_written_as_it_comes(tmp_path):
    umask = os.umask(0o022)
    try:
        write_file(str(tmp_path / "r.json"), lambda handle: handle.write("streamed\n"), env())
    finally:
        os.umask(umask)
    assert (tmp_path / "r.json").read_text() == "streamed\n"
    assert stat.S_IMODE((tmp_path / "r.json").stat().st_mode) == 0o644  # node_exporter, another user, can read it


def test_a_failure_while_writing_leaves_the_old_report_and_no_temporary_file(tmp_path):
    target = tmp_path / "csaudit.prom"
    target.write_text("old\n")

    def half_then_fail(handle):
        handle.write("half")
        raise OSError(28, "No space left on device")

    with pytest.raises(CsauditError, match="cannot write .*csaudit.prom: No space left on device"):
        write_file(str(target), half_then_fail, env())
    assert target.read_text() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["csaudit.prom"]


def test_through_a_symlink_the_file_it_points_to_is_replaced(tmp_path):
    (tmp_path / "real.prom").write_text("old\n")
    (tmp_path / "link.prom").symlink_to(tmp_path / "real.prom")
    write_file(str(tmp_path / "link.prom"), "new\n", env())
    assert (tmp_path / "link.prom").is_symlink() and (tmp_path / "real.prom").read_text() == "new\n"


def test_what_is_not_a_regular_file_is_written_in_place(tmp_path):
    pipe = tmp_path / "fifo"
    os.mkfifo(pipe)
    reader = os.open(pipe, os.O_RDONLY | os.O_NONBLOCK)
    try:
        write_file(str(pipe), "through the pipe\n", env())
        assert os.read(reader, 100) == b"through the pipe\n"
    finally:
        os.close(reader)
    assert stat.S_ISFIFO(pipe.stat().st_mode)
