"""One connected switch: a Channel driven by an asyncio stream.

Sends are synchronous: queued into the channel and written to the transport
once per event-loop turn, so everything said to a switch while handling one
read (a burst of PacketIns) leaves in one write.  `barrier()` and `request()`
await the switch's answer by xid; `barrier_then(callback)` is the hot path's
variant without a task or a future.

A session over TLS knows who its peer is (`identity`, from the verified
certificate); the controller (controller.py, admission.py) decides whether that peer may
speak for the dpid the handshake names.  Once the controller closes a session,
nothing more it reads is handed on.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from daolinet.ofp import channel as ch
from daolinet.ofp.codec import ProtocolError
from daolinet.security.identity import Identity
from daolinet.security.tls import peer_identity

log = logging.getLogger(__name__)

EventHandler = Callable[["SwitchSession", ch.Event], Awaitable[None] | None]
BarrierCallback = Callable[[bool], None]  # True: the switch answered; False: it never will
REPLY_TIMEOUT = 10.0


class SwitchSession:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        ssl_object = writer.get_extra_info("ssl_object")
        self.tls = ssl_object is not None  # False only for tcp:/unix: (--insecure)
        self.identity: Identity | None = peer_identity(ssl_object)
        self.peer = peer_address(writer.get_extra_info("peername"))
        self.channel = ch.Channel()
        self.dpid: int | None = None
        self.ports: dict[int, ch.Port] = {}
        self._waiting: dict[int, asyncio.Future[Any]] = {}
        self._callbacks: dict[int, tuple[BarrierCallback, asyncio.TimerHandle]] = {}
        self._flush_pending = False
        self.closed = asyncio.Event()
        self._tasks: set[asyncio.Future[None]] = set()

    @property
    def name(self) -> str:
        return f"{self.dpid:#x}" if self.dpid is not None else "switch(handshaking)"

    def send(self, *msgs: Any) -> list[int]:
        xids = [self.channel.send(msg) for msg in msgs]
        self._flush()
        return xids

    def request_role(self, role: int, generation_id: int) -> int:
        xid = self.channel.request_role(role, generation_id)
        self._flush()
        return xid

    def send_raw(self, data: bytes) -> None:
        """Whole encoded messages from another controller (controller/peers.py); its xids, not ours."""
        self.channel.queue_raw(data)
        self._flush()

    def _flush(self) -> None:
        """Write what the channel holds at the end of this loop turn (once)."""
        if not self._flush_pending:
            self._flush_pending = True
            asyncio.get_running_loop().call_soon(self._write)

    def _write(self) -> None:
        self._flush_pending = False
        data = self.channel.data_to_send()
        if data and not self.writer.is_closing():
            self.writer.write(data)

    def barrier_then(self, callback: BarrierCallback) -> None:
        """Send a barrier; call callback(True) when the switch answers it, or
        callback(False) if it does not within REPLY_TIMEOUT or disconnects."""
        xid = self.channel.send_barrier()
        timer = asyncio.get_running_loop().call_later(REPLY_TIMEOUT, self._barrier_done, xid, False)
        self._callbacks[xid] = (callback, timer)
        self._flush()

    def _barrier_done(self, xid: int, ok: bool) -> None:
        entry = self._callbacks.pop(xid, None)
        if entry is not None:
            entry[1].cancel()
            entry[0](ok)

    async def barrier(self) -> None:
        """Wait until the switch has processed everything sent before."""
        xid = self.channel.send_barrier()
        await self._await_reply(xid)

    async def request(self, msg: Any) -> Any:
        """Send a request and wait for its (multipart-assembled) reply."""
        xid = self.channel.send(msg)
        return await self._await_reply(xid)

    async def _await_reply(self, xid: int) -> Any:
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiting[xid] = fut
        self._flush()
        try:
            return await asyncio.wait_for(fut, REPLY_TIMEOUT)
        finally:
            self._waiting.pop(xid, None)

    def resolve(self, event: ch.Event) -> bool:
        """Complete a waiting barrier/request; True if the event was a reply."""
        if isinstance(event, ch.BarrierReply | ch.MultipartDone):
            if event.xid in self._callbacks:
                self._barrier_done(event.xid, True)
                return True
            fut = self._waiting.get(event.xid)
            if fut is not None and not fut.done():
                fut.set_result(event)
            return True
        if isinstance(event, ch.SwitchError):
            if event.xid in self._callbacks:
                self._barrier_done(event.xid, False)
            fut = self._waiting.get(event.xid)
            if fut is not None and not fut.done():
                fut.set_exception(ProtocolError(event.describe()))
        return False

    def _task_done(self, task: asyncio.Future[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("switch %s: handler failed", self.name, exc_info=task.exception())

    def _dispatch(self, events: list[Any], on_event: EventHandler) -> None:
        for event in events:
            if self.writer.is_closing():
                return  # refused or replaced: the rest is not ours to act on
            if isinstance(event, ch.SwitchReady):
                self.dpid = event.dpid
                self.ports = {port.ofport: port for port in event.ports}
            if self.resolve(event):
                continue
            result = on_event(self, event)
            if result is not None:
                # Never await a handler here: it may wait for a reply
                # that only this loop can read.
                task = asyncio.ensure_future(result)
                self._tasks.add(task)
                task.add_done_callback(self._task_done)

    async def run(self, on_event: EventHandler) -> None:
        """Read until the connection ends; hand every event to on_event."""
        self._flush()  # our HELLO
        try:
            while True:
                data = await self.reader.read(65536)
                if not data or self.writer.is_closing():
                    break
                events = self.channel.receive_data(data)
                self._flush()  # handshake steps, echo replies
                self._dispatch(events, on_event)
        except ProtocolError as e:
            log.warning("switch %s: %s; closing", self.name, e)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        except Exception:
            log.exception("switch %s: unexpected failure; closing", self.name)
        finally:
            self.channel.close()
            for xid in list(self._callbacks):
                self._barrier_done(xid, False)
            for fut in self._waiting.values():
                if not fut.done():
                    fut.set_exception(ConnectionError(f"switch {self.name} disconnected"))
            self.writer.close()
            self.closed.set()


def peer_address(peername: Any) -> str:
    """'HOST:PORT' of a TCP peer ('[HOST]:PORT' for IPv6); a unix socket's peer as 'unix'."""
    if isinstance(peername, tuple) and len(peername) >= 2:
        host = str(peername[0])
        return f"[{host}]:{peername[1]}" if ":" in host else f"{host}:{peername[1]}"
    return "unix"
