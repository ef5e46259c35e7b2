"""One streaming pass over a package file that feeds several content checks.

Content checks (archive, metadata, paths, scripts, malware) read the
members of a package. Rather than each check decompressing the file
again, each one supplies a `CheckVisitor`, and `SharedScan` opens one
`PackageReader` and offers every member to every visitor that still
needs the file. A visitor that wants a member's bytes returns a
`ContentSink`, and each chunk read is passed to all such sinks. So
memory stays flat, because no member is held whole unless a visitor
collects a member it has already checked against a size cap.

Errors are kept apart per check. An exception raised by a visitor or
its sink ends the pass for that visitor only. An exception raised while
reading the file (ArchiveError, ArchiveLimitError, StoreError or any
other) reaches every visitor that still needs the file, and each one
reports it as it would when run alone. Checks with different
`ArchiveLimits` cannot share the reader's counters, so `SharedScan`
makes one pass for each distinct `limits` value.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Sequence
from contextlib import closing
from dataclasses import dataclass
from typing import Protocol

from mirror.validate.package_reader import ArchiveError, ArchiveLimits, PackageMember, PackageReader
from mirror.validate.result import CheckContext, CheckResult

logger = logging.getLogger(__name__)


class ContentSink(Protocol):
    """Receives the content of one regular member, chunk by chunk."""

    def feed(self, chunk: bytes) -> None: ...

    def end(self) -> None:
        """Called after the last chunk, before the next member is offered, and not at all after an error."""


class MemberVisitor(Protocol):
    """A reader of package members during a shared pass.

    `components` lists the package components ("info", "pkg") the visitor
    reads, and members of other components are not offered to it. `start`
    receives the open reader before the first member. `visit` returns a
    sink for the member's content, or None to skip it. `is_done` returns
    True once later members and later read errors can no longer change
    what the visitor found, which lets the pass stop early when every
    visitor is done.
    """

    components: Collection[str]

    def start(self, reader: PackageReader) -> None: ...

    def visit(self, member: PackageMember) -> ContentSink | None: ...

    def is_done(self) -> bool: ...


class CheckVisitor(MemberVisitor, Protocol):
    """The per-file state of one content check: a `MemberVisitor` that returns the check's result.

    `finish` gets the first error that ended the pass for this visitor, or
    None, and returns the check's result. It raises any error that the
    check does not report as a result, as the check's `run` would.
    """

    def finish(self, error: Exception | None) -> CheckResult: ...


class ContentCheck(Protocol):
    """A check that reads package members through a visitor, so it can share a pass.

    `begin` returns a fresh visitor for one file. `run` must give the same
    result as a shared pass with this check alone (see `run_alone`).
    """

    name: str
    version: str
    limits: ArchiveLimits

    def begin(self, context: CheckContext) -> CheckVisitor: ...

    def run(self, context: CheckContext) -> CheckResult: ...


def is_content_check(check: object) -> bool:
    """Return True when `check` can join a shared pass (it has `begin` and `limits`)."""
    return callable(getattr(check, "begin", None)) and isinstance(getattr(check, "limits", None), ArchiveLimits)


class BytesSink:
    """Collect a member's content whole and pass it to `on_end`.

    Use it only for a member whose declared size the visitor has already
    checked against a cap, because every chunk is kept until the end.
    """

    def __init__(self, on_end: Callable[[bytes], None]):
        self._chunks: list[bytes] = []
        self._on_end = on_end

    def feed(self, chunk: bytes) -> None:
        self._chunks.append(chunk)

    def end(self) -> None:
        self._on_end(b"".join(self._chunks))


@dataclass
class _Slot:
    """One visitor in a pass, with the error that ended the pass for it."""

    visitor: MemberVisitor
    error: Exception | None = None
    sink: ContentSink | None = None


def stream_members(reader: PackageReader, visitors: Sequence[MemberVisitor]) -> list[Exception | None]:
    """Read the package once, offer each member to every visitor and return each visitor's error.

    The returned list has one entry per visitor: the first exception that
    ended the pass for it, or None. Reading stops early once every
    visitor is done or has failed.
    """
    slots = [_Slot(visitor) for visitor in visitors]
    active = [slot for slot in slots if _start(slot, reader)]
    if not active:
        return [slot.error for slot in slots]
    components = sorted({component for slot in active for component in slot.visitor.components})

    # The broad except hands a read error of any type to each visitor that
    # still needs the file, so each check reports it as on a pass of its own.
    try:
        with closing(reader.members(components)) as members:
            for member in members:
                _offer(member, active)
                active[:] = [slot for slot in active if slot.error is None and not _is_done(slot)]
                if not active:
                    break
    except Exception as exc:
        for slot in active:
            if slot.error is None and not _is_done(slot):
                slot.error = exc
    return [slot.error for slot in slots]


def _start(slot: _Slot, reader: PackageReader) -> bool:
    try:
        slot.visitor.start(reader)
    except Exception as exc:
        slot.error = exc
        return False
    return True


def _is_done(slot: _Slot) -> bool:
    try:
        return slot.visitor.is_done()
    except Exception as exc:
        slot.error = exc
        return True


def _offer(member: PackageMember, active: list[_Slot]) -> None:
    """Offer one member to the visitors of its component and stream its content to their sinks."""
    receiving = []
    for slot in active:
        if member.component not in slot.visitor.components:
            continue
        try:
            slot.sink = slot.visitor.visit(member)
        except Exception as exc:
            slot.error = exc
            continue
        if slot.sink is not None:
            receiving.append(slot)

    if not receiving or member.reader is None:
        return

    # Errors from reading chunks propagate to stream_members, while an
    # error from one sink ends the pass for its visitor only.
    for chunk in member.reader.chunks():
        for slot in receiving:
            if slot.error is None:
                _call_sink(slot, slot.sink.feed, chunk)
    for slot in receiving:
        if slot.error is None:
            _call_sink(slot, slot.sink.end)


def _call_sink(slot: _Slot, method: Callable[..., None], *args: bytes) -> None:
    try:
        method(*args)
    except Exception as exc:
        slot.error = exc
        slot.sink = None


class SharedScan:
    """Run several content checks on one package file with one pass per distinct `limits`.

    Call `run` once, then `result(index)` for each check in the order
    given. `result` raises the exception that a check's `run` would have
    raised, so the pipeline turns it into an ERROR exactly as before.
    """

    def __init__(self, context: CheckContext, checks: Sequence[ContentCheck]):
        self.context = context
        self.checks = list(checks)
        self._visitors: list[CheckVisitor | None] = [None] * len(self.checks)
        self._errors: list[Exception | None] = [None] * len(self.checks)

    def run(self) -> None:
        groups: dict[ArchiveLimits, list[int]] = {}
        for index, check in enumerate(self.checks):
            groups.setdefault(check.limits, []).append(index)
        for limits, indexes in groups.items():
            self._run_group(limits, indexes)

    def result(self, index: int) -> CheckResult:
        visitor, error = self._visitors[index], self._errors[index]
        if visitor is None:
            if error is None:
                raise RuntimeError(f"SharedScan.result({index}) called before run(); call run() first")
            raise error
        return visitor.finish(error)

    def _run_group(self, limits: ArchiveLimits, indexes: list[int]) -> None:
        begun: list[tuple[int, CheckVisitor]] = []
        for index in indexes:
            try:
                visitor = self.checks[index].begin(self.context)
            except Exception as exc:
                self._errors[index] = exc
                continue
            self._visitors[index] = visitor
            begun.append((index, visitor))

        try:
            reader = PackageReader(self.context.path, self.context.filename, limits)
        except ArchiveError as exc:
            # An unsupported extension: each check reports it like a read error.
            for index, _ in begun:
                self._errors[index] = exc
            return

        logger.debug(
            "%s: one pass for checks %s",
            self.context.filename,
            ", ".join(self.checks[index].name for index, _ in begun),
        )
        errors = stream_members(reader, [visitor for _, visitor in begun])
        for (index, _), error in zip(begun, errors):
            self._errors[index] = error


def run_alone(check: ContentCheck, context: CheckContext) -> CheckResult:
    """Run one content check in a pass of its own. Each built-in content check's `run` calls this."""
    scan = SharedScan(context, [check])
    scan.run()
    return scan.result(0)
