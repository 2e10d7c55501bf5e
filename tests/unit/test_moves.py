"""The controller's side of a move (controller/moves.py): what goes to which switch, in
which order, and when the old path goes."""

from __future__ import annotations

import dataclasses
from typing import Any

from prometheus_client import CollectorRegistry

from daolinet.controller.context import Config, Context
from daolinet.controller.hotplug import HotPlug
from daolinet.controller.metrics import Metrics
from daolinet.controller.moves import Moves
from daolinet.controller.sync import FlowSync
from daolinet.model import Endpoint, Tenant, View
from daolinet.model.objects import DEFAULT_TENANT
from daolinet.model.view import Change
from daolinet.ofp.codec import decode, ofp
from daolinet.pipeline import Cookie, Kind, Table, route_cookie
from daolinet.testing.factories import make_endpoint, make_host, make_network


class Recorder:
    """A switch session noting each FlowMod and barrier in one log shared by all switches."""

    def __init__(self, dpid: int, log: list[tuple[int, str, Any]]) -> None:
        self.dpid, self.name, self.log = dpid, f"{dpid:#x}", log

    def send(self, *msgs: Any) -> list[int]:
        for m in msgs:
            msg = decode(m.data) if isinstance(getattr(m, "data", None), bytes) else m  # Encoded or os-ken's
            command = getattr(msg, "command", None)
            kind = {ofp.OFPFC_ADD: "add", ofp.OFPFC_DELETE_STRICT: "delete_strict"}.get(command, "other")
            self.log.append((self.dpid, kind, msg))
        return [0] * len(msgs)

    async def barrier(self) -> None:
        self.log.append((self.dpid, "barrier", None))


Log = list[tuple[int, str, Any]]


def setup(scope: tuple[int, int] | None = None) -> tuple[Moves, Log, Endpoint, Endpoint]:
    hosts = [make_host(i) for i in (1, 2, 3)]
    net = make_network(1)
    a, b = make_endpoint(1, hosts[0], net, 2), make_endpoint(2, hosts[1], net, 2)
    view = View()
    view.load([Tenant(DEFAULT_TENANT), *hosts, net, a, b], rev=1)
    ctx = Context(view=view, config=Config(), metrics=Metrics(CollectorRegistry()))
    log: list[tuple[int, str, Any]] = []
    ctx.sessions.update({d: Recorder(d, log) for d in (1, 2, 3)})  # type: ignore[misc]
    ctx.routes.plugged(route_cookie(1, 2).value, ("a", "b"), {1: 2, 2: 2}, 0.0, scope, 1 if scope else None)
    new_b = dataclasses.replace(b, host="h3", pip="198.18.3.99", ofport=5, port="q")
    view.apply(Change(2, new_b))
    return Moves(ctx, HotPlug(ctx), FlowSync(ctx)), log, b, new_b


def route_flows(log: list[tuple[int, str, Any]], dpid: int, kind: str) -> list[Any]:
    return [m for d, k, m in log if d == dpid and k == kind and Cookie.decode(m.cookie) is not None
            and Cookie.decode(m.cookie).kind is Kind.ROUTE]  # type: ignore[union-attr]


async def test_the_new_hosts_flows_are_confirmed_before_the_peers_are_re_pointed() -> None:
    moves, log, old, new = setup()
    moves.on_moved(old, new)
    await moves.made[new.id]
    steps = [(d, k) for d, k, _ in log]
    new_host_done = steps.index((3, "barrier"))
    assert all(d == 3 for d, _ in steps[:new_host_done])  # the new port's and the route's flows on h3
    assert len(route_flows(log[:new_host_done], 3, "add")) == 2
    assert (1, "add") in steps[new_host_done:]  # then the peer's half
    forward = [m for d, k, m in log if d == 2 and k == "add"]
    assert [Cookie.decode(m.cookie).kind for m in forward] == [Kind.MOVE]  # type: ignore[union-attr]
    assert not [k for _, k, _ in log if k == "delete_strict"]  # nothing broken yet
    route = moves.ctx.routes.get(route_cookie(1, 2).value)
    assert route is not None and route.dpids == [1, 2, 3]  # the old host's flows go on FlowRemoved


async def test_the_old_path_goes_when_the_old_port_leaves_its_bridge() -> None:
    moves, log, old, new = setup()
    moves.on_moved(old, new)
    await moves.made[new.id]
    log.clear()
    moves.port_gone(2, 99)  # another port: nothing
    assert not log
    assert old.ofport is not None
    moves.port_gone(2, old.ofport)
    peer = [m for d, k, m in log if d == 1 and k == "delete_strict"]
    assert [(m.table_id, m.match["ipv4_src"]) for m in peer] == [(Table.INGRESS, old.pip)]
    on_old = [m for d, k, m in log if d == 2 and k == "delete_strict"]
    assert {m.match.get("in_port") for m in on_old} >= {old.ofport}  # its classify flows
    assert not [m for d, k, m in log if d == 3 and k != "add"]  # the new host keeps everything
    log.clear()
    moves.port_gone(2, old.ofport)  # once only
    assert not log


async def test_an_l4_route_is_revoked_not_re_pointed() -> None:
    moves, log, old, new = setup(scope=(6, 80))
    moves.on_moved(old, new)
    await moves.made[new.id]
    assert moves.ctx.routes.get(route_cookie(1, 2).value, (6, 80)) is None
    assert not route_flows(log, 1, "add") and not route_flows(log, 3, "add")
