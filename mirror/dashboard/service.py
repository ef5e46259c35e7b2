"""The review operations shared by the dashboard pages, the JSON API and the CLI.

Reads come from `mirror.dashboard.queries`; decisions go through
`mirror.review.actions`, which enforces comments, four eyes and the
allowed state changes and writes the audit events. Each method opens and
commits its own catalog session and is synchronous: the server calls it
from a worker thread.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy.orm import Session

from mirror.auth.authenticator import Principal
from mirror.catalog.models import ChannelMembership, MembershipState
from mirror.catalog.session import Catalog
from mirror.config.load import load_whitelist
from mirror.config.schema import MirrorConfig
from mirror.dashboard import diff, queries
from mirror.errors import ConfigError
from mirror.jobs.context import audit
from mirror.review import actions
from mirror.review.actions import ReviewError
from mirror.store.filesystem import FilesystemBlobStore

logger = logging.getLogger(__name__)

ACTIONS = ("approve", "reject", "revoke", "promote")
MAX_BULK = 500


class NotVisibleError(LookupError):
    """The package does not exist, or the principal may not see its channel."""


@dataclass(frozen=True)
class Outcome:
    """The result of one action on one membership: the new state, or the reason it was rejected."""

    id: int
    ok: bool
    message: str
    state: str | None = None

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def can_view(principal: Principal, channel: str) -> bool:
    """Reviewers see every channel's queue; readers see the channels they may read."""
    return principal.roles.is_reviewer or principal.roles.can_read(channel)


class ReviewService:
    """Review queries and actions over one catalog and blob store."""

    def __init__(self, config: MirrorConfig, catalog: Catalog):
        self.config = config
        self.catalog = catalog
        self.store = FilesystemBlobStore(config.store_dir)

    def visible_channels(self, principal: Principal) -> list[str]:
        return [name for name in self.config.channels if can_view(principal, name)]

    def check_channel(self, principal: Principal, channel: str) -> None:
        """Raise NotVisibleError unless `channel` is configured and visible to `principal`."""
        if channel not in self.config.channels or not can_view(principal, channel):
            raise NotVisibleError(f"no channel {channel!r} that your account may see")

    def queue(self, principal: Principal, query_filter: queries.QueueFilter, page: int) -> queries.Page:
        self.check_channel(principal, query_filter.channel)
        with self.catalog.session() as session:
            return queries.queue_page(session, query_filter, page)

    def package(self, principal: Principal, membership_id: int, *, with_files: bool = True) -> dict[str, Any]:
        """Return one package in one channel, with results, files, scripts and the diff."""
        with self.catalog.session() as session:
            membership = self._visible(session, principal, membership_id)
            detail = queries.package_detail(session, membership)
            detail["scripts"] = diff.scripts_of(detail["results"])
            files = self._files(membership) if with_files else diff.FileListing()
            detail["files"] = files.as_json()

            previous = queries.last_approved(session, membership)
            detail["diff"] = None
            if previous is not None:
                old = self._facts(session, previous, with_files)
                new = {**_facts_of(detail), "files": files}
                detail["diff"] = {"from_id": previous.id, **diff.compare(old, new)}
        return detail

    def _visible(self, session: Session, principal: Principal, membership_id: int) -> ChannelMembership:
        membership = queries.load_membership(session, membership_id)
        if membership is None or not can_view(principal, membership.channel):
            raise NotVisibleError(f"no package with id {membership_id} that your account may see")
        return membership

    def _files(self, membership: ChannelMembership) -> diff.FileListing:
        artifact = membership.artifact
        if not artifact.sha256:
            return diff.FileListing(error="the upstream record has no sha256, so the file is not stored")
        return diff.list_files(self.store.path_for(artifact.sha256), artifact.filename)

    def _facts(self, session: Session, membership: ChannelMembership, with_files: bool) -> dict[str, Any]:
        artifact = membership.artifact
        record = artifact.record or {}
        results = queries.latest_results(session, artifact.id)
        return {
            "filename": artifact.filename, "version": artifact.version,
            "depends": list(record.get("depends") or []), "constrains": list(record.get("constrains") or []),
            "licence": record.get("license"), "size": artifact.size,
            "files": self._files(membership) if with_files else diff.FileListing(),
            "scripts": diff.scripts_of(results),
        }

    def act(self, principal: Principal, action: str, membership_ids: list[int], comment: str,
            target: str | None = None) -> list[Outcome]:
        """Apply one action to each membership; each succeeds or fails on its own."""
        if action not in ACTIONS:
            raise ReviewError(f"unknown action {action!r}; use one of {', '.join(ACTIONS)}")
        if action == "promote" and not target:
            raise ReviewError("promote needs a target channel")
        if len(membership_ids) > MAX_BULK:
            raise ReviewError(f"at most {MAX_BULK} packages per request; narrow the filter")

        outcomes = []
        with self.catalog.session() as session:
            for membership_id in membership_ids:
                outcomes.append(self._act_one(session, principal, action, membership_id, comment, target))
        return outcomes

    def _act_one(self, session: Session, principal: Principal, action: str, membership_id: int, comment: str,
                 target: str | None) -> Outcome:
        # A savepoint per package, so one refusal does not undo the others.
        savepoint = session.begin_nested()
        try:
            self._visible(session, principal, membership_id)
            result = self._apply(session, principal.name, action, membership_id, comment, target)
        except (ReviewError, NotVisibleError) as exc:
            savepoint.rollback()
            return Outcome(membership_id, False, str(exc))
        savepoint.commit()
        return Outcome(result.membership_id, True, result.message, result.state.value)

    def _apply(self, session: Session, actor: str, action: str, membership_id: int, comment: str,
               target: str | None) -> actions.ActionResult:
        if action == "approve":
            return actions.approve(session, self.config, membership_id, actor, comment)
        if action == "reject":
            return actions.reject(session, membership_id, actor, comment)
        if action == "revoke":
            return actions.revoke(session, membership_id, actor, comment)
        return actions.promote(session, self.config, membership_id, target or "", actor, comment)

    def bulk_approve(self, principal: Principal, query_filter: queries.QueueFilter, comment: str) -> list[Outcome]:
        """Approve every package waiting for review that matches `query_filter`, up to `MAX_BULK`.

        Writes one `bulk_approve` audit event with the filter and counts,
        besides the per-package events of each approval.
        """
        self.check_channel(principal, query_filter.channel)
        waiting = queries.QueueFilter(**{**vars(query_filter), "states": (MembershipState.PASSED,)})
        with self.catalog.session() as session:
            ids = [m.id for m, _ in session.execute(queries.queue_query(waiting).limit(MAX_BULK))]
        if not ids:
            raise ReviewError("no package waiting for review matches the filter")

        outcomes = self.act(principal, "approve", ids, comment)
        with self.catalog.session() as session:
            audit(session, principal.name, "bulk_approve", channel=query_filter.channel, reason=comment.strip(),
                  filter=waiting.as_params(), matched=len(ids),
                  succeeded=sum(1 for o in outcomes if o.ok), refused=sum(1 for o in outcomes if not o.ok))
        logger.info("bulk approval by %s in %s: %d of %d", principal.name, query_filter.channel,
                    sum(1 for o in outcomes if o.ok), len(ids))
        return outcomes

    def runs(self, page: int) -> queries.Page:
        with self.catalog.session() as session:
            return queries.runs_page(session, page)

    def channels(self, principal: Principal) -> list[dict[str, Any]]:
        with self.catalog.session() as session:
            return queries.channel_summaries(session, self.config, self.visible_channels(principal))

    def audit(self, audit_filter: queries.AuditFilter, page: int) -> queries.Page:
        with self.catalog.session() as session:
            return queries.audit_page(session, audit_filter, page)

    def whitelist(self) -> dict[str, Any]:
        """Return the whitelist entries, or the loader's error text when the file is invalid."""
        path = str(self.config.whitelist)
        try:
            entries = load_whitelist(self.config)
        except ConfigError as exc:
            return {"path": path, "entries": [], "error": str(exc)}
        return {"path": path, "entries": [entry.model_dump(mode="json") for entry in entries], "error": None}


def _facts_of(detail: dict[str, Any]) -> dict[str, Any]:
    return {
        "filename": detail["filename"], "version": detail["version"], "depends": detail["depends"],
        "constrains": detail["constrains"], "licence": detail["licence"], "size": detail["size"],
        "scripts": detail["scripts"],
    }
