"""The directory client against a real slapd: OpenLDAP and AD-shaped settings, nesting, failover."""

from __future__ import annotations

import pytest

from mirror.auth.ldap import DirectoryUnavailableError, LdapDirectory
from tests.support.slapd import (
    NESTED_DN,
    READERS_MAIN_DN,
    SPECIAL_DN,
    SPECIAL_PASSWORD,
    USERS,
    free_port,
    ldap_settings,
)

pytestmark = pytest.mark.real_component

AD_FILTER = "(&(objectClass=mirrorTestAdUser)(|(sAMAccountName={username})(userPrincipalName={username})))"


def group_dns(user) -> set[str]:
    return {group.dn.lower() for group in user.groups}


def test_password_and_direct_groups(slapd):
    directory = LdapDirectory.from_config(ldap_settings(slapd))

    carol = directory.authenticate("carol", USERS["carol"].password)

    assert carol.dn == USERS["carol"].dn
    assert group_dns(carol) == {READERS_MAIN_DN.lower()}
    assert directory.authenticate("carol", "wrong") is None
    assert directory.authenticate("carol", "") is None


def test_special_dn_and_password(slapd):
    directory = LdapDirectory.from_config(ldap_settings(slapd, group_source="search"))

    user = directory.authenticate("pobrien", SPECIAL_PASSWORD)

    assert user is not None
    assert user.dn.lower().replace("\\2c", "\\,") == SPECIAL_DN.lower()
    assert group_dns(user) == {READERS_MAIN_DN.lower()}


def test_recursive_nested_groups(slapd):
    flat = LdapDirectory.from_config(ldap_settings(slapd))
    nested = LdapDirectory.from_config(ldap_settings(slapd, nested_groups="recursive"))

    assert group_dns(flat.authenticate("dave", USERS["dave"].password)) == {NESTED_DN.lower()}
    assert group_dns(nested.authenticate("dave", USERS["dave"].password)) == {
        NESTED_DN.lower(), READERS_MAIN_DN.lower()
    }


def test_ad_shaped_names(slapd):
    directory = LdapDirectory.from_config(ldap_settings(
        slapd, user_filter=AD_FILTER, username_attribute="sAMAccountName", domains=["example"],
        group_source="search",
    ))
    password = USERS["carol"].password

    assert directory.authenticate("EXAMPLE\\carol", password).username == "carol"
    assert directory.authenticate("carol@example.org", password).username == "carol"
    assert directory.authenticate("OTHER\\carol", password) is None


@pytest.mark.parametrize("username", ["*", "a*", "admin)(|(uid=*", "bob\\5c", "ÿ", "twin"])
def test_injection_and_ambiguity(slapd, username):
    directory = LdapDirectory.from_config(ldap_settings(slapd))

    for password in (USERS["alice"].password, USERS["twin"].password, "wrong"):
        assert directory.authenticate(username, password) is None


def test_failover_to_second_server(slapd):
    directory = LdapDirectory.from_config(
        ldap_settings(slapd, servers=[f"ldap://127.0.0.1:{free_port()}", slapd.url])
    )

    assert directory.authenticate("alice", USERS["alice"].password) is not None


def test_all_servers_down(slapd):
    directory = LdapDirectory.from_config(ldap_settings(slapd, servers=[f"ldap://127.0.0.1:{free_port()}"]))

    with pytest.raises(DirectoryUnavailableError, match="no directory server responded"):
        directory.authenticate("alice", USERS["alice"].password)


def test_wrong_service_password(slapd, monkeypatch):
    settings = ldap_settings(slapd)
    monkeypatch.setenv(settings.bind_password_env, "not-the-service-password")

    with pytest.raises(DirectoryUnavailableError, match="service account"):
        LdapDirectory.from_config(settings).authenticate("alice", USERS["alice"].password)


def test_service_connection_reused(slapd):
    from tests.support.slapd import SERVICE_DN

    directory = LdapDirectory.from_config(ldap_settings(slapd))
    before = slapd.bind_count(SERVICE_DN)
    for _ in range(3):
        directory.lookup("carol")

    assert slapd.bind_count(SERVICE_DN) == before + 1
