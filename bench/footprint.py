"""Footprint of every daemon on an idle lab: resident memory (VmRSS) and CPU
(utime + stime from /proc/PID/stat, over a window) of each controller, each
host's agent and each host's ovs-vswitchd and ovsdb-server.

The lab: --hosts hosts with --per-host containers each on one network, every
container attached; then it settles (--settle seconds: attach work, the first
heartbeats and syncs are done), then the window (--window seconds) is measured:
RSS sampled every --sample seconds (its mean), CPU as the ticks spent in the
window over the window's length (percent of one core).

    .venv/bin/python bench/footprint.py [--runs 3] [--hosts 3] [--per-host 33] [--window 60]

Each run is a fresh lab; every figure is the median over the runs with min and max beside it.
Prints a table (per role: the mean over its daemons; agents also their maximum) and writes
bench/results/footprint-<timestamp>.json (with the commit).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from typing import Any

from daolinet.lab import cluster
from daolinet.system import procs
from daolinet.testing.fixtures import new_lab_name
from daolinet.testing.labtools import api

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from runs import repeat, runs_option, show, spread, write

SUBNET = "10.80.0.0/16"
TICKS = os.sysconf("SC_CLK_TCK")
ROLES = ("controller", "agent", "ovs-vswitchd", "ovsdb-server")


def cpu_ticks(pid: int) -> int:
    """utime + stime of `pid` (fields 14 and 15 of /proc/PID/stat; the command may hold spaces)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"pid {pid} has no VmRSS")


def daemons(lab: cluster.Lab) -> dict[str, tuple[str, int]]:
    """{label: (role, pid)} of every daemon of the lab."""
    found: dict[str, tuple[str, int]] = {}
    for key, pid in lab._state.pids.items():  # the lab's own record of what it started
        if key.startswith("controller"):
            found[key] = ("controller", pid)
        elif key.endswith("/agent"):
            found[key] = ("agent", pid)
    for h in lab.hosts:
        for daemon in ("ovs-vswitchd", "ovsdb-server"):
            pid = procs.read_pidfile(h.ovs.pidfile(daemon))
            assert pid is not None, f"{h.name}: no {daemon}"
            found[f"{h.name}/{daemon}"] = (daemon, pid)
    return found


def measure(pids: dict[str, tuple[str, int]], window: float, sample: float) -> dict[str, dict[str, float]]:
    """{label: {"rss_mb": mean RSS, "cpu_pct": CPU over the window}}."""
    start = {label: cpu_ticks(pid) for label, (_, pid) in pids.items()}
    rss: dict[str, list[float]] = {label: [] for label in pids}
    t0 = time.monotonic()
    while True:
        for label, (_, pid) in pids.items():
            rss[label].append(rss_mb(pid))
        left = t0 + window - time.monotonic()
        if left <= 0:
            break
        time.sleep(min(sample, left))
    elapsed = time.monotonic() - t0
    return {label: {"rss_mb": round(statistics.mean(rss[label]), 1),
                    "cpu_pct": round((cpu_ticks(pid) - start[label]) / TICKS / elapsed * 100, 3)}
            for label, (_, pid) in pids.items()}


def by_role(pids: dict[str, tuple[str, int]], figures: dict[str, dict[str, float]]) -> dict[str, Any]:
    """Per role: mean and max of each figure over its daemons."""
    out: dict[str, Any] = {}
    for role in ROLES:
        rows = [figures[label] for label, (r, _) in pids.items() if r == role]
        if rows:
            out[role] = {"count": len(rows)}
            for k in ("rss_mb", "cpu_pct"):
                values = [row[k] for row in rows]
                out[role][f"{k}_mean"] = round(statistics.mean(values), 3)
                out[role][f"{k}_max"] = round(max(values), 3)
    return out


def run(hosts: int, per_host: int, settle: float, window: float, sample: float) -> dict[str, Any]:
    name = new_lab_name()
    lab = cluster.Lab.up(name, hosts=hosts)
    try:
        api(lab, "POST", "/networks", json={"name": "bench", "subnet": SUBNET})
        t0 = time.monotonic()
        for i in range(hosts * per_host):
            lab.add_container(f"c{i}", host=lab.hosts[i % hosts].name, network="bench")
        attach_s = time.monotonic() - t0
        time.sleep(settle)  # settling: measured, not synchronised on
        pids = daemons(lab)
        figures = measure(pids, window, sample)
        return {"containers": hosts * per_host, "attach_seconds": round(attach_s, 1),
                "roles": by_role(pids, figures), "daemons": figures}
    finally:
        cluster.down(name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    runs_option(parser)
    parser.add_argument("--hosts", type=int, default=3, help="lab hosts")
    parser.add_argument("--per-host", type=int, default=33, help="containers per host")
    parser.add_argument("--settle", type=float, default=15.0, help="seconds idle before the window")
    parser.add_argument("--window", type=float, default=60.0, help="seconds measured")
    parser.add_argument("--sample", type=float, default=5.0, help="seconds between RSS samples")
    args = parser.parse_args()
    started = time.time()
    done = repeat(lambda: run(args.hosts, args.per_host, args.settle, args.window, args.sample), args.runs,
                  "footprint")
    per_run = done["runs"]
    print(f"{args.hosts} hosts, {args.per_host} containers each, idle; {args.window:g} s window "
          f"(median (min–max) of {args.runs} runs)")
    print(f"{'daemon':<14} {'n':>2} {'RSS MB (mean)':>24} {'RSS MB (max)':>24} {'CPU % (mean)':>24} "
          f"{'CPU % (max)':>24}")
    for role in ROLES:
        if role not in per_run[0]["roles"]:
            continue
        cells = [show(spread([r["roles"][role][key] for r in per_run]), digits)
                 for key, digits in (("rss_mb_mean", 1), ("rss_mb_max", 1), ("cpu_pct_mean", 3),
                                     ("cpu_pct_max", 3))]
        print(f"{role:<14} {per_run[0]['roles'][role]['count']:>2} " + " ".join(f"{c:>24}" for c in cells))
    print("(CPU: percent of one core over the window; RSS: mean of the samples)")
    write("footprint", {"params": vars(args), "results": done["median"], "spread": done["spread"],
                        "runs": per_run}, started)


if __name__ == "__main__":
    main()
