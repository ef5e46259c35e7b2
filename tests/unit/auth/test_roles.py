"""Roles from groups: DN and name matching, admin implications, token limits."""

from __future__ import annotations

from mirror.auth.roles import Group, RoleMap, Roles, group_name, normalise_dn
from mirror.config.auth import RolesConfig

ROLES = RolesConfig(
    admin=["cn=Mirror-Admins, ou=Groups, dc=example, dc=org"],
    reviewer=["mirror-reviewers"],
    readers={"main": ["cn=readers-main,ou=Groups,dc=example,dc=org"], "prod": ["prod-readers"]},
)


def test_dn_match_ignores_case_and_spaces():
    roles = RoleMap(ROLES).roles_for([Group.from_dn("CN=mirror-admins,OU=groups,DC=example,DC=org")])

    assert roles.admin is True
    assert roles.can_read("anything") is True
    assert roles.is_reviewer is True


def test_name_match():
    roles = RoleMap(ROLES).roles_for([Group(dn="", name="Prod-Readers"), Group.from_dn("cn=mirror-reviewers,dc=x")])

    assert roles.channels == frozenset({"prod"})
    assert roles.is_reviewer is True
    assert roles.admin is False


def test_no_groups_no_roles():
    roles = RoleMap(ROLES).roles_for([Group.from_dn("cn=other,dc=example,dc=org")])

    assert roles == Roles()
    assert roles.can_read("main") is False


def test_direct_roles():
    roles = RoleMap(ROLES).roles_for([], ["reader:main", "reviewer"])

    assert roles.channels == frozenset({"main"})
    assert roles.reviewer is True


def test_limited_to_channels():
    assert Roles(admin=True).limited_to(["main"]) == Roles(channels=frozenset({"main"}))
    assert Roles(channels=frozenset({"main"})).limited_to(["main", "prod"]).channels == frozenset({"main"})


def test_group_name_unescapes():
    assert group_name("cn=O'Brien\\2C Pat,ou=People,dc=example,dc=org") == "O'Brien, Pat"
    assert group_name("cn=O'Brien\\, Pat,ou=People") == "O'Brien, Pat"
    assert normalise_dn("CN=A , DC=B") == "cn=a,dc=b"
