"""API roles of the simulated cloud: which commands an API key's account may call, decided as CloudStack does.

DynamicRoleBasedAPIAccessChecker.checkAccess: the built-in Root Admin role may call everything; any other role's
rules are read in order and the first that matches decides (allow or deny); when none matches, the command is
allowed if the role's type is authorised for it by the command's annotation, which for type Admin is nearly every
command (the lab takes it as every one). A rule is an API name or a pattern where `*` stands for any word
characters, compared without case (org.apache.cloudstack.acl.Rule).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping

ROLE_TYPES = ("Admin", "ResourceAdmin", "DomainAdmin", "User")
PERMISSIONS = ("allow", "deny")


@dataclasses.dataclass(frozen=True)
class Role:
    name: str
    rules: tuple[tuple[str, str], ...] = ()  # (rule, permission), in order
    type: str = "Admin"

    def __post_init__(self):
        if self.type not in ROLE_TYPES:
            raise ValueError(f"role type {self.type!r} is not one of {', '.join(ROLE_TYPES)}")
        for rule, permission in self.rules:
            if permission not in PERMISSIONS or not re.fullmatch(r"[A-Za-z0-9*]+", rule):
                raise ValueError(f"bad role rule {rule!r} {permission!r}")

    def allows(self, command: str) -> bool:
        for rule, permission in self.rules:
            if _pattern(rule).fullmatch(command):
                return permission == "allow"
        return self.type == "Admin"  # the annotations authorise type Admin for (nearly) every command

    @classmethod
    def from_import(cls, params: Mapping[str, str]) -> Role:
        """A role from importRole's parameters (name, type, rules[N].rule, rules[N].permission), rules in
        index order, as ImportRoleCmd reads its map."""
        rules: dict[int, dict[str, str]] = {}
        for key, value in params.items():
            match = re.fullmatch(r"rules\[(\d+)\]\.(\w+)", key)
            if match:
                rules.setdefault(int(match.group(1)), {})[match.group(2)] = value
        ordered = tuple((rules[i]["rule"], rules[i]["permission"].lower()) for i in sorted(rules))
        return cls(params["name"], ordered, params.get("type", "Admin"))


def _pattern(rule: str) -> re.Pattern:
    return re.compile(re.escape(rule).replace(r"\*", r"\w*"), re.IGNORECASE)
