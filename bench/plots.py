"""Plots for docs/benchmarks.md from the latest JSON of each bench in bench/results/:

- docs/img/first_packet_cdf.png: CDF of the first packet's extra RTT, cross-host and same-host;
- docs/img/dataplane.png: throughput and request/response latency, hot-plug vs plain OVS vs veth;
- docs/img/idle_cost.png: route flows per host vs K (idle, burst, after idle timeout, proactive
  full mesh), base flows per host and ovs-vswitchd RSS;
- docs/img/time_to_network_cdf.png: CDF of attach -> first successful packet;
- docs/img/route_setup_cdf.png: PacketIn -> PacketOut latency per mode (latency, throughput, half load);
- docs/img/scale.png: controller RSS at each stage, and route-setup latency at 10 vs 1,000 switches.

    .venv/bin/python bench/plots.py [--results bench/results] [--out docs/img]

A bench without results (or whose latest JSON predates raw samples) is skipped, and said so.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
from collections.abc import Callable
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.ticker import NullFormatter

Record = dict[str, Any]


def latest(results: str, bench: str) -> Record | None:
    found = sorted(glob.glob(os.path.join(results, f"{bench}-*.json")))
    if not found:
        return None
    with open(found[-1]) as f:
        record: Record = json.load(f)
    record["_path"] = found[-1]
    return record


def cdf(ax: Any, values: list[float], label: str) -> None:
    xs = sorted(values)
    ys = [(i + 1) / len(xs) for i in range(len(xs))]
    ax.step(xs, ys, where="post", label=f"{label} (n={len(xs)})")


def stamp(fig: Any, record: Record) -> None:
    m = record["machine"]
    commit = f"commit {record['commit']} · " if "commit" in record else ""
    fig.text(0.99, 0.005, f"{os.path.basename(record['_path'])} · {commit}{m['cpus']} cpus · {m['platform']}",
             ha="right", va="bottom", fontsize=6, color="grey")


def first_packet(r: Record, out: str) -> str | None:
    res = r["results"]
    if "samples_ms" not in res.get("cross-host", {}):
        return None
    fig, ax = plt.subplots(figsize=(6.4, 4))
    for case in ("cross-host", "same-host"):
        cdf(ax, [first - steady for first, steady in res[case]["samples_ms"]], case)
    ax.set_xlabel("first packet's extra RTT over steady state (ms)")
    ax.set_ylabel("fraction of pairs")
    ax.set_title("first-packet: extra RTT of a connection's first packet")
    ax.axvline(1, color="grey", ls=":", lw=1)
    ax.axvline(3, color="grey", ls="--", lw=1)
    ax.text(1, 0.02, " p50 target", fontsize=7, color="grey")
    ax.text(3, 0.02, " p99 target", fontsize=7, color="grey")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    stamp(fig, r)
    path = os.path.join(out, "first_packet_cdf.png")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def dataplane(r: Record, out: str) -> str | None:
    res = r["results"]
    cases = ["hot-plug", "plain-ovs", "veth"]
    fig, axes = plt.subplots(1, 3, figsize=(10, 3.6))
    titles = ("TCP throughput (Gbit/s)", "ping RTT p50 (ms)", "TCP request/response p50 (ms)")
    for ax, key, label in zip(axes, ("gbps", "ping_p50_ms", "tcp_rr_p50_ms"), titles, strict=True):
        values = [res[c][key] for c in cases]
        bars = ax.bar(cases, values, color=["tab:blue", "tab:orange", "tab:grey"])
        ax.bar_label(bars, fmt="%.3g", fontsize=8)
        ax.set_title(label, fontsize=9)
        ax.grid(axis="y", alpha=0.3)
    ratio = res["ratio_hotplug_over_plain"]
    runs = r["params"].get("runs", r["params"].get("rounds"))
    fig.suptitle(f"dataplane, medians of {runs} runs; hot-plug / plain OVS: throughput "
                 f"{ratio['throughput']}, ping {ratio['ping_rtt']}, rr {ratio['tcp_rr']}", fontsize=9)
    stamp(fig, r)
    path = os.path.join(out, "dataplane.png")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def idle_cost(r: Record, out: str) -> str | None:
    runs = r["results"]["runs"]
    ks = [run["k"] for run in runs]

    def per_host(phase: str, key: str) -> list[float]:
        return [max(v[key] for v in run[phase].values()) for run in runs]

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    ax1.plot(ks, [max(run["proactive_full_mesh_route_flows"].values()) for run in runs], "k--o",
             label="proactive full mesh (computed)")
    sampled = ["" if run["all_to_all"] else "*" for run in runs]
    ax1.plot(ks, per_host("during", "route"), "-o", label="route flows, during burst")
    for k, y, s in zip(ks, per_host("during", "route"), sampled, strict=True):
        if s:
            ax1.annotate("sampled pairs", (k, y), fontsize=7, textcoords="offset points", xytext=(4, -10))
    ax1.plot(ks, per_host("idle", "base"), "-s", label="base flows")
    ax1.plot(ks, [max(1, v) for v in per_host("after_idle_timeout", "route")], "-x",
             label="route flows after idle timeout (0 drawn at 1)")
    ax1.set_xscale("log")
    ax1.set_yscale("log")
    ax1.set_xlabel(f"K containers over {r['results']['hosts']} hosts")
    ax1.set_ylabel("flows per host (max over hosts)")
    ax1.set_title("idle-cost: flows per host", fontsize=10)
    ax1.grid(alpha=0.3, which="both")
    ax1.legend(fontsize=7)
    phases = (("idle", "idle"), ("during", "during burst"), ("after_idle_timeout", "after idle timeout"))
    for phase, label in phases:
        ax2.plot(ks, per_host(phase, "rss_mib"), "-o", label=label)
    ax2.set_xscale("log")
    for ax in (ax1, ax2):
        ax.set_xticks(ks, [str(k) for k in ks])
        ax.xaxis.set_minor_formatter(NullFormatter())
    ax2.set_xlabel("K containers")
    ax2.set_ylabel("ovs-vswitchd RSS per host (MiB, max over hosts)")
    ax2.set_title("idle-cost: ovs-vswitchd RSS", fontsize=10)
    ax2.grid(alpha=0.3)
    ax2.legend(fontsize=7)
    stamp(fig, r)
    path = os.path.join(out, "idle_cost.png")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def time_to_network(r: Record, out: str) -> str | None:
    samples = r["results"]["samples_ms"]
    fig, ax = plt.subplots(figsize=(6.4, 4))
    cdf(ax, samples["attach"], "attach (agent answered)")
    cdf(ax, samples["attach_to_first_packet"], "attach -> first successful ping")
    ax.set_xlabel("ms since the attach started")
    ax.set_ylabel("fraction of containers")
    ax.set_title("time-to-network")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    stamp(fig, r)
    path = os.path.join(out, "time_to_network_cdf.png")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def route_setup(r: Record, out: str) -> str | None:
    modes = [m for m in ("latency", "half_load", "throughput") if "samples_ms" in r.get(m, {})]
    if not modes:
        return None
    fig, ax = plt.subplots(figsize=(6.4, 4))
    for m in modes:
        cdf(ax, r[m]["samples_ms"], f"{m.replace('_', ' ')}: {r[m]['routes_per_s']:,.0f} routes/s")
    ax.set_xscale("log")
    ax.set_xlabel("PacketIn -> PacketOut re-injecting the packet (ms, log)")
    ax.set_ylabel("fraction of routes")
    ax.set_title(f"route-setup: one controller, {r['switches']} simulated switches")
    ax.axvline(2, color="grey", ls="--", lw=1)
    ax.text(2, 0.02, " p99 target at half load", fontsize=7, color="grey")
    ax.grid(alpha=0.3, which="both")
    ax.legend(loc="lower right", fontsize=8)
    stamp(fig, r)
    path = os.path.join(out, "route_setup_cdf.png")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def scale(r: Record, out: str) -> str | None:
    stages = [("empty", r["empty"]["rss"]), ("100k endpoints", r["loaded"]["rss"]),
              ("+10 switches", r["rss_10_switches"]), ("+1,000 switches", r["rss_all_switches"]),
              ("+live routes", r["rss_with_routes"])]
    stages = [(name, rss["VmRSS"]) for name, rss in stages]
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.8))
    left.bar([s for s, _ in stages], [v / 2**20 for _, v in stages], color="tab:blue")
    left.axhline(1024, color="grey", ls="--", lw=1)
    left.text(0, 1024, " 1 GiB target", fontsize=7, color="grey", va="bottom")
    left.set_ylabel("controller RSS (MiB)")
    left.tick_params(axis="x", labelrotation=30, labelsize=7)
    left.set_title("memory")
    runs = [("10 switches", r["latency_10"]), ("1,000 (same 10)", r["latency_all_same10"]),
            ("1,000 (spread)", r["latency_all_spread"])]
    xs = range(len(runs))
    right.bar([x - 0.2 for x in xs], [v["p50_ms"] for _, v in runs], 0.4, label="p50")
    right.bar([x + 0.2 for x in xs], [v["p99_ms"] for _, v in runs], 0.4, label="p99")
    right.set_xticks(list(xs), [n for n, _ in runs], fontsize=7)
    right.set_ylabel("route-setup latency (ms)")
    right.set_title("latency, one PacketIn at a time")
    right.legend(fontsize=8)
    fig.suptitle(f"scale: {r['switches']:,} switches, {r['endpoints']:,} endpoints", fontsize=10)
    stamp(fig, r)
    path = os.path.join(out, "scale.png")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


PLOTS: dict[str, Callable[[Record, str], str | None]] = {
    "first_packet": first_packet, "dataplane": dataplane, "idle_cost": idle_cost,
    "time_to_network": time_to_network, "route_setup": route_setup, "scale": scale,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", default="bench/results")
    parser.add_argument("--out", default="docs/img")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    for bench, plot in PLOTS.items():
        record = latest(args.results, bench)
        if record is None:
            print(f"{bench:<16} skipped: no results in {args.results}")
            continue
        path = plot(record, args.out)
        print(f"{bench:<16} {path or 'skipped: latest results have no raw samples'} "
              f"(from {record['_path']})")


if __name__ == "__main__":
    main()
