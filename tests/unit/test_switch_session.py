"""A real SwitchSession over a socketpair, with the fake switch driven by a
small task on the other end.  Nothing sleeps: tests await events and futures
under a timeout."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from daolinet.controller.switch import SwitchSession
from daolinet.flows import render
from daolinet.ofp import channel as ch
from daolinet.ofp.codec import DP, HEADER, ProtocolError, ofp, parser
from daolinet.testing.fakeswitch import FakeSwitch, PortSpec

TIMEOUT = 5.0
DPID = 0xDA01
PORTS: list[PortSpec] = [(1, "uplink", "02:18:00:00:00:01"), (2, "dl1", "02:00:00:00:00:01")]


class SwitchEnd:
    """The switch's end of the socket: feeds the FakeSwitch and writes its answers."""

    def __init__(self, fake: FakeSwitch, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.fake = fake
        self.reader = reader
        self.writer = writer
        self.changed = asyncio.Condition()

    async def run(self) -> None:
        self.flush()  # HELLO
        while data := await self.reader.read(65536):
            self.fake.receive_data(data)
            self.flush()
            async with self.changed:
                self.changed.notify_all()

    def flush(self) -> None:
        data = self.fake.data_to_send()
        if data:
            self.writer.write(data)

    def write_raw(self, data: bytes) -> None:
        self.writer.write(data)

    async def wait_for(self, predicate: Callable[[], bool]) -> None:
        """Until the fake switch has received something that makes predicate true."""
        async with self.changed:
            await asyncio.wait_for(self.changed.wait_for(predicate), TIMEOUT)

    async def close(self) -> None:
        if not self.writer.is_closing():
            self.writer.close()
        await self.writer.wait_closed()


Handler = Callable[[SwitchSession, ch.Event], Awaitable[None] | None]


class Harness:
    def __init__(self) -> None:
        self.events: asyncio.Queue[ch.Event] = asyncio.Queue()
        self.handler: Handler | None = None
        self.tasks: list[asyncio.Task[None]] = []
        self.ends: list[SwitchEnd] = []
        self.session: SwitchSession | None = None
        self.run_task: asyncio.Task[None] | None = None

    def on_event(self, session: SwitchSession, event: ch.Event) -> Awaitable[None] | None:
        self.events.put_nowait(event)
        return self.handler(session, event) if self.handler is not None else None

    async def start(self, handler: Handler | None = None, **fake: Any) -> tuple[SwitchSession, SwitchEnd]:
        self.handler = handler
        ctl_sock, sw_sock = socket.socketpair()
        ctl_reader, ctl_writer = await asyncio.open_connection(sock=ctl_sock)
        sw_reader, sw_writer = await asyncio.open_connection(sock=sw_sock)
        end = SwitchEnd(FakeSwitch(DPID, PORTS, **fake), sw_reader, sw_writer)
        self.ends.append(end)
        self.tasks.append(asyncio.create_task(end.run()))
        self.session = SwitchSession(ctl_reader, ctl_writer)
        self.run_task = asyncio.create_task(self.session.run(self.on_event))
        return self.session, end

    async def next_event(self, kind: type) -> Any:
        while True:
            event = await asyncio.wait_for(self.events.get(), TIMEOUT)
            if isinstance(event, kind):
                return event

    async def ready(self, handler: Handler | None = None, **fake: Any) -> tuple[SwitchSession, SwitchEnd]:
        session, end = await self.start(handler, **fake)
        await self.next_event(ch.SwitchReady)
        return session, end

    async def stop(self) -> None:
        for end in self.ends:
            await end.close()
        if self.run_task is not None:
            await asyncio.wait_for(self.run_task, TIMEOUT)
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


@pytest.fixture
async def harness() -> AsyncIterator[Harness]:
    h = Harness()
    yield h
    await h.stop()


async def test_switch_ready_reaches_the_handler(harness: Harness) -> None:
    session, _ = await harness.start()
    ready = await harness.next_event(ch.SwitchReady)
    assert ready == ch.SwitchReady(DPID, tuple(ch.Port(*p) for p in PORTS))
    assert session.dpid == DPID
    assert session.name == f"{DPID:#x}"
    assert session.ports == {p[0]: ch.Port(*p) for p in PORTS}


async def test_events_after_ready_reach_the_handler(harness: Harness) -> None:
    _, end = await harness.ready()
    end.fake.packet_in(2, b"\xff" * 42, table_id=10, reason=ofp.OFPR_ACTION)
    end.fake.port_status(ofp.OFPPR_DELETE, 2, "dl1", "02:00:00:00:00:01")
    end.flush()
    packet_in = await harness.next_event(ch.PacketIn)
    assert (packet_in.in_port, packet_in.data) == (2, b"\xff" * 42)
    status = await harness.next_event(ch.PortStatus)
    assert status == ch.PortStatus(ofp.OFPPR_DELETE, ch.Port(2, "dl1", "02:00:00:00:00:01"))


async def test_barrier_returns_after_the_switch_answers(harness: Harness) -> None:
    session, end = await harness.ready(answer_barriers=False)
    barrier = asyncio.create_task(session.barrier())
    await end.wait_for(lambda: bool(end.fake.held_barriers))
    assert not barrier.done()
    end.fake.release_barriers()
    end.flush()
    await asyncio.wait_for(barrier, TIMEOUT)
    assert not session._waiting  # no future left behind


async def test_sends_reach_the_switch_before_a_barrier_returns(harness: Harness) -> None:
    session, end = await harness.ready()
    session.send(render.packet_out_to_port(2, b"\x01" * 42))
    await asyncio.wait_for(session.barrier(), TIMEOUT)
    (packet_out,) = end.fake.packet_outs
    assert packet_out.actions[0].port == 2


async def test_request_flow_stats_returns_multipart_done(harness: Harness) -> None:
    session, end = await harness.ready()
    reply = await asyncio.wait_for(session.request(render.flow_stats_request(0, 0)), TIMEOUT)
    assert isinstance(reply, ch.MultipartDone)
    assert reply.body == []
    (request,) = end.fake.of_type(parser.OFPFlowStatsRequest)
    assert request.xid == reply.xid


async def test_switch_error_fails_the_waiting_barrier(harness: Harness) -> None:
    session, end = await harness.ready(answer_barriers=False)
    barrier = asyncio.create_task(session.barrier())
    await end.wait_for(lambda: bool(end.fake.held_barriers))
    (xid,) = end.fake.held_barriers
    end.fake.error(xid, ofp.OFPET_BAD_REQUEST, ofp.OFPBRC_EPERM)
    end.flush()
    with pytest.raises(ProtocolError, match="barrier request"):
        await asyncio.wait_for(barrier, TIMEOUT)
    error = await harness.next_event(ch.SwitchError)
    assert error.xid == xid


async def test_handler_that_awaits_a_barrier_does_not_deadlock(harness: Harness) -> None:
    done = asyncio.Event()
    seen_after: list[ch.Event] = []

    async def on_event(session: SwitchSession, event: ch.Event) -> None:
        if isinstance(event, ch.SwitchReady):
            await session.barrier()  # answered only if the session keeps reading
            done.set()
        elif done.is_set():
            seen_after.append(event)

    session, end = await harness.start(on_event)
    await asyncio.wait_for(done.wait(), TIMEOUT)
    assert end.fake.of_type(parser.OFPBarrierRequest)
    end.fake.flow_removed(7)
    end.flush()
    await harness.next_event(ch.FlowRemoved)
    assert not session.closed.is_set()


async def test_switch_closing_sets_closed_and_fails_pending_barriers(harness: Harness) -> None:
    session, end = await harness.ready(answer_barriers=False)
    barriers = [asyncio.create_task(session.barrier()) for _ in range(2)]
    await end.wait_for(lambda: len(end.fake.held_barriers) == 2)
    await end.close()
    await asyncio.wait_for(session.closed.wait(), TIMEOUT)
    for barrier in barriers:
        with pytest.raises(ConnectionError):
            await asyncio.wait_for(barrier, TIMEOUT)
    assert session.channel.state is ch.State.CLOSED
    with pytest.raises(ProtocolError):
        session.send(parser.OFPBarrierRequest(DP))


async def test_protocol_error_from_the_switch_closes_the_session(harness: Harness) -> None:
    session, end = await harness.ready(answer_barriers=False)
    barrier = asyncio.create_task(session.barrier())
    await end.wait_for(lambda: bool(end.fake.held_barriers))
    end.write_raw(HEADER.pack(0x05, ofp.OFPT_ECHO_REQUEST, HEADER.size, 1))  # OpenFlow 1.4
    await asyncio.wait_for(session.closed.wait(), TIMEOUT)
    with pytest.raises(ConnectionError):
        await asyncio.wait_for(barrier, TIMEOUT)
    await asyncio.wait_for(harness.tasks[-1], TIMEOUT)  # the switch end read EOF: the session hung up
