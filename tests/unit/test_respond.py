"""The respond step (flows/respond.py) end to end, without a controller: PacketIn bytes
-> parse -> decide -> Response -> its FlowMods decoded back from their bytes into the
fake flow table, its PacketOuts played -> where the packet ends.  One test (or more)
per decision kind: a route across hosts, on one host and from an ingress miss; the
gateway's echo reply; time exceeded on either side; a relayed ICMP error; a deny; the
outside; a port mapping; and a packet ignored."""

from __future__ import annotations

import dataclasses
import ipaddress
from typing import Any

from os_ken.lib.packet import ethernet, icmp, icmpv6, ipv4, ipv6, packet, tcp, udp

from daolinet.controller.context import Config
from daolinet.decide.packet import INVALID_TTL, NO_MATCH, parse
from daolinet.decide.route import (
    Decision,
    Deny,
    EchoReply,
    External,
    Ignore,
    MappedPort,
    Plug,
    RelayIcmp,
    TimeExceeded,
    decide,
)
from daolinet.flows.render import NX_NAT_F_DST, NX_NAT_F_SRC
from daolinet.flows.respond import Response, respond
from daolinet.flows.spec import (
    Action,
    Conntrack,
    DecTtl,
    FlowSpec,
    Match,
    Move,
    Output,
    SetField,
    ToController,
)
from daolinet.model import Endpoint, Host, Portmap, Tenant, View
from daolinet.model.objects import DEFAULT_TENANT
from daolinet.ofp.codec import ofp, parser
from daolinet.pipeline import GATEWAY_MAC, OFPP_TABLE, Table
from daolinet.testing.factories import make_endpoint, make_host, make_network, synced_network
from daolinet.testing.fakeoftable import Delivery, FakeNetwork, Packet, Trip
from daolinet.testing.fakeswitch import decode_request

TCP, UDP, ICMP = 6, 17, 1
ROUTER_MAC = "02:18:00:00:00:fe"  # the underlay's router
ROUTER_IP = "198.18.63.254"
OUTSIDE = "198.19.255.1"
H1, H2 = (dataclasses.replace(make_host(i), underlay_gateway_mac=ROUTER_MAC) for i in (1, 2))
NET, EXT = make_network(1), dataclasses.replace(make_network(2), external=True)
A = make_endpoint(1, H1, NET, 2, "a")
E = make_endpoint(2, H1, EXT, 3, "e")  # on an external network
WEB = make_endpoint(3, H2, NET, 2, "web")
B = make_endpoint(4, H2, NET, 3, "b")
C = make_endpoint(5, H1, NET, 4, "c")  # a's neighbour on h1
HTTP = Portmap(1, DEFAULT_TENANT, "http", "web", "h2", "tcp", 8080, 80)  # h2:8080 -> web:80
CONFIG = Config(idle_timeout=30, drop_timeout=3)


def make_view() -> View:
    view = View()
    view.load([Tenant(DEFAULT_TENANT), NET, EXT, H1, H2, A, E, WEB, B, C, HTTP], rev=1)
    return view


VIEW = make_view()


def make_net() -> FakeNetwork:
    return synced_network(VIEW, [H1, H2])


# -- frames in, frames out ----------------------------------------------------------------------

def frame(eth_src: str, eth_dst: str, src: str, dst: str, proto: int = TCP, ttl: int = 64, port: int = 80,
          payload: Any = None) -> bytes:
    pkt = packet.Packet()
    pkt.add_protocol(ethernet.ethernet(dst=eth_dst, src=eth_src, ethertype=0x0800))
    pkt.add_protocol(ipv4.ipv4(src=src, dst=dst, proto=proto, ttl=ttl))
    if proto == TCP:
        pkt.add_protocol(tcp.tcp(src_port=40000, dst_port=port, bits=tcp.TCP_SYN))
    elif proto == UDP:
        pkt.add_protocol(udp.udp(src_port=40000, dst_port=port))
    else:
        pkt.add_protocol(payload or icmp.icmp(icmp.ICMP_ECHO_REQUEST, data=icmp.echo(1, 1, b"ping")))
    pkt.serialize()
    return bytes(pkt.data)


def ofport(e: Endpoint) -> int:
    assert e.ofport is not None
    return e.ofport


def sent_by(e: Endpoint, dst: str, **kw: Any) -> bytes:
    return frame(e.mac, GATEWAY_MAC, e.ip, dst, **kw)


def packet_of(data: bytes, in_port: int) -> Packet:
    """A frame as the fake flow table's packet."""
    pkt = packet.Packet(data)
    eth, ip = pkt.get_protocol(ethernet.ethernet), pkt.get_protocol(ipv4.ipv4)
    fields: Packet = {"in_port": in_port, "eth_src": eth.src, "eth_dst": eth.dst, "eth_type": eth.ethertype}
    if ip is not None:
        fields |= {"ipv4_src": ip.src, "ipv4_dst": ip.dst, "ip_ttl": ip.ttl, "ip_proto": ip.proto}
    elif (ip6 := pkt.get_protocol(ipv6.ipv6)) is not None:  # (IPv6: tests/unit/test_route6.py)
        fields |= {"ipv6_src": ip6.src, "ipv6_dst": ip6.dst, "ip_ttl": ip6.hop_limit, "ip_proto": ip6.nxt}
        if (message := pkt.get_protocol(icmpv6.icmpv6)) is not None:
            fields |= {"icmpv6_type": message.type_, "icmpv6_code": message.code}
    for name, proto in (("tcp", tcp.tcp), ("udp", udp.udp)):
        l4 = pkt.get_protocol(proto)
        if l4 is not None:
            fields |= {f"{name}_src": l4.src_port, f"{name}_dst": l4.dst_port}
    return fields


# -- FlowMod bytes back into FlowSpecs ------------------------------------------------------------

def action_of(a: Any) -> Action:
    if isinstance(a, parser.OFPActionOutput):
        return ToController(a.max_len) if a.port == ofp.OFPP_CONTROLLER else Output(a.port)
    if isinstance(a, parser.OFPActionSetField):
        return SetField("in_port" if a.key == "in_port_nxm" else a.key, a.value)
    if isinstance(a, parser.OFPActionDecNwTtl):
        return DecTtl()
    if isinstance(a, parser.NXActionRegMove):
        return Move(a.src_field, a.dst_field, a.n_bits)
    if isinstance(a, parser.NXActionCT):
        nat: dict[str, Any] = {}
        for n in a.actions:
            addr, port = n.range_ipv4_min or n.range_ipv6_min, getattr(n, "range_proto_min", None)
            if n.flags & NX_NAT_F_SRC:
                nat = {"nat_src": addr}
            elif n.flags & NX_NAT_F_DST:
                nat = {"nat_dst": addr, "nat_port": port}
            else:
                nat = {"nat": True}
        return Conntrack(zone=a.zone_ofs_nbits, commit=bool(a.flags & 1),
                         table=None if a.recirc_table == 0xFF else a.recirc_table, **nat)
    raise AssertionError(f"unexpected action {a}")


def spec_of(flow_mod_bytes: bytes) -> FlowSpec:
    msg = decode_request(flow_mod_bytes)
    assert isinstance(msg, parser.OFPFlowMod) and msg.command == ofp.OFPFC_ADD, msg
    fields: dict[str, Any] = {}
    for name, value in msg.match.items():
        if isinstance(value, tuple) and isinstance(value[0], str):  # an address and its mask
            value = str(ipaddress.IPv4Network(f"{value[0]}/{value[1]}"))
        fields[name] = value
    actions: list[Action] = []
    goto = None
    for inst in msg.instructions:
        if isinstance(inst, parser.OFPInstructionGotoTable):
            goto = Table(inst.table_id)
        else:
            actions += [action_of(a) for a in inst.actions]
    return FlowSpec(Table(msg.table_id), msg.priority, Match.of(**fields), tuple(actions), goto, msg.cookie,
                    msg.idle_timeout, msg.hard_timeout, bool(msg.flags & ofp.OFPFF_SEND_FLOW_REM))


# -- one PacketIn, answered -----------------------------------------------------------------------

def answer(at: Host, in_port: int, data: bytes, table: Table = Table.EGRESS,
           reason: int = NO_MATCH) -> tuple[Decision, Response]:
    meta = parse(at.dpid, in_port, table, reason, data)
    decision = decide(meta, VIEW)
    return decision, respond(decision, meta, data, VIEW, CONFIG)


def carry_out(net: FakeNetwork, response: Response) -> Trip:
    """What the controller does with a Response, on the fake switches: every step's
    FlowMods in order, then the PacketOuts (to a port: out it; to the table: through it;
    with no output: its actions, a conntrack commit, on that switch)."""
    for dpid, flows in response.steps:
        net.apply(dpid, [spec_of(f.data) for f in flows])
    trip = Trip()
    for dpid, packet_out in response.packet_outs:
        msg = decode_request(packet_out.data)
        assert isinstance(msg, parser.OFPPacketOut), msg
        action = msg.actions[-1]
        if not isinstance(action, parser.OFPActionOutput):  # an L4 route's commit: actions, no output
            done = net[dpid].packet_out([action_of(a) for a in msg.actions], packet_of(msg.data, msg.in_port))
            assert done.dropped
        elif action.port == OFPP_TABLE:
            through = net.trace(dpid, packet_of(msg.data, msg.in_port))
            trip.deliveries += through.deliveries
            trip.controller += through.controller
            trip.lost += through.lost
        else:
            trip.deliveries.append(Delivery(dpid, action.port, packet_of(msg.data, msg.in_port)))
    return trip


def delivered_to(trip: Trip) -> list[tuple[int, int, str, str, str]]:
    return [(d.dpid, d.port, str(d.packet["eth_dst"]), str(d.packet["ipv4_src"]), str(d.packet["ipv4_dst"]))
            for d in trip.deliveries]


def icmp_of(data: bytes) -> icmp.icmp:
    return packet.Packet(data).get_protocol(icmp.icmp)


def only_packet_out(response: Response) -> tuple[int, Any]:
    ((dpid, packet_out),) = response.packet_outs
    msg = decode_request(packet_out.data)
    (action,) = msg.actions
    return dpid, (action.port, bytes(msg.data))


# -- routes ---------------------------------------------------------------------------------------

def test_cross_host_route_from_an_egress_miss_delivers_the_first_packet_straight_away() -> None:
    net = make_net()
    decision, response = answer(H1, ofport(A), sent_by(A, B.ip))
    assert isinstance(decision, Plug)
    assert not response.confirm  # both switches at once, no barrier
    assert [dpid for dpid, _ in response.steps] == [H2.dpid, H1.dpid]
    assert response.route is not None and response.route.names == ("a", "b")
    first = carry_out(net, response)
    assert delivered_to(first) == [(H2.dpid, B.ofport, B.mac, A.ip, B.ip)]
    assert first.deliveries[0].packet["ip_ttl"] == 62  # two routers on the way, as the route does
    # the route is in: the next packet and the reply pass without the controller
    assert delivered_to(net.trace(H1.dpid, packet_of(sent_by(A, B.ip), A.ofport))) == \
        [(H2.dpid, ofport(B), B.mac, A.ip, B.ip)]
    assert delivered_to(net.trace(H2.dpid, packet_of(sent_by(B, A.ip, port=40000), B.ofport))) == \
        [(H1.dpid, ofport(A), A.mac, B.ip, A.ip)]


def test_cross_host_route_whose_ttl_would_run_out_takes_the_long_way() -> None:
    net = make_net()
    _, response = answer(H1, ofport(A), sent_by(A, B.ip, ttl=2))
    assert response.confirm  # each switch confirmed before the next, the packet's own last
    assert [dpid for dpid, _ in response.steps] == [H2.dpid, H1.dpid]
    trip = carry_out(net, response)
    assert not trip.deliveries and [reason for _, reason, _ in trip.controller] == ["invalid_ttl"]


def test_route_from_an_ingress_miss_is_installed_before_the_packet_is_reinjected_there() -> None:
    net = make_net()
    over_underlay = frame(H1.underlay_mac, H2.underlay_mac, A.pip, B.pip, ttl=63)
    decision, response = answer(H2, H2.uplink_ofport, over_underlay, Table.INGRESS)
    assert isinstance(decision, Plug)
    assert response.confirm and [dpid for dpid, _ in response.steps] == [H1.dpid, H2.dpid]
    assert delivered_to(carry_out(net, response)) == [(H2.dpid, B.ofport, B.mac, A.ip, B.ip)]


def test_same_host_route_reinjects_the_packet_after_its_flows() -> None:
    net = make_net()
    decision, response = answer(H1, ofport(A), sent_by(A, C.ip))
    assert isinstance(decision, Plug)
    assert [dpid for dpid, _ in response.steps] == [H1.dpid]
    assert response.route is not None and response.route.names == ("a", "c")
    assert delivered_to(carry_out(net, response)) == [(H1.dpid, C.ofport, C.mac, A.ip, C.ip)]


# -- the router's own answers ------------------------------------------------------------------------

def test_ping_to_the_gateway_is_answered_out_of_the_senders_port() -> None:
    decision, response = answer(H1, ofport(A), sent_by(A, NET.gateway, proto=ICMP))
    assert isinstance(decision, EchoReply) and not response.steps and response.route is None
    dpid, (port, data) = only_packet_out(response)
    assert (dpid, port) == (H1.dpid, A.ofport)
    assert packet_of(data, 0)["ipv4_src"] == NET.gateway and packet_of(data, 0)["ipv4_dst"] == A.ip
    assert icmp_of(data).type == icmp.ICMP_ECHO_REPLY


def test_ttl_run_out_on_the_source_switch_is_answered_by_the_gateway() -> None:
    decision, response = answer(H1, ofport(A), sent_by(A, B.ip, ttl=1), reason=INVALID_TTL)
    assert isinstance(decision, TimeExceeded) and not response.steps
    dpid, (port, data) = only_packet_out(response)
    assert (dpid, port) == (H1.dpid, A.ofport)
    got = packet_of(data, 0)
    assert (got["eth_dst"], got["ipv4_src"], got["ipv4_dst"]) == (A.mac, NET.gateway, A.ip)
    assert icmp_of(data).type == icmp.ICMP_TIME_EXCEEDED


def test_ttl_run_out_at_the_destination_host_is_answered_on_the_senders_switch() -> None:
    expired = frame(H1.underlay_mac, H2.underlay_mac, A.pip, B.pip, ttl=1)
    decision, response = answer(H2, H2.uplink_ofport, expired, Table.INGRESS, INVALID_TTL)
    assert isinstance(decision, TimeExceeded)
    dpid, (port, data) = only_packet_out(response)
    assert (dpid, port) == (H1.dpid, A.ofport)  # a's switch, not the one that asked
    assert packet_of(data, 0)["ipv4_src"] == H2.underlay_ip and icmp_of(data).type == icmp.ICMP_TIME_EXCEEDED


def test_an_underlay_routers_icmp_error_is_relayed_in_the_containers_own_terms() -> None:
    original = frame(H1.underlay_mac, ROUTER_MAC, A.pip, OUTSIDE, ttl=1)[14:14 + 28]
    error = icmp.icmp(icmp.ICMP_DEST_UNREACH, 1, data=icmp.dest_unreach(data=original))
    data = frame(ROUTER_MAC, H1.underlay_mac, ROUTER_IP, A.pip, proto=ICMP, payload=error)
    decision, response = answer(H1, H1.uplink_ofport, data, Table.INGRESS)
    assert isinstance(decision, RelayIcmp)
    dpid, (port, relayed) = only_packet_out(response)
    assert (dpid, port) == (H1.dpid, A.ofport)
    got = packet_of(relayed, 0)
    assert (got["eth_dst"], got["ipv4_dst"]) == (A.mac, A.ip)
    embedded = ipv4.ipv4.parser(icmp_of(relayed).data.data)[0]
    assert embedded.src == A.ip  # the container's own address, not its PIP


# -- flows on the source switch alone ------------------------------------------------------------------

def test_deny_puts_a_short_lived_drop_flow_on_the_source_switch() -> None:
    net = make_net()
    decision, response = answer(H1, ofport(A), sent_by(A, "10.1.0.99"))
    assert isinstance(decision, Deny) and not response.packet_outs and response.route is None
    ((dpid, (drop,)),) = response.steps
    assert dpid == H1.dpid and spec_of(drop.data).hard_timeout == CONFIG.drop_timeout
    carry_out(net, response)
    again = net.trace(H1.dpid, packet_of(sent_by(A, "10.1.0.99"), A.ofport))
    assert not (again.deliveries or again.controller or again.lost)  # dropped, the controller not asked


def test_the_outside_leaves_with_the_hosts_address_towards_the_router() -> None:
    net = make_net()
    decision, response = answer(H1, ofport(E), sent_by(E, OUTSIDE))
    assert isinstance(decision, External) and response.route is None
    trip = carry_out(net, response)
    [(dpid, out)] = trip.lost  # out of the uplink, to the router the fake underlay does not model
    assert (dpid, out["eth_dst"], out["ipv4_src"], out["ipv4_dst"]) == (H1.dpid, ROUTER_MAC, H1.underlay_ip,
                                                                        OUTSIDE)


def test_a_port_mapping_is_reached_through_the_clients_new_flows() -> None:
    net = make_net()
    decision, response = answer(H1, ofport(A), sent_by(A, H2.underlay_ip, port=8080))
    assert isinstance(decision, MappedPort) and [dpid for dpid, _ in response.steps] == [H1.dpid]
    trip = carry_out(net, response)
    assert delivered_to(trip) == [(H2.dpid, WEB.ofport, WEB.mac, A.pip, WEB.ip)]
    assert trip.deliveries[0].packet["tcp_dst"] == 80


def test_a_spoofed_packet_is_ignored_and_nothing_is_sent() -> None:
    spoofed = frame(A.mac, GATEWAY_MAC, "10.1.0.250", B.ip)
    decision, response = answer(H1, ofport(A), spoofed)
    assert isinstance(decision, Ignore)
    assert response == Response()
