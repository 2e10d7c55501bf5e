"""A container scanning addresses cannot flood the controller: each bridge sends
its controller at most PACKET_IN_RATE PacketIns a second (plus a burst), and the
network keeps working for everyone else."""

from __future__ import annotations

import re
import subprocess
import textwrap
import time
from collections.abc import Callable

import pytest

from daolinet.lab import cluster
from daolinet.system.ovsdb import PACKET_IN_BURST, PACKET_IN_RATE
from daolinet.testing.labtools import api, ping, wait_for

pytestmark = pytest.mark.integration
LabFactory = Callable[..., cluster.Lab]
SCAN = 16_000  # distinct destinations, 4,000 a second: 4x the cap, yet slow enough that OVS
SCAN_RATE = 4_000  # itself keeps up (sent at once, the upcall queues drop most of them anyway)


def packet_ins(lab: cluster.Lab, dpid: int) -> float:
    with lab.api() as client:
        text = client.http.get("/metrics").text
    m = re.search(rf'^daolinet_packet_ins_total{{dpid="{dpid:#x}"}} ([0-9.e+]+)$', text, re.M)
    assert m is not None, f"no PacketIn counter for switch {dpid:#x}"
    return float(m.group(1))


def test_an_address_scan_is_rate_limited_and_others_still_connect(lab_factory: LabFactory) -> None:
    lab = lab_factory(hosts=2)
    api(lab, "POST", "/networks", json={"name": "wide", "subnet": "10.9.0.0/16"})
    lab.add_container("scanner", host="h1", network="wide")
    lab.add_container("peer", host="h2", network="wide")
    lab.add_container("friend", host="h1", network="wide")
    assert ping(lab, "scanner", lab.container("peer").ip or "").returncode == 0  # the counter exists
    before = packet_ins(lab, 1)
    scan = textwrap.dedent(f"""
        import socket, time
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        t = time.monotonic()
        for i in range({SCAN}):
            s.sendto(b"x", (f"10.9.{{100 + i // 250}}.{{1 + i % 250}}", 9))
            if i % 40 == 39:
                time.sleep(max(0.0, t + (i + 1) / {SCAN_RATE} - time.monotonic()))
        print(time.monotonic() - t)
    """)
    started = time.monotonic()
    scanner = lab.popen("scanner", ["python3", "-c", scan], stdout=subprocess.PIPE)
    try:
        # During the scan (its PacketIns are arriving, the scanner still sending), another
        # container on the same host gets a fresh route to a peer.
        wait_for(lambda: packet_ins(lab, 1) - before > PACKET_IN_RATE / 4, timeout=10,
                 what="the scan's PacketIns reaching the controller")
        assert scanner.poll() is None, "the scan ended before the friend tried"
        assert ping(lab, "friend", lab.container("peer").ip or "", count=3).returncode == 0
        assert scanner.poll() is None, "the friend connected only after the scan ended"
        out, _ = scanner.communicate(timeout=60)
    finally:
        if scanner.poll() is None:
            scanner.kill()
            scanner.wait()
    assert scanner.returncode == 0
    assert float(out) < 2 * SCAN / SCAN_RATE, "the scan itself was too slow to be a flood"
    last, stable_since = packet_ins(lab, 1), time.monotonic()
    while time.monotonic() - stable_since < 1.0:  # until the counter stops moving
        time.sleep(0.2)
        now = packet_ins(lab, 1)
        if now != last:
            last, stable_since = now, time.monotonic()
        assert time.monotonic() - started < 60, "PacketIns never stopped"
    received = last - before
    took = stable_since - started
    print(f"\nscan of {SCAN} destinations: {received:.0f} PacketIns reached the controller in {took:.1f} s")
    assert PACKET_IN_RATE * min(took, 1.0) / 2 <= received  # the scan did reach the controller...
    assert received <= PACKET_IN_RATE * took + PACKET_IN_BURST + 200  # ...at the capped rate
    assert received < SCAN / 2
