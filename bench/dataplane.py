"""Dataplane cost of a hot-plug route on the real lab: TCP throughput (iperf3)
and request/response latency between two namespaces on two lab hosts, three ways:

- hot-plug: two daolinet containers on h1 and h2, through their route (table 0
  anti-spoof, table 10 rewrite to PIPs + dec_ttl, uplink, fabric, table 20
  restore + dec_ttl, container port);
- plain OVS: two extra namespaces with ports on the *same* two bridges of the same
  two ovs-vswitchd, joined by an in_port -> output flow pair per bridge (priority
  above daolinet's pipeline, a cookie that is not daolinet's) over the same uplinks
  and fabric: what OVS forwarding costs with no route logic at all;
- veth: a direct veth pair between two namespaces (no OVS);
- hot-plug route through conntrack: two more containers c (h1) and d (h2) whose pair an L4
  rule covers ("c -> d tcp/5201-5202" and "c -> d icmp"): every route is scoped, stateful on
  c's host (ct(commit) out, ct(table=21) back, docs/pipeline.md), in the same run as hot-plug.
  For both hot-plug cases also the first-packet cost: a TCP connect's time right after the
  pair's routes were revoked (a pair rule set and cleared), so the SYN waits for the controller.

Each host bridge carries the same ports in both OVS cases (uplink, one container
port, one plain port). Latency: ping RTT p50 (ICMP echo, 100 per round) and TCP
request/response p50 (1-byte ping-pong over one connection, TCP_NODELAY, 500 per
round, a small Python client/server). Each measurement is repeated --runs times
(interleaved over the cases, on one lab); every figure is the median over the runs,
with min and max beside it. A run a tool failed in (iperf3 reporting an error) is
reported in the tool's words and retried.

    .venv/bin/python bench/dataplane.py [--runs 3] [--seconds 3]

Prints a table and writes bench/results/dataplane-<timestamp>.json (with the commit).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

from daolinet.lab import cluster, plan
from daolinet.system import links, procs
from daolinet.testing.fixtures import new_lab_name
from daolinet.testing.labtools import api, ping, rtts, wait_for

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from runs import ToolFailed, repeat, runs_option, show, write

PLAIN_COOKIE = 0xBE01  # kind byte 0x00: not daolinet's, so the controller's sync leaves it alone
PLAIN_IPS = ("198.18.0.200", "198.18.0.201")  # inside the lab's rack /18, no host or pool uses them
VETH_IPS = ("198.18.63.1", "198.18.63.2")
PORT = 5201
RR_PORT = 5202

RR_SERVER = f"""
import socket
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", {RR_PORT})); s.listen(1)
c, _ = s.accept(); c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
while True:
    b = c.recv(1)
    if not b:
        break
    c.sendall(b)
"""

CONNECT = """
import socket, sys, time
t = time.perf_counter()
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5)
print((time.perf_counter() - t) * 1000)
"""

RR_CLIENT = f"""
import json, socket, sys, time
n = int(sys.argv[2])
for _ in range(200):
    try:
        s = socket.create_connection((sys.argv[1], {RR_PORT}), timeout=5)
        break
    except OSError:
        time.sleep(0.02)
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
out = []
for _ in range(n):
    t = time.perf_counter_ns(); s.sendall(b"x"); s.recv(1); out.append((time.perf_counter_ns() - t) / 1e6)
s.close()
print(json.dumps(out))
"""


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p * len(ordered)))]


def in_ns(netns: str, argv: list[str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(procs.in_netns(netns, argv), capture_output=True, text=True, timeout=timeout)


def iperf_gbps(stdout: str) -> float:
    """Gbit/s the server received, from `iperf3 -J` output; ToolFailed with iperf3's own
    error when it reported one (its JSON then has "error" and no "sum_received")."""
    try:
        report = json.loads(stdout)
    except ValueError as e:
        raise ToolFailed(f"iperf3 printed no JSON: {stdout.strip()[-200:]!r}") from e
    received = report.get("end", {}).get("sum_received", {}).get("bits_per_second")
    if received is None:
        raise ToolFailed(f"iperf3: {report.get('error') or 'no sum_received in its report'}")
    return float(received) / 1e9


def listening(netns: str, port: int) -> bool:
    out = in_ns(netns, ["cat", "/proc/net/tcp", "/proc/net/tcp6"]).stdout
    return any(" 0A " in line and line.split()[1].endswith(f":{port:04X}") for line in out.splitlines())


def iperf(client_ns: str, server_ns: str, server_ip: str, seconds: float) -> float:
    """Gbit/s received by the server, one TCP stream."""
    srv = subprocess.Popen(procs.in_netns(server_ns, ["iperf3", "-s", "-1", "-p", str(PORT)]),
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        try:
            wait_for(lambda: listening(server_ns, PORT), what=f"iperf3 server listening in {server_ns}")
        except AssertionError as e:
            raise ToolFailed(str(e)) from e
        out = in_ns(client_ns, ["iperf3", "-c", server_ip, "-p", str(PORT), "-t", str(seconds), "-J"],
                    timeout=seconds + 30)
        return iperf_gbps(out.stdout)
    finally:
        srv.kill()
        srv.wait()


def ping_rtts(netns: str, ip: str, count: int = 100) -> list[float]:
    out = in_ns(netns, ["ping", "-n", "-c", str(count), "-i", "0.01", "-W", "2", ip],
                timeout=count * 0.05 + 30)
    got = list(rtts(out.stdout).values())
    if not got:
        raise ToolFailed(f"ping {netns} -> {ip}: no reply ({(out.stderr or out.stdout).strip()[-200:]})")
    return got


def tcp_rr(client_ns: str, server_ns: str, server_ip: str, count: int = 500) -> list[float]:
    srv = subprocess.Popen(procs.in_netns(server_ns, [sys.executable, "-c", RR_SERVER]),
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        out = in_ns(client_ns, [sys.executable, "-c", RR_CLIENT, server_ip, str(count)], timeout=120)
        if out.returncode != 0:
            raise ToolFailed(f"tcp_rr {client_ns} -> {server_ip}: {out.stderr.strip()[-300:]}")
        return [float(x) for x in json.loads(out.stdout)]
    finally:
        srv.kill()
        srv.wait()


def plain_ovs(lab: cluster.Lab) -> tuple[str, str]:
    """Namespaces pa (on h1's bridge) and pb (on h2's), joined by plain flows; their names."""
    ends = []
    for i, h in enumerate(lab.hosts[:2]):
        ns, port = f"{plan.netns_prefix(lab.name)}p{'ab'[i]}", f"bp{'ab'[i]}"
        links.create_netns(ns)  # named dl-LAB-*: `down` sweeps it with the lab
        links.add_veth(h.netns, port, ns, "eth0")
        links.tx_offload_off(ns, "eth0")
        links.link_up(ns, "eth0", address=f"{PLAIN_IPS[i]}/18")
        with h.ovsdb() as db:
            db.add_port(plan.BRIDGE, port)
        ends.append((h, ns, port, links.mac_of(ns, "eth0")))
    for i, (h, ns, port, mac) in enumerate(ends):
        _, _, _, peer_mac = ends[1 - i]
        in_ns(ns, ["ip", "neigh", "replace", PLAIN_IPS[1 - i], "lladdr", peer_mac, "dev", "eth0"])
        for flow in (f"in_port={port},actions=output:{plan.UPLINK}",
                     f"in_port={plan.UPLINK},dl_dst={mac},actions=output:{port}"):
            h.ofctl("add-flow", f"cookie={PLAIN_COOKIE:#x},table=0,priority=65000,{flow}")
    return ends[0][1], ends[1][1]


def direct_veth(lab: cluster.Lab) -> tuple[str, str]:
    a, b = (f"{plan.netns_prefix(lab.name)}v{x}" for x in "ab")
    links.create_netns(a)
    links.create_netns(b)
    links.add_veth(a, "eth0", b, "eth0")
    for ns, ip in ((a, VETH_IPS[0]), (b, VETH_IPS[1])):
        links.tx_offload_off(ns, "eth0")
        links.link_up(ns, "eth0", address=f"{ip}/24")
    return a, b


def measure(client: str, server: str, server_ip: str, seconds: float) -> dict[str, object]:
    icmp = ping_rtts(client, server_ip)
    rr = tcp_rr(client, server, server_ip)
    return {"gbps": round(iperf(client, server, server_ip, seconds), 4),
            "ping_p50_ms": round(statistics.median(icmp), 4),
            "tcp_rr_p50_ms": round(statistics.median(rr), 4),
            "tcp_rr_p99_ms": round(pct(rr, 0.99), 4), "ping_samples_ms": icmp, "tcp_rr_samples_ms": rr}


def first_connects(lab: cluster.Lab, pair: tuple[str, str], server_ns: str, server_ip: str,
                   count: int) -> list[float]:
    """TCP connect times (ms) from pair[0] to server_ip:RR_PORT, each just after the pair's
    routes were revoked: the SYN waits for the controller to plug its route."""
    srv = subprocess.Popen(procs.in_netns(server_ns, [sys.executable, "-m", "daolinet.lab.stream", "listen",
                                                      str(RR_PORT)]),
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    client_ns = lab.container(pair[0]).netns
    try:
        wait_for(lambda: listening(server_ns, RR_PORT), what=f"listener in {server_ns}")
        out = []
        for _ in range(count):
            api(lab, "POST", "/policy/disconnect", json={"a": pair[0], "b": pair[1]})
            api(lab, "DELETE", "/policy", params={"tenant": "default", "a": pair[0], "b": pair[1]})
            done = in_ns(client_ns, [sys.executable, "-c", CONNECT, server_ip, str(RR_PORT)])
            if done.returncode != 0:
                raise ToolFailed(f"connect {pair[0]} -> {server_ip}: {done.stderr.strip()[-200:]}")
            out.append(float(done.stdout))
        return out
    finally:
        srv.kill()
        srv.wait()


def run(runs: int, seconds: float) -> dict[str, object]:
    name = lab_name = new_lab_name()
    lab = cluster.Lab.up(name, hosts=2)
    try:
        api(lab, "POST", "/networks", json={"name": "bench", "subnet": "10.60.0.0/24"})
        a = lab.add_container("a", host="h1", network="bench")
        b = lab.add_container("b", host="h2", network="bench")
        c = lab.add_container("c", host="h1", network="bench")
        d = lab.add_container("d", host="h2", network="bench")
        assert b.ip is not None and d.ip is not None
        for group, member in (("ct-client", "c"), ("ct-server", "d")):
            api(lab, "POST", "/groups", json={"name": group, "members": [f"container:{member}"]})
        for proto, ports in (("tcp", f"{PORT}-{RR_PORT}"), ("icmp", "")):
            api(lab, "POST", "/rules", json={"from_group": "ct-client", "to_group": "ct-server",
                                             "protocol": proto, "ports": ports})
        for x, y in ((a, b), (c, d)):
            wait_for(lambda x=x, y=y: ping(lab, x.name, str(y.ip), count=1, wait=1).returncode == 0,
                     timeout=20, what=f"hot-plug route {x.name} -> {y.name}")
        pa, pb = plain_ovs(lab)
        wait_for(lambda: in_ns(pa, ["ping", "-c", "1", "-W", "1", PLAIN_IPS[1]]).returncode == 0,
                 timeout=20, what="plain OVS path pa -> pb")
        va, vb = direct_veth(lab)
        cases = {"hot-plug": (a.netns, b.netns, str(b.ip)), "plain-ovs": (pa, pb, PLAIN_IPS[1]),
                 "veth": (va, vb, VETH_IPS[1]), CT: (c.netns, d.netns, str(d.ip))}
        pairs = {"hot-plug": ("a", "b"), CT: ("c", "d")}

        def one_run() -> dict[str, dict[str, object]]:
            got = {case: measure(*where, seconds) for case, where in cases.items()}
            for case, pair in pairs.items():
                connects = first_connects(lab, pair, cases[case][1], cases[case][2], FIRST_CONNECTS)
                got[case]["first_connect_p50_ms"] = round(statistics.median(connects), 4)
                got[case]["first_connect_samples_ms"] = connects
            return got

        # One run measures every case in turn, so slow drift of the shared machine hits every case alike.
        done = repeat(one_run, runs, "dataplane")
        medians, spreads = done["median"], done["spread"]
        results: dict[str, object] = {}
        for case in cases:
            keys = FIGURES + (("first_connect_p50_ms",) if case in pairs else ())
            results[case] = {key: medians[case][key] for key in keys}
            results[case]["spread"] = {key: spreads[case][key] for key in keys}  # type: ignore[index]
            results[case]["rounds"] = [r[case] for r in done["runs"]]  # type: ignore[index]
        hp, po = medians["hot-plug"], medians["plain-ovs"]
        results["ratio_hotplug_over_plain"] = {
            "throughput": round(hp["gbps"] / po["gbps"], 3),
            "ping_rtt": round(hp["ping_p50_ms"] / po["ping_p50_ms"], 3),
            "tcp_rr": round(hp["tcp_rr_p50_ms"] / po["tcp_rr_p50_ms"], 3)}
        results["ratio_per_run"] = [
            {"throughput": round(r["hot-plug"]["gbps"] / r["plain-ovs"]["gbps"], 3),
             "ping_rtt": round(r["hot-plug"]["ping_p50_ms"] / r["plain-ovs"]["ping_p50_ms"], 3),
             "tcp_rr": round(r["hot-plug"]["tcp_rr_p50_ms"] / r["plain-ovs"]["tcp_rr_p50_ms"], 3)}
            for r in done["runs"]]
        ct, hp_runs = medians[CT], [(r[CT], r["hot-plug"]) for r in done["runs"]]
        results["ratio_conntrack_over_hotplug"] = {
            "throughput": round(ct["gbps"] / hp["gbps"], 3),
            "tcp_rr": round(ct["tcp_rr_p50_ms"] / hp["tcp_rr_p50_ms"], 3),
            "first_connect": round(ct["first_connect_p50_ms"] / hp["first_connect_p50_ms"], 3),
            "throughput_per_run": [round(x["gbps"] / y["gbps"], 3) for x, y in hp_runs]}
        results["ports_per_bridge"] = {h.name: len(h.ofctl("dump-ports-desc").split(" addr:")) - 1
                                       for h in lab.hosts}
        results["route_flows_on_h1"] = [f for f in h_flows(lab, "h1") if "cookie=0xd1" in f]
        results["conntrack_on_h1"] = lab.host("h1").ovs.appctl("ovs-vswitchd", "dpctl/dump-conntrack")
        results["lab"] = lab_name
        return results
    finally:
        cluster.down(name)


FIGURES: tuple[str, ...] = ("gbps", "ping_p50_ms", "tcp_rr_p50_ms", "tcp_rr_p99_ms")
CT = "hot-plug-ct"  # the hot-plug route through conntrack
FIRST_CONNECTS = 15  # per hot-plug case and run


def h_flows(lab: cluster.Lab, host: str) -> list[str]:
    return [line.strip() for line in lab.host(host).ofctl("dump-flows", "--no-stats").splitlines()
            if "cookie=" in line]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    runs_option(parser, 3, "--rounds")
    parser.add_argument("--seconds", type=float, default=3, help="iperf3 duration per measurement")
    args = parser.parse_args()
    started = time.time()
    results = run(args.runs, args.seconds)
    print(f"{'case':<11} {'Gbit/s':>24} {'ping p50 ms':>24} {'tcp rr p50 ms':>24}   "
          f"(median (min–max) of {args.runs} runs)")
    for case in ("hot-plug", CT, "plain-ovs", "veth"):
        r = results[case]
        assert isinstance(r, dict)
        sp = r["spread"]
        first = sp.get("first_connect_p50_ms")
        first = f"   first connect p50 ms {show(first)}" if first else ""
        print(f"{case:<11} {show(sp['gbps']):>24} {show(sp['ping_p50_ms']):>24} "
              f"{show(sp['tcp_rr_p50_ms']):>24}{first}")
    print(f"hot-plug / plain OVS (of the medians): {results['ratio_hotplug_over_plain']}; per run: "
          f"{results['ratio_per_run']} (ports per bridge: {results['ports_per_bridge']})")
    print("through conntrack / hot-plug (target: throughput >= 0.9):",
          results["ratio_conntrack_over_hotplug"])
    write("dataplane", {"params": {"runs": args.runs, "seconds": args.seconds}, "results": results}, started)


if __name__ == "__main__":
    main()
