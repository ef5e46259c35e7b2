"""Prometheus metrics of the mirror.

Two kinds of metric are exported:

* counters and histograms that this process updates as it works
  (`REGISTRY`): sync runs of the service, HTTP requests, authentication
  failures, notification failures;
* gauges read from the catalog at each scrape (`CatalogCollector`):
  packages by channel and state, files by download state, check failures
  by check, the last run of each kind, whether the whitelist loads. These
  include the work of CLI runs, which the service's counters miss.

Label values are bounded sets (upstream, channel, state, check, route
pattern); never a raw request path, which may carry a token.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from sqlalchemy import Engine, func, select
from sqlalchemy.exc import SQLAlchemyError

from mirror.catalog.models import Artifact, ChannelMembership, CheckOutcome, SyncRun, ValidationResult

logger = logging.getLogger(__name__)

REGISTRY = CollectorRegistry()

SYNC_DURATION = Histogram(
    "mirror_sync_duration_seconds",
    "Duration of scheduled or triggered sync cycles (sync, validate, publish), by upstream and sync status.",
    ["upstream", "status"],
    buckets=(1, 10, 30, 60, 300, 900, 1800, 3600, 7200, 14400, 28800),
    registry=REGISTRY,
)
SYNC_BYTES = Counter(
    "mirror_sync_downloaded_bytes",
    "Bytes of package files downloaded by the service's syncs, by upstream.",
    ["upstream"],
    registry=REGISTRY,
)
SYNC_SKIPPED = Counter(
    "mirror_sync_skipped",
    "Sync triggers skipped because another run held the upstream's lease.",
    ["upstream"],
    registry=REGISTRY,
)
REQUEST_DURATION = Histogram(
    "mirror_http_request_duration_seconds",
    "HTTP request latency by method, route pattern and status code.",
    ["method", "route", "status"],
    registry=REGISTRY,
)
AUTH_FAILURES = Counter(
    "mirror_auth_failures",
    "Rejected authentication attempts, by reason (such as bad_password, unknown_token).",
    ["reason"],
    registry=REGISTRY,
)
NOTIFICATION_FAILURES = Counter(
    "mirror_notification_failures",
    "Notifications that could not be delivered, by transport (webhook, smtp).",
    ["transport"],
    registry=REGISTRY,
)


class CatalogCollector:
    """Gauges computed from the catalog at each scrape."""

    def __init__(self, engine: Engine):
        self.engine = engine

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("mirror_catalog_up", "1 when the catalog database could be read for this scrape.")
        try:
            families = self._families()
        except SQLAlchemyError as exc:
            logger.warning("metrics: the catalog could not be read: %s", exc)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from families

    def _families(self) -> list[Metric]:
        with self.engine.connect() as connection:
            memberships = connection.execute(
                select(ChannelMembership.channel, ChannelMembership.state, func.count()).group_by(
                    ChannelMembership.channel, ChannelMembership.state
                )
            ).all()
            artifacts = connection.execute(select(Artifact.state, func.count()).group_by(Artifact.state)).all()
            failures = connection.execute(
                select(ValidationResult.check_name, ValidationResult.outcome, func.count())
                .where(ValidationResult.outcome.in_([CheckOutcome.FAIL, CheckOutcome.ERROR]))
                .group_by(ValidationResult.check_name, ValidationResult.outcome)
            ).all()
            last_runs = connection.execute(
                select(SyncRun.kind, SyncRun.status, func.max(SyncRun.finished_at))
                .where(SyncRun.finished_at.is_not(None))
                .group_by(SyncRun.kind, SyncRun.status)
            ).all()
            whitelist_error = _whitelist_error(connection)

        packages = GaugeMetricFamily("mirror_packages", "Channel memberships by channel and state.", labels=["channel", "state"])
        for channel, state, count in memberships:
            packages.add_metric([channel, _value(state)], count)

        files = GaugeMetricFamily("mirror_artifacts", "Upstream package files by download state.", labels=["state"])
        for state, count in artifacts:
            files.add_metric([_value(state)], count)

        checks = GaugeMetricFamily(
            "mirror_check_failures", "Stored check results that failed or ended in an error, by check.",
            labels=["check", "outcome"],
        )
        for check, outcome, count in failures:
            checks.add_metric([check, _value(outcome)], count)

        runs = GaugeMetricFamily(
            "mirror_last_run_timestamp_seconds", "When the last run of each kind ended with each status (Unix time).",
            labels=["kind", "status"],
        )
        for kind, status, finished_at in last_runs:
            runs.add_metric([kind, _value(status)], _timestamp(finished_at))

        result = [packages, files, checks, runs]
        if whitelist_error is not None:
            valid = GaugeMetricFamily("mirror_whitelist_valid", "1 when the whitelist file on disk loads, 0 when the last good one is kept.")
            valid.add_metric([], 0 if whitelist_error else 1)
            result.append(valid)
        return result


def _whitelist_error(connection) -> bool | None:
    """Return whether the stored whitelist state has an error; None when there is no state yet."""
    from mirror.scheduler.models import WhitelistState

    row = connection.execute(select(WhitelistState.error).limit(1)).first()
    return None if row is None else bool(row.error)


def _value(state) -> str:
    return getattr(state, "value", str(state))


def _timestamp(moment) -> float:
    from mirror.scheduler.leader import as_utc

    return as_utc(moment).timestamp()


def render(*registries: CollectorRegistry) -> bytes:
    """Return the text exposition of `REGISTRY` followed by the given registries."""
    return b"".join(generate_latest(registry) for registry in (REGISTRY, *registries))
