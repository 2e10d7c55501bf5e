"""A route's switch mastered by another controller: its FlowMods go through that master's API
(controller/peers.py -> POST /internal/switches/{dpid}/ofmsgs) and reach the switch, in order."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import httpx
import pytest

from daolinet.controller.api import create_app
from daolinet.controller.api.auth import hash_token
from daolinet.controller.context import Config
from daolinet.controller.controller import Controller
from daolinet.controller.peers import RemoteSwitch
from daolinet.controller.switch import SwitchSession
from daolinet.flows import render
from daolinet.flows.spec import FlowSpec, Match
from daolinet.ofp.codec import parser
from daolinet.pipeline import Table
from daolinet.store import SqliteStore
from daolinet.testing.asynctools import switch_end, until
from daolinet.testing.fakeswitch import FakeSwitch

TOKEN = "dl_test-peer-token"
DPID = 0xDA07
TIMEOUT = 5.0


def flow(port: int) -> FlowSpec:
    return FlowSpec(table=Table.CLASSIFY, priority=1, match=Match.of(in_port=port))


async def test_flowmods_reach_a_switch_through_its_master(tmp_path: Path) -> None:
    store = SqliteStore.open(str(tmp_path / "s.db"))
    await store.create_token("admin", None, hash_token(TOKEN), 1.0)
    master = Controller(store, Config())
    await master.start()
    a, b = socket.socketpair()
    fake = FakeSwitch(DPID, [(1, "p1", "02:00:00:00:00:01")])
    sw_reader, sw_writer = await asyncio.open_connection(sock=b)
    end = asyncio.create_task(switch_end(fake, sw_reader, sw_writer))
    run = asyncio.create_task(master.on_session(SwitchSession(*await asyncio.open_connection(sock=a))))
    await until(lambda: DPID in master.ctx.sessions, TIMEOUT)
    before = len(fake.flow_mods)

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(master))) as client:
        remote = RemoteSwitch(DPID, "http://master", TOKEN, client)
        remote.send(render.flow_add(flow(1)), render.flow_add(flow(2)))
        await remote.barrier()
        ports = [m.match["in_port"] for m in fake.flow_mods[before:]]
        assert ports == [1, 2] and fake.of_type(parser.OFPBarrierRequest)
        with pytest.raises(ConnectionError, match="409"):
            await RemoteSwitch(DPID + 1, "http://master", TOKEN, client).barrier()  # not mastered there

    sw_writer.close()  # the switch goes away
    await asyncio.wait_for(run, TIMEOUT)
    end.cancel()
    await asyncio.gather(end, return_exceptions=True)
    await master.stop()
    await store.close()
