"""Authentication and authorisation: LDAP/AD and local users, tokens, roles.

`mirror.server.app` installs `middleware.auth_middleware` when
`auth.enabled` is set; route handlers declare what they need with
`access.requires`.
"""

from mirror.auth.access import Access, requires
from mirror.auth.authenticator import ANONYMOUS, Authenticator, Principal
from mirror.auth.roles import Roles

__all__ = ["ANONYMOUS", "Access", "Authenticator", "Principal", "Roles", "requires"]
