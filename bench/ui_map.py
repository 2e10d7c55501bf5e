"""The live map at scale (issue 16's figures): 1,000 containers and 2,000 live routes.

An in-process controller (SQLite in memory, no switches: the map reads the model and
the route table, which is what a real controller feeds it) serves its API on
127.0.0.1; Debian's chromium, driven headless by Playwright, opens /ui.  Per run:

- first render: navigation start to the first snapshot drawn (the page's performance
  measure "ui-first-render"), and the containers and routes it drew;
- churn at --rate route changes/s (half plugged, half gone; the live count stays at
  --routes) for --seconds:
  - browser: each pushed update's cost (measure "ui-delta": applied and laid out, ms),
    updates per second, and animation-frame intervals (does the page stay fluid);
  - controller: CPU seconds per second of this process (the API, feed and the churn
    driver itself) with no map open, with one, and with --maps maps open; the push
    stream's cost is the difference (Playwright's browser runs in other processes).

    .venv/bin/python bench/ui_map.py [--runs 3] [--containers 1000] [--routes 2000] [--rate 1000]

Prints a table and writes bench/results/ui_map-<timestamp>.json (with the commit).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import socket
import statistics
import sys
import time
from typing import Any

import uvicorn

from daolinet.controller.api import create_app
from daolinet.controller.api.auth import hash_token
from daolinet.controller.context import Config
from daolinet.controller.controller import Controller
from daolinet.model import Host
from daolinet.pipeline import route_cookie
from daolinet.store import open_store

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from runs import repeat, runs_option, show, write

CHROMIUM = "/usr/bin/chromium"
TOKEN = "dl_bench_admin"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def build(containers: int, hosts: int) -> tuple[Controller, list[tuple[int, int]]]:
    """A controller whose model has `containers` containers over `hosts` hosts; (ctrl, [(eid, dpid)])."""
    store = open_store("sqlite://:memory:")
    await store.create_token("admin", None, hash_token(TOKEN), time.time())
    for i in range(1, hosts + 1):
        await store.register_host(Host(f"h{i}", i, f"198.18.0.{i}", f"02:00:00:00:00:{i:02x}",
                                       f"198.18.{i}.0/24"))
    await store.create_network("default", "net", "10.40.0.0/20")
    ends = []
    for n in range(containers):
        host = n % hosts + 1
        e = await store.create_endpoint("default", "net", f"c{n:04d}", f"h{host}")
        ends.append((e.id, host))
    ctrl = Controller(store, Config())
    await ctrl.start()
    return ctrl, ends


class Churn:
    """Route changes at a steady rate: alternately one route gone, one plugged."""

    def __init__(self, ctrl: Controller, ends: list[tuple[int, int]], routes: int, seed: int = 7) -> None:
        self.ctrl, self.ends, self.rng = ctrl, ends, random.Random(seed)
        self.live: list[int] = []
        self.done = 0
        while len(self.live) < routes:
            self.plug()

    def plug(self) -> None:
        while True:  # a pair not live yet: the live count stays put
            (a, ha), (b, hb) = self.rng.sample(self.ends, 2)
            cookie = route_cookie(a, b).value
            if self.ctrl.ctx.routes.get(cookie) is None:
                break
        flows = {ha: 2} if ha == hb else {ha: 2, hb: 2}
        self.ctrl.ctx.routes.plugged(cookie, (f"c{a}", f"c{b}"), flows, time.time())
        self.live.append(cookie)

    def step(self) -> None:
        if self.done % 2:
            self.plug()
        else:
            i = self.rng.randrange(len(self.live))
            self.live[i], self.live[-1] = self.live[-1], self.live[i]
            self.ctrl.ctx.routes.remove(self.live.pop())
        self.done += 1

    async def run(self, rate: float, seconds: float) -> float:
        """Churn for `seconds`; the rate achieved."""
        start, first = time.perf_counter(), self.done
        while (elapsed := time.perf_counter() - start) < seconds:
            while self.done - first < rate * elapsed:
                self.step()
            await asyncio.sleep(0.005)
        return (self.done - first) / (time.perf_counter() - start)


async def cpu_while(churn: Churn, rate: float, seconds: float) -> tuple[float, float]:
    """(CPU seconds per second of this process, rate achieved) while churning."""
    cpu0, wall0 = time.process_time(), time.perf_counter()
    achieved = await churn.run(rate, seconds)
    return (time.process_time() - cpu0) / (time.perf_counter() - wall0), achieved


FRAMES = """() => { window.__frames = []; let last = performance.now();
  const tick = (t) => { window.__frames.push(t - last); last = t;
                        if (window.__frames.length < 100000) requestAnimationFrame(tick); };
  requestAnimationFrame(tick); performance.clearMeasures("ui-delta"); }"""
COLLECT = """() => ({ deltas: performance.getEntriesByName("ui-delta").map(m => [m.duration, m.detail]),
  frames: window.__frames })"""


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


async def once_async(args: argparse.Namespace) -> dict[str, Any]:
    from playwright.async_api import async_playwright

    ctrl, ends = await build(args.containers, args.hosts)
    churn = Churn(ctrl, ends, args.routes)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(ctrl), host="127.0.0.1", port=port, log_level="warning",
                                           lifespan="off"))
    serving = asyncio.ensure_future(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    out: dict[str, Any] = {}
    try:
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            # bypass_csp: Playwright's polling evaluates its predicates as strings, which the page's
            # Content-Security-Policy (no eval) refuses; the page's own code is the same either way
            ctx = await browser.new_context(viewport={"width": 1600, "height": 1000}, bypass_csp=True)
            await ctx.add_init_script(f"sessionStorage.setItem('daolinet-token', '{TOKEN}')")
            out["cpu_no_map"], _ = await cpu_while(churn, args.rate, args.seconds)
            page = await ctx.new_page()
            await page.goto(f"http://127.0.0.1:{port}/ui")
            await page.wait_for_function("performance.getEntriesByName('ui-first-render').length > 0",
                                         timeout=60_000)
            out["first_render_ms"] = await page.evaluate(
                "performance.getEntriesByName('ui-first-render')[0].duration")
            out["drawn"] = await page.evaluate("""() => ({
                containers: document.querySelectorAll('.ctr').length,
                routes: document.querySelectorAll('.edge[data-live="1"]').length})""")
            await page.evaluate(FRAMES)
            out["cpu_one_map"], out["rate"] = await cpu_while(churn, args.rate, args.seconds)
            got = await page.evaluate(COLLECT)
            durations = [d for d, _ in got["deltas"]]
            sizes = [n for _, n in got["deltas"]]
            out["updates_per_s"] = len(durations) / args.seconds
            out["events_per_update"] = statistics.mean(sizes) if sizes else 0.0
            out["update_ms_p50"], out["update_ms_p95"] = pct(durations, 0.5), pct(durations, 0.95)
            out["update_ms_max"] = max(durations, default=0.0)
            frames = got["frames"][1:]
            out["frame_ms_p50"], out["frame_ms_p95"] = pct(frames, 0.5), pct(frames, 0.95)
            out["frame_ms_max"] = max(frames, default=0.0)
            more = [await ctx.new_page() for _ in range(args.maps - 1)]
            for p in more:
                await p.goto(f"http://127.0.0.1:{port}/ui")
                await p.wait_for_function("performance.getEntriesByName('ui-first-render').length > 0",
                                          timeout=60_000)
            out[f"cpu_{args.maps}_maps"], _ = await cpu_while(churn, args.rate, args.seconds)
            await browser.close()
    finally:
        server.should_exit = True
        await serving
        await ctrl.stop()
        await ctrl.store.close()
    out["push_cpu_one_map"] = out["cpu_one_map"] - out["cpu_no_map"]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    runs_option(parser)
    parser.add_argument("--containers", type=int, default=1000)
    parser.add_argument("--hosts", type=int, default=10)
    parser.add_argument("--routes", type=int, default=2000)
    parser.add_argument("--rate", type=float, default=1000.0, help="route changes per second")
    parser.add_argument("--seconds", type=float, default=8.0, help="length of each churn window")
    parser.add_argument("--maps", type=int, default=4, help="maps open in the last window")
    args = parser.parse_args()
    started = time.time()
    result = repeat(lambda: asyncio.run(once_async(args)), args.runs, "ui_map")
    s, m = result["spread"], result["median"]
    print(f"{args.containers} containers on {args.hosts} hosts, {args.routes} live routes, "
          f"churn {show(s['rate'], 0)} changes/s")
    print(f"drawn: {m['drawn']}")
    for key, unit, digits in (("first_render_ms", " ms", 0), ("update_ms_p50", " ms", 2),
                              ("update_ms_p95", " ms", 2), ("update_ms_max", " ms", 2),
                              ("updates_per_s", "/s", 1), ("events_per_update", "", 1),
                              ("frame_ms_p50", " ms", 1), ("frame_ms_p95", " ms", 1),
                              ("frame_ms_max", " ms", 0),
                              ("cpu_no_map", " s/s", 3), ("cpu_one_map", " s/s", 3),
                              (f"cpu_{args.maps}_maps", " s/s", 3), ("push_cpu_one_map", " s/s", 3)):
        print(f"  {key:22} {show(s[key], digits, unit)}")
    write("ui_map", {"params": vars(args), **result}, started)


if __name__ == "__main__":
    main()
