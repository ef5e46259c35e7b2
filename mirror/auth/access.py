"""What each route requires, declared on its handler with `@requires(...)`.

The middleware reads the declaration from the matched route's handler. A
handler without one requires a signed-in principal, so a route added
later is closed until it declares otherwise.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import TypeVar

ACCESS_ATTRIBUTE = "__mirror_access__"

Handler = TypeVar("Handler", bound=Callable)


class Access(enum.Enum):
    PUBLIC = "public"
    AUTHENTICATED = "authenticated"
    # Signed in with a password: token management must not be reachable with a token.
    PASSWORD = "password"
    CHANNEL_READ = "channel_read"
    REVIEWER = "reviewer"
    ADMIN = "admin"


def requires(access: Access) -> Callable[[Handler], Handler]:
    """Declare what a route handler requires."""

    def mark(handler: Handler) -> Handler:
        setattr(handler, ACCESS_ATTRIBUTE, access)
        return handler

    return mark


def access_of(handler: Callable) -> Access:
    return getattr(handler, ACCESS_ATTRIBUTE, Access.AUTHENTICATED)
