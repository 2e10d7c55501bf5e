"""A real etcd for tests: 1 or 3 members of Debian's etcd-server on 127.0.0.1.

Every member gets ephemeral ports and a private data dir under one tmp dir;
readiness is polled on the member's /health endpoint against a deadline (a
member that exits early fails at once, with the tail of its log).  Members are
stopped by the pid we started, never by name, and the dirs are removed,
also when the test fails.  Tests share one etcd per module and isolate
themselves by key prefix (`EtcdCluster.url(prefix)`).

    with EtcdCluster(tmp_path, size=3) as cluster:
        store = open_store(cluster.url("t1"))
        cluster.kill(0)        # kill -9 one member; cluster.start_member(0) brings it back
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Self

import pytest

from daolinet.errors import SystemFailure

HOST = "127.0.0.1"
START_DEADLINE = 30.0
STOP_GRACE = 5.0
POLL = 0.02  # between two health probes: a poll period, not a synchronisation


def etcd_binary() -> str:
    """The etcd binary; a test skips without it unless we are root (setup installs it then)."""
    found = shutil.which("etcd") or next((p for p in ("/usr/bin/etcd", "/usr/sbin/etcd")
                                          if os.access(p, os.X_OK)), None)
    if found:
        return found
    if os.geteuid() != 0:
        pytest.skip("etcd is not installed (Debian etcd-server; `make setup` as root installs it)")
    raise SystemFailure("etcd is not installed: run `make setup` (it installs Debian's etcd-server)")


def free_ports(n: int) -> list[int]:
    """n distinct ports the kernel just handed out (held together, so never twice)."""
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) for _ in range(n)]
        for s in socks:
            s.bind((HOST, 0))
        return [s.getsockname()[1] for s in socks]


@dataclass
class Member:
    name: str
    client_port: int
    peer_port: int
    data_dir: Path
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"{HOST}:{self.client_port}"

    @property
    def client_url(self) -> str:
        return f"http://{HOST}:{self.client_port}"

    @property
    def peer_url(self) -> str:
        return f"http://{HOST}:{self.peer_port}"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


class EtcdCluster:
    """`size` etcd members forming one cluster, started by `start()`, gone after `stop()`."""

    def __init__(self, base_dir: Path | str | None = None, size: int = 1, args: Sequence[str] = ()) -> None:
        if size < 1:
            raise ValueError("an etcd cluster needs at least one member")
        self.binary = etcd_binary()
        self.args = list(args)  # more etcd flags, e.g. ["--max-txn-ops", "1024"]
        self.dir = Path(tempfile.mkdtemp(prefix="etcd-", dir=base_dir))
        self.token = "daolinet-test-" + secrets.token_hex(4)
        ports = free_ports(2 * size)
        self.members = [Member(f"m{i}", ports[2 * i], ports[2 * i + 1], self.dir / f"m{i}",
                               self.dir / f"m{i}.log") for i in range(size)]

    # -- lifecycle ---------------------------------------------------------------------

    def start(self, deadline: float = START_DEADLINE) -> Self:
        """Start every member of a new cluster and wait until each reports healthy.

        A port someone else took meanwhile (they are picked before etcd binds them) costs a
        retry on fresh ports, nothing more."""
        for attempt in range(3):
            try:
                for i in range(len(self.members)):
                    self._spawn(i)
                self.wait_healthy(range(len(self.members)), deadline)
                return self
            except SystemFailure as e:
                self._halt()
                if "address already in use" not in str(e) or attempt == 2:
                    self.stop()
                    raise
                self._new_ports()
            except BaseException:
                self.stop()
                raise
        raise AssertionError("unreachable")

    def start_member(self, index: int, deadline: float = START_DEADLINE) -> None:
        """(Re)start member `index` on its ports and data dir; wait until it is healthy."""
        if self.members[index].running:
            raise SystemFailure(f"etcd member {self.members[index].name} is already running")
        self._spawn(index)
        self.wait_healthy([index], deadline)

    def kill(self, index: int, sig: signal.Signals = signal.SIGKILL) -> None:
        """Stop member `index` (kill -9 by default) and reap it; its data dir stays."""
        member = self.members[index]
        if member.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            member.proc.send_signal(sig)
        try:
            member.proc.wait(timeout=STOP_GRACE)
        except subprocess.TimeoutExpired:
            member.proc.kill()
            member.proc.wait(timeout=STOP_GRACE)
        member.proc = None

    def stop(self) -> None:
        """Kill every member by pid and remove the dirs.

        KILL, not TERM: the data goes anyway, and a stopping leader would wait seconds for
        peers that are stopping too to take over its leadership."""
        try:
            self._halt()
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)

    def _halt(self) -> None:
        running = [m for m in self.members if m.proc is not None]
        for member in running:
            with contextlib.suppress(ProcessLookupError):
                member.proc.send_signal(signal.SIGKILL)  # type: ignore[union-attr]
        until = time.monotonic() + STOP_GRACE
        for member in running:
            assert member.proc is not None
            try:
                member.proc.wait(timeout=max(0.0, until - time.monotonic()))
            except subprocess.TimeoutExpired:
                member.proc.kill()
                member.proc.wait(timeout=STOP_GRACE)
            member.proc = None

    def _new_ports(self) -> None:
        ports = free_ports(2 * len(self.members))
        for i, member in enumerate(self.members):
            shutil.rmtree(member.data_dir, ignore_errors=True)
            member.client_port, member.peer_port = ports[2 * i], ports[2 * i + 1]

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    # -- addresses -------------------------------------------------------------------------

    @property
    def endpoints(self) -> list[str]:
        return [m.endpoint for m in self.members]

    def url(self, prefix: str = "") -> str:
        """An `etcd://` store URL naming every member; `prefix` isolates one test's keys."""
        return "etcd://" + ",".join(self.endpoints) + (f"/{prefix}" if prefix else "")

    # -- internals ---------------------------------------------------------------------------

    def _argv(self, member: Member) -> list[str]:
        initial = ",".join(f"{m.name}={m.peer_url}" for m in self.members)
        return [self.binary, "--name", member.name, "--data-dir", str(member.data_dir),
                "--listen-client-urls", member.client_url, "--advertise-client-urls", member.client_url,
                "--listen-peer-urls", member.peer_url, "--initial-advertise-peer-urls", member.peer_url,
                "--initial-cluster", initial, "--initial-cluster-token", self.token,
                "--initial-cluster-state", "new", "--heartbeat-interval", "50",
                "--election-timeout", "500", "--log-level", "warn", "--logger", "zap", *self.args]

    def _spawn(self, index: int) -> None:
        member = self.members[index]
        with open(member.log_path, "ab") as log:
            member.proc = subprocess.Popen(self._argv(member), stdin=subprocess.DEVNULL, stdout=log,
                                           stderr=subprocess.STDOUT, start_new_session=True)

    def wait_healthy(self, indices: Iterable[int], deadline: float = START_DEADLINE) -> None:
        """Poll each member's /health until it says true; fail at the deadline or if it exits."""
        until = time.monotonic() + deadline
        for i in indices:
            member = self.members[i]
            while not self._healthy(member):
                if not member.running:
                    raise SystemFailure(f"etcd member {member.name} exited while starting:\n"
                                        f"{member.log_tail()}")
                if time.monotonic() > until:
                    raise SystemFailure(f"etcd member {member.name} not healthy after {deadline} s:\n"
                                        f"{member.log_tail()}")
                time.sleep(POLL)

    @staticmethod
    def _healthy(member: Member) -> bool:
        try:
            with urllib.request.urlopen(f"{member.client_url}/health", timeout=1) as reply:
                return bool(json.loads(reply.read()).get("health") == "true")
        except (OSError, ValueError, urllib.error.URLError):
            return False


# -- pytest fixtures (import them into a test module) -------------------------------------------


@pytest.fixture(scope="module")
def etcd_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdCluster]:
    """One etcd member for a whole test module; tests isolate themselves by key prefix."""
    with EtcdCluster(tmp_path_factory.mktemp("etcd"), size=1) as cluster:
        yield cluster


@pytest.fixture
def etcd_factory(tmp_path: Path) -> Iterator[Callable[[int], EtcdCluster]]:
    """Start clusters of a given size on demand; every one is stopped after the test."""
    made: list[EtcdCluster] = []

    def make(size: int = 1) -> EtcdCluster:
        cluster = EtcdCluster(tmp_path, size=size)
        made.append(cluster)
        return cluster.start()

    yield make
    for cluster in made:
        cluster.stop()
    left = [m.proc.pid for c in made for m in c.members if m.proc is not None and m.proc.poll() is None]
    assert not left, f"etcd members still running: {left}"
