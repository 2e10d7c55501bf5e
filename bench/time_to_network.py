"""Time to network on the real lab: a container attached through its host's agent
(namespace, veth, OVS port, the controller's endpoint and classify flows), then
pinging a peer on another host until the first reply. Per container: attach time
(the lab's add_container, which returns once the agent answered) and attach ->
first successful ping (which includes plugging the route on the first packet).

The ping sends every 10 ms (`ping -c 1 -i 0.01 -w 10`: exits on the first reply),
so the figure has a 10 ms resolution and includes starting ping in the namespace
(a few ms; the same for every container; its median is measured and reported).

    .venv/bin/python bench/time_to_network.py [--containers 60] [--hosts 2]

Prints a table and writes bench/results/time_to_network-<timestamp>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time

from daolinet.lab import cluster
from daolinet.testing.fixtures import new_lab_name
from daolinet.testing.labtools import api, ping


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
        attach, network, failed = [], [], 0
        for i in range(containers):
            host = lab.hosts[1 + i % (hosts - 1)].name  # never h1: every first packet crosses hosts
            t0 = time.perf_counter()
            c = lab.add_container(f"n{i}", host=host, network="bench")
            t1 = time.perf_counter()
            out = lab.exec(c.name, ["ping", "-n", "-c", "1", "-i", "0.01", "-w", "10", peer.ip], timeout=30)
            t2 = time.perf_counter()
            if out.returncode != 0:
                failed += 1
                continue
            attach.append((t1 - t0) * 1e3)
            network.append((t2 - t0) * 1e3)
        return {"containers": containers, "hosts": hosts, "failed": failed,
                "attach": summary(attach), "attach_to_first_packet": summary(network),
                "after_attach_to_first_packet":
                    summary([n - a for a, n in zip(attach, network, strict=True)]),
                "ping_spawn": summary(spawn),
                "samples_ms": {"attach": [round(x, 3) for x in attach],
                               "attach_to_first_packet": [round(x, 3) for x in network]}}
    finally:
        cluster.down(name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--containers", type=int, default=60)
    parser.add_argument("--hosts", type=int, default=2)
    args = parser.parse_args()
    if args.hosts < 2:
        parser.error("--hosts must be at least 2 (the first packet crosses hosts)")
    started = time.time()
    results = run(args.containers, args.hosts)
    record = {"bench": "time_to_network", "when": started, "machine": {
        "cpus": os.cpu_count(), "python": sys.version.split()[0], "platform": platform.platform()},
        "params": vars(args), "results": results}
    print(f"{'step':<36} {'n':>4} {'p50':>10} {'p99':>10} {'max':>10}")
    n = args.containers - int(results["failed"])  # type: ignore[call-overload]
    for key, label in (("attach", "attach (agent answered)"),
                       ("attach_to_first_packet", "attach -> first successful ping"),
                       ("after_attach_to_first_packet", "attach returned -> first ping reply"),
                       ("ping_spawn", "ping with a live route (spawn cost)")):
        r = results[key]
        assert isinstance(r, dict)
        count = 20 if key == "ping_spawn" else n
        print(f"{label:<36} {count:>4} {r['p50_ms']:>8.1f}ms {r['p99_ms']:>8.1f}ms {r['max_ms']:>8.1f}ms")
    print(f"failed: {results['failed']} (no reply within 10 s)")
    os.makedirs("bench/results", exist_ok=True)
    path = time.strftime("bench/results/time_to_network-%Y%m%dT%H%M%S.json", time.gmtime(started))
    with open(path, "w") as f:
        json.dump(record, f, indent=2)
    print(f"written {path}")


if __name__ == "__main__":
    main()
