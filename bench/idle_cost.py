"""Idle cost on the real lab: with K containers spread over the hosts, the flows
per host (route flows: cookie kind 0xD1; base flows: 0xD0; others) and each
host's ovs-vswitchd RSS, three times per K:

- idle: containers attached, nobody talking;
- burst: every pair of containers talking (all-to-all when K(K-1)/2 <= --max-pairs,
  else a seeded random sample of --max-pairs pairs: said in the output), kept alive
  by a datagram each way per second until every pair got through once, then counted;
- after idle timeout: traffic stopped, waited until the routes idled out.

Plus the flows a proactive full mesh would need per host, for comparison:
n(n-1) same-host + 2n(K-n) cross-host (egress + ingress) route flows for n local
containers. The lab runs with a short --idle-timeout. One lab, grown through the
K list. The burst's datagrams are UDP, sent from sockets this process opens inside
the containers' namespaces (setns), so 400 containers need no 400 processes.

The agent plugs every container with its subnet routed via the gateway and the
gateway's MAC as a permanent neighbour (agent/plumbing.py): one neighbour entry per
container instead of one per peer.  Linux counts neighbour entries across *all*
namespaces against one gc_thresh3 (1024 by default): with per-peer ARP an all-to-all
burst would stall at ~1,024 talking directions ("neighbor table overflow").

    .venv/bin/python bench/idle_cost.py [--runs 3] [--k 40,100,400] [--hosts 4] [--idle-timeout 10]

Each run is a fresh lab; every figure is the median over the runs with min and max beside it.

Prints a table and writes bench/results/idle_cost-<timestamp>.json (with the commit).
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import os
import random
import re
import select
import socket
import sys
import time

from daolinet.lab import cluster
from daolinet.pipeline import Kind
from daolinet.system import procs
from daolinet.testing.fixtures import new_lab_name
from daolinet.testing.labtools import api

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from runs import repeat, runs_option, show, spread, write

CLONE_NEWNET = 0x40000000
UDP_PORT = 9
SUBNET = "10.70.0.0/16"
COOKIE_RE = re.compile(r"cookie=0x([0-9a-f]+)")
_libc = ctypes.CDLL("libc.so.6", use_errno=True)


def socket_in(netns: str, ip: str) -> socket.socket:
    """A UDP socket bound to ip:UDP_PORT inside `netns` (the socket keeps its namespace)."""
    home = os.open("/proc/self/ns/net", os.O_RDONLY)
    target = os.open(f"{procs.NETNS_RUN_DIR}/{netns}", os.O_RDONLY)
    try:
        if _libc.setns(target, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns {netns}")
        try:
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
            s.bind((ip, UDP_PORT))
            s.setblocking(False)
            return s
        finally:
            if _libc.setns(home, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns back home")
    finally:
        os.close(home)
        os.close(target)


def flow_counts(lab: cluster.Lab, host: str) -> dict[str, int]:
    counts = {"route": 0, "base": 0, "other": 0}
    for line in lab.host(host).ofctl("dump-flows", "--no-stats").splitlines():
        m = COOKIE_RE.search(line)
        if m is None:
            continue
        kind = int(m.group(1), 16) >> 56
        key = "route" if kind == Kind.ROUTE else "base" if kind == Kind.BASE else "other"
        counts[key] += 1
    return counts


def rss_mib(lab: cluster.Lab, host: str) -> float:
    pid = procs.read_pidfile(lab.host(host).ovs.pidfile("ovs-vswitchd"))
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    return float("nan")


def snapshot(lab: cluster.Lab) -> dict[str, dict[str, float]]:
    return {h.name: {**flow_counts(lab, h.name), "rss_mib": rss_mib(lab, h.name)} for h in lab.hosts}


def proactive(per_host: dict[str, int], k: int) -> dict[str, int]:
    return {h: n * (n - 1) + 2 * n * (k - n) for h, n in per_host.items()}


def burst(socks: dict[str, socket.socket], ips: dict[str, str], pairs: list[tuple[str, str]],
          deadline_s: float, outstanding: int = 400) -> dict[str, float]:
    """Every pair talks until each direction of it got through once: pairs are admitted
    so that at most `outstanding` wait for their route at a time; every admitted pair
    gets a datagram each way every half second, which keeps delivered routes alive."""
    by_addr = {ips[n]: n for n in ips}
    waiting = list(pairs)
    admitted: list[tuple[str, str]] = []
    pending: set[tuple[str, str]] = set()  # directions not yet delivered
    total = 2 * len(pairs)
    started = time.monotonic()
    last_round = 0.0
    while (waiting or pending) and time.monotonic() - started < deadline_s:
        now = time.monotonic()
        if now - last_round >= 0.5:
            last_round = now
            open_pairs = {(min(a, b), max(a, b)) for a, b in pending}
            while waiting and len(open_pairs) < outstanding:
                a, b = waiting.pop()
                admitted.append((a, b))
                open_pairs.add((a, b))
                pending.update({(a, b), (b, a)})
            for a, b in admitted:
                for src, dst in ((a, b), (b, a)):
                    with contextlib.suppress(BlockingIOError):
                        socks[src].sendto(src.encode(), (ips[dst], UDP_PORT))
        ready, _, _ = select.select(list(socks.values()), [], [], 0.05)
        for s in ready:
            dst_ip = s.getsockname()[0]
            while True:
                try:
                    _data, (src_ip, _port) = s.recvfrom(64)
                except BlockingIOError:
                    break
                pending.discard((by_addr[src_ip], by_addr[dst_ip]))
    return {"directions": total, "delivered": total - len(pending) - 2 * len(waiting),
            "seconds": round(time.monotonic() - started, 2)}


def run(ks: list[int], hosts: int, idle_timeout: int, max_pairs: int, seed: int) -> dict[str, object]:
    name = new_lab_name()
    lab = cluster.Lab.up(name, hosts=hosts, idle_timeout=idle_timeout)
    rng = random.Random(seed)
    socks: dict[str, socket.socket] = {}
    try:
        api(lab, "POST", "/networks", json={"name": "bench", "subnet": SUBNET})
        ips: dict[str, str] = {}
        placement: dict[str, str] = {}
        runs = []
        for k in sorted(ks):
            t0 = time.monotonic()
            for i in range(len(ips), k):
                h = lab.hosts[i % hosts].name
                c = lab.add_container(f"c{i}", host=h, network="bench")
                assert c.ip is not None
                ips[c.name], placement[c.name] = c.ip, h
                socks[c.name] = socket_in(c.netns, c.ip)
            attach_s = time.monotonic() - t0
            per_host = {h.name: sum(1 for p in placement.values() if p == h.name) for h in lab.hosts}
            idle = snapshot(lab)
            names = sorted(ips, key=lambda n: int(n[1:]))
            all_pairs = k * (k - 1) // 2
            if all_pairs <= max_pairs:
                pairs = [(a, b) for i, a in enumerate(names) for b in names[i + 1:]]
            else:
                chosen: set[tuple[str, str]] = set()
                while len(chosen) < max_pairs:
                    a, b = rng.sample(names, 2)
                    chosen.add((min(a, b), max(a, b)))
                pairs = sorted(chosen)
            traffic = burst(socks, ips, pairs, deadline_s=max(60.0, len(pairs) / 20))
            during = snapshot(lab)
            t1 = time.monotonic()
            deadline = t1 + idle_timeout * 4 + 60
            while True:
                after = snapshot(lab)
                if all(v["route"] == 0 for v in after.values()) or time.monotonic() > deadline:
                    break
                time.sleep(1)
            runs.append({
                "k": k, "containers_per_host": per_host, "attach_seconds": round(attach_s, 1),
                "pairs": len(pairs), "all_pairs": all_pairs, "all_to_all": len(pairs) == all_pairs,
                "burst": traffic, "idle": idle, "during": during, "after_idle_timeout": after,
                "idle_out_seconds": round(time.monotonic() - t1, 1),
                "proactive_full_mesh_route_flows": proactive(per_host, k),
            })
        return {"hosts": hosts, "idle_timeout": idle_timeout, "runs": runs}
    finally:
        for s in socks.values():
            s.close()
        cluster.down(name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    runs_option(parser)
    parser.add_argument("--k", default="40,100,400", help="container counts, comma-separated")
    parser.add_argument("--hosts", type=int, default=4, help="lab hosts the containers are spread over")
    parser.add_argument("--idle-timeout", type=int, default=10, help="the lab's route idle timeout (s)")
    parser.add_argument("--max-pairs", type=int, default=5000, help="talking pairs at most (else sampled)")
    parser.add_argument("--seed", type=int, default=6, help="seed of the pair sample")
    args = parser.parse_args()
    ks = [int(x) for x in args.k.split(",")]
    started = time.time()
    done = repeat(lambda: run(ks, args.hosts, args.idle_timeout, args.max_pairs, args.seed), args.runs,
                  "idle_cost")
    results = done["median"]
    print(f"{'K':>4} {'pairs':>6} {'phase':<8} {'route/host':>24} {'base/host':>10} {'RSS MiB/host':>24} "
          f"{'proactive/host':>15}   (median (min–max) of {args.runs} runs)")
    for i, r in enumerate(results["runs"]):
        pairs = f"{r['pairs']}{'' if r['all_to_all'] else '*'}"
        per_run = [run_["runs"][i] for run_ in done["runs"]]
        for phase in ("idle", "during", "after_idle_timeout"):
            route = spread([max(v["route"] for v in k[phase].values()) for k in per_run])
            base = max(v["base"] for v in r[phase].values())
            rss = spread([max(v["rss_mib"] for v in k[phase].values()) for k in per_run])
            pro = max(r["proactive_full_mesh_route_flows"].values())
            print(f"{r['k']:>4} {pairs:>6} {phase[:8]:<8} {show(route, 0):>24} {base:>10} {show(rss, 1):>24} "
                  f"{pro:>15}")
        idle_out = spread([k["idle_out_seconds"] for k in per_run])
        print(f"     burst (medians): {r['burst']}; idled out in {show(idle_out, 1)} s; "
              f"attach {r['attach_seconds']} s")
    print("(per host: the maximum over hosts; * = random sample of pairs, not all-to-all)")
    write("idle_cost", {"params": vars(args), "results": results, "spread": done["spread"],
                        "runs": done["runs"]}, started)


if __name__ == "__main__":
    main()
