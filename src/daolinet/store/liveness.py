"""Host liveness, decided: which hosts have lapsed.  Pure; the stores and the
controller's liveness loop (controller/liveness.py) do the I/O.

An agent heartbeats every `heartbeat_interval(ttl)` seconds or faster.  A host
whose heartbeats stopped for the host TTL has lapsed: a controller marks it
down (`Host.alive` False) through the store, every controller revokes the
routes of its containers, and no new route is plugged to them until the host
heartbeats (or registers) again, which marks it alive.

- SQLite (one controller): lapsed when the last heartbeat is older than the TTL.
- etcd (several controllers): every heartbeat keeps a lease of TTL seconds
  alive, holding the key alive/<host>; when the lease expires etcd deletes the
  key, and a host marked alive without its key has lapsed.  etcd keeps the
  time, so controllers' clocks do not matter.
"""

from __future__ import annotations

from collections.abc import Iterable

from daolinet.model.objects import Host

DEFAULT_HOST_TTL = 10  # seconds
MAX_HOST_TTL = 3600


def heartbeat_interval(ttl: float) -> float:
    """The longest gap between two heartbeats that keeps a host alive with margin."""
    return ttl / 3


def lapsed_by_clock(hosts: Iterable[Host], now: float, ttl: float) -> list[str]:
    """Hosts marked alive whose last heartbeat is more than `ttl` seconds before `now`."""
    return sorted(h.name for h in hosts if h.alive and now - h.last_seen > ttl)


def lapsed_by_lease(hosts: Iterable[Host], leased: Iterable[str]) -> list[str]:
    """Hosts marked alive that hold no lease any more."""
    held = set(leased)
    return sorted(h.name for h in hosts if h.alive and h.name not in held)
