"""A restarted controller reads a dual-stack pair's routes back from the switches
(controller/sync.py): one route per family under the pair's one cookie, each with its own
flow counts and, for an L4 route, its client; a pair no longer allowed loses both."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry
from test_route6 import H1, H2, NET, dual
from test_stateful_routes import Switch

from daolinet.controller.context import Config, Context
from daolinet.controller.metrics import Metrics
from daolinet.controller.sync import FlowSync
from daolinet.flows import render
from daolinet.flows.route import RouteEnds, flows_for_route
from daolinet.model import Group, Rule, Tenant, View
from daolinet.model.objects import DEFAULT_TENANT
from daolinet.pipeline import route_cookie

FRONT = dual(1, H1, NET, 2, "front")
BACK = dual(2, H2, NET, 2, "back")
GROUPS = [Group(1, DEFAULT_TENANT, "fe", ("container:front",)),
          Group(2, DEFAULT_TENANT, "be", ("container:back",))]
WEB = Rule(1, DEFAULT_TENANT, "l4", "allow", "fe", "be", "tcp", "80", name="web")
COOKIE = route_cookie(FRONT.id, BACK.id).value


def context(*objs: Any) -> tuple[Context, dict[int, Switch]]:
    view = View()
    view.load([Tenant(DEFAULT_TENANT), H1, H2, NET, FRONT, BACK, *objs], rev=1)
    ctx = Context(view=view, config=Config(), metrics=Metrics(CollectorRegistry()))
    switches = {h.dpid: Switch(h.dpid) for h in (H1, H2)}
    ctx.sessions.update(switches)  # type: ignore[arg-type]
    return ctx, switches


def stats(scope: tuple[int, int] | None) -> dict[int, list[Any]]:
    """Both families' flows of the pair, as a switch's flow stats hold them."""
    out: dict[int, list[Any]] = {}
    for family in (4, 6):
        plan = flows_for_route(RouteEnds(FRONT, BACK, H1, H2, True, scope, True, family), 30)
        for dpid, flows in plan.steps:
            out.setdefault(dpid, []).extend(render.flow_add(f) for f in flows)
    return out


def test_both_families_are_adopted_as_two_routes() -> None:
    ctx, switches = context()
    sync = FlowSync(ctx)
    for dpid, flows in stats(None).items():
        sync._reconcile(switches[dpid], [], flows)  # type: ignore[arg-type]
    assert {r.key for r in ctx.routes.all()} == {(COOKIE, None, 4), (COOKIE, None, 6)}
    assert all(r.flows == {H1.dpid: 2, H2.dpid: 2} for r in ctx.routes.all())
    assert all(s.sent == [] for s in switches.values())


def test_an_ipv6_l4_route_is_adopted_with_its_client() -> None:
    ctx, switches = context(*GROUPS, WEB)
    sync = FlowSync(ctx)
    for dpid, flows in stats((6, 80)).items():
        sync._reconcile(switches[dpid], [], flows)  # type: ignore[arg-type]
    v6 = ctx.routes.get(COOKIE, (6, 80), 6)
    assert v6 is not None and v6.client == FRONT.id and v6.flows == {H1.dpid: 3, H2.dpid: 2}
    assert ctx.routes.get(COOKIE, (6, 80)) is not None


def test_a_pair_no_longer_allowed_loses_both_families_at_once() -> None:
    ctx, switches = context(*GROUPS)  # the rule is gone: no L4 route of theirs stands
    sync = FlowSync(ctx)
    for dpid, flows in stats((6, 80)).items():
        sync._reconcile(switches[dpid], [], flows)  # type: ignore[arg-type]
    assert len(ctx.routes) == 0
    for dpid, flushes in ((H1.dpid, 2), (H2.dpid, 0)):  # one delete by cookie; a flush per family
        kinds = switches[dpid].kinds()
        assert kinds.count("delete") == 1 and len(kinds) == 1 + flushes, kinds
