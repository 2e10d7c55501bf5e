"""Switches mastered by another controller, reached through that controller.

A route spans two switches, and with several controllers their masters may
differ; a slave may not modify flows (OpenFlow 1.3), so the controller plugging
a route hands the other switch's FlowMods to its master.  `RemoteSwitch` looks
like a `SwitchSession` to the hot-plug code (`send`, `barrier`, `barrier_then`, `name`): `send`
queues encoded messages, `barrier()` posts the queue to the master's API
(`POST /internal/switches/{dpid}/ofmsgs`), which writes them to the switch and
answers once the switch's barrier reply is in.  Sends not followed by a barrier
(revocations) are posted in the background, in order.  `settled(rev)` asks the
master whether its own work for a store revision is confirmed (an API call that
changed the policy answers only then).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any

import httpx

from daolinet.ofp.codec import Encoded, encode
from daolinet.security.tls import TlsFiles, client_context

log = logging.getLogger(__name__)

OwnerOf = Callable[[int], str | None]  # dpid -> API URL of its master (None: unknown or us)
TIMEOUT = 5.0


class RemoteSwitch:
    def __init__(self, dpid: int, url: str, token: str | None, client: httpx.AsyncClient) -> None:
        self.dpid = dpid
        self.url = url
        self._token = token
        self._client = client
        self._queue: list[bytes] = []
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def name(self) -> str:
        return f"{self.dpid:#x}@{self.url}"

    def send(self, *msgs: Any) -> list[int]:
        self._queue.extend(msg.data if isinstance(msg, Encoded) else encode(msg, 0) for msg in msgs)
        task = asyncio.ensure_future(self._post(barrier=False))
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return [0] * len(msgs)

    async def barrier(self, min_rev: int = 0) -> None:
        """Everything sent so far is applied by the switch; with `min_rev`, also what the
        master did on its way to that store revision (the flows of a change made here)."""
        await self._post(barrier=True, min_rev=min_rev)

    async def settled(self, rev: int) -> None:
        """The master has applied store revision `rev` and its switches confirmed the
        deletions it sent for it (controller/effects.py); it answers for all its switches."""
        reply = await self._client.post(
            f"{self.url}/internal/settled", json={"rev": rev},
            headers={"Authorization": f"Bearer {self._token}"} if self._token else None, timeout=TIMEOUT)
        if reply.status_code != 200:
            raise ConnectionError(f"controller {self.url} answered {reply.status_code}: {reply.text[:200]}")

    def barrier_then(self, callback: Callable[[bool], None]) -> None:
        """SwitchSession.barrier_then's counterpart: callback(ok) once the master confirmed."""
        task = asyncio.ensure_future(self.barrier())
        self._tasks.add(task)

        def done(finished: asyncio.Task[None]) -> None:
            self._done(finished)
            callback(not finished.cancelled() and finished.exception() is None)

        task.add_done_callback(done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("switch %s: forwarding failed: %s", self.name, task.exception())

    async def _post(self, barrier: bool, min_rev: int = 0) -> None:
        async with self._lock:  # one post at a time keeps the switch's order
            data, self._queue = b"".join(self._queue), []
            if not data and not barrier:
                return
            reply = await self._client.post(
                f"{self.url}/internal/switches/{self.dpid}/ofmsgs",
                json={"data": data.hex(), "barrier": barrier, "min_rev": min_rev},
                headers={"Authorization": f"Bearer {self._token}"} if self._token else None, timeout=TIMEOUT)
            if reply.status_code != 200:
                raise ConnectionError(f"master of switch {self.dpid:#x} at {self.url} answered "
                                      f"{reply.status_code}: {reply.text[:200]}")


class Peers:
    """The other controllers, by the switches they master; and all of them, for what each
    keeps of its own (the policy log: `gather`, `follow`)."""

    def __init__(self, owner_of: OwnerOf, token: str | None, tls: TlsFiles | None = None,
                 others: Callable[[], Iterable[str]] = tuple) -> None:
        self._owner_of = owner_of
        self._others = others  # the API URLs of the other live controllers
        self._token = token
        # Peers verify each other against the installation's CA; ours is a controller certificate.
        self._client = httpx.AsyncClient(verify=client_context(tls) if tls is not None else True)
        self._remotes: dict[tuple[int, str], RemoteSwitch] = {}

    def remote(self, dpid: int) -> RemoteSwitch | None:
        url = self._owner_of(dpid)
        if url is None:
            return None
        key = (dpid, url)
        if key not in self._remotes:
            self._remotes[key] = RemoteSwitch(dpid, url, self._token, self._client)
        return self._remotes[key]

    async def close(self) -> None:
        await self._client.aclose()

    @property
    def _headers(self) -> dict[str, str] | None:
        return {"Authorization": f"Bearer {self._token}"} if self._token else None

    def others(self) -> list[str]:
        return sorted(set(self._others()))

    async def gather(self, path: str, params: dict[str, Any]) -> dict[str, Any]:
        """GET `path` (an /internal route) from every other live controller: their JSON
        answers by URL.  One that fails or refuses is logged and left out: its part is
        missing, the answer is not held up."""
        async def one(url: str) -> Any:
            try:
                reply = await self._client.get(f"{url}{path}", params=params, headers=self._headers,
                                               timeout=TIMEOUT)
            except httpx.HTTPError as e:
                log.warning("controller %s did not answer GET %s: %r", url, path, e)
                return None
            if reply.status_code != 200:
                log.warning("controller %s answered GET %s with %d: %s", url, path, reply.status_code,
                            reply.text[:200])
                return None
            return reply.json()

        urls = self.others()
        answers = await asyncio.gather(*(one(url) for url in urls))
        return {url: a for url, a in zip(urls, answers, strict=True) if a is not None}

    async def follow(self, url: str, path: str, params: dict[str, Any]) -> AsyncIterator[Any]:
        """The objects another controller streams (newline-delimited JSON) from `path`, until
        it ends the stream; None for a blank line (a keep-alive; the first one says the
        stream is subscribed)."""
        async with self._client.stream("GET", f"{url}{path}", params=params, headers=self._headers,
                                       timeout=httpx.Timeout(TIMEOUT, read=None)) as reply:
            if reply.status_code != 200:
                raise ConnectionError(f"controller {url} answered {reply.status_code}")
            async for line in reply.aiter_lines():
                yield json.loads(line) if line.strip() else None
