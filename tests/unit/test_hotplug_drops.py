"""Deleting flows reaches the right switches: clear_drops exactly those that may
still hold a drop flow (sent one within its hard timeout, or a session new to us),
and a revocation both ends of a route, even one the routes table only half knows."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry

from daolinet.controller.context import Config, Context
from daolinet.controller.hotplug import HotPlug
from daolinet.controller.metrics import Metrics
from daolinet.decide.packet import NO_MATCH, PacketMeta
from daolinet.decide.route import Deny
from daolinet.model import Tenant, View
from daolinet.model.objects import DEFAULT_TENANT
from daolinet.ofp.codec import decode, ofp
from daolinet.pipeline import Kind, kind_mask, route_cookie
from daolinet.testing.factories import make_endpoint, make_host, make_network

DROPS, MASK = kind_mask(Kind.DROP)


class Recorder:
    def __init__(self, dpid: int) -> None:
        self.dpid, self.name = dpid, f"{dpid:#x}"
        self.sent: list[Any] = []

    def send(self, *msgs: Any) -> list[int]:
        self.sent.extend(decode(m.data) for m in msgs)
        return [0] * len(msgs)

    def take(self) -> list[str]:
        """What was sent since the last take: 'add' or 'clear' per FlowMod."""
        kinds = ["clear" if (m.command, m.cookie, m.cookie_mask) == (ofp.OFPFC_DELETE, DROPS, MASK)
                 else "add" if m.command == ofp.OFPFC_ADD else "other" for m in self.sent]
        self.sent.clear()
        return kinds


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def setup() -> tuple[HotPlug, dict[int, Recorder], Clock, Any]:
    hosts = [make_host(i) for i in (1, 2, 3)]
    net = make_network(1)
    a = make_endpoint(1, hosts[0], net, 2)
    view = View()
    view.load([Tenant(DEFAULT_TENANT), *hosts, net, a], rev=1)
    clock = Clock()
    ctx = Context(view=view, config=Config(drop_timeout=3), metrics=Metrics(CollectorRegistry()), clock=clock)
    switches = {d: Recorder(d) for d in (1, 2, 3)}
    ctx.sessions.update(switches)  # type: ignore[arg-type]
    hotplug = HotPlug(ctx)
    hotplug.clear_drops()  # every session is new: each is cleared once
    assert all(s.take() == ["clear"] for s in switches.values())
    return hotplug, switches, clock, a


def deny(hotplug: HotPlug, session: Recorder, src: Any) -> None:
    meta = PacketMeta(dpid=session.dpid, in_port=2, table_id=10, reason=NO_MATCH)
    hotplug.carry_out(Deny(src, "10.1.0.99", "test"), meta, b"", 0.0)
    assert session.take() == ["add"]


def test_only_switches_sent_a_recent_drop_flow_are_cleared() -> None:
    hotplug, switches, clock, a = setup()
    hotplug.clear_drops()
    assert all(s.take() == [] for s in switches.values())  # no drop flow anywhere: nothing sent
    deny(hotplug, switches[1], a)
    deny(hotplug, switches[2], a)
    clock.now += 3.5  # within the hard timeout, give or take delivery
    hotplug.clear_drops()
    assert [switches[d].take() for d in (1, 2, 3)] == [["clear"], ["clear"], []]
    hotplug.clear_drops()  # cleared already
    assert all(s.take() == [] for s in switches.values())


def test_a_drop_flow_past_its_hard_timeout_is_not_cleared() -> None:
    hotplug, switches, clock, a = setup()
    deny(hotplug, switches[1], a)
    clock.now += 2.0
    deny(hotplug, switches[2], a)
    clock.now += 2.5  # switch 1's drop flow has expired (3 s + 1 s slack), switch 2's not
    hotplug.clear_drops()
    assert [switches[d].take() for d in (1, 2, 3)] == [[], ["clear"], []]


def test_a_new_session_is_cleared_once_a_previous_master_may_have_left_drops() -> None:
    hotplug, switches, _clock, a = setup()
    ctx = hotplug.ctx
    deny(hotplug, switches[1], a)
    del ctx.sessions[1]  # disconnected with a drop flow on it
    hotplug.clear_drops()
    assert all(s.take() == [] for s in switches.values())
    back = Recorder(1)  # reconnected (or mastered again): new session
    ctx.sessions[1] = back  # type: ignore[assignment]
    hotplug.clear_drops()
    assert back.take() == ["clear"] and switches[2].take() == [] and switches[3].take() == []
    hotplug.clear_drops()
    assert back.take() == []


def test_an_adopted_half_route_is_deleted_on_both_ends() -> None:
    h1, h2, h3 = make_host(1), make_host(2), make_host(3)
    net = make_network(1)
    a, b = make_endpoint(1, h1, net, 2), make_endpoint(2, h2, net, 2)
    view = View()
    view.load([Tenant(DEFAULT_TENANT), h1, h2, h3, net, a, b], rev=1)
    ctx = Context(view=view, config=Config(), metrics=Metrics(CollectorRegistry()))
    switches = {d: Recorder(d) for d in (1, 2, 3)}
    ctx.sessions.update(switches)  # type: ignore[arg-type]
    cookie = route_cookie(a.id, b.id).value
    ctx.routes.plugged(cookie, (a.name, b.name), {1: 2}, 0.0)  # adopted from h1 only, after a failover
    HotPlug(ctx).revoke(cookie)
    for d in (1, 2):
        (msg,) = switches[d].sent
        assert (msg.command, msg.cookie, msg.cookie_mask) == (ofp.OFPFC_DELETE, cookie, (1 << 64) - 1)
    assert switches[3].sent == []  # nobody else is bothered
    assert len(ctx.routes) == 0


def test_a_route_plugged_moments_ago_is_handed_on_not_plugged_again() -> None:
    """A reply that beat the route's flows to its switch comes back as a PacketIn for the
    same route: its packet goes on through the table, after the flows, and nothing is re-sent."""
    from daolinet.flows import wire
    from daolinet.flows.respond import Response, RouteRecord
    from daolinet.flows.route import drop_flow

    hotplug, _, clock, a = setup()

    class Raw(Recorder):  # the message types sent: FlowMod, PacketOut
        def send(self, *msgs: Any) -> list[int]:
            self.sent.extend({14: "add", 13: "other"}[m.data[1]] for m in msgs)
            return [0] * len(msgs)

        def take(self) -> list[str]:
            kinds, self.sent = self.sent, []
            return kinds

    switches = {d: Raw(d) for d in (1, 2, 3)}
    hotplug.ctx.sessions.update(switches)  # type: ignore[arg-type]
    flows = (wire.flow_add(drop_flow(a, "10.1.0.9", 3)),)
    packet_out = wire.packet_out_to_table(2, bytes(64))
    record = RouteRecord(route_cookie(1, 2).value, ("a", "b"), None, None)
    plug = Response(((2, flows), (1, flows)), ((1, packet_out),), False, record)
    hotplug.send(plug, 0.0)
    assert (switches[2].take(), switches[1].take()) == (["add"], ["add", "other"])
    clock.now += 0.2
    hotplug.send(plug, 0.0)
    assert (switches[2].take(), switches[1].take()) == ([], ["other"])  # the packet only
    assert hotplug.ctx.routes.get(record.cookie).hits == 1  # type: ignore[union-attr]
    clock.now += 1.0  # long after: a miss means the flows are gone, so the route is plugged again
    hotplug.send(plug, 0.0)
    assert (switches[2].take(), switches[1].take()) == (["add"], ["add", "other"])
