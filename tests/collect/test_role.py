"""`csaudit role`: the rules come from the API layer's allowlist, * is denied last, and each format is what
CloudStack (importRole, createRolePermission, the UI's Import Role) takes."""

import csv
import io
import json
import re
import shlex

import pytest

from csaudit.collect.api import COMMAND_PURPOSES, READ_ONLY_COMMANDS
from csaudit.collect.role import FORMATS, ROLE_TYPE, import_role_parameters, render_role, role_rules


def test_every_command_csaudit_may_send_is_allowed_and_everything_else_denied_last():
    rules = role_rules()
    assert [r.rule for r in rules[:-1]] == sorted(READ_ONLY_COMMANDS)
    assert {r.permission for r in rules[:-1]} == {"allow"}
    assert (rules[-1].rule, rules[-1].permission) == ("*", "deny")


def test_a_command_added_to_the_allowlist_appears_in_the_role(monkeypatch):
    import csaudit.collect.api as api

    monkeypatch.setattr(api, "READ_ONLY_COMMANDS", READ_ONLY_COMMANDS | {"listEgressRules"})
    rules = {r.rule: r for r in role_rules()}
    assert rules["listEgressRules"].permission == "allow" and rules["listEgressRules"].description == "read by csaudit"


def test_the_commands_say_why_csaudit_reads_them_in_words_the_ui_csv_import_keeps():
    assert set(COMMAND_PURPOSES) <= set(READ_ONLY_COMMANDS)  # no purpose of a command csaudit no longer sends
    # the UI splits its CSV lines on commas and keeps quotes only around a description with commas
    assert all("," not in text and '"' not in text for text in COMMAND_PURPOSES.values())


def _ui_csv_rules(text):
    """The UI's Import Role (ui/src/views/iam/ImportRole.vue): the header must be exactly rule,permission,description;
    then one rule a line, split on commas."""
    lines = text.split("\n")
    assert [h.strip() for h in lines[0].split(",")] == ["rule", "permission", "description"]
    return [dict(zip(("rule", "permission", "description"), line.strip().split(","), strict=True))
            for line in lines[1:] if line.strip()]


def test_csv_is_the_file_the_ui_import_role_takes():
    text = render_role("csv")
    assert _ui_csv_rules(text) == [{"rule": r.rule, "permission": r.permission, "description": r.description}
                                   for r in role_rules()]
    assert list(csv.reader(io.StringIO(text)))[1:] == [[r.rule, r.permission, r.description] for r in role_rules()]


def test_json_is_import_role_name_type_description_and_rules():
    document = json.loads(render_role("json", name="auditor"))
    assert document["name"] == "auditor" and document["type"] == ROLE_TYPE == "Admin"
    assert document["rules"][-1] == {"rule": "*", "permission": "deny", "description": role_rules()[-1].description}
    assert [r["rule"] for r in document["rules"]] == [r.rule for r in role_rules()]


def test_cmk_is_one_import_role_call_whose_arguments_are_import_role_parameters():
    text = render_role("cmk", name="auditor")
    words = shlex.split(text.replace("\\\n", " "), comments=True)
    assert words[:3] == ["cmk", "import", "role"]
    assert dict(word.split("=", 1) for word in words[3:]) == import_role_parameters("auditor")
    params = import_role_parameters("auditor")
    indexes = sorted({int(m.group(1)) for key in params if (m := re.match(r"rules\[(\d+)\]", key))})
    assert indexes == list(range(len(role_rules())))
    assert params[f"rules[{indexes[-1]}].rule"] == "*"


def test_cmk_permissions_creates_the_role_then_one_permission_a_rule_in_order():
    lines = [line for line in render_role("cmk-permissions").splitlines() if line.startswith("cmk ")]
    creates = [shlex.split(line) for line in lines if line.startswith("cmk create rolepermission ")]
    assert [dict(w.split("=", 1) for w in words[3:] if "=" in w)["rule"] for words in creates] == \
        [r.rule for r in role_rules()]
    assert all('roleid="$ROLE_ID"' in line for line in lines if "rolepermission" in line)
    role_line = next(line for line in render_role("cmk-permissions").splitlines() if "create role " in line)
    assert "type=Admin" in role_line and "name=csaudit-readonly" in role_line


@pytest.mark.parametrize("fmt", FORMATS)
def test_the_command_line_prints_each_format(cli, fmt):
    result = cli("role", "--format", fmt)
    assert result.exit_code == 0 and result.stderr == ""
    assert result.stdout == render_role(fmt)


def test_the_createrolepermission_script_is_valid_shell(tmp_path):
    import subprocess

    script = tmp_path / "role.sh"
    script.write_text(render_role("cmk-permissions"))
    assert subprocess.run(["sh", "-n", str(script)], capture_output=True, timeout=10).returncode == 0


@pytest.mark.parametrize("version, left_out", [
    ("4.16", {"listDbMetrics", "listUsageServerMetrics"}),
    ("4.12.0.0", {"listDbMetrics", "listManagementServers", "listUsageServerMetrics"}), ("4.19.1.0", set())])
def test_a_role_for_an_older_release_leaves_out_the_commands_it_lacks(cli, version, left_out):
    # importRole refuses a rule naming an API the server does not have ("Invalid api name: ...", ImportRoleCmd)
    document = json.loads(cli("role", "--format", "json", "--cloudstack-version", version).stdout)
    assert {r["rule"] for r in document["rules"]} == (READ_ONLY_COMMANDS - left_out) | {"*"}


def test_a_bad_release_is_a_usage_error(cli):
    result = cli("role", "--cloudstack-version", "latest")
    assert result.exit_code == 2 and result.stdout == ""
    assert "must be a CloudStack release such as 4.19 or 4.19.1.0, not 'latest'" in result.stderr
