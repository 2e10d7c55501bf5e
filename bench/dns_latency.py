"""DNS answer latency from a container on the real lab: a client in a container on h2 asks
its host's resolver (169.254.53.53, answered by h2's agent from its replica of the view)
for a name on h1 (`web`), a name that does not exist (`nobody`) and `web.net1`, one
question every 2 ms (under the agent's per-port limit), and times each answer
(dnspython's blocking UDP client: its own encode/decode, ~0.1 ms, is counted in).
The lab holds `--containers` others so the view is not trivially small.  Target (issue 18): p99 <= 2 ms.

    .venv/bin/python bench/dns_latency.py [--runs 3] [--queries 2000] [--containers 40]

Each run is a fresh lab; every figure is the median over the runs with min and max beside
it.  Prints a table and writes bench/results/dns_latency-<timestamp>.json (with the commit).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from daolinet.lab import cluster
from daolinet.testing.fixtures import new_lab_name
from daolinet.testing.labtools import api, wait_for

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from runs import ToolFailed, repeat, runs_option, show, write

RESOLVER = "169.254.53.53"
NAMES = ("web", "nobody", "web.net1")
WARMUP = 50
CLIENT = """
import json, sys, time
import dns.message, dns.query, dns.rcode
server, count, warmup, names = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4:]
GAP = 0.002  # seconds between questions: 500 a second, under the agent's per-port limit
out = {}
for name in names:
    query = dns.message.make_query(name, "A")
    times, codes = [], set()
    due = time.perf_counter()
    for i in range(count + warmup):
        due += GAP
        time.sleep(max(0.0, due - time.perf_counter()))
        started = time.perf_counter()
        reply = dns.query.udp(query, server, timeout=2)
        if i >= warmup:
            times.append((time.perf_counter() - started) * 1000)
        codes.add(dns.rcode.to_text(reply.rcode()))
    out[name] = {"ms": times, "rcodes": sorted(codes)}
print(json.dumps(out))
"""


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p * len(ordered)))]


def answered(lab: cluster.Lab) -> bool:
    once = lab.exec("client", [sys.executable, "-c", CLIENT, RESOLVER, "1", "0", "web"], timeout=30)
    return once.returncode == 0 and json.loads(once.stdout)["web"]["rcodes"] == ["NOERROR"]


def run(queries: int, containers: int) -> dict[str, object]:
    name = new_lab_name()
    lab = cluster.Lab.up(name, hosts=2)
    try:
        api(lab, "POST", "/networks", json={"name": "net1", "subnet": "10.1.0.0/16"})
        lab.add_container("web", host="h1", network="net1")
        client = lab.add_container("client", host="h2", network="net1")
        for i in range(containers):
            lab.add_container(f"o{i}", host=f"h{1 + i % 2}", network="net1")
        wait_for(lambda: answered(lab), timeout=20, what="web resolving (the agent's replica loaded)")
        done = lab.exec("client", [sys.executable, "-c", CLIENT, RESOLVER, str(queries), str(WARMUP), *NAMES],
                        timeout=60 + queries * len(NAMES) * 0.01)
        if done.returncode != 0:
            raise ToolFailed(f"the DNS client failed: {done.stderr.strip()[-300:]}")
        found = json.loads(done.stdout)
        results: dict[str, object] = {"containers": containers + 2, "client_ip": client.ip}
        for qname in NAMES:
            ms = found[qname]["ms"]
            results[qname] = {"rcodes": found[qname]["rcodes"], "p50_ms": round(pct(ms, 0.5), 3),
                              "p90_ms": round(pct(ms, 0.9), 3), "p99_ms": round(pct(ms, 0.99), 3),
                              "max_ms": round(max(ms), 3)}
        return results
    finally:
        cluster.down(name)


FIGURES = ("p50_ms", "p90_ms", "p99_ms", "max_ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    runs_option(parser)
    parser.add_argument("--queries", type=int, default=2000, help="questions per name per run")
    parser.add_argument("--containers", type=int, default=40, help="other containers in the lab")
    args = parser.parse_args()
    started = time.time()
    done = repeat(lambda: run(args.queries, args.containers), args.runs, "dns_latency")
    results, spread = done["median"], done["spread"]
    print(f"{'name':<10} {'rcode':<9} " + " ".join(f"{f[:-3]:>22}" for f in FIGURES)
          + f"   (ms, median (min–max) of {args.runs} runs, {args.queries} questions each)")
    for qname in NAMES:
        r, sp = results[qname], spread[qname]
        print(f"{qname:<10} {','.join(r['rcodes']):<9} " + " ".join(f"{show(sp[f]):>22}" for f in FIGURES))
    params = {"runs": args.runs, "queries": args.queries, "containers": args.containers}
    record = {"params": params, "results": results, "spread": spread, "runs": done["runs"]}
    write("dns_latency", record, started)


if __name__ == "__main__":
    main()
