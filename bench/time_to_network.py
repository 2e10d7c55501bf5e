"""Time to network on the real lab: a container attached through its host's agent
(namespace, veth, OVS port, the controller's endpoint and classify flows), then
pinging a peer on another host until the first reply. Per container: attach time
(the lab's add_container, which returns once the agent answered) and attach ->
first successful ping (which includes plugging the route on the first packet).

The ping sends every 10 ms (`ping -c 1 -i 0.01 -w 10`: exits on the first reply),
so the figure has a 10 ms resolution and includes starting ping in the namespace
(a few ms; the same for every container; its median is measured and reported).

    .venv/bin/python bench/time_to_network.py [--runs 3] [--containers 60] [--hosts 2]

Each run is a fresh lab; every figure is the median over the runs with min and max
beside it (raw samples of all runs pooled in the JSON).

Prints a table and writes bench/results/time_to_network-<timestamp>.json (with the commit).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

from daolinet.lab import cluster
from daolinet.testing.fixtures import new_lab_name
from daolinet.testing.labtools import api, ping

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from runs import ToolFailed, repeat, runs_option, show, write


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p * len(ordered)))]


def summary(values: list[float]) -> dict[str, float]:
    return {"p50_ms": round(pct(values, 0.5), 2), "p99_ms": round(pct(values, 0.99), 2),
            "max_ms": round(max(values), 2), "mean_ms": round(statistics.fmean(values), 2)}


def run(containers: int, hosts: int) -> dict[str, object]:
    name = new_lab_name()
    lab = cluster.Lab.up(name, hosts=hosts)
    try:
        api(lab, "POST", "/networks", json={"name": "bench", "subnet": "10.80.0.0/16"})
        peer = lab.add_container("peer", host="h1", network="bench")
        assert peer.ip is not None
        # What starting a ping in a namespace costs: a container with a live route to the peer.
        probe = lab.add_container("probe", host=lab.hosts[-1].name, network="bench")
        ping(lab, probe.name, peer.ip, count=1, wait=2)
        spawn = []
        for _ in range(20):
            t = time.perf_counter()
            ping(lab, probe.name, peer.ip, count=1, wait=2)
            spawn.append((time.perf_counter() - t) * 1e3)
        lab.remove_container(probe.name)
        if not spawn:
            raise ToolFailed("ping in the namespace never ran")
        attach, network, failed = [], [], 0
        steps: dict[str, list[float]] = {}
        for i in range(containers):
            host = lab.hosts[1 + i % (hosts - 1)].name  # never h1: every first packet crosses hosts
            t0 = time.perf_counter()
            c = lab.add_container(f"n{i}", host=host, network="bench")
            t1 = time.perf_counter()
            for step, ms in getattr(lab, "last_add_ms", {}).items():
                steps.setdefault(step, []).append(float(ms))
            out = lab.exec(c.name, ["ping", "-n", "-c", "1", "-i", "0.01", "-w", "10", peer.ip], timeout=30)
            t2 = time.perf_counter()
            if out.returncode != 0:
                failed += 1
                continue
            attach.append((t1 - t0) * 1e3)
            network.append((t2 - t0) * 1e3)
        if not attach:
            raise ToolFailed(f"no container of {containers} got a ping reply within 10 s")
        return {"containers": containers, "hosts": hosts, "failed": failed,
                "attach": summary(attach), "attach_to_first_packet": summary(network),
                "after_attach_to_first_packet":
                    summary([n - a for a, n in zip(attach, network, strict=True)]),
                "ping_spawn": summary(spawn),
                "steps_p50_ms": {k: round(statistics.median(v), 2) for k, v in steps.items()},
                "samples_ms": {"attach": [round(x, 3) for x in attach],
                               "attach_to_first_packet": [round(x, 3) for x in network]}}
    finally:
        cluster.down(name)


def print_steps(runs: list[dict[str, object]]) -> None:
    """The attach's breakdown: per step, the median over the runs of each run's median.
    lab_*: the lab's own steps; agent_*: the agent's (agent_plug_*: inside the plug)."""
    names = list(dict.fromkeys(k for r in runs for k in r.get("steps_p50_ms", {})))  # type: ignore[attr-defined]
    if not names:
        return
    print(f"{'attach step':<40} {'p50 ms':>10}")
    for name in names:
        per_run = [r["steps_p50_ms"][name] for r in runs if name in r.get("steps_p50_ms", {})]  # type: ignore[index, attr-defined]
        print(f"{name:<40} {statistics.median(per_run):>10.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    runs_option(parser)
    parser.add_argument("--containers", type=int, default=60, help="containers attached per run")
    parser.add_argument("--hosts", type=int, default=2, help="lab hosts (the peer is on h1)")
    args = parser.parse_args()
    if args.hosts < 2:
        parser.error("--hosts must be at least 2 (the first packet crosses hosts)")
    started = time.time()
    done = repeat(lambda: run(args.containers, args.hosts), args.runs, "time_to_network")
    results, spread = done["median"], done["spread"]
    print(f"{'step':<36} {'p50 ms':>24} {'p99 ms':>24} {'max ms':>24}   "
          f"(median (min–max) of {args.runs} runs)")
    for key, label in (("attach", "attach (agent answered)"),
                       ("attach_to_first_packet", "attach -> first successful ping"),
                       ("after_attach_to_first_packet", "attach returned -> first ping reply"),
                       ("ping_spawn", "ping with a live route (spawn cost)")):
        sp = spread[key]
        cells = " ".join(f"{show(sp[f], 1):>24}" for f in ("p50_ms", "p99_ms", "max_ms"))
        print(f"{label:<36} {cells}")
    print_steps(done["runs"])
    print(f"failed (no reply within 10 s), per run: {[r['failed'] for r in done['runs']]}")
    write("time_to_network", {"params": vars(args), "results": results, "spread": spread,
                              "runs": done["runs"]}, started)


if __name__ == "__main__":
    main()
