"""The agent's replica of its host's view, for its resolver (issue 18, "Names").

The agent answers its containers' DNS questions itself, never across the underlay, with
the pure `decide.names.resolve(view, asker, qname, qtype)`.  `ResolverView` keeps the
`View` that needs: it follows the controller's `GET /hosts/{name}/view` stream
(controller/api/host_view_routes.py; what is in it: controller/host_view.py), loads each
`snapshot` into a new View and swaps it in whole, and applies each `change` in order.

- `fresh`: a snapshot was loaded and the stream was heard from (an event or a keep-alive)
  within STALE_AFTER seconds.  The resolver answers SERVFAIL when it is not: it fails
  closed rather than answer from a view that may still hold a revoked group.  A dropped
  stream does not make the view stale at once: a controller failover within STALE_AFTER
  costs no failed lookup.
- `asker(ofport)`: the endpoint on this host's bridge port `ofport` (a PacketIn's in_port,
  anti-spoofed by the bridge), or None.

Connection: through the agent's ControllerClient (its host credential, TLS and controller
list).  The stream's read timeout is STALE_AFTER: a controller that goes silent is left.
After any failure (unreachable, refused, a malformed event, the stream ending) it tries the
next controller after a backoff that doubles from BACKOFF_MIN to BACKOFF_MAX, reset by
each snapshot loaded.  A malformed event changes nothing: the view is replaced only by a
whole decoded snapshot, and a change is decoded before it is applied.

Server-Sent Events are read by `SseParser` (the few lines of the format the controller
writes: `event:`, `data:`, comments, blank line; no SSE client library is in our stack).
`ResolverView.for_agent(client, host)` is what the agent makes; it runs `run()` (`start()` and
`stop()` run it as a task).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx

from daolinet.agent.client import CONNECT_TIMEOUT, ControllerClient, raise_for
from daolinet.errors import DaoliError, InvalidInput, SystemFailure
from daolinet.model import Endpoint, View
from daolinet.store.codec import change_from_json, obj_from_json

log = logging.getLogger(__name__)
STALE_AFTER = 10.0  # seconds without a line from the stream: the view may be stale
BACKOFF_MIN, BACKOFF_MAX = 0.5, 10.0  # seconds between reconnections, doubling


class SseParser:
    """Server-Sent Events, line by line: `line()` returns (event, data) at the blank line
    ending an event with data, else None (comments and fields not used here are skipped)."""

    def __init__(self) -> None:
        self._event = "message"
        self._data: list[str] = []

    def line(self, line: str) -> tuple[str, str] | None:
        if not line:
            event, data = self._event, self._data
            self._event, self._data = "message", []
            return (event, "\n".join(data)) if data else None
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
        return None


class ResolverView:
    """A replica of host `host`'s view (see the module docstring)."""

    def __init__(self, client: ControllerClient, host: str, *,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        self.client = client
        self.host = host
        self.view = View()
        self.loaded = False  # a snapshot was loaded
        self.snapshots = 0  # snapshots loaded (for tests and metrics)
        self._clock = clock
        self._sleep = sleep
        self._heard = float("-inf")  # when the stream last sent a line
        self._task: asyncio.Task[None] | None = None

    @classmethod
    def for_agent(cls, client: ControllerClient, host: str) -> ResolverView:
        """The agent's resolver's replica: call `start()` once its host is registered."""
        return cls(client, host)

    @property
    def fresh(self) -> bool:
        return self.loaded and self._clock() - self._heard <= STALE_AFTER

    def asker(self, ofport: int) -> Endpoint | None:
        """The endpoint plugged into this host's bridge at `ofport`, if any."""
        me = self.view.hosts.get(self.host)
        if me is None:
            return None
        found = self.view.by_port.get((me.dpid, ofport))
        return found if found is not None and found.host == self.host else None

    # -- the stream's events ---------------------------------------------------------

    def heard(self) -> None:
        self._heard = self._clock()

    def on_event(self, kind: str, data: str) -> None:
        """One event of the stream; InvalidInput (nothing changed) if it is malformed."""
        try:
            body = json.loads(data)
        except ValueError:
            raise InvalidInput(f"malformed {kind} event: not JSON: {data[:200]}") from None
        if kind == "snapshot":
            self._load(body)
        elif kind == "change":
            if not self.loaded:
                raise InvalidInput("a change before the first snapshot")
            self.view.apply(change_from_json(body))
        else:
            log.debug("host view stream: event %r skipped", kind)

    def _load(self, body: Any) -> None:
        if not isinstance(body, dict) or not isinstance(body.get("objects"), list) \
                or not isinstance(body.get("rev"), int):
            raise InvalidInput(f"malformed snapshot: {str(body)[:200]}")
        try:
            objs = [obj_from_json(str(o["kind"]), o["obj"]) for o in body["objects"]]
        except (TypeError, KeyError) as e:
            raise InvalidInput(f"malformed object in a snapshot: {e!r}") from None
        view = View()
        view.load(objs, body["rev"])
        view.rev = body["rev"]  # also when nothing is in scope
        self.view, self.loaded = view, True
        self.snapshots += 1

    async def consume(self, lines: AsyncIterator[str]) -> None:
        """Apply a stream's lines until it ends (which is a failure: it never should)."""
        parser = SseParser()
        async for line in lines:
            self.heard()
            found = parser.line(line)
            if found is not None:
                self.on_event(*found)
        raise SystemFailure("the host view stream ended")

    # -- following the controllers ------------------------------------------------------

    async def follow(self, url: str) -> None:
        """Stream `url`'s view of this host until it fails (it always does, eventually)."""
        timeout = httpx.Timeout(STALE_AFTER, connect=CONNECT_TIMEOUT, read=STALE_AFTER)
        async with self.client.http.stream("GET", f"{url}/hosts/{self.host}/view", timeout=timeout) as resp:
            if resp.status_code != 200:
                await resp.aread()
                raise_for(resp)
                raise SystemFailure(f"controller API {url} answered {resp.status_code}")
            await self.consume(resp.aiter_lines())

    async def run(self) -> None:
        """Follow the controllers forever, reconnecting with backoff."""
        url, delay = self.client.ring.current, BACKOFF_MIN
        while True:
            before = self.snapshots
            try:
                await self.follow(url)
            except (DaoliError, httpx.HTTPError, OSError) as e:
                log.warning("host view stream from %s failed: %s", url, str(e) or type(e).__name__)
            except Exception:  # a bug must not end the replica: say it, go on
                log.exception("host view stream from %s failed", url)
            if self.snapshots > before:
                delay = BACKOFF_MIN  # it worked for a while: come back soon
            url = self.client.url_after(url)
            await self._sleep(delay)
            delay = min(delay * 2, BACKOFF_MAX)

    def start(self) -> asyncio.Task[None]:
        if self._task is None or self._task.done():
            self._task = asyncio.ensure_future(self.run())
        return self._task

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
