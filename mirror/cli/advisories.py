"""`mirror advisories`: import OSV advisory dumps and list what they contain.

The group expects `ctx.obj` to be the path of mirror.yaml, as the main
`mirror` group sets it.
"""

from __future__ import annotations

import logging
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table
from sqlalchemy import select

from mirror.advisories.importer import ImportLimits, ImportReport, import_advisories
from mirror.advisories.matching import AdvisoryIndex
from mirror.advisories.models import Advisory
from mirror.advisories.policy import Finding, recheck
from mirror.config.load import load_config
from mirror.jobs.context import MirrorContext
from mirror.jobs.locks import exclusive_lock

logger = logging.getLogger(__name__)

LISTED_SKIPS = 50
_DEFAULT_LIMITS = ImportLimits()

_names_option = click.option(
    "--names", "names_path", type=click.Path(dir_okay=False, exists=True, path_type=Path), default=None,
    help="YAML file of extra conda-to-PyPI names (`conda-name: pypi-name` or a list).",
)


@click.group()
def advisories() -> None:
    """Import and list offline vulnerability advisories (OSV format)."""


@advisories.command("import")
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@_names_option
@click.option(
    "--max-member-bytes", type=click.IntRange(min=1), default=_DEFAULT_LIMITS.max_member_bytes, show_default=True,
    help="Skip any advisory file larger than this many bytes (decompressed).",
)
@click.option(
    "--max-total-bytes", type=click.IntRange(min=1), default=_DEFAULT_LIMITS.max_total_bytes, show_default=True,
    help="Stop the import after this many decompressed bytes in total.",
)
@click.pass_context
def import_command(
    ctx: click.Context, path: Path, names_path: Path | None, max_member_bytes: int, max_total_bytes: int
) -> None:
    """Import OSV advisories from PATH (a folder, a .json file or a .zip dump), then re-check approved packages."""
    config = load_config(ctx.obj)
    limits = ImportLimits(max_member_bytes=max_member_bytes, max_total_bytes=max_total_bytes)
    console = Console()

    # The re-check changes membership states, so it must not overlap a
    # validate or publish job on the same data folder.
    with exclusive_lock(config.data_dir / "jobs.lock", "sync, validate, publish or advisory import job"):
        context = MirrorContext.open(config)
        try:
            with context.catalog.session() as session:
                report = import_advisories(session, path, limits)
                index = AdvisoryIndex.load(session, extra_names=names_path)
                findings = recheck(session, index, config.channels)
        finally:
            context.close()

    _print_report(console, report)
    _print_findings(console, findings)
    if not report.complete:
        ctx.exit(1)


@advisories.command("list")
@click.option("--package", "package", default=None, help="Only advisories for this conda package name.")
@_names_option
@click.pass_context
def list_command(ctx: click.Context, package: str | None, names_path: Path | None) -> None:
    """List imported advisories, or those that a conda package name is looked up under."""
    context = MirrorContext.open(load_config(ctx.obj))
    console = Console()
    try:
        with context.catalog.session() as session:
            if package is None:
                table = _all_advisories(session)
            else:
                table = _package_advisories(AdvisoryIndex.load(session, extra_names=names_path), package)
    finally:
        context.close()
    console.print(table)


def _print_report(console: Console, report: ImportReport) -> None:
    console.print(
        f"advisories: {report.imported} imported, {report.updated} updated, "
        f"{report.unchanged} unchanged, {len(report.skipped)} skipped",
        highlight=False,
    )
    for reason, count in sorted(report.skipped_by_reason().items()):
        console.print(f"  skipped {count}: {reason}", highlight=False)
    for skipped in report.skipped[:LISTED_SKIPS]:
        console.print(f"  [yellow]skipped[/yellow] {skipped.name}: {skipped.reason}", highlight=False, markup=True)
    if len(report.skipped) > LISTED_SKIPS:
        console.print(f"  ... and {len(report.skipped) - LISTED_SKIPS} more; see the import log", highlight=False)
    if not report.complete:
        console.print("[red]the import stopped early[/red]; files after the limit were not imported")


def _print_findings(console: Console, findings: list[Finding]) -> None:
    if not findings:
        console.print("re-check: no approved package newly matches an advisory above its channel's threshold")
        return
    console.print(f"re-check: {len(findings)} approved package(s) affected", highlight=False)
    for finding in findings:
        label = "[red]retired[/red]" if finding.action == "retired_vulnerable" else "[yellow]flagged[/yellow]"
        console.print(f"  {label} {finding.channel}/{finding.filename}: {finding.reason}", highlight=False)


def _all_advisories(session) -> Table:
    table = Table(title="Advisories", title_justify="left")
    table.add_column("id", no_wrap=True)
    for column in ("severity", "packages", "modified", "summary"):
        table.add_column(column)
    for advisory in session.scalars(select(Advisory).order_by(Advisory.id)):
        packages = sorted({f"{item.ecosystem}:{item.package_name}" for item in advisory.ranges})
        status = " (withdrawn)" if advisory.withdrawn else ""
        table.add_row(
            advisory.id + status, advisory.severity or "unknown", ", ".join(packages),
            advisory.modified.strftime("%Y-%m-%d"), advisory.summary or "",
        )
    return table


def _package_advisories(index: AdvisoryIndex, package: str) -> Table:
    looked_up = ", ".join(f"{ecosystem}:{name}" for ecosystem, name in index.candidates(package))
    table = Table(title=f"Advisories for conda package {package} (looked up as {looked_up})", title_justify="left")
    table.add_column("id", no_wrap=True)
    for column in ("severity", "package", "affected", "fixed", "summary"):
        table.add_column(column)
    for match in index.advisories_for(package):
        table.add_row(
            match.advisory_id, match.severity or "unknown", f"{match.ecosystem}:{match.package}",
            "; ".join(match.affected), ", ".join(match.fixed), match.summary or "",
        )
    return table
