"""A controller among several: slave until it holds a switch, then MASTER with the
generation id, syncing the switch and answering its PacketIns; slave again when it lets go."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

from daolinet.controller.context import Config
from daolinet.controller.controller import Controller
from daolinet.controller.switch import SwitchSession
from daolinet.ofp import channel as ch
from daolinet.ofp.codec import ofp
from daolinet.store import SqliteStore
from daolinet.testing.asynctools import switch_end, until
from daolinet.testing.fakeswitch import FakeSwitch

TIMEOUT = 5.0
DPID = 0xDA01


async def test_slave_until_held_then_master_with_the_generation(tmp_path: Path) -> None:
    ctrl = Controller(SqliteStore.open(str(tmp_path / "s.db")), Config())
    await ctrl.start()
    ctrl.held, ctrl.generation = {}, lambda: 3  # several controllers: nothing held yet
    packet_ins: list[int] = []

    def on_packet_in(session: SwitchSession, ev: ch.PacketIn) -> None:
        packet_ins.append(ev.in_port)
    ctrl.hotplug.on_packet_in = on_packet_in  # type: ignore[method-assign]
    a, b = socket.socketpair()
    fake = FakeSwitch(DPID, [(1, "p1", "02:00:00:00:00:01")])
    sw_reader, sw_writer = await asyncio.open_connection(sock=b)
    end = asyncio.create_task(switch_end(fake, sw_reader, sw_writer))
    session = SwitchSession(*await asyncio.open_connection(sock=a))
    run = asyncio.create_task(ctrl.on_session(session))

    await until(lambda: fake.role == ofp.OFPCR_ROLE_SLAVE, TIMEOUT)
    assert fake.generation_id == 3 and DPID in ctrl.ctx.connected and DPID not in ctrl.ctx.sessions
    fake.packet_in(1, b"\0" * 60)
    sw_writer.write(fake.data_to_send())
    await session.barrier()  # its reply comes after the PacketIn: that one has been handled

    ctrl.set_held({DPID: 7})
    await until(lambda: fake.role == ofp.OFPCR_ROLE_MASTER, TIMEOUT)
    assert fake.generation_id == 7 and ctrl.ctx.sessions[DPID] is session
    fake.packet_in(2, b"\0" * 60)
    sw_writer.write(fake.data_to_send())
    await until(lambda: packet_ins, TIMEOUT)
    assert packet_ins == [2]  # the one sent while slave was not acted on

    ctrl.generation = lambda: 9
    ctrl.set_held({})
    await until(lambda: fake.role == ofp.OFPCR_ROLE_SLAVE, TIMEOUT)
    assert fake.generation_id == 9 and DPID not in ctrl.ctx.sessions

    sw_writer.close()
    await asyncio.wait_for(run, TIMEOUT)
    end.cancel()
    await asyncio.gather(end, return_exceptions=True)
    assert DPID not in ctrl.ctx.connected
    await ctrl.stop()
    await ctrl.store.close()
