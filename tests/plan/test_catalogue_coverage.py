"""Every researched rule is either derived by the catalogue or listed, with its reason, in the
catalogue header's "Left out on purpose" list: none is forgotten, none is both."""

import re
from pathlib import Path

from csaudit.plan.catalogue import default_catalogue_text, load_catalogue

RESEARCHED = Path(__file__).parent.parent / "data" / "researched-rule-ids.txt"
_LEFT_OUT_ENTRY = re.compile(r"^#   ([FD]\d{2})  (\S.*)$")


def researched_ids() -> list[str]:
    return [line.strip() for line in RESEARCHED.read_text().splitlines() if line.strip() and not line.startswith("#")]


def left_out() -> dict[str, str]:
    """The header's left-out entries: id -> the first line of its reason."""
    header = default_catalogue_text().split("\n[[flow]]", 1)[0]
    section = header.split("# Left out on purpose", 1)[1]
    return {m.group(1): m.group(2) for m in map(_LEFT_OUT_ENTRY.match, section.splitlines()) if m}


def test_the_researched_list_is_whole():
    ids = researched_ids()
    assert ids == [f"F{i:02d}" for i in range(1, 61)] + [f"D{i:02d}" for i in range(1, 14)]


def test_every_researched_rule_is_derived_or_left_out_with_a_reason():
    derived = {rule.id for rule in load_catalogue()}
    omitted = left_out()
    assert not derived & omitted.keys(), f"derived and also listed as left out: {sorted(derived & omitted.keys())}"
    forgotten = [i for i in researched_ids() if i not in derived and i not in omitted]
    assert not forgotten, f"neither derived nor left out with a reason: {forgotten}"
    unknown = (derived | omitted.keys()) - set(researched_ids())
    assert not unknown, f"not in the researched catalogue: {sorted(unknown)}"
    assert all(len(reason.split()) >= 4 for reason in omitted.values()), omitted


def test_the_left_out_list_is_read_from_the_header():
    """The parser of this test sees the entries the header holds (a typo in the format would hide them)."""
    assert {"F52", "F54", "F55", "D10"} <= left_out().keys()
