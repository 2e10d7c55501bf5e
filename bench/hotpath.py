"""hotpath: the controller's own CPU per route, in one process, without sockets.

The route-setup bench measures a controller over TCP, on a machine shared with
its load generator; this one isolates what the controller spends per route:
the real HotPlug handler, fed PacketIn events, sending to in-memory switches
that confirm barriers at once.  It also times each stage of the fast path
against os-ken doing the same stage (the reference the fast path replaced),
so the speed-up is a ratio measured in one run.

    .venv/bin/python bench/hotpath.py [--routes 20000] [--profile]

Prints a table; writes bench/results/hotpath-<timestamp>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import os
import platform
import pstats
import sys
import time
from collections.abc import Callable
from typing import Any

from os_ken.lib.packet import ipv4, packet
from prometheus_client import CollectorRegistry

from daolinet.controller.context import Config, Context
from daolinet.controller.hotplug import HotPlug
from daolinet.controller.main import settle_gc
from daolinet.controller.metrics import Metrics
from daolinet.decide.packet import parse
from daolinet.decide.route import decide
from daolinet.flows import render, wire
from daolinet.flows.route import RouteEnds, flows_for_route
from daolinet.flows.route_wire import route_bytes
from daolinet.model import Tenant, View
from daolinet.model.objects import DEFAULT_TENANT
from daolinet.ofp import channel as ch
from daolinet.ofp.codec import decode, encode, parse_packet_in
from daolinet.testing.factories import make_endpoint, make_host, make_network

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ofsim import icmp_frame, packet_in_bytes  # noqa: E402


class MemorySwitch:
    """Just enough of a SwitchSession: counts what it is sent, confirms barriers at once."""

    def __init__(self, dpid: int) -> None:
        self.dpid = dpid
        self.name = f"{dpid:#x}"
        self.messages = 0
        self.bytes = 0

    def send(self, *msgs: Any) -> list[int]:
        self.messages += len(msgs)
        self.bytes += sum(len(m.data) for m in msgs)
        return [0] * len(msgs)

    def barrier_then(self, callback: Callable[[bool], None]) -> None:
        callback(True)


def build(per_host: int) -> tuple[Context, list[tuple[MemorySwitch, bytes]]]:
    """Two hosts with per_host plugged containers each; one PacketIn per cross-host pair."""
    h1, h2 = make_host(1), make_host(2)
    net = make_network(1)
    net = net.__class__(**{**net.__dict__, "subnet": "10.64.0.0/16", "gateway": "10.64.0.1"})
    eps1 = [make_endpoint(i, h1, net, 2 + i) for i in range(1, per_host + 1)]
    eps2 = [make_endpoint(per_host + i, h2, net, 2 + i) for i in range(1, per_host + 1)]
    view = View()
    view.load([Tenant(DEFAULT_TENANT), h1, h2, net, *eps1, *eps2], rev=1)
    ctx = Context(view=view, config=Config(idle_timeout=3600), metrics=Metrics(CollectorRegistry()))
    s1, s2 = MemorySwitch(1), MemorySwitch(2)
    ctx.sessions.update({1: s1, 2: s2})  # type: ignore[dict-item]
    work = [(s1, packet_in_bytes(a.ofport or 0, icmp_frame(a.mac, a.ip, b.ip), 1))
            for a in eps1 for b in eps2]
    return ctx, work


def per_call(fn: Callable[[], object], n: int) -> float:
    """µs per call, best of 3."""
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        for _ in range(n):
            fn()
        best = min(best, (time.perf_counter() - started) / n)
    return best * 1e6


def stages(ctx: Context, frame: bytes, n: int) -> list[tuple[str, float, float]]:
    """(stage, fast µs, os-ken µs) for one cross-host route."""
    view = ctx.view
    in_port, table, reason, _, data = parse_packet_in(frame)
    meta = parse(1, in_port, table, reason, data)
    d = decide(meta, view)
    a, b = d.a, d.b  # type: ignore[union-attr]
    ends = RouteEnds(a, b, view.host_of(a), view.host_of(b), True)  # type: ignore[arg-type]

    def os_ken_packet() -> object:
        pkt = packet.Packet(data)
        return pkt.get_protocol(ipv4.ipv4)

    rows = [
        ("PacketIn message", per_call(lambda: parse_packet_in(frame), n), per_call(lambda: decode(frame), n)),
        ("packet fields", per_call(lambda: parse(1, in_port, table, reason, data), n),
         per_call(os_ken_packet, n // 4)),
        ("decide (policy)", per_call(lambda: decide(meta, view), n), float("nan")),
        ("route's 4 FlowMods", per_call(lambda: route_bytes(ends, 3600), n),
         per_call(lambda: [encode(render.flow_add(s), 0) for _, fl in flows_for_route(ends, 3600).steps
                           for s in fl], n // 10)),
        ("  via FlowSpecs + wire", per_call(lambda: [wire.flow_add(s) for _, fl in flows_for_route(ends, 3600)
                                                    .steps for s in fl], n), float("nan")),
        ("encode PacketOut", per_call(lambda: wire.packet_out_to_table(in_port, data), n),
         per_call(lambda: encode(render.packet_out_to_table(in_port, data), 0), n // 10)),
    ]
    return rows


def run_routes(ctx: Context, work: list[tuple[MemorySwitch, bytes]]) -> float:
    """Seconds for the whole handler over every PacketIn (each a fresh route)."""
    hotplug = HotPlug(ctx)
    events = [(sw, ch.PacketIn(1, *parse_packet_in(f))) for sw, f in work]
    settle_gc()  # as the controller does once started

    async def go() -> float:
        started = time.perf_counter()
        for sw, ev in events:
            hotplug.on_packet_in(sw, ev)  # type: ignore[arg-type]
        return time.perf_counter() - started

    return asyncio.run(go())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--routes", type=int, default=20_000)
    ap.add_argument("--profile", action="store_true", help="cProfile the handler; print the top 25")
    args = ap.parse_args()
    per_host = int(args.routes ** 0.5) + 1
    ctx, work = build(per_host)
    work = work[: args.routes]
    rows = stages(ctx, work[0][1], 5000)
    if args.profile:
        prof = cProfile.Profile()
        prof.enable()
        took = run_routes(ctx, work)
        prof.disable()
        pstats.Stats(prof).sort_stats("tottime").print_stats(25)
    else:
        took = run_routes(ctx, work)
    routes = len(ctx.routes)
    assert routes == len(work), f"only {routes} of {len(work)} routes were plugged"
    print(f"{'stage (one cross-host route)':<30} {'fast µs':>9} {'os-ken µs':>10} {'speed-up':>9}")
    for name, fast, ref in rows:
        ratio = f"{ref / fast:.1f}x" if ref == ref else "-"
        ref_s = f"{ref:.1f}" if ref == ref else "-"
        print(f"{name:<30} {fast:>9.1f} {ref_s:>10} {ratio:>9}")
    per_route = took / routes * 1e6
    print(f"whole handler: {routes} routes in {took:.2f} s = {per_route:.1f} µs/route "
          f"= {routes / took:,.0f} routes/s on one core (no sockets)")
    result = {"bench": "hotpath", "when": time.time(), "routes": routes, "seconds": round(took, 3),
              "us_per_route": round(per_route, 1), "routes_per_s": round(routes / took, 1),
              "stages_us": {name: {"fast": round(f, 2), "os_ken": None if r != r else round(r, 2)}
                            for name, f, r in rows},
              "machine": {"cpus": os.cpu_count(), "platform": platform.platform()}}
    os.makedirs("bench/results", exist_ok=True)
    path = time.strftime("bench/results/hotpath-%Y%m%dT%H%M%S.json")
    with open(path, "w") as f:
        json.dump(result, f, indent=2)
    print(f"written {path}")


if __name__ == "__main__":
    main()
