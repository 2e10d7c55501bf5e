"""Infrastructure is not a destination (flows/infra.py), on the fake flow table: from a
container on an ordinary network and one on an --external network, nothing reaches a
host's underlay address, a controller's or an etcd member's, whatever the protocol;
a published port mapping still does (its protocol and port only, both ways), ordinary
routes still work, and a controller recorded later is covered once the change is applied."""

from __future__ import annotations

import dataclasses

import pytest

from daolinet.decide.packet import NO_MATCH, PacketMeta
from daolinet.decide.route import Deny, External, MappedPort, decide
from daolinet.flows import render, wire
from daolinet.flows.infra import flows_for_portmap_client, guard_change, guard_prefixes
from daolinet.flows.proactive import flows_for_host_switch, guard_flows
from daolinet.flows.route import RouteEnds, flows_for_route
from daolinet.model import ControllerRecord, Endpoint, Host, Portmap, View
from daolinet.model.view import Change
from daolinet.ofp.codec import encode
from daolinet.pipeline import GATEWAY_MAC, Table
from daolinet.testing.factories import make_endpoint, make_host, make_network, synced_network
from daolinet.testing.fakeoftable import (
    IPPROTO_TCP,
    IPPROTO_UDP,
    FakeNetwork,
    Packet,
    Trip,
    ip_packet,
)

ROUTER_MAC = "02:18:00:00:00:fe"
CTL, ETCD = "198.18.0.200", "198.18.0.210"  # on the hosts' underlay segment
LATE = "203.0.113.7"  # a controller outside it
ICMP = 1
H1, H2 = (dataclasses.replace(make_host(i), underlay_gateway_mac=ROUTER_MAC) for i in (1, 2))
NET, EXT = make_network(1), dataclasses.replace(make_network(2), external=True)
A = make_endpoint(1, H1, NET, 2, "a")  # an ordinary network
E = make_endpoint(2, H1, EXT, 3, "e")  # an external one
WEB = make_endpoint(3, H2, NET, 2, "web")
B = make_endpoint(4, H2, NET, 3, "b")
CONTROLLER = ControllerRecord("c1", api=(f"{CTL}:8650",), openflow=(f"{CTL}:6653",), etcd=(f"{ETCD}:2379",))
HTTP = Portmap(1, "default", "http", "web", "h2", "tcp", 8080, 80)  # h2:8080 -> web:80, web on h2
DNS = Portmap(2, "default", "dns", "web", "h1", "udp", 5353, 53)  # h1:5353 -> web:53, web on h2
INFRA = [H1.underlay_ip, H2.underlay_ip, CTL, ETCD]


def make_view() -> View:
    view = View()
    view.load([NET, EXT, H1, H2, A, E, WEB, B, CONTROLLER, HTTP, DNS], rev=1)
    return view


def make_net(view: View) -> FakeNetwork:
    """Both hosts' switches with everything proactive the controller gives them."""
    return synced_network(view, [H1, H2])


def send(e: Endpoint, dst: str, proto: int, port: int = 0, **fields: int) -> Packet:
    assert e.ofport is not None
    pkt = ip_packet(e.ofport, e.mac, GATEWAY_MAC, e.ip, dst, proto=proto, dst_port=port)
    pkt.update(fields)
    return pkt


def host_of(e: Endpoint) -> Host:
    return H1 if e.host == "h1" else H2


def routed(net: FakeNetwork, trip: Trip) -> Trip:
    """What the underlay router does with the packets sent to it: on to the host whose
    underlay address or PIP pool holds the destination."""
    (_at, pkt), = trip.lost
    assert pkt["eth_dst"] == ROUTER_MAC, pkt
    owner = next(h for h in (H1, H2) if pkt["ipv4_dst"] == h.underlay_ip or
                 str(pkt["ipv4_dst"]).startswith(h.pip_pool.rsplit(".", 2)[0] + "."))
    return net.trace(owner.dpid, {**pkt, "eth_dst": owner.underlay_mac, "in_port": owner.uplink_ofport})


def plug_client(view: View, net: FakeNetwork, e: Endpoint, trip: Trip) -> None:
    """The controller's answer to the egress miss a packet to a mapping made."""
    [(dpid, reason, pkt)] = trip.controller
    assert (dpid, reason) == (host_of(e).dpid, "no_match")
    meta = PacketMeta(dpid, int(pkt["in_port"]), Table.EGRESS, NO_MATCH, str(pkt["eth_src"]),
                      str(pkt["eth_dst"]), 0x0800, str(pkt["ipv4_src"]), str(pkt["ipv4_dst"]),
                      int(pkt["ip_proto"]), 64, int(pkt.get("tcp_dst", pkt.get("udp_dst", 0))))
    d = decide(meta, view)
    assert isinstance(d, MappedPort), d
    net.apply(dpid, flows_for_portmap_client(d.src, host_of(e), d.pm, d.host, 30))


@pytest.mark.parametrize("src", [A, E], ids=["ordinary", "external"])
@pytest.mark.parametrize("dst", INFRA, ids=["h1", "h2", "controller", "etcd"])
@pytest.mark.parametrize(("proto", "port"), [(IPPROTO_TCP, 6653), (IPPROTO_TCP, 2379), (IPPROTO_UDP, 53),
                                             (ICMP, 0)], ids=["tcp", "tcp2", "udp", "icmp"])
def test_no_container_packet_reaches_infrastructure(src: Endpoint, dst: str, proto: int, port: int) -> None:
    net = make_net(make_view())
    trip = net.trace(host_of(src).dpid, send(src, dst, proto, port))
    assert not (trip.deliveries or trip.controller or trip.underlay or trip.lost), trip
    assert trip.results[0][1].path[-1].table == Table.GUARD  # before any route is looked up


@pytest.mark.parametrize("src", [A, E], ids=["ordinary", "external"])
def test_a_port_mapping_on_another_host_reaches_its_container_and_back(src: Endpoint) -> None:
    view = make_view()
    net = make_net(view)
    syn = send(src, H2.underlay_ip, IPPROTO_TCP, 8080)
    plug_client(view, net, src, net.trace(H1.dpid, syn))
    trip = net.trace(H1.dpid, syn)
    assert [(d.dpid, d.port) for d in trip.deliveries] == [(H2.dpid, WEB.ofport)], trip
    got = trip.deliveries[0].packet
    assert (got["ipv4_src"], got["ipv4_dst"], got["tcp_dst"], got["eth_dst"]) == (
        src.pip, WEB.ip, 80, WEB.mac)
    assert WEB.ofport is not None
    reply = ip_packet(WEB.ofport, WEB.mac, GATEWAY_MAC, WEB.ip, src.pip, proto=IPPROTO_TCP, dst_port=40000)
    back = routed(net, net.trace(H2.dpid, {**reply, "tcp_src": 80}))
    [(dpid, port, pkt)] = back.deliveries
    assert (dpid, port) == (H1.dpid, src.ofport)
    assert (pkt["ipv4_src"], pkt["tcp_src"], pkt["ipv4_dst"], pkt["eth_dst"]) == (
        H2.underlay_ip, 8080, src.ip, src.mac)  # as the container addressed it


def test_a_port_mapping_on_the_containers_own_host_reaches_its_container() -> None:
    view = make_view()
    net = make_net(view)
    query = send(A, H1.underlay_ip, IPPROTO_UDP, 5353)  # h1:5353 -> web:53 on h2, from a on h1
    plug_client(view, net, A, net.trace(H1.dpid, query))
    trip = net.trace(H1.dpid, query)
    [(dpid, port, pkt)] = trip.deliveries
    assert (dpid, port, pkt["ipv4_dst"], pkt["udp_dst"]) == (H2.dpid, WEB.ofport, WEB.ip, 53)
    assert pkt["ipv4_src"] == H1.underlay_ip  # the mapping's host, as for any client of it
    assert WEB.ofport is not None
    reply = ip_packet(WEB.ofport, WEB.mac, GATEWAY_MAC, WEB.ip, H1.underlay_ip, proto=IPPROTO_UDP,
                      dst_port=40000)
    [(dpid, port, pkt)] = net.trace(H2.dpid, {**reply, "udp_src": 53}).deliveries  # web's reply, to h1
    assert (dpid, port) == (H1.dpid, A.ofport)
    assert (pkt["ipv4_src"], pkt["udp_src"], pkt["ipv4_dst"]) == (H1.underlay_ip, 5353, A.ip)


def test_the_mapped_container_reaches_its_own_mapping_on_its_own_host() -> None:
    view = make_view()
    net = make_net(view)
    syn = send(WEB, H2.underlay_ip, IPPROTO_TCP, 8080, tcp_src=40000)
    plug_client(view, net, WEB, net.trace(H2.dpid, syn))
    [(dpid, port, pkt)] = net.trace(H2.dpid, syn).deliveries
    assert (dpid, port, pkt["ipv4_src"], pkt["ipv4_dst"], pkt["tcp_dst"]) == (
        H2.dpid, WEB.ofport, WEB.pip, WEB.ip, 80)
    assert WEB.ofport is not None
    reply = ip_packet(WEB.ofport, WEB.mac, GATEWAY_MAC, WEB.ip, WEB.pip, proto=IPPROTO_TCP, dst_port=40000)
    [(dpid, port, pkt)] = net.trace(H2.dpid, {**reply, "tcp_src": 80}).deliveries  # back out its own port
    assert (dpid, port, pkt["ipv4_src"], pkt["tcp_src"], pkt["ipv4_dst"]) == (
        H2.dpid, WEB.ofport, H2.underlay_ip, 8080, WEB.ip)


@pytest.mark.parametrize(("dst", "proto", "port"), [
    (H2.underlay_ip, IPPROTO_TCP, 8081), (H2.underlay_ip, IPPROTO_UDP, 8080), (H2.underlay_ip, ICMP, 0),
    (H1.underlay_ip, IPPROTO_TCP, 8080), (CTL, IPPROTO_TCP, 8080)])
def test_only_the_mapped_protocol_and_port_of_that_host_pass(dst: str, proto: int, port: int) -> None:
    view = make_view()
    net = make_net(view)
    plug_client(view, net, A, net.trace(H1.dpid, send(A, H2.underlay_ip, IPPROTO_TCP, 8080)))
    trip = net.trace(H1.dpid, send(A, dst, proto, port))
    assert not (trip.deliveries or trip.controller or trip.underlay), trip


def test_the_mapped_container_may_not_use_its_port_to_reach_infrastructure() -> None:
    net = make_net(make_view())
    for dst in (CTL, ETCD, H1.underlay_ip):  # from web:80 (mapped on h2, web on h2): no reply to these
        trip = net.trace(H2.dpid, send(WEB, dst, IPPROTO_TCP, 6653, tcp_src=80))
        assert not (trip.deliveries or trip.underlay or trip.lost), trip


def test_ordinary_routes_still_work_across_hosts() -> None:
    net = make_net(make_view())
    net.apply_steps(flows_for_route(RouteEnds(a=A, b=B, ha=H1, hb=H2, same_network=True), 60).steps)
    [(dpid, port, pkt)] = net.trace(H1.dpid, send(A, B.ip, IPPROTO_TCP, 22)).deliveries
    assert (dpid, port, pkt["ipv4_dst"], pkt["ipv4_src"]) == (H2.dpid, B.ofport, B.ip, A.ip)


def test_a_controller_recorded_later_is_kept_off_once_the_change_is_applied() -> None:
    view = make_view()
    net = make_net(view)
    late = ControllerRecord("c2", advertise=(LATE,), etcd=(f"{ETCD}:2379",))
    before = net.trace(H1.dpid, send(E, LATE, IPPROTO_TCP, 8650))
    assert [r for _, r, _ in before.controller] == ["no_match"]  # an outside address, so far
    assert isinstance(decide_for(view, E, LATE), External)

    def apply(old: ControllerRecord | None, new: ControllerRecord | None) -> None:
        was = guard_flows(view)
        view.apply(Change(rev=view.rev + 1, obj=(new or old), deleted=new is None))  # type: ignore[arg-type]
        adds, deletes = guard_change(was, guard_flows(view))
        for h in (H1, H2):
            net.apply(h.dpid, adds)
            for f in deletes:
                net[h.dpid].apply_delete(f.table, match=f.match, strict=True, priority=f.priority)

    apply(None, late)
    for src in (A, E):
        trip = net.trace(H1.dpid, send(src, LATE, IPPROTO_TCP, 8650))
        assert not (trip.deliveries or trip.controller or trip.underlay), trip
    assert isinstance(decide_for(view, E, LATE), Deny)
    apply(late, None)  # gone: its own address is no longer infrastructure, the etcd member it shared is
    assert net.trace(H1.dpid, send(E, LATE, IPPROTO_TCP, 8650)).controller
    assert not net.trace(H1.dpid, send(E, ETCD, IPPROTO_TCP, 2379)).controller


def test_every_hosts_switch_holds_the_same_drops_whatever_it_serves() -> None:
    view = make_view()
    drops = [{f.match.get("ipv4_dst") for f in flows_for_host_switch(view, h) if f.table == Table.GUARD
              and not f.actions and f.goto is None and f.priority} for h in (H1, H2)]
    assert drops == [{"198.18.0.0/18"}, {"198.18.0.0/18"}]  # one segment holds every address in INFRA


def test_the_guard_drops_per_segment_not_per_host() -> None:
    hosts = [f"198.18.{i >> 8}.{i & 0xFF}/18" for i in range(1, 1001)]
    assert guard_prefixes([h.split("/")[0] for h in hosts], hosts, ["10.1.0.0/24"]) == ["198.18.0.0/18"]
    # a controller elsewhere is dropped by its own address; two segments stay two
    assert guard_prefixes(["198.18.0.1", "198.19.0.1", "203.0.113.7"],
                          ["198.18.0.1/24", "198.19.0.1/24"], []) == \
        ["198.18.0.0/24", "198.19.0.0/24", "203.0.113.7"]


def test_a_segment_a_network_overlaps_drops_only_its_infrastructure_addresses() -> None:
    """Containers of a network inside the underlay segment still reach each other."""
    assert guard_prefixes(["198.18.0.1", "198.18.0.2", "198.18.0.3"], ["198.18.0.1/18"] * 3,
                          ["198.18.32.0/24"]) == ["198.18.0.1", "198.18.0.2/31"]


def decide_for(view: View, e: Endpoint, dst: str) -> object:
    assert e.ofport is not None
    meta = PacketMeta(host_of(e).dpid, e.ofport, Table.EGRESS, NO_MATCH, e.mac, GATEWAY_MAC, 0x0800, e.ip,
                      dst, IPPROTO_TCP, 64, 8650)
    return decide(meta, view)


def test_handing_a_packet_to_table_20_sets_in_port_through_its_nxm_view() -> None:
    """OVS refuses a set-field of the OXM in_port (OFPBAC_BAD_SET_ARGUMENT); its 16-bit NXM
    view is writable.  The fast encoder leaves such a flow to os-ken, byte for byte."""
    [out, _] = flows_for_portmap_client(A, H1, DNS, H1, 30)
    assert out.goto == Table.INGRESS
    msg = render.flow_add(out)
    assert any(getattr(a, "key", None) == "in_port_nxm" for a in msg.instructions[0].actions)
    assert wire.flow_add(out).data == encode(msg, 0)
