"""hotpath: the controller's own CPU per route, in one process, without sockets.

The route-setup bench measures a controller over TCP, on a machine shared with
its load generator; this one isolates what the controller spends per route:
the real HotPlug handler, fed PacketIn events, sending to in-memory switches
that confirm barriers at once.  It also times each stage of the fast path
against os-ken doing the same stage (the reference the fast path replaced),
so the speed-up is a ratio measured in one run.  The whole handler is compared with the
os-ken reference too: the os-ken stages summed (decide, which has no os-ken version, at its
own cost), i.e. the same handler had its PacketIn, packet, FlowMods and PacketOut gone
through os-ken.

Times are CPU time of this process (time.process_time): on a shared machine a process
preempted by another is not charged for the other's time (wall time is in the JSON too).

    .venv/bin/python bench/hotpath.py [--runs 3] [--routes 20000] [--profile]

Every figure is the median over --runs runs (each on a fresh model), min and max beside it.

Prints a table; writes bench/results/hotpath-<timestamp>.json (with the commit).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
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
from ofsim import icmp_frame, packet_in_bytes
from runs import repeat, runs_option, show, write


class MemorySwitch:
    """Just enough of a SwitchSession: counts what it is sent, confirms barriers at once."""

    def __init__(self, dpid: int) -> None:
        self.dpid = dpid
        self.name = f"{dpid:#x}"
        self.messages = 0
        self.bytes = 0

    def send(self, *msgs: Any) -> list[int]:
        self.messages += len(msgs)
        for m in msgs:
            self.bytes += len(m.data)
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
    """CPU µs per call, the median of 3 timings (never the best)."""
    took = []
    for _ in range(3):
        started = time.process_time()
        for _ in range(n):
            fn()
        took.append((time.process_time() - started) / n)
    return sorted(took)[1] * 1e6


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


def run_routes(ctx: Context, work: list[tuple[MemorySwitch, bytes]]) -> tuple[float, float]:
    """(CPU seconds, wall seconds) of the whole handler over every PacketIn (each a fresh route)."""
    hotplug = HotPlug(ctx)
    events = [(sw, ch.PacketIn(1, *parse_packet_in(f))) for sw, f in work]
    settle_gc()  # as the controller does once started

    async def go() -> tuple[float, float]:
        cpu, wall = time.process_time(), time.perf_counter()
        for sw, ev in events:
            hotplug.on_packet_in(sw, ev)  # type: ignore[arg-type]
        return time.process_time() - cpu, time.perf_counter() - wall

    return asyncio.run(go())


def once(routes: int, profile: bool) -> dict[str, object]:
    """One run on a fresh model: the stage timings and the whole handler over `routes` PacketIns."""
    per_host = int(routes ** 0.5) + 1
    ctx, work = build(per_host)
    work = work[:routes]
    rows = stages(ctx, work[0][1], 5000)
    if profile:
        prof = cProfile.Profile()
        prof.enable()
        took, wall = run_routes(ctx, work)
        prof.disable()
        pstats.Stats(prof).sort_stats("tottime").print_stats(25)
    else:
        took, wall = run_routes(ctx, work)
    plugged = len(ctx.routes)
    if plugged != len(work):
        raise SystemExit(f"only {plugged} of {len(work)} routes were plugged")
    # The os-ken reference of the whole handler: each stage as os-ken does it (decide as is).
    reference = sum(f if r != r else r for name, f, r in rows if not name.startswith(" "))
    us = took / plugged * 1e6
    return {"routes": plugged, "seconds": round(took, 3), "wall_seconds": round(wall, 3),
            "us_per_route": round(us, 2), "wall_us_per_route": round(wall / plugged * 1e6, 2),
            "routes_per_s": round(plugged / took, 1), "os_ken_reference_us": round(reference, 1),
            "speedup_vs_os_ken": round(reference / us, 1),
            "stages_us": {name: {"fast": round(f, 2), "os_ken": None if r != r else round(r, 2)}
                          for name, f, r in rows}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    runs_option(ap)
    ap.add_argument("--routes", type=int, default=20_000, help="PacketIns (fresh routes) per run")
    ap.add_argument("--profile", action="store_true",
                    help="cProfile the handler (first run); print the top 25")
    args = ap.parse_args()
    started = time.time()
    count = iter(range(args.runs))
    done = repeat(lambda: once(args.routes, args.profile and next(count) == 0), args.runs, "hotpath")
    med, sp = done["median"], done["spread"]
    print(f"{'stage (one cross-host route)':<30} {'fast µs':>22} {'os-ken µs':>22} {'speed-up':>9}   "
          f"(median (min–max) of {args.runs} runs)")
    for name, stage in med["stages_us"].items():
        fast, ref = stage["fast"], stage["os_ken"]
        ratio = f"{ref / fast:.1f}x" if ref is not None else "-"
        ref_s = show(sp["stages_us"][name]["os_ken"], 1) if ref is not None else "-"
        print(f"{name:<30} {show(sp['stages_us'][name]['fast'], 1):>22} {ref_s:>22} {ratio:>9}")
    print(f"whole handler: {med['routes']} routes; {show(sp['us_per_route'], 2)} CPU µs/route "
          f"= {show(sp['routes_per_s'], 0)} routes per CPU-second (no sockets)")
    print(f"os-ken reference (its stages summed): {show(sp['os_ken_reference_us'], 1)} µs/route; "
          f"the handler is {show(sp['speedup_vs_os_ken'], 1)}x faster")
    write("hotpath", {**med, "runs_count": args.runs, "spread": sp, "runs": done["runs"]}, started)


if __name__ == "__main__":
    main()
