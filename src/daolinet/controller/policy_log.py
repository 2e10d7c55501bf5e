"""The policy log: every denied first packet and every revocation of a live route by a
policy change, as one structured record.

Where it sits: the hot-plug shell (controller/hotplug.py) hands it each Deny decision
with the packet's meta, and the revalidation after a policy change each route it
revokes.  The records are built by pure functions (`deny_record`, `revoke_record`:
decision or route, view and `now` in, a JSON-ready dict out); `PolicyLog` only
rate-limits them per source container, keeps the newest in a bounded ring (one per
controller: each logs what it decided itself, controller/api/log_routes.py merges
the controllers' rings), writes each as one JSON line to the `daolinet.policy`
logger for operators to ship, and pushes it to the API's followers.

A record:
  {"seq": 7, "time": 1765000000.1, "tenant": "t1", "decision": "deny" | "revoke",
   "src": {"name": "web1", "ip": "10.1.0.2", "pip": "198.18.1.5"},
   "dst": {"name": "db1", "ip": "10.2.0.2", "pip": "198.18.2.5"}   (outside: {"ip": ...}),
   "proto": "tcp" | "udp" | "icmp" | "any" | "<number>", "sport": 40000, "dport": 80,
   "rule": "rule lockdown" | null, "reason": "rule lockdown denies tcp/80 ...",
   "suppressed": 0}
`suppressed`: records of the same source dropped by the rate limit since its last one.
ICMP records carry "icmp_type" instead of ports; a revocation knows the route's scope
(the server port) only, so its "sport" is null.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from daolinet.controller.routes import LiveRoute
from daolinet.decide.packet import PacketMeta
from daolinet.decide.policy import L4, PROTO_NAMES, PROTOCOLS
from daolinet.decide.route import Deny, verdict
from daolinet.model import Endpoint, View
from daolinet.model.family import ip_of, pip_of

log = logging.getLogger("daolinet.policy")

Record = dict[str, Any]
ICMP = PROTOCOLS["icmp"]
RING = 10_000  # records kept per controller
BURST = 20  # records a source may produce at once ...
RATE = 5.0  # ... and then per second
FOLLOW_QUEUE = 1_000  # records a slow follower may lag behind before the oldest are dropped


# -- the records (pure) ------------------------------------------------------------------------


def party(endpoint: Endpoint | None, ip: str, family: int = 4) -> dict[str, Any]:
    """One end of a record: a container's name and addresses (of the packet's family), or an
    address outside."""
    if endpoint is None:
        return {"ip": ip}
    return {"name": endpoint.name, "ip": ip_of(endpoint, family), "pip": pip_of(endpoint, family)}


def _traffic(proto: int, sport: int | None, dport: int | None, icmp_type: int | None) -> dict[str, Any]:
    if proto == 0:
        return {"proto": "any"}
    name = PROTO_NAMES.get(proto, str(proto))
    if proto == ICMP:
        return {"proto": name, "icmp_type": icmp_type}
    if name in ("tcp", "udp"):
        return {"proto": name, "sport": sport, "dport": dport}
    return {"proto": name}


def deny_record(decision: Deny, meta: PacketMeta, view: View, now: float) -> Record:
    """A denied first packet: who sent what to whom, and which rule or reason said no."""
    src = decision.src
    dst = decision.dst or view.by_ip.get((src.tenant, decision.dst_ip))
    return {"time": now, "tenant": src.tenant, "decision": "deny",
            "src": party(src, src.ip, meta.family), "dst": party(dst, decision.dst_ip, meta.family),
            **_traffic(meta.ip_proto, meta.l4_src, meta.l4_dst,
                       meta.icmp_type if meta.icmp_type >= 0 else None),
            "rule": decision.rule or None, "reason": decision.reason}


def why_revoked(a: Endpoint, b: Endpoint, view: View, scope: tuple[int, int] | None,
                client: int | None) -> tuple[str, str | None]:
    """The policy's answer for a route it no longer allows as installed: (reason, rule label).
    Asked the way decide/route.py's still_allowed asks, so it names the same rule."""
    if scope is None:
        v, opener = verdict(a, b, view, None), a
    else:
        opener, server = (a, b) if client == a.id else (b, a)
        proto, port = scope
        v = verdict(opener, server, view, L4(proto, 0, 0, port) if proto == ICMP else L4(proto, 0, port))
    if v is None:
        return "a network is gone", None
    rule = v.rule.label if v.rule is not None else None
    if v.allowed:
        how = f"only {'reply traffic' if v.reply else 'scoped routes'}" if v.scope else "another route"
        return f"the policy now allows {how}: {v.reason}", rule
    return v.reason, rule


def revoke_record(route: LiveRoute, view: View, now: float) -> Record | None:
    """A live route a policy change revoked, from its opener's side (None: an end is gone,
    a deletion rather than a policy decision)."""
    a, b = view.endpoints.get(route.a), view.endpoints.get(route.b)
    if a is None or b is None:
        return None
    src, dst = (b, a) if route.client == b.id else (a, b)
    reason, rule = why_revoked(a, b, view, route.scope, route.client)
    if route.scope is None:
        traffic = _traffic(0, None, None, None)
    else:
        proto, port = route.scope
        traffic = _traffic(proto, None, port, port if proto == ICMP else None)
    return {"time": now, "tenant": src.tenant, "decision": "revoke",
            "src": party(src, src.ip, route.family), "dst": party(dst, dst.ip, route.family), **traffic,
            "rule": rule, "reason": reason}


def matches(record: Record, tenant: str | None, container: str | None, since: float | None) -> bool:
    """Is `record` one a query for (tenant, container at either end, newer than since) wants?"""
    if tenant is not None and record["tenant"] != tenant:
        return False
    if container is not None and container not in (record["src"].get("name"), record["dst"].get("name")):
        return False
    return since is None or record["time"] > since


# -- the rate limit (pure but for its own state) ----------------------------------------------


@dataclass(slots=True)
class _Bucket:
    tokens: float
    stamp: float
    suppressed: int = 0


class RateLimit:
    """A token bucket per key: `burst` at once, then `rate` per second.  `take` answers
    None for a suppressed record (counted), else how many were suppressed before it."""

    def __init__(self, burst: int = BURST, rate: float = RATE, keys: int = 10_000) -> None:
        self.burst, self.rate, self.keys = burst, rate, keys
        self._buckets: dict[Any, _Bucket] = {}

    def take(self, key: Any, now: float) -> int | None:
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self.keys:
                self._prune(now)
            bucket = self._buckets[key] = _Bucket(float(self.burst), now)
        bucket.tokens = min(float(self.burst), bucket.tokens + (now - bucket.stamp) * self.rate)
        bucket.stamp = now
        if bucket.tokens < 1.0:
            bucket.suppressed += 1
            return None
        bucket.tokens -= 1.0
        suppressed, bucket.suppressed = bucket.suppressed, 0
        return suppressed

    def _prune(self, now: float) -> None:
        """Forget the buckets that are full again (nothing owed, nothing counted), else the oldest."""
        full = [k for k, b in self._buckets.items()
                if not b.suppressed and b.tokens + (now - b.stamp) * self.rate >= self.burst]
        for key in full or list(self._buckets)[: max(1, len(self._buckets) // 10)]:
            del self._buckets[key]


# -- the log ----------------------------------------------------------------------------------


class PolicyLog:
    """This controller's policy records: rate-limited, kept, logged and pushed to followers."""

    def __init__(self, size: int = RING, limit: RateLimit | None = None) -> None:
        self.records: deque[Record] = deque(maxlen=size)
        self.limit = limit or RateLimit()
        self.seq = 0
        self.counts: dict[str, int] = {}  # records written, by decision (controller/metrics.py)
        self.suppressed = 0  # records the rate limit dropped
        self.closed = False
        self._followers: set[asyncio.Queue[Record | None]] = set()

    def denied(self, decision: Deny, meta: PacketMeta, view: View, now: float) -> Record | None:
        return self.add(decision.src.id, lambda: deny_record(decision, meta, view, now), now)

    def revoked(self, route: LiveRoute, view: View, now: float) -> Record | None:
        opener = route.client if route.client is not None else route.a
        return self.add(opener, lambda: revoke_record(route, view, now), now)

    def add(self, source: int, build: Callable[[], Record | None], now: float) -> Record | None:
        """Rate-limit by `source` first (a suppressed record is never built), then keep,
        log and push what `build` makes."""
        suppressed = self.limit.take(source, now)
        if suppressed is None:
            self.suppressed += 1
            return None
        record = build()
        if record is None:
            return None
        self.seq += 1
        record = {"seq": self.seq, **record, "suppressed": suppressed}
        self.records.append(record)
        decision = record.get("decision", "other")
        self.counts[decision] = self.counts.get(decision, 0) + 1
        log.info("%s", json.dumps(record, separators=(",", ":")),
                 extra={"fields": record, "event": f"policy {decision}"})
        for queue in self._followers:
            if queue.full():  # a slow follower loses its oldest, not the controller its time
                queue.get_nowait()
            queue.put_nowait(record)
        return record

    def query(self, tenant: str | None = None, container: str | None = None, since: float | None = None,
              limit: int | None = None) -> list[Record]:
        """The newest `limit` records wanted, oldest first."""
        found = [r for r in self.records if matches(r, tenant, container, since)]
        return found[-limit:] if limit else found

    @contextlib.contextmanager
    def follow(self) -> Iterator[asyncio.Queue[Record | None]]:
        """A queue receiving every record added while the block runs; None once the log closes."""
        queue: asyncio.Queue[Record | None] = asyncio.Queue(FOLLOW_QUEUE)
        if self.closed:
            queue.put_nowait(None)
        self._followers.add(queue)
        try:
            yield queue
        finally:
            self._followers.discard(queue)

    def close(self) -> None:
        """The controller stops: every follower is told (None), so its stream ends."""
        self.closed = True
        for queue in self._followers:
            if queue.full():
                queue.get_nowait()
            queue.put_nowait(None)
