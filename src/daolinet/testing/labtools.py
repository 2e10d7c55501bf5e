"""The tests' name for the probes of a running lab (pings, flow dumps, counters, polling with a
deadline), which live in daolinet.lab.probes because the demo measures with them too; testing may
import lab, never the reverse."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator

from daolinet.lab import cluster
from daolinet.lab.probes import (
    api,
    flows,
    listening,
    ping,
    route_flows,
    rtts,
    rx_packets,
    tcp_transfer,
    wait_for,
)

__all__ = ["STREAM", "api", "connects", "cut_transfer", "flows", "listeners", "listening", "ping",
           "route_flows", "rtts", "rx_packets", "serving", "tcp_transfer", "wait_for"]

STREAM = [sys.executable, "-m", "daolinet.testing.stream"]


@contextlib.contextmanager
def serving(lab: cluster.Lab, target: str, argv: list[str]) -> Iterator[subprocess.Popen[str]]:
    """Run a server in `target` (a container or a lab namespace) for the block; it must
    say "listening" before the block starts, and it is killed after, whatever happens."""
    proc = lab.popen(target, argv, stdout=subprocess.PIPE)
    try:
        assert proc.stdout is not None and "listening" in proc.stdout.readline()
        yield proc
    finally:
        proc.kill()
        proc.wait()


@contextlib.contextmanager
def listeners(lab: cluster.Lab) -> Iterator[Callable[[str, list[int]], None]]:
    """start(container, ports): TCP listeners in containers, all stopped when the block ends."""
    with contextlib.ExitStack() as stack:
        def start(container: str, ports: list[int]) -> None:
            stack.enter_context(serving(lab, container, [*STREAM, "listen", *map(str, ports)]))

        yield start


def connects(lab: cluster.Lab, src: str, dst_ip: str, port: int) -> bool:
    """Does a TCP connection from container src to dst_ip:port succeed within a second?"""
    return lab.exec(src, [*STREAM, "probe", dst_ip, str(port), "--timeout", "1"]).returncode == 0


def cut_transfer(lab: cluster.Lab, client: str, server: str, server_ip: str, port: int,
                 under_way: Callable[[], object], revoke: Callable[[], object]) -> tuple[int, float]:
    """Stream TCP from container client to server (server_ip:port); once `under_way()` returns,
    `revoke()`.  Returns the bytes the server got and how long after revoke() returned its last
    byte arrived (negative: before)."""
    with serving(lab, server, [*STREAM, "recv", str(port), "--idle", "2"]) as recv:
        send = lab.popen(client, [*STREAM, "send", server_ip, str(port), "--seconds", "8"])
        try:
            under_way()
            revoke()
            returned = time.monotonic()
            out, _ = recv.communicate(timeout=30)
        finally:
            send.kill()
            send.wait()
    result = json.loads(out.strip().splitlines()[-1])
    stopped_after = float(result["last"]) - returned
    print(f"data stopped {stopped_after * 1000:.1f} ms after the API call returned")
    return int(result["bytes"]), stopped_after

