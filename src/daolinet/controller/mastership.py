"""Which switches this controller should be master of: the decision, pure.

Several controllers share the switches (docs/architecture.md "Roles"): every switch is
connected to every controller, and exactly one is master of it at a time.
Mastership is a key per dpid in the store, held by its master's lease; the
I/O lives in `mastership_etcd`.  This module only decides, from one reading of
the store (who holds which switch, which controllers are alive) and the
switches connected here, what to claim and what to let go:

- a free switch (no key: never claimed, or its master's lease expired) is
  claimed while this controller holds fewer than its fair share,
  ceil(switches / live controllers);
- among free switches each controller prefers its own order (rendezvous
  hashing on (controller, dpid)), so controllers claiming at the same time
  mostly ask for different switches; the store's transaction settles the rest;
- a switch held here but no longer connected here is let go, so a controller
  that still reaches it can take it;
- a controller holding two switches more than another (one joined) lets go
  of one switch per round, its least preferred, so the other can take it:
  moving a switch costs its new routes a round and a sync, established
  routes nothing;
- a switch left free for a while (`stale`: the controllers with room do not
  reach it) is claimed by whoever reaches it, share or not: never an orphan.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Plan:
    claim: tuple[int, ...]  # free switches to try to take, best first
    release: tuple[int, ...]  # held here, no longer connected here


def fair_share(switches: int, controllers: int) -> int:
    """Switches a controller may hold when `controllers` share `switches`."""
    return math.ceil(switches / max(1, controllers))


def preference(me: str, dpid: int) -> bytes:
    """This controller's rank of a switch: a stable pseudo-random order per controller."""
    return hashlib.sha256(f"{me}/{dpid:#x}".encode()).digest()


def plan(me: str, connected: Iterable[int], owners: Mapping[int, str], live: Iterable[str],
         stale: Iterable[int] = (), sticky: Iterable[int] = ()) -> Plan:
    """What to claim and release, from the switches connected here, the holder of every
    held switch, the live controllers (this one counts even if not listed yet), the
    switches free for a while (`stale`) and those this controller took because nobody
    else would (`sticky`: never handed over again, or they would go round in circles)."""
    here = set(connected)
    controllers = set(live) | {me}
    mine = {dpid for dpid, owner in owners.items() if owner == me}
    kept = mine & here
    share = fair_share(len(here | set(owners)), len(controllers))
    release = sorted(mine - here)
    free = sorted((dpid for dpid in here if dpid not in owners), key=lambda dpid: preference(me, dpid))
    claim = free[:max(0, share - len(kept))]
    claim += [dpid for dpid in free if dpid in set(stale) and dpid not in claim]
    counts = {controller: 0 for controller in controllers}
    for owner in owners.values():
        if owner in counts:
            counts[owner] += 1
    movable = kept - set(sticky)
    if not free and movable and len(kept) - min(counts.values()) >= 2:
        release.append(max(movable, key=lambda dpid: preference(me, dpid)))  # one a round, least preferred
    return Plan(claim=tuple(claim), release=tuple(sorted(release)))
