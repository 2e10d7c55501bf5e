"""Neighbour discovery by flows on a real userspace ovs-vswitchd (flows/ndp.py): a private
OVS in a namespace, a container namespace on a veth, the host's flows sent as our own
bytes over the bridge's management socket.  A solicitation for the gateway comes back
as an advertisement with a valid ICMPv6 checksum (OVS recomputes it as it rewrites the
packet): checked on the captured frame, and by the container's kernel, which accepts it
and holds the gateway's MAC as a reachable router.  A router's solicitation for a PIP,
over the uplink, is answered with the host's MAC (a proxy, not a router)."""

from __future__ import annotations

import asyncio
import secrets
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from os_ken.lib.packet import ethernet, icmpv6, ipv6, packet, packet_utils

from daolinet.agent.bootstrap import BridgeLink, SeenFlow
from daolinet.flows import wire
from daolinet.flows.ndp import GATEWAY_FLAGS
from daolinet.flows.proactive import flows_for_switch
from daolinet.flows.spec import ETH_IPV6, FlowSpec
from daolinet.lab.ovs import PrivateOvs
from daolinet.model import Endpoint, Host
from daolinet.pipeline import GATEWAY_MAC
from daolinet.system import links, nsthread, procs
from daolinet.system.ovsdb import BridgeConfig, Ovsdb
from daolinet.testing.fixtures import need_root
from daolinet.testing.ofmatch import solicited_node

pytestmark = pytest.mark.integration

BRIDGE = "br-ndp"
MAC = "02:00:00:00:00:0a"
IP6 = "fd00:1::a"
GATEWAY6 = "fd00:1::1"
IPV6_ON = ("net.ipv6.conf.all.disable_ipv6=0", "net.ipv6.conf.default.disable_ipv6=0",
           "net.ipv6.conf.default.accept_dad=0", "net.ipv6.conf.default.accept_ra=0")
DEADLINE = 10.0
HOST_MAC = "02:18:00:00:00:01"
PIP6 = "2001:db8::1:a"
ROUTER6 = "2001:db8::fe"


@dataclass
class Bench:
    host: str
    container: str
    router: str  # on the uplink
    ovs: PrivateOvs
    ofport: int
    uplink: int


@pytest.fixture
def bench(tmp_path: Path) -> Iterator[Bench]:
    need_root()
    tag = secrets.token_hex(3)
    names = host, container, router = f"ndp-h-{tag}", f"ndp-c-{tag}", f"ndp-r-{tag}"
    pids: dict[str, int] = {}
    try:
        for ns in names:
            links.create_netns(ns)
        links.sysctl(container, *IPV6_ON)
        links.sysctl(router, *IPV6_ON)
        ovs = PrivateOvs(rundir=str(tmp_path / "ovs"), netns=host)
        pids = ovs.start()
        links.add_veth(host, "c0", container, "eth0")
        links.link_up(container, "eth0", mac=MAC, address=f"{IP6}/64")
        links.add_route(container, "::/0", GATEWAY6, dev="eth0")
        links.add_veth(host, "up0", router, "eth0")
        links.link_up(router, "eth0", address=f"{ROUTER6}/64")
        with Ovsdb(ovs.db_endpoint) as db:
            db.ensure_bridge(BridgeConfig(BRIDGE, datapath_id=1))
            ofport, uplink = db.add_port(BRIDGE, "c0"), db.add_port(BRIDGE, "up0")
        yield Bench(host, container, router, ovs, ofport, uplink)
    finally:
        procs.stop(pids.values())
        for ns in names:
            links.remove_netns(ns)


def dual_stack_host_flows(bench: Bench) -> list[FlowSpec]:
    host = Host(name="h1", dpid=1, underlay_ip="198.18.0.1", underlay_mac=HOST_MAC,
                pip_pool="198.18.1.0/24", pip_pool6="2001:db8::1:0/112", underlay_ip6="2001:db8::1",
                uplink_ofport=bench.uplink)
    e = Endpoint(id=10, name="c", tenant="t", network="n", ip="10.1.0.10", mac=MAC, host="h1",
                 pip="198.18.1.10", ofport=bench.ofport, ip6=IP6, pip6=PIP6)
    return flows_for_switch(host, [e])


async def install(bench: Bench, flows: list[FlowSpec]) -> set[SeenFlow]:
    """Send the flows as flows/wire.py encodes them; what the switch then reports."""
    link = await BridgeLink.open(bench.ovs.mgmt_sock(BRIDGE))
    try:
        await link.apply([wire.flow_add(f) for f in flows])  # raises on any OpenFlow error
        return set(await link.flows(0, 0))
    finally:
        link.close()


def solicitation(target: str) -> bytes:
    group, group_mac = solicited_node(target)
    pkt = packet.Packet()
    pkt.add_protocol(ethernet.ethernet(dst=group_mac, src=MAC, ethertype=ETH_IPV6))
    pkt.add_protocol(ipv6.ipv6(src=IP6, dst=group, nxt=58, hop_limit=255))
    pkt.add_protocol(icmpv6.icmpv6(type_=icmpv6.ND_NEIGHBOR_SOLICIT, data=icmpv6.nd_neighbor(
        dst=target, option=icmpv6.nd_option_sla(hw_src=MAC))))
    pkt.serialize()
    return bytes(pkt.data)


def raw_socket(container: str) -> socket.socket:
    def opened() -> socket.socket:
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_IPV6))
        sock.bind(("eth0", 0))
        return sock
    return nsthread.run_in(container, opened)


def advertisement_for(sock: socket.socket, target: str) -> bytes:
    """The first neighbour advertisement of `target` to arrive before the deadline."""
    end = time.monotonic() + DEADLINE
    while (left := end - time.monotonic()) > 0:
        sock.settimeout(left)
        frame, (_, _, pkttype, _, _) = sock.recvfrom(65535)
        if pkttype == socket.PACKET_OUTGOING:
            continue
        icmp = packet.Packet(frame).get_protocol(icmpv6.icmpv6)
        if icmp is not None and icmp.type_ == icmpv6.ND_NEIGHBOR_ADVERT and icmp.data.dst == target:
            return frame
    raise AssertionError(f"no advertisement of {target} within {DEADLINE} s")


def neighbour(netns: str, ip: str) -> str:
    return procs.run(procs.in_netns(netns, ["ip", "-6", "neigh", "show", ip, "dev", "eth0"])).strip()


def learnt(netns: str, ip: str) -> str:
    """Ping ip (nothing answers it: the solicitation is what counts), then wait for its
    neighbour entry to be REACHABLE; the entry as `ip -6 neigh` shows it."""
    subprocess.run(procs.in_netns(netns, ["ping", "-6", "-c", "1", "-W", "1", ip]),
                   capture_output=True, check=False)
    end = time.monotonic() + DEADLINE
    while "REACHABLE" not in (entry := neighbour(netns, ip)) and time.monotonic() < end:
        time.sleep(0.05)
    return entry


def test_a_solicitation_for_the_gateway_comes_back_as_a_valid_advertisement(bench: Bench) -> None:
    flows = dual_stack_host_flows(bench)
    seen = asyncio.run(install(bench, flows))
    assert {SeenFlow.of(f) for f in flows} <= seen, "the switch reports a flow unlike the one sent"

    sock = raw_socket(bench.container)
    try:
        sock.send(solicitation(GATEWAY6))
        frame = advertisement_for(sock, GATEWAY6)
    finally:
        sock.close()
    pkt = packet.Packet(frame)
    eth, ip = pkt.get_protocol(ethernet.ethernet), pkt.get_protocol(ipv6.ipv6)
    icmp = pkt.get_protocol(icmpv6.icmpv6)
    assert (eth.src, eth.dst, ip.src, ip.dst, ip.hop_limit) == (GATEWAY_MAC, MAC, GATEWAY6, IP6, 255)
    assert icmp.data.res << 29 == GATEWAY_FLAGS  # router, solicited, override
    assert isinstance(icmp.data.option, icmpv6.nd_option_tla) and icmp.data.option.hw_src == GATEWAY_MAC
    icmp_bytes = frame[14 + 40:14 + 40 + ip.payload_length]
    assert packet_utils.checksum_ip(ip, len(icmp_bytes), icmp_bytes) == 0, "bad ICMPv6 checksum"

    # the container's kernel, which drops ND with a bad checksum, learns the gateway
    entry = learnt(bench.container, GATEWAY6)
    assert f"lladdr {GATEWAY_MAC}" in entry and "router" in entry and "REACHABLE" in entry, entry
    # and a router on the uplink learns a PIP at the host's MAC
    entry = learnt(bench.router, PIP6)
    assert f"lladdr {HOST_MAC}" in entry and "router" not in entry and "REACHABLE" in entry, entry
