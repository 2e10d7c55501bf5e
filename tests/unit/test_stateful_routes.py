"""An L4 route's life in the controller: revoking it deletes its flows on both hosts and
flushes its connections on its client's (once at once, once more after the barrier), and a
restarted controller reads such a route back from the switches - scope, client, its extra
STATEFUL flow - or, if its rule is gone, deletes it and flushes its connections."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry

from daolinet.controller.context import Config, Context
from daolinet.controller.hotplug import HotPlug
from daolinet.controller.metrics import Metrics
from daolinet.controller.sync import FlowSync
from daolinet.flows import render
from daolinet.flows.conntrack import ct_flush
from daolinet.flows.route import RouteEnds, flows_for_route
from daolinet.model import Group, Rule, Tenant, View
from daolinet.model.objects import DEFAULT_TENANT
from daolinet.ofp.codec import decode, ofp, parser
from daolinet.pipeline import ROUTE_ZONE, Table, route_cookie
from daolinet.testing.factories import make_endpoint, make_host, make_network

H1, H2 = make_host(1), make_host(2)
NET = make_network(1)
FRONT = make_endpoint(1, H1, NET, 2, "front")
BACK = make_endpoint(2, H2, NET, 2, "back")  # the same ofport: on another switch
GROUPS = [Group(1, DEFAULT_TENANT, "fe", ("container:front",)),
          Group(2, DEFAULT_TENANT, "be", ("container:back",))]
WEB = Rule(1, DEFAULT_TENANT, "l4", "allow", "fe", "be", "tcp", "80", name="web")
COOKIE = route_cookie(FRONT.id, BACK.id).value
FLUSH = ct_flush(ROUTE_ZONE, 6, FRONT.pip, BACK.pip, 80).data


class Switch:
    def __init__(self, dpid: int) -> None:
        self.dpid, self.name = dpid, f"{dpid:#x}"
        self.sent: list[bytes] = []

    def send(self, *msgs: Any) -> list[int]:
        self.sent.extend(m.data if hasattr(m, "data") else render_bytes(m) for m in msgs)
        return [0] * len(msgs)

    def barrier_then(self, callback: Callable[[bool], None]) -> None:
        self.sent.append(b"barrier")
        callback(True)

    def kinds(self) -> list[str]:
        out = []
        for data in self.sent:
            msg = None if data == b"barrier" else decode(data)
            out.append("barrier" if msg is None else "flush" if data == FLUSH
                       else "delete" if isinstance(msg, parser.OFPFlowMod) and msg.command == ofp.OFPFC_DELETE
                       else type(msg).__name__)
        return out


def render_bytes(msg: Any) -> bytes:
    msg.serialize()
    return bytes(msg.buf)


def context(*objs: Any) -> tuple[Context, dict[int, Switch]]:
    view = View()
    view.load([Tenant(DEFAULT_TENANT), H1, H2, NET, FRONT, BACK, *GROUPS, *objs], rev=1)
    ctx = Context(view=view, config=Config(), metrics=Metrics(CollectorRegistry()))
    switches = {h.dpid: Switch(h.dpid) for h in (H1, H2)}
    ctx.sessions.update(switches)  # type: ignore[arg-type]
    return ctx, switches


def route_flows() -> dict[int, list[Any]]:
    plan = flows_for_route(RouteEnds(FRONT, BACK, H1, H2, True, (6, 80), True), 30)
    return {dpid: [render.flow_add(f) for f in flows] for dpid, flows in plan.steps}


def test_revoking_an_l4_route_flushes_its_connections_on_the_clients_host_only() -> None:
    later: list[Any]
    ctx, switches = context(WEB)
    ctx.routes.plugged(COOKIE, ("front", "back"), {H1.dpid: 3, H2.dpid: 2}, 0.0, (6, 80), FRONT.id)
    hotplug, later = HotPlug(ctx), []
    hotplug.call_later = lambda delay, fn, *args: later.append((delay, fn, args))  # type: ignore[assignment]
    hotplug.revoke(COOKIE)
    assert switches[H1.dpid].kinds() == ["delete", "flush"]
    assert switches[H2.dpid].kinds() == ["delete"]
    # and once more, when no datapath flow cached from the deleted ones can be left
    ((delay, fn, args),) = later
    assert delay >= 0.5
    fn(*args)
    assert switches[H1.dpid].kinds() == ["delete", "flush", "flush"]
    assert len(ctx.routes) == 0


def test_a_restarted_controller_adopts_an_l4_route_with_its_client() -> None:
    ctx, switches = context(WEB)
    sync = FlowSync(ctx)
    stats = route_flows()
    assert sorted(int(st.table_id) for st in stats[H1.dpid]) == [Table.EGRESS, Table.INGRESS, Table.STATEFUL]
    for dpid in (H2.dpid, H1.dpid):
        sync._reconcile(switches[dpid], [], stats[dpid])  # type: ignore[arg-type]
    route = ctx.routes.get(COOKIE, (6, 80))
    assert route is not None and route.client == FRONT.id
    assert route.flows == {H1.dpid: 3, H2.dpid: 2}
    assert all(s.sent == [] for s in switches.values())  # nothing deleted
    # a FlowRemoved per flow, the STATEFUL one too, and the route is gone with the last
    for dpid, flows in stats.items():
        for st in flows:
            ctx.routes.flow_removed(dpid, COOKIE, (6, 80) if st.match.get("ip_proto") else None)
    assert ctx.routes.get(COOKIE, (6, 80)) is None


def test_the_servers_host_alone_tells_the_client_too() -> None:
    ctx, switches = context(WEB)
    FlowSync(ctx)._reconcile(switches[H2.dpid], [], route_flows()[H2.dpid])  # type: ignore[arg-type]
    route = ctx.routes.get(COOKIE, (6, 80))
    assert route is not None and route.client == FRONT.id and route.flows == {H2.dpid: 2}


def test_a_route_whose_rule_went_meanwhile_is_deleted_and_flushed() -> None:
    ctx, switches = context()  # no rule: front and back may not talk
    sync = FlowSync(ctx)
    stats = route_flows()
    for dpid in (H1.dpid, H2.dpid):
        sync._reconcile(switches[dpid], [], stats[dpid])  # type: ignore[arg-type]
    assert switches[H1.dpid].kinds() == ["delete", "flush"]
    assert switches[H2.dpid].kinds() == ["delete"]
    assert len(ctx.routes) == 0
