"""The etcd store's wire: one `aetcd` client, endpoint failover, pinned reads, errors.

`EtcdKV` talks to one member of the cluster at a time (over TLS when given the
etcd CA and a client pair: `etcd_client`); when that member stops
answering (gRPC UNAVAILABLE or a timeout) it closes the client and moves to
the next endpoint of the URL.  Idempotent calls (reads, watches) are retried
there at once; a transaction is not, because its outcome is unknown: the
caller gets `Ambiguous` and settles it (see `etcd_tx`).

`Reader` reads at one etcd revision: the first read fixes it, every later one
asks etcd for that revision, so several reads see one consistent state of the
store.  A revision etcd compacted away raises `RevisionGone`; callers start over.

aetcd's `get_range` cannot read at a revision nor page, so `Reader` sends
`RangeRequest`s through the client's KV stub itself.  Foreign exceptions become
daolinet errors here and nowhere else.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Any, TypeVar

import aetcd
import grpc
from aetcd import rpc
from aetcd.utils import prefix_range_end

from daolinet.errors import InvalidInput, SystemFailure
from daolinet.security.tls import TlsFiles
from daolinet.store import etcd_client

log = logging.getLogger(__name__)

T = TypeVar("T")
DEFAULT_PORT = 2379
DEFAULT_PREFIX = "/daolinet/"
DEFAULT_TIMEOUT = 5.0  # seconds per call: a cluster without quorum answers nothing
PAGE = 1000  # keys per range request
URL_FORM = "etcd://host:port[,host:port...][/prefix]"
_HOST_RE = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9][A-Za-z0-9.-]*)(?::([0-9]{1,5}))?$")
_PREFIX_RE = re.compile(r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$")
GRPC_OPTIONS = {
    "grpc.max_receive_message_length": 64 * 1024 * 1024,
    "grpc.keepalive_time_ms": 10_000,  # a watch on a dead member fails instead of waiting for ever
    "grpc.keepalive_timeout_ms": 5_000,
}

TIMEOUTS = ("deadline exceeded", "request timed out", "no leader", "leader changed")  # etcd: no quorum now
TOO_MANY_OPS_HINT = (" (this change touches more keys than the etcd cluster's --max-txn-ops allows, 128 by "
                     "default: start etcd with a higher one)")
Endpoint = tuple[str, int]
KeyValues = list[tuple[bytes, bytes]]


class Ambiguous(SystemFailure):
    """A transaction's reply was lost: it may or may not have been applied."""


class RevisionGone(SystemFailure):
    """The revision a read or a watch asked for was compacted: start over from the latest."""


def parse_url(url: str) -> tuple[list[Endpoint], str]:
    """Endpoints and key prefix of "etcd://h1:2379,h2:2379[/prefix]" (prefix default /daolinet/)."""
    bad = f"unsupported store URL {url!r}: use {URL_FORM}"
    if not isinstance(url, str) or not url.startswith("etcd://"):
        raise InvalidInput(bad)
    hosts, _, path = url[len("etcd://"):].partition("/")
    endpoints: list[Endpoint] = []
    for part in hosts.split(","):
        match = _HOST_RE.match(part.strip())
        port = int(match[2]) if match and match[2] else DEFAULT_PORT
        if match is None or not 1 <= port <= 65535:
            raise InvalidInput(f"{bad} ({part.strip()!r} is not host:port)")
        endpoints.append((match[1].strip("[]"), port))
    path = path.strip("/")
    if path and not _PREFIX_RE.match(path):
        raise InvalidInput(f"{bad} (prefix {path!r} may hold letters, digits, '_', '.', '-' and '/')")
    return endpoints, f"/{path}/" if path else DEFAULT_PREFIX


def range_end(prefix: bytes) -> bytes:
    """The end of the key range holding every key that starts with `prefix`."""
    return prefix_range_end(prefix)


class EtcdKV:
    """One client to an etcd cluster, moving to the next endpoint when a member fails."""

    def __init__(self, endpoints: list[Endpoint], name: str, timeout: float = DEFAULT_TIMEOUT,
                 tls: TlsFiles | None = None) -> None:
        if not endpoints:
            raise InvalidInput(f"store {name}: no etcd endpoints")
        self.tls = tls
        self._creds = etcd_client.credentials(tls) if tls is not None else None  # read now: fail at open
        self.endpoints = endpoints
        self.name = name
        self.timeout = timeout
        self._index = 0
        self._client: aetcd.Client | None = None
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def endpoint(self) -> str:
        """The member this client talks to now, as host:port."""
        host, port = self.endpoints[self._index]
        return f"{host}:{port}"

    def client(self) -> aetcd.Client:
        """The client to the current member (made on first use; aetcd connects lazily).

        Raw access for what this module does not wrap yet, e.g. leases."""
        if self._closed:
            raise SystemFailure(f"store {self.name} is closed")
        if self._client is None:
            host, port = self.endpoints[self._index]
            self._client = etcd_client.make_client(host, port, self._creds, timeout=self.timeout,
                                                   options=GRPC_OPTIONS)
        return self._client

    async def close(self) -> None:
        self._closed = True
        client, self._client = self._client, None
        if client is not None:
            await _close_quietly(client)

    async def _failover(self, broken: aetcd.Client) -> None:
        """Drop `broken` (unless another call did already) and move to the next endpoint."""
        if self._client is broken:
            self._client = None
            self._index = (self._index + 1) % len(self.endpoints)
            log.warning("store %s: etcd member failed, moving to %s", self.name, self.endpoint)
            await _close_quietly(broken)

    async def call(self, what: str, fn: Callable[[aetcd.Client], Awaitable[T]], *,
                   idempotent: bool = True) -> T:
        """`fn(client)` on the current member; an unreachable member is left for the next one.

        An idempotent call that times out is tried once more on the next member: losing the
        leader makes the others elect a new one, which can outlast one timeout. A second
        timeout means no quorum."""
        detail = "no attempt"
        timeouts = 0
        for _ in range(len(self.endpoints) + 1):
            client = self.client()
            try:
                return await fn(client)
            except asyncio.CancelledError:
                # Another call's failover closed this client under us: for our task that is
                # an unavailable member, not a cancellation (unless we are being cancelled).
                task = asyncio.current_task()
                if (task is not None and task.cancelling()) or self._client is client:
                    raise
                detail = "the member was dropped by another call's failover"
                if not idempotent:
                    raise Ambiguous(f"store {self.name}: {what}: {detail}") from None
                continue
            except (rpc.AioRpcError, rpc.BaseError, aetcd.ClientError) as e:
                kind, detail = classify(e)
                if kind == "gone":
                    raise RevisionGone(f"store {self.name}: {what}: {detail}") from e
                if kind == "other":
                    hint = TOO_MANY_OPS_HINT if "too many operations" in detail else ""
                    raise SystemFailure(f"store {self.name}: etcd refused {what}: {detail}{hint}") from e
                await self._failover(client)
                if not idempotent:
                    raise Ambiguous(f"store {self.name}: {what}: {detail}") from e
                timeouts += kind == "timeout"
                if timeouts > 1:
                    raise SystemFailure(f"store {self.name}: {what} timed out after {self.timeout} s: "
                                        f"{detail} (has the etcd cluster lost its quorum?)") from e
        why = etcd_client.hint(detail, self.tls is not None)
        raise SystemFailure(f"store {self.name}: no etcd member answers ({what}): {detail}{why}")

    async def txn(self, compare: list[Any], success: list[Any], failure: list[Any]) -> tuple[bool, list[Any]]:
        """One etcd transaction; raises Ambiguous when its reply is lost."""
        async def run(client: aetcd.Client) -> tuple[bool, list[Any]]:
            return await client.transaction(compare=compare, success=success, failure=failure)  # type: ignore[no-any-return]
        return await self.call("transaction", run, idempotent=False)

    async def watch(self, prefix: bytes, start_revision: int) -> AsyncGenerator[aetcd.Event, None]:
        """Events under `prefix` from `start_revision` on; ends quietly if the client is replaced."""
        async def start(client: aetcd.Client) -> tuple[aetcd.Client, Any]:
            return client, await client.watch_prefix(prefix, start_revision=start_revision)
        client, watch = await self.call("watch", start)
        try:
            async for event in watch:
                yield event
        except (rpc.AioRpcError, rpc.BaseError, aetcd.ClientError) as e:
            kind, detail = classify(e)
            if kind == "gone":
                raise RevisionGone(f"store {self.name}: watch: {detail}") from e
            await self._failover(client)
            raise SystemFailure(f"store {self.name}: watch broke: {detail}") from e
        finally:
            with contextlib.suppress(Exception):
                await watch.cancel()


def classify(error: BaseException) -> tuple[str, str]:
    """("unavailable" | "timeout" | "gone" | "other", detail) for an aetcd or gRPC error."""
    if isinstance(error, aetcd.RevisionCompactedError):
        return "gone", str(error)
    cause = error if isinstance(error, rpc.AioRpcError) else error.__cause__
    if isinstance(cause, rpc.AioRpcError):
        code, detail = cause.code(), cause.details() or str(cause.code())
        if code == rpc.StatusCode.UNAVAILABLE:
            return "unavailable", detail
        if code == rpc.StatusCode.DEADLINE_EXCEEDED or any(t in detail for t in TIMEOUTS):
            return "timeout", detail
        if code == rpc.StatusCode.OUT_OF_RANGE or "compacted" in detail:
            return "gone", detail
        if code == rpc.StatusCode.CANCELLED:
            return "unavailable", detail
        return "other", detail
    if isinstance(error, aetcd.ConnectionFailedError | grpc.aio.UsageError):  # UsageError: channel closed
        return "unavailable", str(error)
    if isinstance(error, aetcd.ConnectionTimeoutError | aetcd.WatchTimeoutError):
        return "timeout", str(error) or type(error).__name__
    return "other", str(error) or type(error).__name__


CLOSE_TIMEOUT = 2.0


async def _close_quietly(client: aetcd.Client) -> None:
    """Close a client, never for long: a gRPC channel to a dead or stalled member may
    not finish closing, and whoever closes (a failover, a shutdown) must go on."""
    try:
        await asyncio.wait_for(client.close(), CLOSE_TIMEOUT)
    except (Exception, TimeoutError) as e:  # noqa: BLE001 -- the member is gone already; nothing to tidy
        log.debug("closing an etcd client: %r", e)


class Reader:
    """Reads at one etcd revision: `rev`, or the revision of the first read when None."""

    def __init__(self, kv: EtcdKV, rev: int | None = None) -> None:
        self.kv = kv
        self.rev = rev

    async def _range(self, key: bytes, end: bytes | None, limit: int, keys_only: bool) -> Any:
        request = rpc.RangeRequest(key=key, range_end=end or b"", limit=limit, revision=self.rev or 0,
                                   keys_only=keys_only)

        async def run(client: aetcd.Client) -> Any:
            await client.connect()
            stub = client.kvstub
            if stub is None:  # closed meanwhile by a failover in another task
                raise aetcd.ConnectionFailedError("the etcd client was replaced")
            return await stub.Range(request, timeout=self.kv.timeout, metadata=client.metadata)
        reply = await self.kv.call("read", run)
        if self.rev is None:
            self.rev = int(reply.header.revision)
        return reply

    async def get_kv(self, key: bytes) -> tuple[bytes, int] | None:
        """(value, mod_revision) of `key`, or None."""
        reply = await self._range(key, None, 1, False)
        return (reply.kvs[0].value, int(reply.kvs[0].mod_revision)) if reply.kvs else None

    async def get(self, key: bytes) -> bytes | None:
        found = await self.get_kv(key)
        return None if found is None else found[0]

    async def between(self, start: bytes, end: bytes, keys_only: bool = False) -> KeyValues:
        """Every (key, value) with start <= key < end, in key order (paged, one revision)."""
        out: KeyValues = []
        while True:
            reply = await self._range(start, end, PAGE, keys_only)
            out += [(kv.key, kv.value) for kv in reply.kvs]
            if not reply.more or not reply.kvs:
                return out
            start = reply.kvs[-1].key + b"\0"

    async def prefix(self, prefix: bytes, keys_only: bool = False) -> KeyValues:
        return await self.between(prefix, range_end(prefix), keys_only)
