"""The least-privilege API role csaudit needs (`csaudit role`): allow exactly the commands csaudit sends, the API
layer's read-only allowlist (csaudit/collect/api.py, the one place that lists them), then deny everything else;
printed in the forms CloudStack takes.

Why each piece (CloudStack's sources):
- The role's type is Admin: listHosts, listSystemVms, listConfigurations, listManagementServers... are root-admin
  commands, and only an account whose role is of type Admin sees every domain's routers.
- A custom role of type Admin is still checked rule by rule (DynamicRoleBasedAPIAccessChecker.checkAccess lets
  through unchecked only the built-in Root Admin role); the first rule that matches decides. A command no rule
  matches is allowed when the role's type is authorised for it (`authorized = {RoleType.Admin, ...}` of each API
  command): nearly every command for Admin. Hence the `*` deny last.
- importRole (4.15 on) takes the rules as a map, `rules[0].rule=listZones&rules[0].permission=allow&
  rules[0].description=...` (ImportRoleCmd), kept in index order; createRolePermission (4.9 on) appends one rule
  after the others. The UI's Import Role reads a .csv file whose header is exactly `rule,permission,description`
  (ui/src/views/iam/ImportRole.vue).
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import shlex

ROLE_NAME = "csaudit-readonly"
ROLE_TYPE = "Admin"
ROLE_DESCRIPTION = "csaudit: read-only audit of the network flows; only the list commands it sends"
FORMATS = ("cmk", "cmk-permissions", "csv", "json")
_SENT_BY_CSAUDIT = "read by csaudit"
_DENY_THE_REST = "everything else: csaudit sends no other command"


@dataclasses.dataclass(frozen=True)
class RoleRule:
    rule: str  # an API name, or a pattern with * (CloudStack's Rule)
    permission: str  # allow | deny
    description: str


def role_rules(version: str | None = None) -> tuple[RoleRule, ...]:
    """Every command csaudit may send (to a server of `version`; None: any), allowed, then `*` denied."""
    from csaudit.collect.api import COMMAND_PURPOSES, COMMAND_SINCE, READ_ONLY_COMMANDS, at_least  # `--help` needs no cs

    allowed = tuple(RoleRule(command, "allow", COMMAND_PURPOSES.get(command, _SENT_BY_CSAUDIT))
                    for command in sorted(READ_ONLY_COMMANDS) if at_least(version, COMMAND_SINCE.get(command, ())))
    return (*allowed, RoleRule("*", "deny", _DENY_THE_REST))


def render_role(fmt: str, name: str = ROLE_NAME, version: str | None = None) -> str:
    rules = role_rules(version)
    if fmt == "cmk":
        return _cmk_import(name, rules, version)
    if fmt == "cmk-permissions":
        return _cmk_permissions(name, rules)
    if fmt == "csv":
        return _csv(rules)
    if fmt == "json":
        document = {"name": name, "type": ROLE_TYPE, "description": ROLE_DESCRIPTION,
                    "rules": [dataclasses.asdict(rule) for rule in rules]}
        return json.dumps(document, indent=2) + "\n"
    raise ValueError(f"unknown role format {fmt!r}")


def import_role_parameters(name: str = ROLE_NAME, version: str | None = None) -> dict[str, str]:
    """importRole's parameters: what `cmk import role` and the UI send."""
    params = {"name": name, "type": ROLE_TYPE, "description": ROLE_DESCRIPTION}
    for index, rule in enumerate(role_rules(version)):
        params.update({f"rules[{index}].rule": rule.rule, f"rules[{index}].permission": rule.permission,
                       f"rules[{index}].description": rule.description})
    return params


def _arguments(params: dict[str, str]) -> list[str]:
    return [shlex.quote(f"{key}={value}") for key, value in params.items()]


def _cmk_import(name: str, rules: tuple[RoleRule, ...], version: str | None) -> str:
    lines = ["# csaudit's read-only API role in one importRole call (CloudStack 4.15 and later):",
             f"# {len(rules) - 1} list commands allowed, then * denied. Run it as a root admin.",
             "cmk import role \\"]
    arguments = _arguments(import_role_parameters(name, version))
    lines += [f"  {argument} \\" for argument in arguments[:-1]] + [f"  {arguments[-1]}"]
    return "\n".join(lines) + "\n"


def _cmk_permissions(name: str, rules: tuple[RoleRule, ...]) -> str:
    create = " ".join(_arguments({"name": name, "type": ROLE_TYPE, "description": ROLE_DESCRIPTION}))
    lines = ["#!/bin/sh",
             "# csaudit's read-only API role, one createRolePermission a rule (CloudStack 4.9 and later): each new",
             "# rule goes after the others, so * is denied last. Run it as a root admin.",
             "set -e",
             f"ROLE_ID=$(cmk -o json create role {create} | sed -n 's/.*\"id\": *\"\\([^\"]*\\)\".*/\\1/p' | head -n 1)",
             'test -n "$ROLE_ID"']
    for rule in rules:
        arguments = " ".join(_arguments({"rule": rule.rule, "permission": rule.permission, "description": rule.description}))
        lines.append(f'cmk create rolepermission roleid="$ROLE_ID" {arguments}')
    return "\n".join(lines) + "\n"


def _csv(rules: tuple[RoleRule, ...]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")  # the UI splits lines on "\n"
    writer.writerow(("rule", "permission", "description"))
    writer.writerows((rule.rule, rule.permission, rule.description) for rule in rules)
    return out.getvalue()
