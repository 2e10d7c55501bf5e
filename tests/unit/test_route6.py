"""IPv6 hot-plug routes end to end on the fake flow table, as tests/unit/test_respond.py does
for IPv4: an IPv6 PacketIn's bytes -> parse -> decide -> respond -> the FlowMods decoded into
fake switches (through the controller's HotPlug where the route table matters) -> where
packets end, with which addresses and hop limit.  Two hosts, a dual-stack network, and a
second tenant reusing the same IPv6 subnet."""

from __future__ import annotations

import dataclasses
from typing import Any

from os_ken.lib.packet import ethernet, icmpv6, ipv6, packet, packet_utils, tcp
from prometheus_client import CollectorRegistry
from test_respond import ROUTER_MAC, carry_out, frame, only_packet_out, packet_of, spec_of

from daolinet.controller.context import Config, Context
from daolinet.controller.hotplug import HotPlug
from daolinet.controller.metrics import Metrics
from daolinet.controller.routes import family_of_match, scope_of_match
from daolinet.decide.packet import INVALID_TTL, NO_MATCH, parse
from daolinet.decide.route import Decision, Deny, EchoReply, Ignore, Plug, RelayIcmp, TimeExceeded, decide
from daolinet.flows import render
from daolinet.flows.respond import Response, respond
from daolinet.model import Endpoint, Group, Host, Network, Tenant, View
from daolinet.model.objects import DEFAULT_TENANT
from daolinet.ofp.channel import PacketIn
from daolinet.ofp.codec import ofp, parser
from daolinet.pipeline import GATEWAY_MAC, Table, route_cookie
from daolinet.testing.factories import make_endpoint, make_host, make_network, synced_network
from daolinet.testing.fakeoftable import FakeNetwork, Trip
from daolinet.testing.fakeswitch import decode_request

TCP, ICMPV6 = 6, 58
CONFIG = Config(idle_timeout=30, drop_timeout=3)


def dual_host(i: int) -> Host:
    return dataclasses.replace(make_host(i), underlay_gateway_mac=ROUTER_MAC, underlay_ip6=f"2001:db8::{i}",
                               pip_pool6=f"2001:db8::{i}:0/112")


def dual_network(n: int, tenant: str = DEFAULT_TENANT) -> Network:
    return dataclasses.replace(make_network(n, tenant), subnet6=f"fd00:{n}::/64", gateway6=f"fd00:{n}::1")


def dual(eid: int, host: Host, net: Network, ofport: int, name: str, ip6: str = "") -> Endpoint:
    e = make_endpoint(eid, host, net, ofport, name)
    return dataclasses.replace(e, ip6=ip6 or f"fd00:{net.id}::{10 + eid:x}",
                               pip6=f"2001:db8::{host.dpid}:{10 + eid:x}")


H1, H2 = dual_host(1), dual_host(2)
NET, NET2 = dual_network(1), dual_network(2)
V4NET = make_network(3)  # IPv4 only
A = dual(1, H1, NET, 2, "a")
B = dual(2, H2, NET, 2, "b")
C = dual(3, H1, NET, 3, "c")  # a's neighbour on h1
D = dual(4, H1, NET2, 4, "d")  # on h1, another network of the tenant
V = make_endpoint(5, H2, V4NET, 3, "v")  # IPv4 only
# Tenant t2 reuses fd00:1::/64: x and y have a's and b's IPv6 addresses (their own PIPs).
T2NET = dual_network(1, "t2")
X = dual(6, H1, T2NET, 5, "x", ip6=A.ip6)
Y = dual(7, H2, T2NET, 4, "y", ip6=B.ip6)


def make_view(*hosts: Host) -> View:
    view = View()
    view.load([Tenant(DEFAULT_TENANT), Tenant("t2"), NET, NET2, V4NET, T2NET, *(hosts or (H1, H2)),
               A, B, C, D, V, X, Y], rev=1)
    return view


VIEW = make_view()


def make_net() -> FakeNetwork:
    return synced_network(VIEW, [H1, H2])


def frame6(eth_src: str, eth_dst: str, src: str, dst: str, proto: int = TCP, hop_limit: int = 64,
           sport: int = 40000, dport: int = 80, message: Any = None) -> bytes:
    pkt = packet.Packet()
    pkt.add_protocol(ethernet.ethernet(dst=eth_dst, src=eth_src, ethertype=0x86DD))
    pkt.add_protocol(ipv6.ipv6(src=src, dst=dst, nxt=proto, hop_limit=hop_limit))
    if proto == TCP:
        pkt.add_protocol(tcp.tcp(src_port=sport, dst_port=dport, bits=tcp.TCP_SYN))
    else:
        ping = icmpv6.icmpv6(icmpv6.ICMPV6_ECHO_REQUEST, data=icmpv6.echo(1, 1, b"ping"))
        pkt.add_protocol(message or ping)
    pkt.serialize()
    return bytes(pkt.data)


def sent_by(e: Endpoint, dst: str, **kw: Any) -> bytes:
    return frame6(e.mac, GATEWAY_MAC, e.ip6, dst, **kw)


def answer(at: Host, in_port: int, data: bytes, table: Table = Table.EGRESS, reason: int = NO_MATCH,
           view: View = VIEW) -> tuple[Decision, Response]:
    meta = parse(at.dpid, in_port, table, reason, data)
    decision = decide(meta, view)
    return decision, respond(decision, meta, data, view, CONFIG)


def where(trip: Trip) -> list[tuple[int, int, str, str, str, Any]]:
    return [(d.dpid, d.port, str(d.packet["eth_dst"]), str(d.packet["ipv6_src"]), str(d.packet["ipv6_dst"]),
             d.packet["ip_ttl"]) for d in trip.deliveries]


def port(e: Endpoint) -> int:
    assert e.ofport is not None
    return e.ofport


def valid_icmpv6(data: bytes) -> tuple[ipv6.ipv6, icmpv6.icmpv6]:
    """The ICMPv6 message of a frame, os-ken's parse; its checksum over the pseudo-header holds."""
    pkt = packet.Packet(data)
    ip, message = pkt.get_protocol(ipv6.ipv6), pkt.get_protocol(icmpv6.icmpv6)
    assert ip is not None and message is not None
    body = data[14 + 40:14 + 40 + ip.payload_length]
    assert packet_utils.checksum_ip(ip, len(body), body) == 0
    return ip, message


# -- routes --------------------------------------------------------------------------------------

def test_cross_host_ipv6_route_rewrites_to_pip6_on_the_underlay_and_back_at_the_destination() -> None:
    net = make_net()
    decision, response = answer(H1, port(A), sent_by(A, B.ip6))
    assert isinstance(decision, Plug) and decision.family == 6 and (decision.a, decision.b) == (A, B)
    assert not response.confirm and [dpid for dpid, _ in response.steps] == [H2.dpid, H1.dpid]
    assert response.route is not None and response.route.family == 6
    assert response.route.cookie == route_cookie(A.id, B.id).value  # the pair's one cookie
    first = carry_out(net, response)
    assert where(first) == [(H2.dpid, port(B), B.mac, A.ip6, B.ip6, 62)]  # straight there, as routed
    trip = net.trace(H1.dpid, packet_of(sent_by(A, B.ip6), port(A)))
    ((s, d, on_wire),) = trip.underlay
    assert (s, d, on_wire["ipv6_src"], on_wire["ipv6_dst"], on_wire["ip_ttl"]) == (H1.dpid, H2.dpid, A.pip6,
                                                                                   B.pip6, 63)
    assert (on_wire["eth_src"], on_wire["eth_dst"]) == (H1.underlay_mac, H2.underlay_mac)
    assert where(trip) == [(H2.dpid, port(B), B.mac, A.ip6, B.ip6, 62)]  # 3 hops: gw, h2, b
    assert not trip.controller
    reply = net.trace(H2.dpid, packet_of(sent_by(B, A.ip6, sport=80, dport=40000), port(B)))
    assert where(reply) == [(H1.dpid, port(A), A.mac, B.ip6, A.ip6, 62)] and not reply.controller


def test_the_ipv4_route_of_the_pair_is_its_own() -> None:
    net = make_net()
    carry_out(net, answer(H1, port(A), sent_by(A, B.ip6))[1])
    v4 = net.trace(H1.dpid, packet_of(_v4(A, B.ip), port(A)))
    assert [(dpid, reason) for dpid, reason, _ in v4.controller] == [(H1.dpid, "no_match")]  # an egress miss


def _v4(src: Endpoint, dst: str) -> bytes:
    return frame(src.mac, GATEWAY_MAC, src.ip, dst)


def test_same_host_same_network_is_one_hop_and_keeps_the_hop_limit() -> None:
    net = make_net()
    decision, response = answer(H1, port(A), sent_by(A, C.ip6))
    assert isinstance(decision, Plug) and decision.family == 6
    assert response.confirm and [dpid for dpid, _ in response.steps] == [H1.dpid]
    assert where(carry_out(net, response)) == [(H1.dpid, port(C), C.mac, A.ip6, C.ip6, 64)]


def test_same_host_other_network_is_routed_once() -> None:
    net = make_net()
    view = View()
    view.load([Tenant(DEFAULT_TENANT), Tenant("t2"), NET, NET2, V4NET, T2NET, H1, H2, A, B, C, D, V, X, Y,
               Group(1, DEFAULT_TENANT, "g", ("container:a", "container:d"))], rev=1)
    decision, response = answer(H1, port(A), sent_by(A, D.ip6), view=view)
    assert isinstance(decision, Plug), decision
    assert where(carry_out(net, response)) == [(H1.dpid, port(D), D.mac, A.ip6, D.ip6, 63)]


def test_an_ipv6_ingress_miss_plugs_from_the_destination_side() -> None:
    net = make_net()
    over_underlay = frame6(H1.underlay_mac, H2.underlay_mac, A.pip6, B.pip6, hop_limit=63)
    decision, response = answer(H2, H2.uplink_ofport, over_underlay, Table.INGRESS)
    assert isinstance(decision, Plug) and decision.family == 6
    assert response.confirm and [dpid for dpid, _ in response.steps] == [H1.dpid, H2.dpid]
    assert where(carry_out(net, response)) == [(H2.dpid, port(B), B.mac, A.ip6, B.ip6, 62)]


def test_overlapping_ipv6_subnets_of_two_tenants_stay_apart() -> None:
    net = make_net()
    carry_out(net, answer(H1, port(A), sent_by(A, B.ip6))[1])
    decision, response = answer(H1, port(X), sent_by(X, Y.ip6))  # the same addresses, tenant t2
    assert isinstance(decision, Plug) and (decision.a, decision.b) == (X, Y)
    assert where(carry_out(net, response)) == [(H2.dpid, port(Y), Y.mac, X.ip6, Y.ip6, 62)]
    for src, dst in ((A, B), (X, Y)):
        trip = net.trace(H1.dpid, packet_of(sent_by(src, dst.ip6), port(src)))
        assert where(trip) == [(H2.dpid, port(dst), dst.mac, src.ip6, dst.ip6, 62)]
        assert [w.packet["ipv6_dst"] for w in trip.underlay] == [dst.pip6]


def test_ipv6_from_an_ipv4_only_container_is_spoofed_and_an_unknown_address_denied() -> None:
    forged = frame6(V.mac, GATEWAY_MAC, "fd00:3::99", B.ip6)
    assert isinstance(answer(H2, port(V), forged)[0], Ignore)
    net = make_net()
    decision, response = answer(H1, port(A), sent_by(A, "fd00:1::99"))
    assert isinstance(decision, Deny) and decision.dst_ip == "fd00:1::99"
    carry_out(net, response)
    again = net.trace(H1.dpid, packet_of(sent_by(A, "fd00:1::99"), port(A)))
    assert not (again.deliveries or again.controller or again.lost)  # its drop flow holds it


# -- the router's own ICMPv6 -----------------------------------------------------------------------

def test_ping6_to_the_gateway_is_answered_with_a_valid_echo_reply() -> None:
    decision, response = answer(H1, port(A), sent_by(A, NET.gateway6, proto=ICMPV6))
    assert isinstance(decision, EchoReply)
    dpid, (out, data) = only_packet_out(response)
    assert (dpid, out) == (H1.dpid, port(A))
    ip, message = valid_icmpv6(data)
    assert (ip.src, ip.dst, message.type_) == (NET.gateway6, A.ip6, icmpv6.ICMPV6_ECHO_REPLY)
    assert (message.data.id, message.data.seq, message.data.data) == (1, 1, b"ping")


def test_hop_limit_run_out_at_the_first_hop_is_answered_by_the_gateway6() -> None:
    sent = sent_by(A, B.ip6, hop_limit=1)
    decision, response = answer(H1, port(A), sent, reason=INVALID_TTL)
    assert isinstance(decision, TimeExceeded) and decision.router_ip == NET.gateway6
    dpid, (out, data) = only_packet_out(response)
    assert (dpid, out) == (H1.dpid, port(A))
    ip, message = valid_icmpv6(data)
    assert (ip.src, ip.dst, message.type_, message.code) == (NET.gateway6, A.ip6, 3, 0)
    embedded = ipv6.ipv6.parser(message.data[4:])[0]
    assert (embedded.src, embedded.dst) == (A.ip6, B.ip6)
    assert message.data[4 + 40:] == sent[14 + 40:]  # the probe's TCP, for traceroute6 to match


def test_hop_limit_run_out_at_the_destination_host_is_answered_from_its_ipv6_address() -> None:
    expired = frame6(H1.underlay_mac, H2.underlay_mac, A.pip6, B.pip6, hop_limit=1)
    decision, response = answer(H2, H2.uplink_ofport, expired, Table.INGRESS, INVALID_TTL)
    assert isinstance(decision, TimeExceeded) and decision.router_ip == H2.underlay_ip6
    dpid, (out, data) = only_packet_out(response)
    assert (dpid, out) == (H1.dpid, port(A))  # a's switch
    ip, message = valid_icmpv6(data)
    assert (ip.src, ip.dst, message.type_) == (H2.underlay_ip6, A.ip6, 3)
    embedded = ipv6.ipv6.parser(message.data[4:])[0]
    assert (embedded.src, embedded.dst) == (A.ip6, B.ip6)  # logical, not the PIPs


def test_a_destination_host_without_an_ipv6_address_answers_as_the_destination_gateway() -> None:
    view = make_view(H1, dataclasses.replace(H2, underlay_ip6=""))
    expired = frame6(H1.underlay_mac, H2.underlay_mac, A.pip6, B.pip6, hop_limit=1)
    decision, _ = answer(H2, H2.uplink_ofport, expired, Table.INGRESS, INVALID_TTL, view=view)
    assert isinstance(decision, TimeExceeded) and decision.router_ip == NET.gateway6


def test_an_underlay_routers_packet_too_big_is_relayed_with_its_mtu_in_logical_terms() -> None:
    original = frame6(H1.underlay_mac, ROUTER_MAC, A.pip6, "2001:db8:ffff::1")[14:]
    too_big = icmpv6.icmpv6(icmpv6.ICMPV6_PACKET_TOO_BIG, 0, data=(1400).to_bytes(4, "big") + original)
    data = frame6(ROUTER_MAC, H1.underlay_mac, "2001:db8::fe", A.pip6, proto=ICMPV6, message=too_big)
    decision, response = answer(H1, H1.uplink_ofport, data, Table.INGRESS)
    assert isinstance(decision, RelayIcmp) and decision.to == A
    dpid, (out, relayed) = only_packet_out(response)
    assert (dpid, out) == (H1.dpid, port(A))
    ip, message = valid_icmpv6(relayed)
    assert (ip.src, ip.dst, message.type_) == ("2001:db8::fe", A.ip6, icmpv6.ICMPV6_PACKET_TOO_BIG)
    assert int.from_bytes(message.data[:4], "big") == 1400
    assert ipv6.ipv6.parser(message.data[4:])[0].src == A.ip6


# -- through the controller's HotPlug: one cookie, two families -----------------------------------

class Session:
    """A switch session applying what the controller sends to a fake switch."""

    def __init__(self, net: FakeNetwork, dpid: int) -> None:
        self.net, self.dpid, self.name = net, dpid, f"{dpid:#x}"

    def send(self, *msgs: Any) -> list[int]:
        for m in msgs:
            msg = decode_request(m.data)
            if isinstance(msg, parser.OFPFlowMod) and msg.command == ofp.OFPFC_ADD:
                self.net[self.dpid].apply_add(spec_of(m.data))
            elif isinstance(msg, parser.OFPFlowMod) and msg.command == ofp.OFPFC_DELETE:
                self.net[self.dpid].apply_delete(cookie=msg.cookie, cookie_mask=msg.cookie_mask)
            # (PacketOuts: the first packets; these tests send their own packets after)
        return [0] * len(msgs)

    def barrier_then(self, callback: Any) -> None:
        callback(True)


def plugged_both_families() -> tuple[HotPlug, FakeNetwork]:
    net = make_net()
    ctx = Context(view=VIEW, config=CONFIG, metrics=Metrics(CollectorRegistry()), clock=lambda: 1000.0)
    ctx.sessions.update({d: Session(net, d) for d in (H1.dpid, H2.dpid)})  # type: ignore[misc]
    hotplug = HotPlug(ctx)
    for data in (sent_by(A, B.ip6), _v4(A, B.ip)):
        hotplug.on_packet_in(ctx.sessions[H1.dpid], PacketIn(0, port(A), Table.EGRESS, NO_MATCH, 0, data))
    return hotplug, net


def reaches(net: FakeNetwork, data: bytes) -> bool:
    return bool(net.trace(H1.dpid, packet_of(data, port(A))).deliveries)


def test_a_pairs_two_families_are_two_routes_under_one_cookie() -> None:
    hotplug, net = plugged_both_families()
    cookie = route_cookie(A.id, B.id).value
    routes = hotplug.ctx.routes
    assert {r.key for r in routes.all()} == {(cookie, None, 4), (cookie, None, 6)}
    assert routes.get(cookie, None, 6).to_json()["family"] == 6  # type: ignore[union-attr]
    assert "family" not in routes.get(cookie).to_json()  # type: ignore[union-attr]  # IPv4: as before
    assert reaches(net, sent_by(A, B.ip6)) and reaches(net, _v4(A, B.ip))


def test_revoking_the_pair_deletes_both_families_flows() -> None:
    hotplug, net = plugged_both_families()
    hotplug.revoke(route_cookie(A.id, B.id).value)
    assert len(hotplug.ctx.routes) == 0
    assert not reaches(net, sent_by(A, B.ip6)) and not reaches(net, _v4(A, B.ip))
    assert not [f for d in (H1.dpid, H2.dpid) for f in net[d].flows() if f.cookie >> 56 == 0xD1]


def test_one_family_idling_out_leaves_the_other_route_live() -> None:
    hotplug, net = plugged_both_families()
    cookie = route_cookie(A.id, B.id).value
    for d in (H1.dpid, H2.dpid):
        for flow in [f for f in net[d].flows() if f.cookie == cookie and f.match.get("eth_type") == 0x86DD]:
            match = render.match_for(flow.match)  # as the switch's FlowRemoved carries it
            assert (scope_of_match(match), family_of_match(match)) == (None, 6)
            hotplug.on_flow_removed(hotplug.ctx.sessions[d], parser.OFPFlowRemoved(  # type: ignore[arg-type]
                None, cookie=cookie, match=match))
    assert [r.key for r in hotplug.ctx.routes.all()] == [(cookie, None, 4)]


def test_an_icmpv6_scope_reads_back_as_the_policys_icmp() -> None:
    from daolinet.flows.route import RouteEnds, flows_for_route
    ends = RouteEnds(A, B, H1, H2, True, (1, 0), True, 6)
    for _, flows in flows_for_route(ends, 30).steps:
        for flow in flows:
            assert flow.match.get("ip_proto") == ICMPV6
            assert scope_of_match(render.match_for(flow.match)) == (1, 0)

