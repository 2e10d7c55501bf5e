"""What integration tests, the demo and benchmarks ask of a running lab:
pings, flow dumps, counters, polling with a deadline."""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Callable
from typing import Any, TypeVar

from pyroute2 import NetNS

from daolinet.lab import cluster

T = TypeVar("T")
RTT_RE = re.compile(r"icmp_seq=(\d+) .*time=([\d.]+) ms")


def wait_for(cond: Callable[[], T], timeout: float = 10.0, what: str = "condition") -> T:
    """Poll `cond` until it returns something truthy; fail after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not met within {timeout}s")
        time.sleep(0.05)


def ping(lab: cluster.Lab, src: str, ip: str, count: int = 1, interval: float = 0.2,
         wait: float = 2) -> subprocess.CompletedProcess[str]:
    return lab.exec(src, ["ping", "-n", "-c", str(count), "-i", str(interval), "-W", str(wait), ip],
                    timeout=count * interval + wait + 10)


def rtts(output: str) -> dict[int, float]:
    """icmp_seq -> RTT in ms, from ping's output."""
    return {int(m.group(1)): float(m.group(2)) for m in RTT_RE.finditer(output)}


def flows(lab: cluster.Lab, host: str, table: int | None = None) -> list[str]:
    """ovs-ofctl dump-flows lines of a host's bridge (one table or all)."""
    args = ["dump-flows", "--no-stats"] if table is None else ["dump-flows", "--no-stats", f"table={table}"]
    out = lab.host(host).ofctl(*args)
    return [line.strip() for line in out.splitlines() if "cookie=" in line or "priority" in line]


def route_flows(lab: cluster.Lab, host: str) -> list[str]:
    return [f for f in flows(lab, host) if "cookie=0xd1" in f]


def rx_packets(lab: cluster.Lab, container: str) -> int:
    """Packets received on a container's eth0 (netlink counters)."""
    with NetNS(lab.container(container).netns, flags=0) as ns:
        link = ns.get_links(ns.link_lookup(ifname="eth0")[0])[0]
        stats = link.get("IFLA_STATS64")
        return int(stats["rx_packets"])


def api(lab: cluster.Lab, method: str, path: str, **kwargs: Any) -> Any:
    with lab.api() as client:
        return client.call(method, path, **kwargs)


def listening(lab: cluster.Lab, container: str, port: int) -> bool:
    """A TCP socket in LISTEN on `port` inside the container (IPv4 or dual-stack)."""
    out = lab.exec(container, ["cat", "/proc/net/tcp", "/proc/net/tcp6"]).stdout
    return any(f":{port:04X} " in line.split(" 0A ")[0] and " 0A " in line for line in out.splitlines())


def tcp_transfer(lab: cluster.Lab, client: str, server: str, server_ip: str, seconds: float = 1,
                 port: int = 5201) -> subprocess.CompletedProcess[str]:
    """iperf3 from client to server; the server serves one test and exits."""
    srv = lab.popen(server, ["iperf3", "-s", "-1", "-p", str(port)], stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: listening(lab, server, port), what="iperf3 server listening")
        return lab.exec(client, ["iperf3", "-c", server_ip, "-p", str(port), "-t", str(seconds), "-J"],
                        timeout=seconds + 30)
    finally:
        srv.kill()
        srv.wait()
