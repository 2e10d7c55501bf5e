"""Processes the lab starts and stops: always by pid, never by name.

A pid is only signalled after checking that it still is the process we
started (its command line names our run directory), so a recycled pid is
never hit.  A zombie counts as gone: reaping here can be slow.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterable, Sequence

from daolinet.errors import SystemFailure

NETNS_RUN_DIR = "/run/netns"


def in_netns(netns: str, argv: Sequence[str]) -> list[str]:
    """argv to run a command inside a named network namespace."""
    path = netns if netns.startswith("/") else f"{NETNS_RUN_DIR}/{netns}"
    return ["nsenter", f"--net={path}", "--", *argv]


def run(argv: Sequence[str], *, env: dict[str, str] | None = None, timeout: float = 30) -> str:
    """Run a helper to completion; a failure becomes a SystemFailure naming it."""
    try:
        done = subprocess.run(
            list(argv), env=env, capture_output=True, text=True, timeout=timeout, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        raise SystemFailure(f"{argv[0]} failed: {e}") from e
    if done.returncode != 0:
        detail = (done.stderr or done.stdout).strip().splitlines()
        raise SystemFailure(f"{' '.join(argv[:4])}... failed: {detail[-1] if detail else done.returncode}")
    return done.stdout


def read_pidfile(path: str) -> int | None:
    try:
        with open(path) as f:
            return int(f.read().strip())
    except (FileNotFoundError, ValueError):
        return None


def is_alive(pid: int) -> bool:
    """True if pid exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return fields[0] not in ("Z", "X")


def cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except (FileNotFoundError, ProcessLookupError):
        return ""


def pids_mentioning(marker: str) -> list[int]:
    """Pids whose command line contains marker (our run dir): a crash sweep."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != os.getpid() and marker in cmdline(int(entry)):
            found.append(int(entry))
    return found


def stop(pids: Iterable[int], *, grace: float = 5.0) -> None:
    """SIGTERM, wait with a deadline, then SIGKILL whatever is left."""
    pending = {p for p in pids if is_alive(p)}
    for sig in (signal.SIGTERM, signal.SIGKILL):
        _signal_all(pending, sig)
        pending = _wait_gone(pending, grace)
    if pending:
        raise SystemFailure(f"processes {sorted(pending)} survived SIGKILL")


def _wait_gone(pending: set[int], grace: float) -> set[int]:
    """Poll until every pid is gone or the grace period ends; the survivors."""
    deadline = time.monotonic() + grace
    while pending and time.monotonic() < deadline:
        pending = {p for p in pending if is_alive(p)}
        if pending:
            time.sleep(0.02)
    return pending


def _signal_all(pids: Iterable[int], sig: signal.Signals) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
