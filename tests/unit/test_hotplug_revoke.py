"""Revocation reaches both ends of a route, even one the routes table only half knows."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry

from daolinet.controller.context import Config, Context
from daolinet.controller.hotplug import HotPlug
from daolinet.controller.metrics import Metrics
from daolinet.model import Tenant, View
from daolinet.model.objects import DEFAULT_TENANT
from daolinet.ofp.codec import decode, ofp
from daolinet.pipeline import route_cookie
from daolinet.testing.factories import make_endpoint, make_host, make_network


class Recorder:
    def __init__(self, dpid: int) -> None:
        self.dpid, self.name = dpid, f"{dpid:#x}"
        self.sent: list[Any] = []

    def send(self, *msgs: Any) -> list[int]:
        self.sent.extend(decode(m.data) for m in msgs)
        return [0] * len(msgs)


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
