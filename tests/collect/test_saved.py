"""The saved inventory (csaudit/inventory/v1): written and read back unchanged; a bad file is one clear error."""

import json

import pytest

from csaudit.collect.parse import parse_inventory
from csaudit.collect.saved import inventory_to_dict, load_inventory
from csaudit.model.errors import UsageError


def test_round_trip_through_json(raw_small_cloud, tmp_path):
    inventory = parse_inventory(raw_small_cloud, endpoint="http://127.60.0.11:8080/client/api", api_mode="signed")
    path = tmp_path / "inv.json"
    path.write_text(json.dumps(inventory_to_dict(inventory)))
    assert load_inventory(str(path)) == inventory


@pytest.mark.parametrize("content,message", [
    ("{not json", "not valid JSON"),
    ('{"zones": []}', "not a csaudit inventory"),
    ('{"schema": "csaudit/inventory/v1", "hosts": [{"bogus": 1}]}', "malformed inventory"),
])
def test_bad_inventory_files_are_one_clear_error(tmp_path, content, message):
    path = tmp_path / "inv.json"
    path.write_text(content)
    with pytest.raises(UsageError) as caught:
        load_inventory(str(path))
    assert message in caught.value.message


def test_files_that_are_not_utf8_are_one_clear_error(cli, tmp_path):
    """Inventory, catalogue, waivers and reports share one reader: a binary file is exit 2, not a traceback."""
    binary = tmp_path / "binary"
    binary.write_bytes(b"\xff\xfe\x00not text")
    for argv in (["run", "--inventory", str(binary)],
                 ["flows", "--catalogue", str(binary), "--inventory", str(binary)],
                 ["diff", str(binary), str(binary)]):
        result = cli(*argv)
        assert result.exit_code == 2, argv
        assert result.stderr.strip().endswith(f"{binary}: not UTF-8 text") and "Traceback" not in result.stderr
