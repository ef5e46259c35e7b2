"""The `mirror review` commands: list the queue, show a package, approve, reject, revoke, promote.

They do what the dashboard does, through the same service and the same
review rules (required comment, four eyes, no approving one's own
request), and write the same audit events. They act with admin rights,
because anyone who can run them can already write to the catalog.
`--as` names the reviewer in the audit log and defaults to the
operating-system user.
"""

from __future__ import annotations

import getpass
import json
from datetime import datetime
from typing import Any

import click

from mirror.auth.authenticator import Principal
from mirror.auth.roles import Roles
from mirror.catalog.session import Catalog
from mirror.config.load import load_config
from mirror.dashboard import queries
from mirror.dashboard.service import NotVisibleError, Outcome, ReviewService
from mirror.errors import ConfigError, MirrorError


class ReviewCommandError(MirrorError):
    """A review command failed; the message names the value and the fix."""


def _actor_option(function):
    return click.option("--as", "actor", default=None, metavar="NAME",
                        help="Reviewer name for the audit log; default: your operating-system user name.")(function)


def _comment_option(function):
    return click.option("--comment", "-m", required=True, help="Why; required, recorded in the audit log.")(function)


@click.group()
def review() -> None:
    """Review packages: list the queue, show details, approve, reject, revoke and promote."""


@review.command("list")
@click.option("--channel", default=None, help="Channel to list; required when several are configured.")
@click.option("--state", default="passed", show_default=True, help="Comma-separated states, or 'all'.")
@click.option("--check", default=None, help="Only packages whose result of this check is warn, fail or error.")
@click.option("--name", default=None, help="Package name prefix.")
@click.option("--upstream", default=None, help="Upstream name.")
@click.option("--max-age-days", type=float, default=None, help="Only files first seen within this many days.")
@click.option("--page", type=click.IntRange(min=1), default=1, show_default=True, help="Page of 50 rows.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.pass_context
def list_queue(ctx: click.Context, channel: str | None, state: str, check: str | None, name: str | None,
               upstream: str | None, max_age_days: float | None, page: int, as_json: bool) -> None:
    """List packages of one channel, waiting for review by default."""
    with _service(ctx) as service:
        channel = _channel(service, channel)
        params = {"state": state, "check": check or "", "name": name or "", "upstream": upstream or "",
                  "max_age_days": "" if max_age_days is None else str(max_age_days)}
        try:
            result = service.queue(_principal(None), queries.queue_filter_from(channel, params), page)
        except queries.QueryError as exc:
            raise ConfigError(str(exc)) from None

    if as_json:
        click.echo(json.dumps(result.as_json(), default=_encode, indent=2))
        return
    if not result.items:
        click.echo(f"no package in channel {channel} matches")
        return
    for row in result.items:
        problems = ",".join(p["check"] for p in row["checks_not_passed"]) or "-"
        click.echo(f"{row['id']:>7}  {row['state']:<9}  {row['subdir']:<10}  {row['filename']:<48}  {problems}")
    click.echo(f"page {result.page} of {result.pages}, {result.total} packages")


@review.command()
@click.argument("membership_id", type=int)
@click.option("--json", "as_json", is_flag=True, help="Print the whole record as JSON.")
@click.pass_context
def show(ctx: click.Context, membership_id: int, as_json: bool) -> None:
    """Show one package in one channel: state, checks, scripts and changes since the last approval."""
    with _service(ctx) as service:
        try:
            detail = service.package(_principal(None), membership_id)
        except NotVisibleError as exc:
            raise ReviewCommandError(f"{exc}; list ids with 'mirror review list'") from None
    if as_json:
        click.echo(json.dumps(detail, default=_encode, indent=2))
        return
    _print_detail(detail)


def _print_detail(detail: dict[str, Any]) -> None:
    click.echo(f"{detail['filename']}  ({detail['upstream']}/{detail['subdir']})  channel {detail['channel']}")
    click.echo(f"state: {detail['state']}  {detail['reason'] or ''}")
    click.echo(f"licence: {detail['licence'] or 'not stated'}  size: {detail['size']}")
    click.echo("depends: " + (", ".join(detail["depends"]) or "none"))
    for result in detail["results"]:
        click.echo(f"  {result['outcome']:<5} {result['check']:<16} {result['summary']}")
    for approval in detail["approvals"]:
        click.echo(f"approved by {approval['actor']}: {approval['comment']}")
    for script in detail["scripts"]:
        click.echo(f"--- script {script.get('member')} ({script.get('kind')})")
        click.echo(script.get("text") or "(no text recorded)")
    change = detail["diff"]
    if change is None:
        click.echo("no approved version to compare with")
        return
    click.echo(f"changes since {change['from']['filename']}:")
    for dep in change["depends"]["added"]:
        click.echo(f"  + depends {dep}")
    for dep in change["depends"]["removed"]:
        click.echo(f"  - depends {dep}")
    for entry in change["files"]["added"]:
        click.echo(f"  + file {entry['path']}")
    for entry in change["files"]["removed"]:
        click.echo(f"  - file {entry['path']}")
    for script in change["scripts"]:
        click.echo(f"  ~ script {script['member']} {script['status']}")
    if change["licence"]:
        click.echo(f"  licence {change['licence']['from']} -> {change['licence']['to']}")


@review.command()
@click.argument("membership_ids", type=int, nargs=-1, required=True)
@_comment_option
@_actor_option
@click.pass_context
def approve(ctx: click.Context, membership_ids: tuple[int, ...], comment: str, actor: str | None) -> None:
    """Approve packages; a four-eyes channel needs a second reviewer."""
    _act(ctx, "approve", list(membership_ids), comment, actor)


@review.command()
@click.argument("membership_ids", type=int, nargs=-1, required=True)
@_comment_option
@_actor_option
@click.pass_context
def reject(ctx: click.Context, membership_ids: tuple[int, ...], comment: str, actor: str | None) -> None:
    """Reject packages; an approved one leaves the channel at the next publish."""
    _act(ctx, "reject", list(membership_ids), comment, actor)


@review.command()
@click.argument("membership_id", type=int)
@_comment_option
@_actor_option
@click.pass_context
def revoke(ctx: click.Context, membership_id: int, comment: str, actor: str | None) -> None:
    """Withdraw an approval; the package returns to the review queue."""
    _act(ctx, "revoke", [membership_id], comment, actor)


@review.command()
@click.argument("membership_id", type=int)
@click.option("--to", "target", required=True, help="Channel to offer the package to.")
@_comment_option
@_actor_option
@click.pass_context
def promote(ctx: click.Context, membership_id: int, target: str, comment: str, actor: str | None) -> None:
    """Offer an approved package to another channel; its checks run on the next 'mirror validate'."""
    _act(ctx, "promote", [membership_id], comment, actor, target)


def _act(ctx: click.Context, action: str, ids: list[int], comment: str, actor: str | None,
         target: str | None = None) -> None:
    with _service(ctx) as service:
        outcomes = service.act(_principal(actor), action, ids, comment, target)
    _report(outcomes)


def _report(outcomes: list[Outcome]) -> None:
    for outcome in outcomes:
        if outcome.ok:
            click.echo(outcome.message)
        else:
            click.echo(f"refused {outcome.id}: {outcome.message}", err=True)
    refused = sum(1 for o in outcomes if not o.ok)
    if refused:
        raise ReviewCommandError(f"{refused} of {len(outcomes)} actions were rejected; see the messages above")


class _ServiceContext:
    def __init__(self, ctx: click.Context):
        config = load_config(ctx.obj)
        self.catalog = Catalog(config.database)
        self.service = ReviewService(config, self.catalog)

    def __enter__(self) -> ReviewService:
        return self.service

    def __exit__(self, *_exc) -> None:
        self.catalog.close()


def _service(ctx: click.Context) -> _ServiceContext:
    return _ServiceContext(ctx)


def _channel(service: ReviewService, channel: str | None) -> str:
    channels = list(service.config.channels)
    if channel is None and len(channels) == 1:
        return channels[0]
    if channel not in service.config.channels:
        raise ConfigError(f"choose a channel with --channel; configured: {', '.join(channels)}")
    return channel


def _principal(actor: str | None) -> Principal:
    name = (actor or getpass.getuser()).strip()
    if not name:
        raise ConfigError("--as must name the reviewer")
    return Principal(name=name, source="cli", roles=Roles(admin=True))


def _encode(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")
