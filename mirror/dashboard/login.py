"""Sign-in and sign-out pages of the dashboard.

The form posts the user name and password to the same `Authenticator`
that checks basic credentials, so attempt limits, the directory, the
users file and the `auth.login` and `auth.denied` audit events all apply.
"""

from __future__ import annotations

import logging

from aiohttp import web

from mirror.auth.access import Access, requires
from mirror.auth.authenticator import AuthenticationError, TooManyAttemptsError
from mirror.auth.credentials import MAX_PASSWORD_CHARS, CredentialsError, PasswordCredentials, check_username
from mirror.auth.ldap import DirectoryUnavailableError
from mirror.auth.middleware import AUTHENTICATOR_KEY
from mirror.dashboard.context import RESOLVER_KEY, SESSIONS_KEY, in_thread
from mirror.dashboard.rendering import redirect, render
from mirror.dashboard.sessions import (
    ACTIVE_SESSION_KEY,
    LOGIN_CSRF_COOKIE,
    clear_session_cookie,
    login_csrf_token,
    set_login_csrf_cookie,
    set_session_cookie,
    tokens_match,
)

logger = logging.getLogger(__name__)

HOME = "/dashboard/"


def safe_next(value: str | None) -> str:
    """Return a dashboard path to go to after sign-in; anything else becomes the home page.

    Only local `/dashboard/` paths are accepted, so the form cannot send a
    user to another site after signing in.
    """
    if not value or not value.startswith("/dashboard/") or "//" in value or "\\" in value:
        return HOME
    if any(ord(char) < 32 for char in value):
        return HOME
    return value


@requires(Access.PUBLIC)
async def login_form(request: web.Request) -> web.Response:
    return _form(request, next_page=safe_next(request.query.get("next")))


def _form(request: web.Request, *, next_page: str, error: str | None = None, username: str = "",
          status: int = 200) -> web.Response:
    token = login_csrf_token(request)
    response = render(request, "login.html", status=status, error=error, username=username,
                      next_page=next_page, login_csrf=token)
    set_login_csrf_cookie(request, response, token)
    return response


@requires(Access.PUBLIC)
async def login_submit(request: web.Request) -> web.Response:
    form = await request.post()
    next_page = safe_next(_field(form, "next"))
    if not tokens_match(request.cookies.get(LOGIN_CSRF_COOKIE), _field(form, "csrf_token")):
        return _form(request, next_page=next_page, status=403,
                     error="The sign-in form expired. Enter your user name and password again.")

    username, password = _field(form, "username").strip(), _field(form, "password")
    try:
        check_username(username)
        if len(password) > MAX_PASSWORD_CHARS:
            raise CredentialsError("password too long")
    except CredentialsError:
        return _form(request, next_page=next_page, status=401, username="",
                     error="Invalid user name or password.")

    authenticator = request.app[AUTHENTICATOR_KEY]
    address = request.remote or "unknown"
    try:
        principal = await authenticator.authenticate(PasswordCredentials(username, password), address)
    except TooManyAttemptsError as exc:
        return _form(request, next_page=next_page, status=429, username=username, error=str(exc).capitalize() + ".")
    except AuthenticationError:
        return _form(request, next_page=next_page, status=401, username=username,
                     error="Invalid user name or password.")
    except DirectoryUnavailableError:
        logger.error("dashboard sign-in from %s failed because the directory is unavailable", address)
        return _form(request, next_page=next_page, status=503, username=username,
                     error="The user directory is unavailable. Try again in a minute.")

    store = request.app[SESSIONS_KEY]
    session_id, _ = await in_thread(store.create, principal, address)
    logger.info("dashboard session started for %s from %s", principal.name, address)
    response = redirect(request, next_page)
    set_session_cookie(request, response, session_id, store.lifetime)
    return response


@requires(Access.AUTHENTICATED)
async def logout(request: web.Request) -> web.Response:
    active = request.get(ACTIVE_SESSION_KEY)
    if active is not None:
        await in_thread(request.app[SESSIONS_KEY].delete, active.session_id)
        request.app[RESOLVER_KEY].forget(active.session_id)
        logger.info("dashboard session ended for %s", active.principal.name)
    response = redirect(request, "/dashboard/login", message="You are signed out.")
    clear_session_cookie(request, response)
    return response


def _field(form, name: str) -> str:
    value = form.get(name)
    return value if isinstance(value, str) else ""
