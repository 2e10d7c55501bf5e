"""A real etcd for tests and the lab: 1 or 3 members of Debian's etcd-server,
on 127.0.0.1 or on `host` inside network namespace `netns` (the lab's control
namespace on its underlay).

TLS by default, as a real installation runs it: a CA of its own in the
cluster's dir (security.pki), a certificate per member (server and peer, with
the member's address), client and peer URLs on https:// with client
certificates required on both, and a client pair for controllers and tests
(`client_tls`).  `tls=False` runs plaintext (the lab's `--insecure` mode).

Every member gets ephemeral ports and a private data dir under one tmp dir;
readiness is polled on the member's /health endpoint (over HTTPS with the
client pair, from inside the namespace) against a deadline (a member that
exits early fails at once, with the tail of its log).  Members are stopped by
the pid we started, never by name, and the dirs are removed, also when the
test fails.  Tests share one etcd per module and isolate themselves by key
prefix (`EtcdCluster.url(prefix)`).

    with EtcdCluster(tmp_path, size=3) as cluster:
        store = open_store(cluster.url("t1"), etcd_tls=cluster.client_tls)
        cluster.kill(0)        # kill -9 one member; cluster.start_member(0) brings it back
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar

from pyroute2 import netns as pyroute2_netns

from daolinet.errors import SystemFailure
from daolinet.security import pki
from daolinet.security.tls import TlsFiles, client_context
from daolinet.store.etcd import EtcdStore
from daolinet.system import procs

T = TypeVar("T")

HOST = "127.0.0.1"
START_DEADLINE = 30.0
STOP_GRACE = 5.0
POLL = 0.02  # between two health probes: a poll period, not a synchronisation


class EtcdMissing(SystemFailure):
    """No etcd binary here (test fixtures skip on it)."""


def etcd_binary() -> str:
    """The etcd binary; a test skips without it unless we are root (setup installs it then)."""
    found = shutil.which("etcd") or next((p for p in ("/usr/bin/etcd", "/usr/sbin/etcd")
                                          if os.access(p, os.X_OK)), None)
    if found:
        return found
    raise EtcdMissing("etcd is not installed: run `make setup` (it installs Debian's etcd-server)")


def in_netns(netns: str | None, fn: Callable[[], T]) -> T:
    """`fn()` in network namespace `netns` (None: here).  It runs in a thread of its own
    moved there (setns moves the calling thread only) which ends with the call, so
    nothing else ever runs in that namespace; the sockets it makes stay in it."""
    if netns is None:
        return fn()

    def run() -> T:
        pyroute2_netns.setns(netns, flags=0)  # flags=0: never create a missing namespace
        return fn()
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(run).result()


def free_ports(n: int, host: str = HOST, netns: str | None = None) -> list[int]:
    """n distinct ports the kernel just handed out on `host` in `netns` (held together,
    so never twice)."""
    def pick() -> list[int]:
        with contextlib.ExitStack() as stack:
            socks = [stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) for _ in range(n)]
            for s in socks:
                s.bind((host, 0))
            return [s.getsockname()[1] for s in socks]
    return in_netns(netns, pick)


def source_address(host: str, netns: str | None = None) -> str:
    """The address the kernel picks in `netns` to reach `host` from (a UDP socket's
    connect sends nothing: it only picks the route and the source)."""
    def pick() -> str:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect((host, 9))
            return str(s.getsockname()[0])
    return in_netns(netns, pick)


@dataclass
class Member:
    name: str
    client_port: int
    peer_port: int
    data_dir: Path
    log_path: Path
    host: str = HOST
    scheme: str = "https"
    proc: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"{self.host}:{self.client_port}"

    @property
    def client_url(self) -> str:
        return f"{self.scheme}://{self.host}:{self.client_port}"

    @property
    def peer_url(self) -> str:
        return f"{self.scheme}://{self.host}:{self.peer_port}"

    @property
    def cert_name(self) -> str:
        """Its certificate's name in the cluster's PKI (role controller: server and client)."""
        return f"etcd-{self.name}"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


class EtcdCluster:
    """`size` etcd members forming one cluster, started by `start()`, gone after `stop()`.

    `host`: the members' address (all share it, each on ports of its own); `netns`: the
    network namespace they run in; `tls`: certificates everywhere (the default)."""

    def __init__(self, base_dir: Path | str | None = None, size: int = 1, args: Sequence[str] = (), *,
                 tls: bool = True, host: str = HOST, netns: str | None = None) -> None:
        if size < 1:
            raise ValueError("an etcd cluster needs at least one member")
        self.binary = etcd_binary()
        self.args = list(args)  # more etcd flags, e.g. ["--max-txn-ops", "1024"]
        self.tls, self.host, self.netns = tls, host, netns
        self.dir = Path(tempfile.mkdtemp(prefix="etcd-", dir=base_dir))
        self.token = "daolinet-test-" + secrets.token_hex(4)
        ports = free_ports(2 * size, host, netns)
        self.members = [Member(f"m{i}", ports[2 * i], ports[2 * i + 1], self.dir / f"m{i}",
                               self.dir / f"m{i}.log", host, "https" if tls else "http") for i in range(size)]
        self._probe_context: ssl.SSLContext | None = None
        if tls:
            self._make_pki()

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
        ports = free_ports(2 * len(self.members), self.host, self.netns)
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

    def open_store(self, prefix: str = "", **kw: Any) -> EtcdStore:
        """An `EtcdStore` on this cluster (with the client pair when on TLS)."""
        return EtcdStore.open(self.url(prefix), tls=self.client_tls, **kw)

    # -- certificates ------------------------------------------------------------------------

    @property
    def pki_dir(self) -> str:
        return str(self.dir / "pki")

    @property
    def client_tls(self) -> TlsFiles | None:
        """The etcd CA and a client pair it accepts (for controllers, stores in tests);
        None for a plaintext cluster."""
        return TlsFiles.of(self.pki_dir, "user", "etcd-client") if self.tls else None

    def _make_pki(self) -> None:
        """A CA of the cluster's own; a pair per member with its addresses (role controller:
        serverAuth for clients, clientAuth towards its peers); the client pair.

        etcd checks a peer's certificate against the address the peer dials from, and a
        member dials its peers on `host` from the namespace's primary address when `host`
        is a secondary one (the lab's control namespace): that address is named too."""
        pki.init_ca(self.pki_dir)
        sans = tuple(dict.fromkeys((self.host, source_address(self.host, self.netns))))
        for member in self.members:
            pki.issue(self.pki_dir, "controller", member.cert_name, sans=sans)
        pki.issue(self.pki_dir, "user", "etcd-client")

    # -- internals ---------------------------------------------------------------------------

    def _argv(self, member: Member) -> list[str]:
        initial = ",".join(f"{m.name}={m.peer_url}" for m in self.members)
        return [self.binary, "--name", member.name, "--data-dir", str(member.data_dir),
                "--listen-client-urls", member.client_url, "--advertise-client-urls", member.client_url,
                "--listen-peer-urls", member.peer_url, "--initial-advertise-peer-urls", member.peer_url,
                "--initial-cluster", initial, "--initial-cluster-token", self.token,
                "--initial-cluster-state", "new", "--heartbeat-interval", "50",
                "--election-timeout", "500", "--log-level", "warn", "--logger", "zap",
                *self._tls_argv(member), *self.args]

    def _tls_argv(self, member: Member) -> list[str]:
        """Client and peer TLS, a certificate from our CA required on both."""
        if not self.tls:
            return []
        ca = pki.ca_pair(self.pki_dir).cert
        pair = pki.holder_pair(self.pki_dir, "controller", member.cert_name)
        return ["--cert-file", pair.cert, "--key-file", pair.key, "--client-cert-auth",
                "--trusted-ca-file", ca, "--peer-cert-file", pair.cert, "--peer-key-file", pair.key,
                "--peer-client-cert-auth", "--peer-trusted-ca-file", ca]

    def _spawn(self, index: int) -> None:
        member = self.members[index]
        argv = self._argv(member)
        with open(member.log_path, "ab") as log:  # nsenter execs etcd: the pid is etcd's
            member.proc = subprocess.Popen(procs.in_netns(self.netns, argv) if self.netns else argv,
                                           stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                           start_new_session=True)

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

    def _healthy(self, member: Member) -> bool:
        try:
            status, body = self.get(member, "/health")
            return status == 200 and bool(json.loads(body).get("health") == "true")
        except (OSError, ValueError, http.client.HTTPException):  # ssl.SSLError is an OSError
            return False

    def get(self, member: Member, path: str, *, context: ssl.SSLContext | None = None,
            scheme: str | None = None, timeout: float = 1.0) -> tuple[int, bytes]:
        """(status, body) of GET `path` on `member`'s client URL, from inside the cluster's
        namespace: over HTTPS with the client pair, unless told another `context` or `scheme`."""
        https = (scheme or member.scheme) == "https"
        if https and context is None:
            context = self._client_context()

        def fetch() -> tuple[int, bytes]:
            where = (member.host, member.client_port)
            conn = (http.client.HTTPSConnection(*where, timeout=timeout, context=context) if https
                    else http.client.HTTPConnection(*where, timeout=timeout))
            try:
                conn.request("GET", path)
                reply = conn.getresponse()
                return reply.status, reply.read()
            finally:
                conn.close()
        return in_netns(self.netns, fetch)

    def _client_context(self) -> ssl.SSLContext:
        if self._probe_context is None:
            assert self.client_tls is not None
            self._probe_context = client_context(self.client_tls)
        return self._probe_context
