"""The agent's bootstrap of its own bridge (agent/bootstrap.py): which flows, what they
do to packets (fake flow table), when they go (next_step), and the shell against a
fake bridge on a unix socket that keeps the FlowMods it is sent."""

from __future__ import annotations

import asyncio
import struct
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import pytest

from daolinet.agent import bootstrap
from daolinet.agent.bootstrap import (
    BOOTSTRAP_COOKIE,
    SeenFlow,
    Step,
    bootstrap_flows,
    host_path_flows,
    mgmt_socket,
    next_step,
)
from daolinet.agent.service import HostInfo
from daolinet.errors import SystemFailure, Unauthorized
from daolinet.flows import render
from daolinet.flows.proactive import flows_for_host, flows_for_switch
from daolinet.model import Host
from daolinet.ofp.codec import DP, ofp, parser
from daolinet.pipeline import OFPP_LOCAL, Cookie
from daolinet.testing.asynctools import until
from daolinet.testing.factories import make_host
from daolinet.testing.fakeoftable import FakeSwitch as FakeTable
from daolinet.testing.fakeoftable import arp_request, ip_packet
from daolinet.testing.fakeswitch import FakeSwitch

HOST = make_host(1)
UP = HOST.uplink_ofport
PEER_MAC, PEER_IP = "02:18:00:00:00:09", "198.18.0.9"
TIMEOUT = 5.0


def seen(flows: list[Any]) -> list[SeenFlow]:
    return [SeenFlow.of(f) for f in flows]


# -- which flows, and what they do ----------------------------------------------------------


def test_the_cookie_is_none_of_daolinets_so_the_controllers_sync_leaves_it() -> None:
    assert Cookie.decode(BOOTSTRAP_COOKIE) is None
    assert {f.cookie for f in bootstrap_flows(UP)} == {BOOTSTRAP_COOKIE}


def test_an_empty_bridge_cuts_the_host_off_and_the_bootstrap_flows_reconnect_it() -> None:
    sw = FakeTable(HOST.dpid)
    to_host = ip_packet(UP, PEER_MAC, HOST.underlay_mac, PEER_IP, HOST.underlay_ip)
    from_host = ip_packet(OFPP_LOCAL, HOST.underlay_mac, PEER_MAC, HOST.underlay_ip, PEER_IP)
    assert sw.lookup(to_host).dropped and sw.lookup(from_host).dropped
    sw.apply(bootstrap_flows(UP))
    assert [port for port, _ in sw.lookup(to_host).outputs] == [OFPP_LOCAL]
    assert [port for port, _ in sw.lookup(from_host).outputs] == [UP]
    arp = arp_request(UP, PEER_MAC, PEER_IP, HOST.underlay_ip)
    assert [port for port, _ in sw.lookup(arp).outputs] == [OFPP_LOCAL]


def test_left_beside_the_controllers_flows_they_would_leak_the_uplinks_other_traffic() -> None:
    sw = FakeTable(HOST.dpid)
    sw.apply(flows_for_switch(HOST, []))
    sw.apply(bootstrap_flows(UP))
    ipv6 = {"in_port": UP, "eth_src": PEER_MAC, "eth_dst": HOST.underlay_mac, "eth_type": 0x86DD}
    assert [port for port, _ in sw.lookup(ipv6).outputs] == [OFPP_LOCAL]  # why they must go
    sw.apply_delete(cookie=BOOTSTRAP_COOKIE, cookie_mask=(1 << 64) - 1)
    assert sw.lookup(ipv6).dropped
    # ...and the controller's flows alone carry the host's own traffic both ways.
    to_host = ip_packet(UP, PEER_MAC, HOST.underlay_mac, PEER_IP, HOST.underlay_ip)
    from_host = ip_packet(OFPP_LOCAL, HOST.underlay_mac, PEER_MAC, HOST.underlay_ip, PEER_IP)
    arp = arp_request(UP, PEER_MAC, PEER_IP, HOST.underlay_ip)
    assert [port for port, _ in sw.lookup(to_host).outputs] == [OFPP_LOCAL]
    assert [port for port, _ in sw.lookup(from_host).outputs] == [UP]
    assert [port for port, _ in sw.lookup(arp).outputs] == [OFPP_LOCAL]


def test_the_host_path_is_the_base_flows_that_touch_local_or_the_uplink_in_classify() -> None:
    path = host_path_flows(HOST)
    assert len(path) == 5 and set(path) <= set(flows_for_host(HOST))
    assert all(f.priority > bootstrap.BOOTSTRAP_PRIORITY for f in path)


# -- when ---------------------------------------------------------------------------------------


def test_next_step_follows_the_bridge() -> None:
    base, ours = seen(flows_for_host(HOST)), seen(bootstrap_flows(UP))
    assert next_step(HOST, []) is Step.INSTALL
    assert next_step(HOST, ours[:1]) is Step.INSTALL  # half of it is no path
    assert next_step(HOST, ours) is Step.WAIT
    assert next_step(HOST, base + ours) is Step.REMOVE
    assert next_step(HOST, base + ours[:1]) is Step.REMOVE
    assert next_step(HOST, base) is Step.DONE


def test_base_flows_missing_one_piece_of_the_host_path_do_not_count() -> None:
    ours = seen(bootstrap_flows(UP))
    for missing in host_path_flows(HOST):
        rest = seen([f for f in flows_for_host(HOST) if f != missing])
        assert next_step(HOST, rest + ours) is Step.WAIT, missing
        assert next_step(HOST, rest) is Step.INSTALL, missing


def test_stale_base_flows_of_another_uplink_or_address_do_not_count() -> None:
    ours = seen(bootstrap_flows(UP))
    for stale in (replace(HOST, uplink_ofport=UP + 1), replace(HOST, underlay_ip="198.18.0.77")):
        assert next_step(HOST, seen(flows_for_host(stale)) + ours) is Step.WAIT


def test_the_same_match_under_another_cookie_or_priority_is_not_ours() -> None:
    other = [replace(f, cookie=0x1) for f in bootstrap_flows(UP)]
    assert next_step(HOST, seen(other)) is Step.INSTALL
    higher = [replace(f, priority=5) for f in bootstrap_flows(UP)]
    assert next_step(HOST, seen(higher)) is Step.INSTALL


def test_the_management_socket_sits_beside_the_db_socket() -> None:
    assert mgmt_socket("unix:/run/lab/h1/db.sock", "daolinet") == "/run/lab/h1/daolinet.mgmt"
    assert mgmt_socket("tcp:127.0.0.1:6640", "br0") == "/var/run/openvswitch/br0.mgmt"


# -- the shell, against a fake bridge ------------------------------------------------------------


def pack_flow_stats(fm: Any) -> bytes:
    """An ofp_flow_stats for a FlowMod, as a switch reports it."""
    body = bytearray()
    fm.match.serialize(body, 0)
    for inst in fm.instructions:
        inst.serialize(body, len(body))
    head = struct.pack(ofp.OFP_FLOW_STATS_0_PACK_STR, ofp.OFP_FLOW_STATS_0_SIZE + len(body), fm.table_id,
                       0, 0, fm.priority, fm.idle_timeout, fm.hard_timeout, fm.flags, fm.cookie, 0, 0)
    return head + bytes(body)


class Bridge(FakeSwitch):
    """A fake bridge with a flow table: adds replace by (table, priority, match), deletes by
    cookie; flow stats filtered by cookie as OVS does."""

    def __init__(self) -> None:
        super().__init__(HOST.dpid, [(UP, "uplink", "02:18:00:00:00:01")])
        self.table: dict[tuple[int, int, Any], Any] = {}

    def _answer(self, msg: Any) -> None:
        if isinstance(msg, parser.OFPFlowMod) and self.role != ofp.OFPCR_ROLE_SLAVE:
            self._flow_mod(msg)
        elif isinstance(msg, parser.OFPFlowStatsRequest):
            chosen = [fm for fm in self.table.values() if not (fm.cookie ^ msg.cookie) & msg.cookie_mask]
            self.multipart_reply(msg.xid, ofp.OFPMP_FLOW, b"".join(pack_flow_stats(fm) for fm in chosen))
        else:
            super()._answer(msg)

    def _flow_mod(self, fm: Any) -> None:
        if fm.command == ofp.OFPFC_ADD:
            self.table[(fm.table_id, fm.priority, bootstrap._match_key(fm.match))] = fm
        elif fm.command == ofp.OFPFC_DELETE:
            self.table = {k: f for k, f in self.table.items() if (f.cookie ^ fm.cookie) & fm.cookie_mask}

    def controller_syncs(self, host: Host) -> None:
        for f in flows_for_host(host):
            fm = render.flow_add(f)
            fm.serialize()
            self._flow_mod(parser.OFPFlowMod.parser(None, ofp.OFP_VERSION, ofp.OFPT_FLOW_MOD, len(fm.buf),
                                                    0, bytes(fm.buf)))

    def cookies(self) -> set[int]:
        return {fm.cookie for fm in self.table.values()}


class BridgeServer:
    """ovs-vswitchd's side of `<bridge>.mgmt`: one Bridge; `restart()` drops every
    connection and every flow, as a restarted ovs-vswitchd does."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.bridge = Bridge()
        self.connections = 0
        self.active = 0
        self.writers: list[asyncio.StreamWriter] = []

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.active += 1
        self.writers.append(writer)
        bridge = self.bridge
        bridge.got_hello = False
        bridge._send(parser.OFPHello(DP))
        writer.write(bridge.data_to_send())
        try:
            while data := await reader.read(65536):
                bridge.receive_data(data)
                writer.write(bridge.data_to_send())
        except ConnectionError:
            pass
        finally:
            self.active -= 1

    def restart(self) -> None:
        for w in self.writers:
            w.close()
        self.writers.clear()
        self.bridge.table.clear()


@pytest.fixture
async def server(tmp_path: Any) -> AsyncIterator[BridgeServer]:
    srv = BridgeServer(str(tmp_path / "b.mgmt"))
    srv.bridge.data_to_send()  # the constructor's HELLO: every connection gets its own
    unix = await asyncio.start_unix_server(srv.serve, srv.path)
    yield srv
    unix.close()
    srv.restart()
    await until(lambda: srv.active == 0, TIMEOUT, "fake bridge connections closed")


def info(host: Host = HOST) -> HostInfo:
    return HostInfo(name=host.name, dpid=host.dpid, underlay_ip=host.underlay_ip,
                    underlay_prefix=host.underlay_prefix, underlay_mac=host.underlay_mac,
                    pip_pool=host.pip_pool, uplink_ofport=host.uplink_ofport)


async def test_start_installs_then_removes_once_the_controller_synced(server: BridgeServer,
                                                                      tmp_path: Any) -> None:
    task = await bootstrap.start(f"unix:{tmp_path}/db.sock", "b", info())
    try:
        assert server.bridge.cookies() == {BOOTSTRAP_COOKIE}  # start returns with the path in place
        assert {(k[0], k[1]) for k in server.bridge.table} == {(0, bootstrap.BOOTSTRAP_PRIORITY)}
        server.bridge.controller_syncs(HOST)
        await until(lambda: BOOTSTRAP_COOKIE not in server.bridge.cookies(), TIMEOUT, "bootstrap flows gone")
        assert len(server.bridge.table) == len(flows_for_host(HOST))
        # ovs-vswitchd restarts under the running agent: the empty bridge is bootstrapped again.
        server.restart()
        await until(lambda: server.bridge.cookies() == {BOOTSTRAP_COOKIE}, TIMEOUT, "bootstrap again")
        assert server.connections == 2
    finally:
        task.cancel()


async def test_start_on_a_synced_bridge_leaves_no_bootstrap_flow(server: BridgeServer, tmp_path: Any) -> None:
    server.bridge.controller_syncs(HOST)
    task = await bootstrap.start(f"unix:{tmp_path}/db.sock", "b", info())
    try:
        assert BOOTSTRAP_COOKIE not in server.bridge.cookies()
        assert len(server.bridge.table) == len(flows_for_host(HOST))
    finally:
        task.cancel()


async def test_start_without_ovs_vswitchd_fails_in_one_line(tmp_path: Any) -> None:
    with pytest.raises(SystemFailure, match=f"cannot bootstrap bridge b through {tmp_path}/b.mgmt"):
        await bootstrap.start(f"unix:{tmp_path}/db.sock", "b", info(), timeout=0.5)


async def test_a_refused_flow_mod_is_an_error_naming_it(server: BridgeServer) -> None:
    link = await bootstrap.BridgeLink.open(server.path)
    try:
        server.bridge.role = ofp.OFPCR_ROLE_SLAVE  # a slave may not modify flows
        with pytest.raises(SystemFailure, match="OFPFlowMod"):
            await link.apply(bootstrap.install(UP))
    finally:
        link.close()



class Registering:
    """An AgentService whose register fails `failures` times with `error`."""

    def __init__(self, failures: int, error: Exception) -> None:
        self.failures = failures
        self.error = error
        self.calls = 0

    async def register(self) -> None:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error


async def test_register_tries_again_while_no_controller_is_reachable() -> None:
    service = Registering(2, SystemFailure("no controller API could answer POST /hosts"))
    await bootstrap.register(service, every=0.01)  # type: ignore[arg-type]
    assert service.calls == 3


async def test_register_gives_up_at_the_deadline_and_on_a_refusal_at_once() -> None:
    unreachable = Registering(1000, SystemFailure("unreachable"))
    with pytest.raises(SystemFailure, match="unreachable"):
        await bootstrap.register(unreachable, timeout=0.1, every=0.01)  # type: ignore[arg-type]
    refused = Registering(1000, Unauthorized("bad token"))
    with pytest.raises(Unauthorized):
        await bootstrap.register(refused, every=0.01)  # type: ignore[arg-type]
    assert refused.calls == 1
