"""The token table: creation, hashing, expiry and revocation."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from mirror.auth.models import ApiToken
from mirror.auth.tokens import TOKEN_PATTERN, TokenError, TokenNotFoundError, TokenStore
from mirror.catalog.models import AuditEvent
from mirror.catalog.session import Catalog


@pytest.fixture
def catalog(tmp_path):
    catalog = Catalog(f"sqlite:///{tmp_path / 'catalog.db'}")
    yield catalog
    catalog.close()


def test_create_stores_hash_only(catalog):
    issued = TokenStore(catalog).create(name="ci", owner="carol", owner_source="ldap",
                                        channels=["main"], expires_in=timedelta(days=1))
    with catalog.session() as session:
        row = session.scalar(select(ApiToken))
        actions = [event.action for event in session.scalars(select(AuditEvent))]

    assert TOKEN_PATTERN.fullmatch(issued.token)
    assert row.token_hash == hashlib.sha256(issued.token.encode()).hexdigest()
    assert issued.token not in repr(issued)
    assert actions == ["token.created"]


def test_expired_token_inactive(catalog):
    clock = {"now": datetime(2030, 1, 1, tzinfo=UTC)}
    store = TokenStore(catalog, now=lambda: clock["now"])
    issued = store.create(name="ci", owner="carol", owner_source="ldap", channels=["main"],
                          expires_in=timedelta(hours=1))

    assert store.find_active(issued.token).id == issued.row.id
    clock["now"] += timedelta(hours=1)
    assert store.find_active(issued.token) is None


def test_revoke_only_own(catalog):
    store = TokenStore(catalog)
    issued = store.create(name="ci", owner="carol", owner_source="ldap", channels=["main"],
                          expires_in=timedelta(days=1))

    with pytest.raises(TokenNotFoundError):
        store.revoke(issued.row.id, actor="bob", owner="bob")
    store.revoke(issued.row.id, actor="carol", owner="carol")
    assert store.find_active(issued.token) is None
    assert store.revoke(issued.row.id, actor="admin").revoked_by == "carol"


@pytest.mark.parametrize("name, channels", [("", ["main"]), ("ci", []), ("a\x00b", ["main"])],
                         ids=["empty-name", "no-channels", "control-char"])
def test_create_invalid(catalog, name, channels):
    with pytest.raises(TokenError):
        TokenStore(catalog).create(name=name, owner="carol", owner_source="ldap", channels=channels,
                                   expires_in=timedelta(days=1))


def test_unknown_token(catalog):
    assert TokenStore(catalog).find_active("cdm_" + "a" * 43) is None
