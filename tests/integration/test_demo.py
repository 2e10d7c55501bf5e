"""`make demo` is the newcomer's first command: it must run through, every
check in it holding on what it measured, and leave nothing behind."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from daolinet.lab import demo
from daolinet.testing.fixtures import lab_leftovers, need_root, new_lab_name

pytestmark = pytest.mark.integration


def test_the_demo_measures_what_it_claims_and_cleans_up() -> None:
    need_root()
    name = new_lab_name()
    out = io.StringIO()
    try:
        report = demo.run(name, Console(file=out, width=200))
    finally:
        assert lab_leftovers(name) == []
    why = f"failed: {[c.to_json() for c in report.failed]}\nthe demo printed:\n{out.getvalue()}"
    assert report.ok, why
    assert [step for step, _ in demo.STEPS] == list(dict.fromkeys(c.step for c in report.checks)), why
    m = {c.key: c.measured for c in report.checks}
    # First packets: that very packet was answered, with a measured RTT.
    for key in ("first-packet-cross-host", "first-packet-same-host", "group-allows", "replug"):
        assert m[key]["answered"] and m[key]["rtt_ms"] > 0, (key, m[key])
    assert m["tcp-cross-host"]["mbit_s"] > 0, m["tcp-cross-host"]
    # Tenants apart and policy: no reply, and the would-be receiver got nothing.
    assert m["tenants-apart"]["red_b_rx"] == 0
    for key in ("other-tenant-dropped", "no-group-denied", "disconnect-cuts"):
        assert m[key]["replies"] == 0 and m[key]["receiver_rx"] == 0, (key, m[key])
    hops = m["traceroute-hops"]["hops"]
    assert len(hops) == 3 and hops[0] == "10.1.0.1" and hops[-1] == "10.1.0.30", hops
    assert m["external-snat"]["seen"] == m["external-snat"]["h1"]
    assert m["portmap-serves"]["answer"], m["portmap-serves"]
    plugged = m["route-plugged"]
    assert plugged["flows_on_h1"] > 0, plugged
    assert any(set(r.split("<->")) == {"red-a", "red-b"} for r in plugged["routes"]), plugged
    idle = m["idle-out"]
    assert idle["flows_left"] == 0 and idle["routes_left"] == 0, idle
    assert idle["seconds"] >= demo.IDLE - 1, idle  # the routes lived until they had been idle
