"""The test command itself (tests/run, called by .ci/run) is checked like code: bash -n and shellcheck."""

import pathlib
import subprocess

import pytest

from tests.conftest import find_program

ROOT = pathlib.Path(__file__).resolve().parents[1]
SCRIPTS = [ROOT / "tests" / "run", ROOT / ".ci" / "run"]


@pytest.mark.programs("bash", "shellcheck")
@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_the_test_command_parses_and_passes_shellcheck(script):
    parsed = subprocess.run([find_program("bash"), "-n", str(script)], capture_output=True, text=True, timeout=30)
    assert parsed.returncode == 0, parsed.stderr
    checked = subprocess.run([find_program("shellcheck"), "--shell=bash", str(script)], capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0, checked.stdout


def test_ci_runs_exactly_the_readme_test_command():
    readme_command = next(line.split("#")[0].strip() for line in (ROOT / "README.md").read_text().splitlines()
                          if line.startswith("bash tests/run"))
    assert readme_command == "bash tests/run"
    commands = [line for line in (ROOT / ".ci" / "run").read_text().splitlines() if line and not line.startswith("#")]
    assert commands[-1] == "exec bash tests/run"
