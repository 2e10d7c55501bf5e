"""Mastership through etcd: the I/O around the `mastership.plan` decision.

Keys (under the store's prefix):
  controllers/<id>  -> the controller's API URL, put with its lease: who is alive
  master/<dpid>     -> the id of the switch's master, put with the master's lease

One lease per controller (TTL `ttl`, refreshed every ttl/4).  A claim is a
transaction "create master/<dpid> if absent", so at most one controller holds a
switch; when a master dies its lease expires, etcd deletes its keys and the next
round of a live controller claims them.  Each round reports the switches held
here, each with a generation id for the OpenFlow role request: the etcd revision
of the reading that confirmed the hold, so a later master always sends a higher
one than an earlier master could have.

Rounds run every `interval`, and at once when a master key goes: a watch on the
master prefix wakes the loop on every DELETE (a lease expired, a switch was let
go), so a dead master's switches are claimed as soon as etcd drops its keys,
not up to an interval later.  The poll stays: it is the fallback while the watch
is broken (a member died) and the only way to notice new switches connecting.

A crashed controller need not cost a whole lease TTL: each round probes the
API port of every peer mastering a switch connected here.  A refused
connection (twice in a row) means no process listens there any more - the
kernel answered for a dead one - so its lease is revoked at once and its
switches are claimed in the same round.  A peer that merely does not answer
(a partition, a dead machine) is left to its lease: only its expiry proves it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import urlsplit

from daolinet.controller.mastership import plan
from daolinet.errors import DaoliError
from daolinet.security.tls import TlsFiles
from daolinet.store.etcd_kv import EtcdKV, RevisionGone, parse_url

PROBE_TIMEOUT = 0.2
STALE_AFTER = 1.5  # seconds a connected switch may stay free before anyone reaching it takes it


async def refuses_connections(url: str) -> bool:
    """True only if the host actively refused a TCP connection to the URL's port
    (nothing listens: the process is gone); a timeout or any other error says nothing."""
    parts = urlsplit(url)
    if not parts.hostname or not parts.port:
        return False
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(parts.hostname, parts.port), PROBE_TIMEOUT)
    except ConnectionRefusedError:
        return True
    except (OSError, TimeoutError):
        return False
    writer.close()
    return False

log = logging.getLogger(__name__)

Held = dict[int, int]  # dpid -> generation id
OnHeld = Callable[[Held], None]


class EtcdMastership:
    def __init__(self, url: str, me: str, api_url: str = "", *, ttl: int = 2, interval: float = 0.25,
                 etcd_tls: TlsFiles | None = None) -> None:
        endpoints, prefix = parse_url(url)
        self.kv = EtcdKV(endpoints, url, timeout=max(1.0, ttl / 2), tls=etcd_tls)
        # The watch has a client of its own: a failover closes its client, which would cancel
        # a round's call in flight on a shared one (and a round's failover the watch).
        self._watch_kv = EtcdKV(endpoints, url, timeout=max(1.0, ttl / 2), tls=etcd_tls)
        self.me = me
        self.api_url = api_url
        self.ttl = ttl
        self.interval = interval
        self._p = prefix.encode()
        self._lease: int | None = None  # lease id
        self._since_refresh = 0.0
        self.held: Held = {}
        self.peers: dict[str, str] = {}  # live controller id -> API URL
        self.owners: dict[int, str] = {}  # dpid -> controller id, as last read
        self.last_rev = 0  # etcd revision of the last reading: a generation id for SLAVE requests
        self._wake = asyncio.Event()  # set by the watch when a master key goes: run a round now
        self._leases: dict[str, int] = {}  # live controller id -> its lease id
        self._refused: dict[str, int] = {}  # peer id -> consecutive refused probes
        self.refusals_to_revoke = 2
        self._free_since: dict[int, float] = {}  # free switch connected here -> first seen free
        self._sticky: set[int] = set()  # switches taken because nobody else would

    def _key(self, *parts: str) -> bytes:
        return self._p + "/".join(parts).encode()

    def master_key(self, dpid: int) -> bytes:
        return self._key("master", f"{dpid:016x}")

    def owner_url(self, dpid: int) -> str | None:
        """The API URL of another controller mastering `dpid` (None: nobody, or us)."""
        owner = self.owners.get(dpid)
        if owner is None or owner == self.me:
            return None
        return self.peers.get(owner) or None

    async def run(self, connected: Callable[[], Iterable[int]], on_held: OnHeld) -> None:
        """Round after round until cancelled; `on_held` gets the switches held after each.

        A round runs every `interval`, or at once when the watch sees a master key go."""
        watcher: asyncio.Task[None] | None = None
        try:
            while True:
                self._wake.clear()  # a key going from here on wakes the next sleep
                try:
                    held = await self.round(set(connected()))
                except (DaoliError, OSError) as e:
                    log.warning("mastership round failed: %s; holding nothing", e)
                    self._lease, held = None, {}
                if held != self.held:
                    self.held = held
                    on_held(dict(held))
                if watcher is None and self.last_rev:  # from the revision the first reading saw
                    watcher = asyncio.create_task(self._watch_masters(), name=f"mastership-watch-{self.me}")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.interval)
        finally:
            if watcher is not None:
                watcher.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await watcher
            await self.close()

    async def _watch_masters(self) -> None:
        """Wake the rounds whenever a master key is deleted; restarts after a broken watch."""
        prefix = self._key("master", "")
        while not self._watch_kv.closed:
            try:
                watch = self._watch_kv.watch(prefix, self.last_rev + 1)
                async with contextlib.aclosing(watch) as events:
                    async for event in events:
                        if event.kind == "DELETE":
                            self._wake.set()
            except RevisionGone:  # compacted: the next round's reading gives a newer revision
                pass
            except (DaoliError, OSError) as e:  # a member died: the poll goes on meanwhile
                log.debug("controller %s: mastership watch broke: %s", self.me, e)
            await asyncio.sleep(self.interval)

    async def round(self, connected: set[int]) -> Held:
        client = self.kv.client()
        await self._keep_lease(client)
        owners, live, rev = await self._read(client)
        if await self._revoke_crashed(connected, owners):
            owners, live, rev = await self._read(client)
        now = asyncio.get_running_loop().time()
        self._free_since = {dpid: self._free_since.get(dpid, now) for dpid in connected if dpid not in owners}
        stale = {dpid for dpid, since in self._free_since.items() if now - since >= STALE_AFTER}
        self._sticky &= connected
        decision = plan(self.me, connected, owners, live, stale, self._sticky)
        for dpid in decision.release:
            await self._release(client, dpid)
            owners.pop(dpid, None)
        for dpid in decision.claim:
            if await self._claim(client, dpid):
                owners[dpid] = self.me
                if dpid in stale:
                    self._sticky.add(dpid)
        if decision.claim:
            _, _, rev = await self._read(client)
        return {dpid: rev for dpid, owner in owners.items() if owner == self.me and dpid in connected}

    async def _keep_lease(self, client: Any) -> None:
        loop = asyncio.get_running_loop()
        if self._lease is not None and loop.time() - self._since_refresh < self.ttl / 4:
            return
        if self._lease is not None:
            lease_id = self._lease
            reply = await self.kv.call("lease refresh", lambda etcd: etcd.refresh_lease(lease_id))
            if reply is not None and reply.TTL > 0:
                self._since_refresh = loop.time()
                return
            log.warning("controller %s: lease expired; claiming anew", self.me)
        self._lease = (await self.kv.call("lease grant", lambda etcd: etcd.lease(self.ttl))).id
        await self.kv.call("register", lambda etcd: etcd.put(self._key("controllers", self.me),
                                                           self.api_url.encode(), lease=self._lease))
        self._since_refresh = loop.time()

    async def _read(self, client: Any) -> tuple[dict[int, str], set[str], int]:
        masters = await self.kv.call("read masters", lambda etcd: etcd.get_prefix(self._key("master", "")))
        ctrls = await self.kv.call("read controllers",
                                   lambda etcd: etcd.get_prefix(self._key("controllers", "")))
        owners = {int(kv.key.rsplit(b"/", 1)[1], 16): kv.value.decode() for kv in masters}
        self.peers = {kv.key.rsplit(b"/", 1)[1].decode(): kv.value.decode() for kv in ctrls}
        self._leases = {kv.key.rsplit(b"/", 1)[1].decode(): int(kv.lease) for kv in ctrls}
        rev = int(masters.header.revision)
        self.owners, self.last_rev = dict(owners), max(self.last_rev, rev)
        return owners, set(self.peers), rev

    async def _revoke_crashed(self, connected: set[int], owners: dict[int, str]) -> bool:
        """Revoke the lease of every peer mastering a switch connected here whose API
        port refused us `refusals_to_revoke` times in a row; True if any was revoked."""
        suspects = {owners[dpid] for dpid in connected if owners.get(dpid) not in (None, self.me)}
        self._refused = {peer: times for peer, times in self._refused.items() if peer in suspects}
        revoked = False
        for peer in sorted(suspects):
            url, lease = self.peers.get(peer), self._leases.get(peer)
            if not url or not lease:
                continue
            if not await refuses_connections(url):
                self._refused.pop(peer, None)
                continue
            self._refused[peer] = self._refused.get(peer, 0) + 1
            if self._refused[peer] >= self.refusals_to_revoke:
                log.warning("controller %s: controller %s refuses connections at %s: its process is "
                            "gone; revoking its lease", self.me, peer, url)
                await self._revoke(lease)
                self._refused.pop(peer, None)
                revoked = True
        return revoked

    async def _revoke(self, lease: int) -> None:
        await self.kv.call("revoke a dead peer's lease", lambda etcd: etcd.revoke_lease(lease))

    async def _claim(self, client: Any, dpid: int) -> bool:
        key = self.master_key(dpid)
        tx = client.transactions
        ok, _ = await self.kv.txn([tx.version(key) == 0], [tx.put(key, self.me.encode(), self._lease)], [])
        if ok:
            log.info("controller %s: master of switch %#x", self.me, dpid)
        return bool(ok)

    async def _release(self, client: Any, dpid: int) -> None:
        key = self.master_key(dpid)
        tx = client.transactions
        await self.kv.txn([tx.value(key) == self.me.encode()], [tx.delete(key)], [])
        log.info("controller %s: let go of switch %#x", self.me, dpid)

    async def close(self) -> None:
        """Revoke the lease (our switches are free at once) and close the client."""
        if self._lease is not None and not self.kv.closed:
            lease_id = self._lease
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.kv.client().revoke_lease(lease_id), 1.0)
        self._lease = None
        for kv in (self.kv, self._watch_kv):
            if not kv.closed:
                await kv.close()

