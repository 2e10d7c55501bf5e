"""`make demo`: daolinet on a 3-host lab, end to end, then torn down (always).

Two tenants use the *same* subnet; containers on three hosts ping and talk
TCP across hosts and on one host, tenants stay apart, traceroute shows the
virtual routers, and the hot-plug flows appear on first packet and idle out.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

from rich.console import Console
from rich.table import Table

from daolinet.errors import SystemFailure
from daolinet.lab import cluster, plan
from daolinet.lab.probes import api, ping, route_flows, rx_packets, tcp_transfer, wait_for

IDLE = 5
CONTAINERS = [  # name, host, tenant, ip
    ("red-a", "h1", "red", "10.1.0.10"), ("red-b", "h2", "red", "10.1.0.20"),
    ("red-c", "h3", "red", "10.1.0.30"), ("red-d", "h1", "red", "10.1.0.11"),
    ("blue-a", "h1", "blue", "10.1.0.10"), ("blue-b", "h2", "blue", "10.1.0.20"),
]


def run(name: str, console: Console, hosts: int = 3) -> None:
    cluster.down(name)  # a demo left over from an interrupted run
    console.rule("daolinet demo")
    start = time.monotonic()
    lab = cluster.Lab.up(name, hosts=hosts, idle_timeout=IDLE)
    console.print(f"[bold]lab up[/]: {hosts} hosts (each its own ovs-vswitchd), a controller, "
                  f"{hosts} agents in {time.monotonic() - start:.1f}s")
    _failed.clear()
    try:
        _setup(lab, console)
        _talk(lab, console)
        _isolation(lab, console)
        _traceroute(lab, console)
        _policy(lab, console)
        _outside(lab, console)
        _flows(lab, console)
    finally:
        cluster.down(name)
        console.print(f"[bold]lab down[/]: lab {name} removed")
    if _failed:
        raise SystemFailure(f"demo: {len(_failed)} check(s) failed")


_failed: list[bool] = []  # checks that did not hold, so `make demo` can fail loudly


def _ok(flag: bool) -> str:
    if not flag:
        _failed.append(flag)
    return "[green]ok[/]" if flag else "[red]FAILED[/]"


def _setup(lab: cluster.Lab, console: Console) -> None:
    for tenant in ("red", "blue"):
        api(lab, "POST", "/tenants", json={"name": tenant})
        api(lab, "POST", "/networks", json={"name": "web", "subnet": "10.1.0.0/24", "tenant": tenant,
                                            "external": tenant == "red"})
    table = Table(title="two tenants, one subnet 10.1.0.0/24 each")
    for col in ("container", "tenant", "host", "logical IP", "PIP", "MAC"):
        table.add_column(col)
    for cname, host, tenant, ip in CONTAINERS:
        c = lab.add_container(cname, host=host, network="web", tenant=tenant, ip=ip)
        table.add_row(cname, tenant, host, ip, str(c.pip), str(c.mac))
    console.print(table)


def _talk(lab: cluster.Lab, console: Console) -> None:
    first = ping(lab, "red-a", "10.1.0.20", count=1)
    console.print(f"red-a(h1) -> red-b(h2) first packet, cross-host: {_ok(first.returncode == 0)}"
                  f"  [dim]{first.stdout.splitlines()[1] if first.returncode == 0 else ''}[/]")
    same = ping(lab, "red-a", "10.1.0.11", count=1)
    console.print(f"red-a(h1) -> red-d(h1) same host, one hop:     {_ok(same.returncode == 0)}"
                  f"  [dim]{same.stdout.splitlines()[1] if same.returncode == 0 else ''}[/]")
    done = tcp_transfer(lab, "red-a", "red-c", "10.1.0.30", seconds=1)
    rate = json.loads(done.stdout)["end"]["sum_received"]["bits_per_second"] / 1e6
    console.print(f"red-a(h1) -> red-c(h3) TCP (iperf3, 1 s):       {_ok(done.returncode == 0)}"
                  f"  {rate:.0f} Mbit/s")


def _isolation(lab: cluster.Lab, console: Console) -> None:
    red_rx = rx_packets(lab, "red-b")
    blue = ping(lab, "blue-a", "10.1.0.20", count=3)
    leaked = rx_packets(lab, "red-b") != red_rx
    console.print(f"blue-a -> 10.1.0.20 reaches blue-b:            {_ok(blue.returncode == 0)}; "
                  f"red-b (same IP, same host) received nothing: {_ok(not leaked)}")
    other = ping(lab, "blue-a", "10.1.0.30", count=1, wait=1)
    console.print(f"blue-a -> 10.1.0.30 (only red has it) is dropped: {_ok(other.returncode != 0)}")


def _policy(lab: cluster.Lab, console: Console) -> None:
    console.print("[bold]policy[/]: red gets a second network, db (10.2.0.0/24), with red-e on h2")
    api(lab, "POST", "/networks", json={"name": "db", "subnet": "10.2.0.0/24", "tenant": "red"})
    lab.add_container("red-e", host="h2", network="db", tenant="red", ip="10.2.0.10")
    before = ping(lab, "red-a", "10.2.0.10", count=1, wait=1)
    console.print(f"  red-a -> red-e, different networks, no group: denied {_ok(before.returncode != 0)}")
    api(lab, "POST", "/groups", json={"name": "app", "tenant": "red",
                                      "members": ["network:web", "network:db"]})
    granted = ping(lab, "red-a", "10.2.0.10", count=1)
    console.print(f"  group app = web + db: allowed at once {_ok(granted.returncode == 0)}")
    api(lab, "POST", "/policy/disconnect", json={"tenant": "red", "a": "red-a", "b": "red-e"})
    cut = ping(lab, "red-a", "10.2.0.10", count=1, wait=1)
    console.print(f"  policy disconnect red-a red-e: cut at once {_ok(cut.returncode != 0)}; "
                  f"red-b -> red-e still {_ok(ping(lab, 'red-b', '10.2.0.10').returncode == 0)}")
    api(lab, "DELETE", "/policy", params={"tenant": "red", "a": "red-a", "b": "red-e"})


def _outside(lab: cluster.Lab, console: Console) -> None:
    stream = [sys.executable, "-m", "daolinet.lab.stream"]
    server = lab.popen("outside", [*stream, "whoami", "8080"], stdout=subprocess.PIPE)
    web = lab.popen("red-c", [*stream, "whoami", "80"], stdout=subprocess.PIPE)
    try:
        for p in (server, web):
            assert p.stdout is not None and "listening" in p.stdout.readline()
        seen = lab.exec("red-a", [*stream, "fetch", str(plan.OUTSIDE_IP), "8080"]).stdout.strip()
        h1 = lab.host("h1").underlay_ip
        console.print(f"[bold]outside[/]: red-a (external network) fetches from {plan.OUTSIDE_IP}; the "
                      f"server sees {seen or 'nothing'} (h1's address) {_ok(seen == h1)}")
        blue = lab.exec("blue-a", [*stream, "fetch", str(plan.OUTSIDE_IP), "8080", "--timeout", "1"])
        console.print(f"  blue-a (network not external) cannot {_ok(blue.returncode != 0)}")
        api(lab, "POST", "/portmaps", json={"name": "http", "tenant": "red", "container": "red-c",
                                            "rule": "8080:80/tcp", "host": "h1"})
        got = lab.exec("outside", [*stream, "fetch", lab.host("h1").underlay_ip, "8080"])
        console.print(f"  portmap h1:8080 -> red-c:80 (on h3) serves the outside "
                      f"{_ok(got.returncode == 0)}")
    finally:
        for p in (server, web):
            p.kill()
            p.wait()


def _traceroute(lab: cluster.Lab, console: Console) -> None:
    done = lab.exec("red-a", ["traceroute", "-n", "-q", "1", "-w", "2", "-m", "5", "10.1.0.30"])
    console.print("[bold]traceroute -n red-a -> red-c[/] (gateway, destination host, container):")
    console.print("  " + "\n  ".join(done.stdout.strip().splitlines()[1:]))


def _flows(lab: cluster.Lab, console: Console) -> None:
    console.print(f"[bold]hot-plug flows on h1[/] ({len(route_flows(lab, 'h1'))} now):")
    for line in route_flows(lab, "h1")[:4]:
        console.print(f"  [dim]{line}[/]")
    routes = api(lab, "GET", "/routes")
    console.print(f"GET /routes: {len(routes)} live routes: "
                  + ", ".join("<->".join(r["names"]) for r in routes))
    start = time.monotonic()
    wait_for(lambda: not any(route_flows(lab, h.name) for h in lab.hosts), timeout=IDLE * 4,
             what="routes idling out")
    console.print(f"after {time.monotonic() - start:.1f}s idle (timeout {IDLE}s): flows on every host: "
                  f"{sum(len(route_flows(lab, h.name)) for h in lab.hosts)}, "
                  f"live routes: {len(api(lab, 'GET', '/routes'))}  [dim]an idle container costs no flows[/]")
    again = ping(lab, "red-a", "10.1.0.20", count=1)
    console.print(f"next packet re-plugs the route: {_ok(again.returncode == 0)}")
