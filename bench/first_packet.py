"""First-packet cost on the real lab: extra RTT of a connection's first packet
(which waits for the controller to plug its route) over the steady-state RTT,
for fresh container pairs, cross-host and same-host; plus the controller's own
PacketIn -> route-installed time.

    .venv/bin/python bench/first_packet.py [--runs 3] [--pairs 200] [--same-host-pairs 60]
                                           [--compare-insecure] [--ipv6]

The lab runs TLS everywhere (as by default); `--compare-insecure` measures an
`--insecure` lab too, in each run, and prints the ratio.  `--ipv6` makes the
network dual-stack (subnet6 fd00:50::/64) and measures IPv6 (`ping -6`) beside
IPv4 in the same run, on the same pairs: each pair's IPv6 route is its own, so
its first ping6 plugs a fresh route after the IPv4 one was measured. Each run is a fresh lab;
every figure is the median over the runs with min and max beside it (raw samples
of all runs pooled in the JSON).

Prints a table and writes bench/results/first_packet-<timestamp>.json (with the commit).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

from daolinet.lab import cluster
from daolinet.testing.fixtures import new_lab_name
from daolinet.testing.labtools import api, ping, rtts

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from runs import ToolFailed, repeat, runs_option, show, write


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p * len(ordered)))]


SUBNET6 = "fd00:50::/64"


def ping6(lab: cluster.Lab, src: str, ip: str, count: int, interval: float,
          wait: float) -> subprocess.CompletedProcess[str]:
    return lab.exec(src, ["ping", "-6", "-n", "-c", str(count), "-i", str(interval), "-W", str(wait), ip],
                    timeout=count * interval + wait + 10)


def measure_pair(lab: cluster.Lab, src: str, dst_ip: str) -> tuple[float, float] | None:
    """(first RTT, median of the following RTTs) in ms, or None if a ping was lost."""
    out = (ping6 if ":" in dst_ip else ping)(lab, src, dst_ip, count=5, interval=0.05, wait=2)
    times = rtts(out.stdout)
    if out.returncode != 0 or len(times) != 5:
        return None
    return times[1], statistics.median(times[s] for s in range(2, 6))


def ip6_of(lab: cluster.Lab, name: str) -> str:
    """A container's IPv6 address, as the API gives it."""
    ip6 = api(lab, "GET", f"/containers/default/{name}").get("ip6")
    if not ip6:
        raise ToolFailed(f"container {name} has no IPv6 address: is the network dual-stack?")
    return str(ip6)


def run(pairs: int, same_pairs: int, insecure: bool = False, ipv6: bool = False) -> dict[str, object]:
    side = max(2, int(pairs ** 0.5 + 0.999))
    name = new_lab_name()
    lab = cluster.Lab.up(name, hosts=2, insecure=insecure)
    try:
        body = {"name": "bench", "subnet": "10.50.0.0/16", **({"subnet6": SUBNET6} if ipv6 else {})}
        api(lab, "POST", "/networks", json=body)
        left = [lab.add_container(f"l{i}", host="h1", network="bench") for i in range(side)]
        right = [lab.add_container(f"r{i}", host="h2", network="bench") for i in range(side)]
        cross = [(a.name, str(b.ip), b.name) for a in left for b in right][:pairs]
        same = [(a.name, str(b.ip), b.name) for i, a in enumerate(left) for b in left[i + 1:]][:same_pairs]
        cases: list[tuple[str, list[tuple[str, str, str]]]] = [("cross-host", cross), ("same-host", same)]
        if ipv6:  # the same pairs again, over IPv6: the pair's IPv6 route is plugged afresh
            ip6 = {c.name: ip6_of(lab, c.name) for c in left + right}
            cases += [(f"{label} ipv6", [(a, ip6[b], b) for a, _, b in chosen]) for label, chosen in cases]
        results: dict[str, object] = {}
        for label, chosen in cases:
            samples = [measure_pair(lab, a, dst) for a, dst, _ in chosen]
            ok = [s for s in samples if s is not None]
            if not ok:
                raise ToolFailed(f"{label}: ping lost a packet for every one of {len(chosen)} pairs")
            extra = [first - steady for first, steady in ok]
            results[label] = {
                "pairs": len(chosen), "measured": len(ok),
                "first_p50_ms": round(pct([f for f, _ in ok], 0.5), 3),
                "steady_p50_ms": round(pct([s for _, s in ok], 0.5), 3),
                "extra_p50_ms": round(pct(extra, 0.5), 3), "extra_p99_ms": round(pct(extra, 0.99), 3),
                # raw per-pair samples (bench/plots.py draws their CDF): [first RTT, steady RTT] in ms
                "samples_ms": [[round(f, 3), round(s, 3)] for f, s in ok],
            }
        results["controller_route_setup"] = api(lab, "GET", "/stats/route-setup")
        results["ports_per_host"] = side + 1
        return results
    finally:
        cluster.down(name)


def once(args: argparse.Namespace) -> dict[str, object]:
    results = run(args.pairs, args.same_host_pairs, ipv6=args.ipv6)
    if args.compare_insecure:
        results["insecure"] = run(args.pairs, args.same_host_pairs, insecure=True, ipv6=args.ipv6)
    return results


FIGURES = ("first_p50_ms", "steady_p50_ms", "extra_p50_ms", "extra_p99_ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    runs_option(parser)
    parser.add_argument("--pairs", type=int, default=200, help="cross-host container pairs per run")
    parser.add_argument("--same-host-pairs", type=int, default=60, help="same-host container pairs per run")
    parser.add_argument("--compare-insecure", action="store_true",
                        help="also measure an --insecure lab in each run")
    parser.add_argument("--ipv6", action="store_true",
                        help=f"a dual-stack network ({SUBNET6}): measure IPv6 (ping -6) beside IPv4")
    args = parser.parse_args()
    started = time.time()
    done = repeat(lambda: once(args), args.runs, "first_packet")
    results, spread = done["median"], done["spread"]
    print(f"{'case':<12} {'pairs':>5} " + " ".join(f"{f[:-3].replace('_', ' '):>22}" for f in FIGURES)
          + f"   (ms, median (min–max) of {args.runs} runs)")
    cases = ("cross-host", "same-host") + (("cross-host ipv6", "same-host ipv6") if args.ipv6 else ())
    for case in cases:
        r, sp = results[case], spread[case]
        print(f"{case:<12} {r['measured']:>5} " + " ".join(f"{show(sp[f]):>22}" for f in FIGURES))
    if args.ipv6:
        for case in ("cross-host", "same-host"):
            v6, v4 = results[f"{case} ipv6"]["extra_p50_ms"], results[case]["extra_p50_ms"]
            print(f"{case:<12} IPv6/IPv4 extra p50 (medians) x{v6 / max(v4, 1e-3):.2f}")
    print(f"controller PacketIn->route (µs, medians over runs): {results['controller_route_setup']}")
    plain = results.get("insecure")
    if isinstance(plain, dict):
        for case in ("cross-host", "same-host"):
            tls_r, ins_r = results[case], plain[case]
            ratio = tls_r["extra_p50_ms"] / max(ins_r["extra_p50_ms"], 1e-3)
            print(f"{case:<12} insecure extra p50 {show(spread['insecure'][case]['extra_p50_ms'])}ms "
                  f"p99 {show(spread['insecure'][case]['extra_p99_ms'])}ms; TLS/insecure extra p50 "
                  f"(medians) x{ratio:.2f}")
    write("first_packet", {"params": {"runs": args.runs, "pairs": args.pairs,
                                      "same_host_pairs": args.same_host_pairs, "tls": True,
                                      "compare_insecure": args.compare_insecure, "ipv6": args.ipv6},
                           "results": results, "spread": spread, "runs": done["runs"]}, started)


if __name__ == "__main__":
    main()
