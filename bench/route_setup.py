"""route-setup: a cbench-like load generator against a real controller process.

N simulated OpenFlow 1.3 switches (bench/ofsim.py) connect over TCP; each sends
PacketIns for fresh endpoint pairs (a on this switch -> b on the next one) and
counts a route as set up when the controller's PacketOut re-injecting that
packet arrives: parse, decide, four FlowMods on two switches with a barrier
round trip between them, the PacketOut.  Three modes, each on fresh pairs:

- latency:    one PacketIn at a time;
- throughput: `--window` PacketIns outstanding per switch, as fast as answered;
- half load:  open loop at half the measured throughput, for `--seconds`:
              the latency a controller at 50 % shows (the target is p99 <= 2 ms).

The store (hosts, a /16 network, plugged endpoints) is written through the store
API before the controller starts, as `daolinet store migrate` would.  The
generator's own ceiling (its per-route work without a controller) is measured too.

The controller runs `--insecure` (tcp:) unless `--tls`: then it listens on ssl:
with a pair from a CA made for the run, and every switch connects over TLS with
the certificate of the host registered with its dpid.  `--compare` runs both
cases, `--runs` times each (alternating which goes first, each on a fresh
controller and store), and prints both and the TLS/insecure ratio.  Without
`--compare`, the one case runs `--runs` times, each on a fresh controller and store.
Every figure is the median over the runs, with min and max beside it; a run whose
controller stopped answering is reported and retried.

    .venv/bin/python bench/route_setup.py [--runs 3] [--switches 2] [--endpoints 300] [--window 64]
                                          [--routes 20000] [--tls | --compare]
                                          [--profile FILE.txt|FILE.svg]

Prints a table; writes bench/results/route_setup-<timestamp>.json (with the commit;
the medians at the top level, "spread" with min and max, every run under "runs"; with
--compare, every round's under "compare", and the TLS case's medians at the top level).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from ofsim import (
    Switch,
    connect,
    cpu_s,
    host_tls,
    icmp_frame,
    machine,
    make_pki,
    packet_in_bytes,
    start_controller,
    start_profiler,
    stats_ms,
    stop,
)
from runs import ToolFailed, combine, repeat, runs_option, show, write

from daolinet.model import Endpoint, Host, Network, Tenant
from daolinet.model.objects import DEFAULT_TENANT
from daolinet.ofp.codec import DP, encode, ofp, parser
from daolinet.store import open_store

Work = tuple[bytes, bytes]  # (IP pair key, PacketIn)


def objects(switches: int, per_switch: int) -> tuple[list[object], dict[int, list[Endpoint]]]:
    """Hosts h1..hN (dpid d, PIP pool 198.18.4d.0/22), one /16 network, per_switch plugged endpoints each."""
    if per_switch > 1000 or switches > 60:
        raise SystemExit("at most 60 switches and 1000 endpoints per switch")
    net = Network(id=1, name="bench", tenant=DEFAULT_TENANT, subnet="10.64.0.0/16", gateway="10.64.0.1")
    objs: list[object] = [Tenant(DEFAULT_TENANT), net]
    eps: dict[int, list[Endpoint]] = {}
    now = time.time()
    for d in range(1, switches + 1):
        objs.append(Host(name=f"h{d}", dpid=d, underlay_ip=f"198.19.0.{d}",
                         underlay_mac=f"02:18:00:00:00:{d:02x}", pip_pool=f"198.18.{4 * d}.0/22",
                         underlay_prefix=16, last_seen=now))
        eps[d] = []
        for i in range(per_switch):
            n = (d - 1) * per_switch + i
            e = Endpoint(id=n + 1, name=f"e{d}-{i}", tenant=DEFAULT_TENANT, network="bench",
                         ip=f"10.64.{2 + n // 250}.{1 + n % 250}",
                         mac=f"02:00:00:00:{n >> 8:02x}:{n & 0xFF:02x}",
                         host=f"h{d}", pip=f"198.18.{4 * d + (i + 2) // 256}.{(i + 2) % 256}", port=f"p{i}",
                         ofport=i + 2)
            objs.append(e)
            eps[d].append(e)
    return objs, eps


async def build_store(path: str, objs: list[object]) -> None:
    store = open_store(f"sqlite://{path}")
    try:
        await store.import_objects(objs)  # type: ignore[arg-type]
    finally:
        await store.close()


def pairs(eps: dict[int, list[Endpoint]]) -> dict[int, Iterator[Work]]:
    """Per switch, an endless supply of fresh cross-host PacketIns (a here -> b on the next switch)."""
    dpids = sorted(eps)

    def gen(d: int) -> Iterator[Work]:
        peer = dpids[(dpids.index(d) + 1) % len(dpids)]
        for b, a in itertools.product(eps[peer], eps[d]):
            data = icmp_frame(a.mac, a.ip, b.ip)
            yield data[26:34], packet_in_bytes(a.ofport or 0, data, 7)

    return {d: gen(d) for d in dpids}


async def closed_loop(sw: Switch, work: list[Work], window: int) -> None:
    assert sw.writer is not None
    for key, msg in work:
        while len(sw.pending) >= window:
            sw.done.clear()
            await asyncio.wait_for(sw.done.wait(), 30)
        sw.pending[key] = time.perf_counter()
        sw.writer.write(msg)
    while sw.pending:
        sw.done.clear()
        await asyncio.wait_for(sw.done.wait(), 30)


async def open_loop(sw: Switch, work: list[Work], rate: float) -> None:
    """Send `work` at `rate` PacketIns/s, whatever the answers."""
    assert sw.writer is not None
    started = time.perf_counter()
    sent = 0
    while sent < len(work):
        due = min(int((time.perf_counter() - started) * rate), len(work))
        for key, msg in work[sent:due]:
            sw.pending[key] = time.perf_counter()
            sw.writer.write(msg)
        sent = max(sent, due)
        await asyncio.sleep(0.0005)
    deadline = time.perf_counter() + 30
    while sw.pending and time.perf_counter() < deadline:
        sw.done.clear()
        await asyncio.wait_for(sw.done.wait(), 30)


async def drive(port: int, work: dict[int, Iterator[Work]], args: argparse.Namespace,
                pki_dir: str | None = None, pid: int | None = None) -> dict[str, object]:
    """The three modes against the controller on `port` (process `pid`: its CPU time per
    route is read too); over TLS, switch d connects as host hd."""
    sws = {d: Switch(d) for d in work}
    tasks = [await connect(port, sw, host_tls(pki_dir, f"h{d}") if pki_dir else None)
             for d, sw in sws.items()]
    await asyncio.wait_for(asyncio.gather(*(sw.ready.wait() for sw in sws.values())), 60)
    out: dict[str, object] = {}

    async def mode(name: str, runs: list[object]) -> float:
        for sw in sws.values():
            sw.latencies.clear()
            sw.flowmods = 0
        cpu = cpu_s(pid) if pid else 0.0
        own_cpu, started = time.process_time(), time.perf_counter()
        await asyncio.gather(*runs)  # type: ignore[arg-type]
        took = time.perf_counter() - started
        own_cpu, cpu = time.process_time() - own_cpu, (cpu_s(pid) - cpu if pid else 0.0)
        lat = [x for sw in sws.values() for x in sw.latencies]
        routes = len(lat)
        out[name] = {"routes": routes, "seconds": round(took, 3), "routes_per_s": round(routes / took, 1),
                     "flowmods_per_s": round(sum(sw.flowmods for sw in sws.values()) / took, 1),
                     "controller_cpu_s": round(cpu, 2), "generator_cpu_s": round(own_cpu, 2),
                     "controller_cpu_us_per_route": round(cpu / max(routes, 1) * 1e6, 1),
                     # The controller's throughput were it given a whole core: routes per CPU-second.
                     "controller_routes_per_cpu_s": round(routes / cpu, 1) if cpu else None,
                     **stats_ms(lat),
                     "samples_ms": [round(x * 1e3, 4) for x in lat[:: max(1, routes // 5000)]]}
        return routes / took

    def take(d: int, n: int) -> list[Work]:  # built before a mode starts, never while timed
        return list(itertools.islice(work[d], int(n)))

    first = min(sws)
    await mode("latency", [closed_loop(sws[first], take(first, args.latency_routes), 1)])
    per = args.routes // len(sws)
    batches = {d: take(d, per) for d in sws}
    rate = await mode("throughput", [closed_loop(sws[d], batches[d], args.window) for d in sws])
    half = rate / 2 / len(sws)
    batches = {d: take(d, half * args.seconds) for d in sws}
    await mode("half_load", [open_loop(sws[d], batches[d], half) for d in sws])
    out["half_load"]["offered_routes_per_s"] = round(rate / 2, 1)  # type: ignore[index]
    for t in tasks:
        t.cancel()
    return out


def generator_ceiling(n: int) -> float:
    """Routes/s the generator's own timed per-route work (send a prebuilt PacketIn, frame
    and match the PacketOut and four FlowMods that answer it) sustains, without a controller."""

    class Sink:
        def write(self, data: bytes) -> None:
            pass

    sw = Switch(1)
    sw.writer = Sink()  # type: ignore[assignment]
    data = icmp_frame("02:00:00:00:00:01", "10.64.0.2", "10.64.1.2")
    msg = packet_in_bytes(2, data, 7)
    out = encode(parser.OFPPacketOut(DP, buffer_id=ofp.OFP_NO_BUFFER, in_port=2,
                                     actions=[parser.OFPActionOutput(ofp.OFPP_TABLE, 0)], data=data), 9)
    flow_mod = bytes([4, 14, 0, 8, 0, 0, 0, 0])
    started = time.perf_counter()
    for _ in range(n):
        sw.pending[data[26:34]] = time.perf_counter()
        sw.writer.write(msg)
        for _ in range(4):
            sw.on_message(14, 0, flow_mod)
        sw.on_message(13, 0, out)
    return n / (time.perf_counter() - started)


MODES = ("latency", "throughput", "half_load")
Result = dict[str, object]


def run_case(args: argparse.Namespace, objs: list[object], eps: dict[int, list[Endpoint]], tls: bool,
             profile: str | None = None) -> Result:
    """One controller on a fresh store (and, with `tls`, a fresh CA), the three modes against it."""
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(build_store(f"{tmp}/s.db", objs))
        pki_dir = make_pki(f"{tmp}/pki", (f"h{d}" for d in eps)) if tls else None
        ctl = start_controller(tmp, f"{tmp}/s.db", pki_dir=pki_dir)
        spy = start_profiler(ctl.proc.pid, profile) if profile else None
        try:
            return asyncio.run(drive(ctl.of_port, pairs(eps), args, pki_dir, ctl.proc.pid))
        except (TimeoutError, ConnectionError) as e:
            raise ToolFailed(f"the controller stopped answering ({type(e).__name__}: {e}); its log said: "
                             f"{tail(f'{tmp}/controller.log')}") from e
        finally:
            if spy is not None:
                spy.send_signal(signal.SIGINT)
                spy.wait(30)
            stop(ctl.proc)


def tail(path: str, lines: int = 5) -> str:
    try:
        with open(path, errors="replace") as f:
            return " | ".join(line.strip() for line in f.readlines()[-lines:]) or "nothing"
    except OSError:
        return "nothing (no log)"


def print_table(result: Result, title: str) -> None:
    print(f"{title:<11} {'routes':>7} {'routes/s':>9} {'routes/CPU-s':>13} {'FlowMods/s':>11} {'p50 ms':>8} "
          f"{'p99 ms':>8} {'p999 ms':>8}")
    for mode in MODES:
        r = result[mode]
        assert isinstance(r, dict)
        per_cpu = r.get("controller_routes_per_cpu_s")
        print(f"{mode:<11} {r['routes']:>7} {r['routes_per_s']:>9} {per_cpu if per_cpu else '-':>13} "
              f"{r['flowmods_per_s']:>11} "
              f"{r['p50_ms']:>8} {r['p99_ms']:>8} {r['p999_ms']:>8}")


FIGURES = {"throughput_routes_per_s": ("throughput", "routes_per_s"),
           # A single-threaded controller's throughput is 1 / its CPU time per route: a
           # figure other processes on the machine disturb far less than routes/s.
           "throughput_cpu_us_per_route": ("throughput", "controller_cpu_us_per_route"),
           "throughput_routes_per_cpu_s": ("throughput", "controller_routes_per_cpu_s"),
           "latency_p50_ms": ("latency", "p50_ms"), "latency_p99_ms": ("latency", "p99_ms"),
           "half_load_p99_ms": ("half_load", "p99_ms")}


def summarise(rounds: list[dict[str, Result]]) -> dict[str, object]:
    """Median, min and max over the rounds of each figure, per case, and TLS/insecure of the medians."""
    out: dict[str, object] = {}
    for figure, (mode, key) in FIGURES.items():
        row: dict[str, object] = {}
        for case in ("insecure", "tls"):
            values = [float(r[case][mode][key]) for r in rounds]  # type: ignore[index]
            row[case] = {"median": round(statistics.median(values), 3), "min": min(values),
                         "max": max(values), "values": values}
        ins, tls = row["insecure"]["median"], row["tls"]["median"]  # type: ignore[index]
        row["tls_over_insecure"] = round(tls / ins, 3) if ins else None
        # Each round's two cases ran back to back: their ratio sees the same machine load.
        pairs = zip(row["insecure"]["values"], row["tls"]["values"], strict=True)  # type: ignore[index]
        row["round_ratios"] = [round(t / i, 3) if i else None for i, t in pairs]
        out[figure] = row
    return out


def compare(args: argparse.Namespace, objs: list[object], eps: dict[int, list[Endpoint]]) -> Result:
    rounds: list[dict[str, Result]] = []
    for i in range(args.runs):
        order = ("insecure", "tls") if i % 2 == 0 else ("tls", "insecure")
        rnd: dict[str, Result] = {case: repeat(lambda c=case: run_case(args, objs, eps, c == "tls"), 1,  # type: ignore[misc]
                                               f"route_setup {case}")["runs"][0] for case in order}
        rounds.append({"order": list(order), **rnd})  # type: ignore[dict-item]
        ins, tls = (rnd[c]["throughput"]["routes_per_s"] for c in ("insecure", "tls"))  # type: ignore[index]
        print(f"round {i + 1}/{args.runs}: throughput insecure {ins:,.0f}, TLS {tls:,.0f} routes/s "
              f"(TLS/insecure {tls / ins:.3f})", flush=True)
    summary = summarise(rounds)
    print(f"{'over ' + str(args.runs) + ' rounds':<24} {'insecure median (min–max)':>28} "
          f"{'TLS median (min–max)':>28} {'TLS/insecure':>13}")
    for figure, row in summary.items():
        assert isinstance(row, dict)
        cells = [show(row[c]) for c in ("insecure", "tls")]
        print(f"{figure:<24} {cells[0]:>28} {cells[1]:>28} {row['tls_over_insecure']:>13}")
    throughput = summary["throughput_routes_per_s"]
    cost = 1 - throughput["tls_over_insecure"]  # type: ignore[index]
    print(f"TLS costs {cost:.1%} of route-setup throughput (medians of {args.runs} rounds; "
          f"target <= 10 %); per round TLS/insecure {throughput['round_ratios']}")  # type: ignore[index]
    per_route = summary["throughput_cpu_us_per_route"]["tls_over_insecure"]  # type: ignore[index]
    print(f"controller CPU per route TLS/insecure x{per_route}: TLS costs {1 - 1 / per_route:.1%} of a "
          f"CPU-bound controller's throughput")
    tls_median, _ = combine([r["tls"] for r in rounds])
    return {**tls_median, "compare": {"rounds": rounds, "summary": summary}}


def single(args: argparse.Namespace, objs: list[object], eps: dict[int, list[Endpoint]]) -> Result:
    """The one case (--tls or not), --runs times; medians at the top level."""
    done = repeat(lambda: run_case(args, objs, eps, args.tls, args.profile), args.runs, "route_setup")
    print(f"{'figure':<30} {'median (min–max) of ' + str(args.runs) + ' runs':>36}")
    for figure, (mode, key) in FIGURES.items():
        print(f"{figure:<30} {show(done['spread'][mode][key]):>36}")
    return {**done["median"], "spread": done["spread"], "runs": done["runs"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--switches", type=int, default=2)
    ap.add_argument("--endpoints", type=int, default=300, help="per switch")
    ap.add_argument("--window", type=int, default=64,
                    help="outstanding PacketIns per switch, throughput mode")
    ap.add_argument("--routes", type=int, default=20_000, help="throughput mode, over all switches")
    ap.add_argument("--latency-routes", type=int, default=1000)
    ap.add_argument("--seconds", type=float, default=3.0, help="half-load mode duration")
    ap.add_argument("--tls", action="store_true", help="OpenFlow over TLS, every switch with its host's "
                    "certificate (default: --insecure, plain TCP)")
    ap.add_argument("--compare", action="store_true", help="run the insecure and the TLS case, "
                    "--runs times each, and print both and their ratio")
    runs_option(ap, 3, "--rounds")
    ap.add_argument("--profile", metavar="FILE", help="record the controller with py-spy into FILE "
                    "(.txt: collapsed stacks, else a flame graph SVG)")
    args = ap.parse_args()
    if args.compare and (args.tls or args.profile):
        raise SystemExit("--compare runs both cases: without --tls or --profile")
    objs, eps = objects(args.switches, args.endpoints)
    need = args.latency_routes + args.routes + args.seconds * 20_000
    if args.switches * args.endpoints ** 2 < need:
        raise SystemExit(f"{args.switches}x{args.endpoints} endpoints give too few fresh pairs "
                         f"for {need:.0f} routes")
    started = time.time()
    result = compare(args, objs, eps) if args.compare else single(args, objs, eps)
    ceiling = generator_ceiling(20000)
    result = {"switches": args.switches, "endpoints_per_switch": args.endpoints, "window": args.window,
              "runs_count": args.runs, "tls": args.tls or args.compare, **result,
              "generator_ceiling_routes_per_s": round(ceiling, 1)}
    print_table(result, "TLS" if result["tls"] else "insecure")
    r = result["throughput"]
    assert isinstance(r, dict)
    print(f"throughput: controller CPU {r['controller_cpu_s']} s "
          f"({r['controller_cpu_us_per_route']} µs/route = {r['controller_routes_per_cpu_s']} routes per "
          f"controller CPU-second; target >= 50,000), generator CPU {r['generator_cpu_s']} s "
          f"over {r['seconds']} s")
    print(f"half load offered {result['half_load']['offered_routes_per_s']} routes/s; "  # type: ignore[index]
          f"generator ceiling: {ceiling:,.0f} routes/s (its own work per route, no controller, no TLS)")
    write("route_setup", {**result, "machine": machine()}, started)


if __name__ == "__main__":
    main()
