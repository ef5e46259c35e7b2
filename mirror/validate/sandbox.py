"""Run a package's test commands with a timeout, resource limits and, where possible, no network.

A `Sandbox` runs each command in its own process group with a minimal
environment: the test gets the installed prefix on PATH but none of the
parent's variables (proxies, tokens, cloud credentials). Output goes to files in
the work folder, so a test that prints gigabytes fills at most
`max_file_mb` per stream, and only the last `output_tail_bytes` are kept.

Resource limits are applied by a tiny Python launcher that sets them and
then execs the command. `subprocess.Popen(preexec_fn=...)` would do the same
job, but Python documents it as unsafe in a process with threads, and the
install check runs in a worker thread next to an event loop.

Network isolation uses util-linux `unshare --net`, which leaves the command
with only a loopback interface that is down. Without root it needs a user
namespace (`--map-root-user`). `network_isolation_mode` probes once per
process which form works. When neither does, commands run with the host
network and the caller reports that in its evidence.

This is containment for tests of packages already downloaded from a
trusted upstream, not a security boundary. The command runs as the same
user and can read and write the same file system, and a process that
calls setsid() leaves the process group that the timeout kills.
"""

from __future__ import annotations

import functools
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

ISOLATION_NONE = "none"
ISOLATION_DISABLED = "disabled"
UNSHARE_NET = ("unshare", "--net")
UNSHARE_NET_USER = ("unshare", "--net", "--map-root-user")

# Seconds to wait for a killed process group to be reaped.
KILL_GRACE_SECONDS = 5.0
PROBE_TIMEOUT_SECONDS = 10.0

# Runs between unshare and the test command: sets the limits passed as
# arguments, then replaces itself with the command (argv after "--"). A
# limit above the current hard limit is lowered to it, because only root
# may raise a hard limit.
_LIMITER = """
import os, resource, sys

def limit(kind, value):
    hard = resource.getrlimit(kind)[1]
    if hard != resource.RLIM_INFINITY:
        value = min(value, hard)
    resource.setrlimit(kind, (value, value))

memory, processes, file_size = (int(value) for value in sys.argv[1:4])
limit(resource.RLIMIT_AS, memory)
limit(resource.RLIMIT_NPROC, processes)
limit(resource.RLIMIT_FSIZE, file_size)
limit(resource.RLIMIT_CORE, 0)
command = sys.argv[5:]
os.execvp(command[0], command)
"""


@dataclass(frozen=True)
class SandboxLimits:
    """Limits for each command a `Sandbox` runs.

    `memory_mb` caps the address space (RLIMIT_AS), which is larger than
    the resident memory a process uses. `max_processes` is RLIMIT_NPROC,
    which counts every process of the user on the machine, not only the
    test's, and which Linux does not enforce for root. `max_file_mb` caps
    the size of any file a command writes (RLIMIT_FSIZE), including its
    captured output.
    """

    timeout_seconds: float = 300.0
    memory_mb: int = 2048
    max_processes: int = 512
    max_file_mb: int = 1024
    output_tail_bytes: int = 4096

    def __post_init__(self) -> None:
        for name in ("timeout_seconds", "memory_mb", "max_processes", "max_file_mb"):
            value = getattr(self, name)
            if value <= 0:
                raise ValueError(f"SandboxLimits.{name} must be positive, got {value!r}")
        if self.output_tail_bytes < 0:
            raise ValueError(f"SandboxLimits.output_tail_bytes must be >= 0, got {self.output_tail_bytes!r}")


@dataclass(frozen=True)
class CommandResult:
    """Outcome of one sandboxed command. `exit_code` is negative when a signal ended it."""

    name: str
    argv: list[str]
    exit_code: int | None
    timed_out: bool
    duration_seconds: float
    stdout_tail: str
    stderr_tail: str

    @property
    def passed(self) -> bool:
        return not self.timed_out and self.exit_code == 0

    def evidence(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "command": self.argv,
            "exit_code": self.exit_code,
            "timed_out": self.timed_out,
            "duration_seconds": round(self.duration_seconds, 3),
            "stdout_tail": self.stdout_tail,
            "stderr_tail": self.stderr_tail,
        }


@functools.cache
def network_isolation_mode() -> str:
    """Return the first form of unshare that works here, else "none".

    The forms tried are "unshare --net" and "unshare --net --map-root-user".
    The probe runs `true` under each form once per process and caches the
    result, because container runtimes and sysctls such as
    kernel.unprivileged_userns_clone decide it and do not change while the
    process runs.
    """
    for prefix in (UNSHARE_NET, UNSHARE_NET_USER):
        try:
            completed = subprocess.run(
                [*prefix, "--", "true"],
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=PROBE_TIMEOUT_SECONDS,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            logger.info("network isolation with %s is not available: %s", " ".join(prefix), exc)
            continue
        if completed.returncode == 0:
            return " ".join(prefix)
        logger.info(
            "network isolation with %s is not available: exit code %d, %s",
            " ".join(prefix),
            completed.returncode,
            completed.stderr.decode(errors="replace").strip(),
        )
    logger.warning("no form of unshare works here, so package tests run with network access")
    return ISOLATION_NONE


class Sandbox:
    """Run commands for one installed prefix, each under the same limits and environment.

    `work_dir` must exist; each command runs with it as the current
    folder unless `cwd` is given, and HOME and TMPDIR point inside it.
    With `isolate_network` False, or when `network_isolation_mode()` finds
    no working form, commands have the host network. `isolation` names the
    mode in use: an unshare command line, "none" or "disabled".
    """

    def __init__(
        self,
        prefix: Path,
        work_dir: Path,
        *,
        limits: SandboxLimits | None = None,
        isolate_network: bool = True,
        extra_env: Mapping[str, str] | None = None,
    ):
        self.prefix = Path(prefix)
        self.work_dir = Path(work_dir)
        self.limits = limits or SandboxLimits()
        self.isolation = network_isolation_mode() if isolate_network else ISOLATION_DISABLED
        self.env = self._environment(extra_env or {})
        self._runs = 0

    def run(self, name: str, argv: Sequence[str], *, cwd: Path | None = None) -> CommandResult:
        """Run `argv` to completion or until the timeout, then kill its process group."""
        self._runs += 1
        stdout_path = self.work_dir / f"command-{self._runs}.stdout"
        stderr_path = self.work_dir / f"command-{self._runs}.stderr"

        started = time.monotonic()
        with stdout_path.open("wb") as stdout, stderr_path.open("wb") as stderr:
            process = subprocess.Popen(
                self._wrapped(argv),
                cwd=cwd or self.work_dir,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=stdout,
                stderr=stderr,
                start_new_session=True,
            )
            exit_code, timed_out = self._wait(process)
        duration = time.monotonic() - started

        result = CommandResult(
            name=name,
            argv=list(argv),
            exit_code=exit_code,
            timed_out=timed_out,
            duration_seconds=duration,
            stdout_tail=self._tail(stdout_path),
            stderr_tail=self._tail(stderr_path),
        )
        logger.debug(
            "sandbox %s: exit code %s, timed out %s, %.2f s", name, exit_code, timed_out, duration
        )
        return result

    def _wrapped(self, argv: Sequence[str]) -> list[str]:
        limits = self.limits
        limiter = [
            sys.executable,
            "-I",
            "-S",
            "-c",
            _LIMITER,
            str(limits.memory_mb * 1024 * 1024),
            str(limits.max_processes),
            str(limits.max_file_mb * 1024 * 1024),
            "--",
            *argv,
        ]
        if self.isolation in (ISOLATION_NONE, ISOLATION_DISABLED):
            return limiter
        return [*self.isolation.split(), "--", *limiter]

    def _wait(self, process: subprocess.Popen[bytes]) -> tuple[int | None, bool]:
        try:
            return process.wait(timeout=self.limits.timeout_seconds), False
        except subprocess.TimeoutExpired:
            pass

        # start_new_session made the child the leader of its own group, so
        # its pid is the group id, and unshare and the launcher exec in place.
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            return process.wait(timeout=KILL_GRACE_SECONDS), True
        except subprocess.TimeoutExpired:
            logger.error("sandboxed process %d did not exit after SIGKILL", process.pid)
            return None, True

    def _environment(self, extra_env: Mapping[str, str]) -> dict[str, str]:
        home = self.work_dir / "home"
        temporary = self.work_dir / "tmp"
        home.mkdir(exist_ok=True)
        temporary.mkdir(exist_ok=True)
        return {
            "PATH": f"{self.prefix / 'bin'}:/usr/bin:/bin",
            "PREFIX": str(self.prefix),
            "CONDA_PREFIX": str(self.prefix),
            "HOME": str(home),
            "TMPDIR": str(temporary),
            "LANG": "C.UTF-8",
            "LC_ALL": "C.UTF-8",
            **extra_env,
        }

    def _tail(self, path: Path) -> str:
        size = path.stat().st_size
        with path.open("rb") as stream:
            stream.seek(max(0, size - self.limits.output_tail_bytes))
            data = stream.read()
        prefix = "[...] " if size > self.limits.output_tail_bytes else ""
        return prefix + data.decode(errors="replace")
