"""scale: one controller with many switches and endpoints (issue 6, "scale").

Builds a SQLite store with `--endpoints` plugged endpoints on `--switches` hosts
directly through the store API (Store.import_objects, as `daolinet store migrate`
does), then starts one real controller process on it and measures:

- start-up time (process start -> ready file) and RSS (VmRSS of /proc/PID/status):
  of an empty controller, with the endpoints loaded, with 10 and then all
  switches connected (connected = the controller's flow sync reached its barrier);
- route-setup latency, one PacketIn at a time (PacketIn -> the PacketOut that
  re-injects the packet), between the first 10 switches while only they are
  connected, then again (fresh pairs) with every switch connected, across
  random switches, and once more with the 990 others disconnected (the drift
  of a shared machine shows there); with the controller's CPU time per route;
- revocation: `--revoke-routes` live cross-network routes allowed by a group
  (created through the REST API); removing one network from the group through
  the API; time until the API call returns and until the simulated switches
  have received every route FlowMod DELETE (FLOW_MOD with command OFPFC_DELETE
  and a route cookie, counted on the switches), and the drop-flow clears the
  same change sends to every switch.

Simulated switches come from bench/ofsim.py (answer handshakes, barriers
and stats; read headers only).

    .venv/bin/python bench/scale.py [--runs 3] [--switches 1000] [--endpoints 100000] [--profile FILE]
                                    [--profile-samples DIR]   (py-spy, see --help)

Each run starts from a fresh store and controller; the table shows the medians over
the runs, and the headline figures median (min–max).  A run whose controller stopped
answering is reported (with its log's tail) and retried.

Prints a table; writes bench/results/scale-<timestamp>.json (with the commit).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import os
import platform
import random
import resource
import signal
import struct
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from daolinet.model.objects import Endpoint, Host, Network, Tenant
from daolinet.model.view import Obj
from daolinet.pipeline import Kind, route_cookie
from daolinet.store import open_store

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ofsim
from ofsim import Switch, connect, icmp_frame, packet_in_bytes
from runs import ToolFailed, repeat, runs_option, show, spread, write

PER_NET = 1000  # endpoints per network (network k: 10.k.0.0/16)
TENANT = "default"
FLOW_MOD = 14
OFPFC_DELETE, OFPFC_DELETE_STRICT = 3, 4
TARGET_RSS = 1 << 30
TARGET_FLAT = 0.20
LATENCY_DPIDS = 10


# -- the store, built before the controller starts ---------------------------------------


@dataclass
class Layout:
    switches: int
    endpoints: list[Endpoint]
    by_host_net: dict[tuple[int, int], list[Endpoint]] = field(default_factory=dict)  # (dpid, net)

    @staticmethod
    def dpid_of(e: Endpoint) -> int:
        return int(e.host[1:])

    @staticmethod
    def net_of(e: Endpoint) -> int:
        return int(e.network[3:])


def make_objects(switches: int, endpoints: int) -> tuple[list[Obj], Layout]:
    """Hosts h1..hN (dpid = N), networks net0.. of PER_NET endpoints each; endpoint j on
    host j % N + 1 at ofport 2 + (its index on that host): every endpoint plugged."""
    nets = -(-endpoints // PER_NET)
    if nets > 250 or endpoints > switches * 500:
        raise SystemExit("at most 250,000 endpoints and 500 per switch")
    objs: list[Obj] = [Tenant(TENANT)]
    objs += [Network(id=k + 1, name=f"net{k}", tenant=TENANT, subnet=f"10.{k}.0.0/16", gateway=f"10.{k}.0.1")
             for k in range(nets)]
    underlay = int(ipaddress.IPv4Address("172.16.0.0"))
    pips = int(ipaddress.IPv4Address("100.64.0.0"))
    now = time.time()  # every host heard from just now (a controller with host liveness keeps them)
    for d in range(1, switches + 1):
        objs.append(Host(name=f"h{d}", dpid=d, underlay_ip=str(ipaddress.IPv4Address(underlay + d)),
                         underlay_mac=f"02:18:00:00:{d >> 8:02x}:{d & 0xFF:02x}",
                         pip_pool=f"{ipaddress.IPv4Address(pips + d * 512)}/23", underlay_prefix=12,
                         last_seen=now))
    layout = Layout(switches, [])
    for j in range(endpoints):
        k, m = divmod(j, PER_NET)
        d, slot = j % switches + 1, j // switches
        m += 2  # .0 is the network, .1 its gateway
        mac = f"02:00:00:{j >> 16 & 0xFF:02x}:{j >> 8 & 0xFF:02x}:{j & 0xFF:02x}"
        pip = str(ipaddress.IPv4Address(pips + d * 512 + slot + 2))
        ip = f"10.{k}.{m >> 8}.{m & 0xFF}"
        e = Endpoint(id=j + 1, name=f"e{j}", tenant=TENANT, network=f"net{k}", ip=ip, mac=mac,
                     host=f"h{d}", pip=pip, port=f"p{slot}", ofport=slot + 2)
        objs.append(e)
        layout.endpoints.append(e)
        layout.by_host_net.setdefault((d, k), []).append(e)
    return objs, layout


async def build_store(path: str, objs: list[Obj]) -> None:
    store = open_store(f"sqlite://{path}")  # path is absolute: sqlite:///tmp/...
    try:
        await store.import_objects(objs)
    finally:
        await store.close()


# -- the controller ---------------------------------------------------------------------


@dataclass
class Controller(ofsim.Controller):
    """ofsim's controller process, with its RSS and CPU readings."""

    profile_dir: str | None = None  # py-spy each latency sample into DIR/<sample>.txt

    def rss(self) -> dict[str, int]:
        """VmRSS and VmHWM (peak), bytes."""
        out = {}
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith(("VmRSS:", "VmHWM:")):
                    key, value, _ = line.split()
                    out[key[:-1]] = int(value) * 1024
        return out

    def cpu_s(self) -> float:
        """User + system CPU seconds the controller has used."""
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        if self.proc.poll() is None:
            ofsim.stop(self.proc)


def start_controller(tmp: str, store: str, timeout: float = 300) -> Controller:
    """ofsim.start_controller on a given store, with start-up time, RSS and CPU readings."""
    c = ofsim.start_controller(tmp, store, timeout=timeout)
    return Controller(c.proc, c.api, c.token, c.of_port, c.started_in)  # started_in: start-up time


# -- simulated switches that also count route FlowMods -------------------------------------


@dataclass
class CountingSwitch(Switch):
    route_adds: set[int] = field(default_factory=set)  # route cookies added here
    route_deletes: list[tuple[int, float]] = field(default_factory=list)  # (cookie, received at)
    drop_deletes: list[float] = field(default_factory=list)  # received at: "forget every drop flow"
    on_delete: asyncio.Event | None = None

    def on_message(self, msg_type: int, xid: int, msg: bytes) -> None:
        if msg_type == FLOW_MOD and len(msg) >= 26:
            cookie = struct.unpack_from("!Q", msg, 8)[0]
            if cookie >> 56 == Kind.DROP and msg[25] == OFPFC_DELETE:
                self.drop_deletes.append(time.perf_counter())
            elif cookie >> 56 == Kind.ROUTE:
                command = msg[25]
                if command in (OFPFC_DELETE, OFPFC_DELETE_STRICT):
                    self.route_deletes.append((cookie, time.perf_counter()))
                    if self.on_delete is not None:
                        self.on_delete.set()
                elif command == 0:  # OFPFC_ADD
                    self.route_adds.add(cookie)
        super().on_message(msg_type, xid, msg)


def packet_in_for(a: Endpoint, b: Endpoint) -> tuple[bytes, bytes]:
    data = icmp_frame(a.mac, a.ip, b.ip)
    assert a.ofport is not None
    return data[26:34], packet_in_bytes(a.ofport, data, 7)


async def connect_all(port: int, sws: list[CountingSwitch],
                      batch: int) -> tuple[float, list[asyncio.Task[None]]]:
    """Connect in batches (each waits for the controller's sync barrier of all its switches):
    the controller's flow sync of a switch must answer within its 10 s request timeout."""
    tasks = []
    started = time.perf_counter()
    for i in range(0, len(sws), batch):
        chunk = sws[i:i + batch]
        tasks += [await connect(port, sw) for sw in chunk]
        await asyncio.wait_for(asyncio.gather(*(sw.ready.wait() for sw in chunk)), 120)
    return time.perf_counter() - started, tasks


Pairs = list[tuple[Endpoint, Endpoint]]


async def latency(ctrl: Controller, sws: dict[int, CountingSwitch], pairs: Pairs,
                  tag: str) -> dict[str, object]:
    """One PacketIn at a time; with the machine's load and the controller's CPU time per route."""
    idle = ctrl.cpu_s()
    await asyncio.sleep(2)
    idle = (ctrl.cpu_s() - idle) / 2
    spy = None
    if ctrl.profile_dir:
        spy = subprocess.Popen(
            [os.path.join(os.path.dirname(sys.executable), "py-spy"), "record", "--nonblocking", "-r", "500",
             "-p", str(ctrl.proc.pid), "--format", "raw", "-o", f"{ctrl.profile_dir}/{tag}.txt"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        await asyncio.sleep(1)
    cpu, load, started, own = ctrl.cpu_s(), os.getloadavg()[0], time.time(), time.process_time()
    samples = await one_at_a_time(sws, pairs)
    own = time.process_time() - own
    out: dict[str, object] = {**stats_ms(samples), "started": started, "ended": time.time(),
                              "controller_idle_cpu_pct": round(idle * 100, 1)}
    if spy is not None:
        spy.send_signal(signal.SIGINT)
        spy.wait(60)
    out["controller_cpu_ms_per_route"] = round((ctrl.cpu_s() - cpu) / len(pairs) * 1e3, 3)
    out["generator_cpu_ms_per_route"] = round(own / len(pairs) * 1e3, 3)
    out["loadavg_1m"] = round(max(load, os.getloadavg()[0]), 2)
    out["samples_ms"] = [round(x * 1e3, 3) for x in samples]
    return out


async def one_at_a_time(sws: dict[int, CountingSwitch], pairs: Pairs) -> list[float]:
    out = []
    for a, b in pairs:
        sw = sws[Layout.dpid_of(a)]
        assert sw.writer is not None
        key, msg = packet_in_for(a, b)
        sw.done.clear()
        sw.pending[key] = time.perf_counter()
        sw.writer.write(msg)
        await asyncio.wait_for(sw.done.wait(), 30)
        out.append(sw.latencies.pop())
    return out


async def windowed(sws: dict[int, CountingSwitch], pairs: Pairs, window: int) -> None:
    """Plug routes with up to `window` PacketIns outstanding in all (fast set-up, not measured)."""
    sem = asyncio.Semaphore(window)

    async def one(a: Endpoint, b: Endpoint) -> None:
        async with sem:
            sw = sws[Layout.dpid_of(a)]
            assert sw.writer is not None
            key, msg = packet_in_for(a, b)
            fut = asyncio.get_running_loop().create_future()
            waiters[key] = fut
            sw.pending[key] = time.perf_counter()
            sw.writer.write(msg)
            await asyncio.wait_for(fut, 60)

    waiters: dict[bytes, asyncio.Future[None]] = {}  # by packet: its PacketOut may come on any switch
    originals = {}
    for sw in sws.values():  # wake the right waiter on each PacketOut
        originals[sw.dpid] = sw.on_packet_out

        def hook(msg: bytes, sw: CountingSwitch = sw) -> None:
            actions_len = struct.unpack_from("!H", msg, 16)[0]
            key = msg[24 + actions_len:][26:34]
            originals[sw.dpid](msg)
            fut = waiters.pop(key, None)
            if fut is not None and not fut.done():
                fut.set_result(None)

        sw.on_packet_out = hook  # type: ignore[method-assign]
    try:
        await asyncio.gather(*(one(a, b) for a, b in pairs))
    finally:
        for sw in sws.values():
            del sw.on_packet_out  # back to the class's method
        for sw in sws.values():
            sw.latencies.clear()


def stats_ms(lat: list[float]) -> dict[str, float]:
    s = sorted(lat)
    n = len(s)
    if not n:
        return {"routes": 0}

    def q(p: float) -> float:
        return round(s[min(n - 1, int(n * p))] * 1e3, 3)

    return {"routes": n, "mean_ms": round(sum(s) / n * 1e3, 3), "p50_ms": q(0.5), "p90_ms": q(0.9),
            "p99_ms": q(0.99), "max_ms": round(s[-1] * 1e3, 3)}


def fresh_pairs(layout: Layout, dpids: list[int], nets: list[int], n: int, rng: random.Random,
                used: set[tuple[int, int]]) -> list[tuple[Endpoint, Endpoint]]:
    """n unused same-network cross-host pairs with both ends on `dpids`."""
    out: list[tuple[Endpoint, Endpoint]] = []
    for _ in range(n * 50):
        if len(out) == n:
            break
        k = rng.choice(nets)
        da, db = rng.sample(dpids, 2)
        ea, eb = layout.by_host_net.get((da, k)), layout.by_host_net.get((db, k))
        if not ea or not eb:
            continue
        a, b = rng.choice(ea), rng.choice(eb)
        pair = (min(a.id, b.id), max(a.id, b.id))
        if pair not in used:
            used.add(pair)
            out.append((a, b))
    if len(out) < n:
        raise SystemExit(f"only {len(out)} fresh pairs for {n} routes: use more endpoints")
    return out


def revocation_pairs(layout: Layout, n: int) -> list[tuple[Endpoint, Endpoint]]:
    """n cross-host pairs, one end in net0, the other in net1 (allowed only by the group)."""
    net0 = [e for e in layout.endpoints if e.network == "net0"]
    net1 = [e for e in layout.endpoints if e.network == "net1"]
    out = []
    for i, a in enumerate(net0):
        for step in range(1, len(net1)):
            b = net1[(i + step) % len(net1)]
            if b.host != a.host:
                out.append((a, b))
                break
        if len(out) == n:
            return out
    raise SystemExit(f"only {len(out)} cross-host net0-net1 pairs for {n} routes: use more endpoints")


async def scenario(ctrl: Controller, layout: Layout, args: argparse.Namespace) -> dict[str, object]:
    res: dict[str, object] = {}
    rng = random.Random(6)
    sws = {d: CountingSwitch(d) for d in range(1, layout.switches + 1)}
    first = sorted(sws)[:LATENCY_DPIDS]
    lat_nets = [k for k in range(2, -(-len(layout.endpoints) // PER_NET))] or [0]
    used: set[tuple[int, int]] = set()
    auth = {"Authorization": f"Bearer {ctrl.token}"}
    async with httpx.AsyncClient(base_url=ctrl.api, headers=auth, timeout=120) as api:
        took, tasks = await connect_all(ctrl.of_port, [sws[d] for d in first], args.connect_batch)
        res["connect_10_s"] = round(took, 3)
        await asyncio.sleep(1)
        res["rss_10_switches"] = ctrl.rss()
        await one_at_a_time(sws, fresh_pairs(layout, first, lat_nets, 100, rng, used))  # warm-up
        pairs = fresh_pairs(layout, first, lat_nets, args.latency_routes, rng, used)
        res["latency_10"] = await latency(ctrl, sws, pairs, "latency_10")

        rest = [sws[d] for d in sorted(sws) if d not in first]
        took, more = await connect_all(ctrl.of_port, rest, args.connect_batch)
        res["connect_rest_s"] = round(took, 3)
        res["connect_rest_per_s"] = round(len(rest) / took, 1) if rest else None
        await asyncio.sleep(1)
        res["rss_all_switches"] = ctrl.rss()
        pairs = fresh_pairs(layout, first, lat_nets, args.latency_routes, rng, used)
        res["latency_all_same10"] = await latency(ctrl, sws, pairs, "latency_all_same10")
        pairs = fresh_pairs(layout, sorted(sws), lat_nets, args.latency_routes, rng, used)
        res["latency_all_spread"] = await latency(ctrl, sws, pairs, "latency_all_spread")

        # -- revocation of a group touching N live routes
        r = await api.post("/groups", json={"tenant": TENANT, "name": "rev",
                                            "members": ["network:net0", "network:net1"]})
        r.raise_for_status()
        pairs = revocation_pairs(layout, args.revoke_routes)
        for sw in sws.values():
            sw.route_adds.clear()
        started = time.perf_counter()
        await windowed(sws, pairs, args.window)
        res["revoke_plug_s"] = round(time.perf_counter() - started, 3)
        cookies = {route_cookie(a.id, b.id).value for a, b in pairs}
        expected = sum(len(sw.route_adds & cookies) for sw in sws.values())
        routes = (await api.get("/routes")).json()
        res["live_routes_before"] = len(routes)
        res["rss_with_routes"] = ctrl.rss()
        changed = asyncio.Event()
        for sw in sws.values():
            sw.route_deletes.clear()
            sw.drop_deletes.clear()
            sw.on_delete = changed
        t0 = time.perf_counter()
        r = await api.delete(f"/groups/{TENANT}/rev/members", params={"member": "network:net1"})
        t_api = time.perf_counter() - t0
        r.raise_for_status()
        deadline = time.monotonic() + 120
        while True:
            got = [(c, t) for sw in sws.values() for c, t in sw.route_deletes if c in cookies]
            if len(got) >= expected or time.monotonic() > deadline:
                break
            changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), 1)
        await asyncio.sleep(1)
        drops = [t for sw in sws.values() for t in sw.drop_deletes]
        routes_after = (await api.get("/routes")).json()
        res["revocation"] = {
            "routes": len(pairs), "route_flowmod_deletes_expected": expected,
            "route_flowmod_deletes_received": len(got),
            "api_return_ms": round(t_api * 1e3, 1),
            "all_deletes_received_ms": round((max(t for _, t in got) - t0) * 1e3, 1) if got else None,
            "live_routes_after": len(routes_after),
            "drop_clear_flowmods": len(drops),
            "drop_clears_received_ms": round((max(drops) - t0) * 1e3, 1) if drops else None,
        }

        # -- endpoint churn at this scale: re-plug one container (as an agent does on attach)
        e = layout.endpoints[-1]
        assert e.ofport is not None
        took_ms = []
        for i in range(args.replugs):
            t0 = time.perf_counter()
            r = await api.patch(f"/endpoints/{e.id}", json={"port": e.port, "ofport": e.ofport + (i + 1) % 2})
            took_ms.append(round((time.perf_counter() - t0) * 1e3, 1))
            r.raise_for_status()
        res["replug_api_ms"] = took_ms

        # -- back to 10 switches: the same measure again, so drift of a shared machine shows
        for sw, t in zip(rest, more, strict=True):
            t.cancel()
            assert sw.writer is not None
            sw.writer.close()
        await asyncio.sleep(2)
        pairs = fresh_pairs(layout, first, lat_nets, args.latency_routes, rng, used)
        res["latency_10_again"] = await latency(ctrl, sws, pairs, "latency_10_again")
        for t in tasks:
            t.cancel()
    return res


def raise_nofile(need: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < need:
        new = need if hard == resource.RLIM_INFINITY else min(need, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
        if new < need:
            raise SystemExit(f"need {need} open files, the hard limit is {hard}")


def source() -> dict[str, object]:
    """Which controller code ran: the daolinet package's path and, in a git tree, its commit."""
    import daolinet
    where = os.path.dirname(os.path.dirname(os.path.abspath(daolinet.__file__)))
    out: dict[str, object] = {"path": where}
    try:
        out["commit"] = subprocess.run(["git", "-C", where, "rev-parse", "--short", "HEAD"],
                                       capture_output=True, text=True, check=True).stdout.strip()
        out["dirty"] = bool(subprocess.run(["git", "-C", where, "status", "--porcelain", "."],
                                           capture_output=True, text=True, check=True).stdout.strip())
    except (OSError, subprocess.CalledProcessError):
        pass
    return out


def mib(n: int) -> str:
    return f"{n / 2**20:,.0f} MiB"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    runs_option(ap)
    ap.add_argument("--switches", type=int, default=1000)
    ap.add_argument("--endpoints", type=int, default=100_000,
                    help="in all (plugged, spread over the switches)")
    ap.add_argument("--latency-routes", type=int, default=300, help="per latency sample")
    ap.add_argument("--revoke-routes", type=int, default=1000)
    ap.add_argument("--connect-batch", type=int, default=50, help="switches connecting at once")
    ap.add_argument("--window", type=int, default=32, help="outstanding PacketIns while plugging routes "
                    "for the revocation")
    ap.add_argument("--replugs", type=int, default=6, help="endpoint re-plugs through the API, timed")
    ap.add_argument("--profile", metavar="FILE", help="record the loaded controller with py-spy into FILE "
                    "(.txt: collapsed stacks, else a flame graph SVG)")
    ap.add_argument("--profile-samples", metavar="DIR", help="record each latency sample with py-spy "
                    "into DIR/<sample>.txt (collapsed stacks)")
    args = ap.parse_args()
    if args.switches < LATENCY_DPIDS or args.endpoints < 2 * PER_NET + 1:
        raise SystemExit(f"need at least {LATENCY_DPIDS} switches and {2 * PER_NET + 1} endpoints")
    raise_nofile(args.switches + 256)
    started = time.time()
    done = repeat(lambda: measure(args), args.runs, "scale")
    result: dict[str, object] = {"switches": args.switches, "endpoints": args.endpoints,
                                 "runs_count": args.runs, "source": source(),
                                 "targets": {"rss_bytes_max": TARGET_RSS, "latency_flat_within": TARGET_FLAT},
                                 **done["median"], "spread": done["spread"], "runs": done["runs"]}
    report(result)
    print(f"\n{'headline figures':<46} {'median (min–max) of ' + str(args.runs) + ' runs':>40}")
    for label, keys, digits in HEADLINES:
        print(f"{label:<46} {show(pick(done['spread'], keys), digits):>40}")
    write("scale", {**result, "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                                          "python": platform.python_version()}}, started)


HEADLINES = [("RSS with live routes (MiB)", ("rss_with_routes", "VmRSS"), 0),
             ("RSS peak VmHWM (MiB)", ("rss_end", "VmHWM"), 0),
             ("latency p50, 10 switches (ms)", ("latency_10", "p50_ms"), 3),
             ("latency p50, all connected, any (ms)", ("latency_all_spread", "p50_ms"), 3),
             ("latency p99, all connected, any (ms)", ("latency_all_spread", "p99_ms"), 3),
             ("revocation: API returned (ms)", ("revocation", "api_return_ms"), 1),
             ("revocation: all DELETEs received (ms)", ("revocation", "all_deletes_received_ms"), 1),
             ("connect + sync the other switches (s)", ("connect_rest_s",), 2),
             ("sync switches/s (connected and synced / time)", ("connect_rest_per_s",), 1)]


def pick(tree: Any, keys: tuple[str, ...]) -> dict[str, Any]:
    for k in keys:
        tree = tree[k]
    if keys[-1] in ("VmRSS", "VmHWM"):  # bytes -> MiB
        tree = spread([v / 2**20 for v in tree["values"]])
    return dict(tree)


def measure(args: argparse.Namespace) -> dict[str, object]:
    """One run: a fresh store and controller, the whole scenario."""
    result: dict[str, object] = {}
    with tempfile.TemporaryDirectory() as tmp:
        empty = start_controller(tmp, f"{tmp}/empty.db")
        try:
            time.sleep(1)
            result["empty"] = {"startup_s": round(empty.started_in, 3), "rss": empty.rss()}
        finally:
            empty.stop()
        started = time.perf_counter()
        objs, layout = make_objects(args.switches, args.endpoints)
        asyncio.run(build_store(f"{tmp}/s.db", objs))
        result["store_build_s"] = round(time.perf_counter() - started, 3)
        del objs
        ctrl = start_controller(tmp, f"{tmp}/s.db")
        spy = None
        try:
            if args.profile:
                fmt = "raw" if args.profile.endswith(".txt") else "flamegraph"
                spy = subprocess.Popen(
                    [os.path.join(os.path.dirname(sys.executable), "py-spy"), "record", "--nonblocking",
                     "-r", "200", "-p", str(ctrl.proc.pid), "--format", fmt, "-o", args.profile],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(1)
            ctrl.profile_dir = args.profile_samples
            result["loaded"] = {"startup_s": round(ctrl.started_in, 3), "rss": ctrl.rss()}
            result.update(asyncio.run(scenario(ctrl, layout, args)))
            result["rss_end"] = ctrl.rss()
        except (TimeoutError, ConnectionError, httpx.HTTPError) as e:
            with open(f"{tmp}/controller.log", errors="replace") as f:
                log = "".join(f.readlines()[-30:])
            raise ToolFailed(f"{type(e).__name__}: {e}; controller log (tail):\n{log}") from e
        finally:
            if spy is not None:
                spy.send_signal(signal.SIGINT)
                spy.wait(60)
            ctrl.stop()
    return result


def report(r: dict[str, object]) -> None:
    def get(*keys: str) -> object:
        x: object = r
        for k in keys:
            assert isinstance(x, dict)
            x = x[k]
        return x

    sw, ep = r["switches"], r["endpoints"]
    peak = max(int(get(k, "VmRSS")) for k in ("rss_all_switches", "rss_with_routes", "rss_end"))  # type: ignore[call-overload]
    print(f"scale: one controller, {sw:,} switches, {ep:,} endpoints")
    print(f"{'measure':<46} {'value':>14}   target")
    rows: list[tuple[str, str, str]] = [
        ("store built (import_objects)", f"{r['store_build_s']} s", ""),
        ("start-up, empty store", f"{get('empty', 'startup_s')} s", ""),
        ("RSS, empty controller", mib(int(get('empty', 'rss', 'VmRSS'))), ""),  # type: ignore[call-overload]
        (f"start-up, {ep:,} endpoints", f"{get('loaded', 'startup_s')} s", ""),
        (f"RSS, {ep:,} endpoints", mib(int(get('loaded', 'rss', 'VmRSS'))), ""),  # type: ignore[call-overload]
        (f"RSS, + {LATENCY_DPIDS} switches", mib(int(get('rss_10_switches', 'VmRSS'))), ""),  # type: ignore[call-overload]
        (f"connect + sync the other {sw - LATENCY_DPIDS:,} switches",  # type: ignore[operator]
         f"{r['connect_rest_s']} s", f"{r['connect_rest_per_s']} switches/s"),
        (f"RSS, + {sw:,} switches", mib(int(get('rss_all_switches', 'VmRSS'))), ""),  # type: ignore[call-overload]
        (f"RSS, + {get('revocation', 'routes')} live routes", mib(int(get('rss_with_routes', 'VmRSS'))),  # type: ignore[call-overload]
         f"<= 1 GiB: {'met' if peak <= TARGET_RSS else 'MISSED'}"),
        ("RSS peak (VmHWM)", mib(int(get('rss_end', 'VmHWM'))), ""),  # type: ignore[call-overload]
    ]
    for name, value, target in rows:
        print(f"{name:<46} {value:>14}   {target}")
    print()
    print(f"{'route-setup latency (one at a time)':<40} {'routes':>6} {'p50 ms':>8} {'p90 ms':>8} "
          f"{'p99 ms':>8} {'mean ms':>8} {'cpu ms':>7} {'gen ms':>7} {'load':>5}")
    base = get("latency_10", "p50_ms")
    for key, name in (("latency_10", f"{LATENCY_DPIDS} switches connected"),
                      ("latency_all_same10", f"{sw:,} connected, same {LATENCY_DPIDS} switches"),
                      ("latency_all_spread", f"{sw:,} connected, any switches"),
                      ("latency_10_again", f"{LATENCY_DPIDS} connected again (drift check)")):
        s = get(key)
        assert isinstance(s, dict)
        ratio = s["p50_ms"] / base  # type: ignore[operator]
        flat = "" if key == "latency_10" else \
            f"  p50 x{ratio:.2f}: {'met' if abs(ratio - 1) <= TARGET_FLAT else 'MISSED'} (within 20 %)"
        print(f"{name:<40} {s['routes']:>6} {s['p50_ms']:>8} {s['p90_ms']:>8} {s['p99_ms']:>8} "
              f"{s['mean_ms']:>8} {s['controller_cpu_ms_per_route']:>7} {s['generator_cpu_ms_per_route']:>7} "
              f"{s['loadavg_1m']:>5}{flat}")
    rv = get("revocation")
    assert isinstance(rv, dict)
    print()
    print(f"revocation of a group touching {rv['routes']:,} live routes (remove net1 from it):")
    print(f"  API call returned after {rv['api_return_ms']} ms; all "
          f"{rv['route_flowmod_deletes_received']:,}/{rv['route_flowmod_deletes_expected']:,} route FlowMod "
          f"DELETEs on the switches after {rv['all_deletes_received_ms']} ms (from the call's start); "
          f"live routes {r['live_routes_before']} -> {rv['live_routes_after']} "
          f"(plugging them took {r['revoke_plug_s']} s)")
    print(f"  the same change also sent {rv['drop_clear_flowmods']:,} drop-flow clears "
          f"(to switches that may hold drop flows), "
          f"all received after {rv['drop_clears_received_ms']} ms")
    print(f"\nre-plugging one endpoint (PATCH /endpoints/ID ofport) with {sw:,} switches connected: "
          f"{', '.join(map(str, r['replug_api_ms']))} ms per API call")  # type: ignore[call-overload]


if __name__ == "__main__":
    main()
