"""The reason a package file is missing from a channel, sent as a 403 instead of a 404.

The body names the package's state in the channel (not whitelisted,
pending, held for review, failed, rejected, retired) with the recorded
reason, and where to ask for it. It never repeats the request path,
which may carry a conda token.
"""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web

from mirror.auth.middleware import CATALOG_KEY
from sqlalchemy import select

from mirror.catalog.models import Artifact, ChannelMembership, MembershipState
from mirror.catalog.session import Catalog
from mirror.dashboard.context import in_thread

logger = logging.getLogger(__name__)

MAX_REASON_CHARS = 500


async def blocked_package_response(request: web.Request, channel: str, subdir: str,
                                   filename: str) -> web.Response | None:
    """Return a 403 that explains why `filename` is not served from `channel`, or None without a catalog."""
    catalog = request.app.get(CATALOG_KEY)
    if catalog is None:
        return None
    body = await in_thread(describe_block, catalog, channel, subdir, filename)
    return web.json_response(body, status=403)


def describe_block(catalog: Catalog, channel: str, subdir: str, filename: str) -> dict[str, Any]:
    """Return the 403 body for a package file missing from a channel's index."""
    with catalog.session() as session:
        # The same file name can come from two upstreams; the most recently changed one explains best.
        membership = session.scalars(
            select(ChannelMembership)
            .join(Artifact, ChannelMembership.artifact_id == Artifact.id)
            .where(ChannelMembership.channel == channel, Artifact.subdir == subdir, Artifact.filename == filename)
            .order_by(ChannelMembership.updated_at.desc())
            .limit(1)
        ).first()
        if membership is None:
            return {
                "error": "this package is not available in this channel",
                "reason": "not whitelisted: no selected upstream file of this name belongs to the channel",
                "request": "ask the mirror administrators to add it to the whitelist; "
                           f"reviewers see the whitelist at /dashboard/whitelist and the channel at /dashboard/channels/{channel}",
            }
        state = membership.state
        reason = (membership.reason or "no reason recorded")[:MAX_REASON_CHARS]
        page = f"/dashboard/packages/{membership.id}"
        if state == MembershipState.APPROVED:
            reason = f"approved, waiting for the next publish or for its dependencies: {reason}"
        return {
            "error": "this package is not available in this channel",
            "reason": f"{state.value}: {reason}",
            "request": f"ask a reviewer to review it on the dashboard at {page}",
        }
