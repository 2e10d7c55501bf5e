"""The lab on real ovs-vswitchd and real namespaces (root)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable

import pytest
from pyroute2 import IPRoute

from daolinet.errors import SystemFailure
from daolinet.lab import cluster, plan, state
from daolinet.system import links, procs
from daolinet.testing.fixtures import lab_leftovers, need_root, new_lab_name

pytestmark = pytest.mark.integration

LabFactory = Callable[..., cluster.Lab]


def root_links() -> set[str]:
    with IPRoute() as ipr:
        return {link.get("IFLA_IFNAME") for link in ipr.get_links()}


def ping(lab: cluster.Lab, target: str, ip: str) -> subprocess.CompletedProcess[str]:
    return lab.exec(target, ["ping", "-c", "1", "-W", "2", ip])


def wait_until(cond: Callable[[], object], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met before deadline")
        time.sleep(0.02)


def test_three_hosts_bridges_answer_and_underlay_pings_then_nothing_remains() -> None:
    need_root()
    before = root_links()
    name = new_lab_name()
    lab = cluster.Lab.up(name, hosts=3)
    try:
        for h in lab.hosts:
            out = h.ofctl("show")
            assert f"dpid:{h.plan.index:016x}" in out
            assert "(uplink)" in out and "LOCAL(daolinet)" in out
            assert "secure" in procs.run(["ovs-vsctl", f"--db={h.ovs.db_endpoint}",
                                          "get-fail-mode", plan.BRIDGE])
        for a in lab.hosts:
            for b in lab.hosts:
                if a is not b:
                    assert ping(lab, a.name, b.underlay_ip).returncode == 0
        pids = [p for p in procs.pids_mentioning(plan.lab_dir(name) + "/")]
        assert len(pids) == 3 * 3 + 1  # ovsdb-server, ovs-vswitchd, agent per host; a controller
        assert root_links() == before, "the lab touched the root namespace"
    finally:
        assert cluster.down(name)
    assert lab_leftovers(name) == []
    assert not any(procs.is_alive(p) for p in pids)
    assert root_links() == before
    assert not cluster.down(name), "second down must find nothing and succeed"


def test_two_racks_route_through_the_router(lab_factory: LabFactory) -> None:
    lab = lab_factory(hosts=2, racks=2, controller=False)
    h1, h2 = lab.hosts
    assert h1.plan.rack != h2.plan.rack
    done = ping(lab, "h1", h2.underlay_ip)
    assert done.returncode == 0 and "ttl=63" in done.stdout  # one routed hop
    # The router knows the rack subnets only.
    rtr = subprocess.run(procs.in_netns(plan.router_netns(lab.name), ["ip", "-4", "route"]),
                         capture_output=True, text=True, check=True).stdout.strip().splitlines()
    rack_routes = [line for line in rtr if "/18" in line]
    assert len(rack_routes) == 2 and len(rtr) == 3, rtr  # two racks and the outside, nothing else


def test_down_cleans_up_after_killed_daemons_and_a_torn_journal() -> None:
    need_root()
    name = new_lab_name()
    lab = cluster.Lab.up(name, hosts=3)
    assert lab.api().call("POST", "/networks", json={"name": "n", "subnet": "10.9.0.0/24"})
    lab.add_container("c1", host="h2", network="n")
    sleeper = lab.popen("c1", ["sleep", "600"])
    # Simulated crash: daemons die hard, the journal is torn.
    for d in ("ovs-vswitchd", "ovsdb-server"):
        pid = procs.read_pidfile(lab.host("h2").ovs.pidfile(d))
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
    lab.stop_controller(signal.SIGKILL)
    with open(state.state_path(name), "w") as f:
        f.write('{"name": "')
    assert cluster.down(name)
    sleeper.wait(timeout=10)
    assert lab_leftovers(name) == []


def test_down_cleans_up_after_up_itself_is_killed_midway() -> None:
    need_root()
    name = new_lab_name()
    up = subprocess.Popen([sys.executable, "-m", "daolinet.cli.main", "lab", "up",
                           "--hosts", "6", "--name", name],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        # Kill it as soon as some host exists but before it could finish.
        def some_host_started() -> bool:
            st = state.load(name)
            return st is not None and any(k.endswith("ovsdb-server") for k in st.pids)
        wait_until(some_host_started, timeout=30)
        up.send_signal(signal.SIGKILL)
        up.wait(timeout=10)
        st = state.load(name)
        assert st is not None and not st.complete, "up finished before it could be killed"
    finally:
        cluster.down(name)
    assert lab_leftovers(name) == []


def test_a_failing_up_removes_what_it_made(monkeypatch: pytest.MonkeyPatch) -> None:
    need_root()
    name = new_lab_name()
    real = cluster.Lab._build_host

    def broken(self: cluster.Lab, host: cluster.LabHost) -> None:
        real(self, host)
        if host.name == "h2":
            raise SystemFailure("injected failure")

    monkeypatch.setattr(cluster.Lab, "_build_host", broken)
    with pytest.raises(SystemFailure, match="injected"):
        cluster.Lab.up(name, hosts=2)
    assert lab_leftovers(name) == []


def test_container_gets_a_namespace_a_port_and_no_tx_offload(lab_factory: LabFactory) -> None:
    lab = lab_factory(hosts=2, controller=False)
    c = lab.add_container("web", host="h2", address="10.1.0.5/24")
    assert links.link_names(c.netns) == ["lo", "eth0"]
    features = lab.exec("web", ["ethtool", "-k", "eth0"]).stdout
    assert "tx-checksumming: off" in features
    assert "inet 10.1.0.5/24" in lab.exec("web", ["ip", "-4", "addr", "show", "eth0"]).stdout
    with lab.host("h2").ovsdb() as db:
        assert c.port in db.list_ports(plan.BRIDGE)
        assert db.ofport(c.port) == c.ofport
    lab.remove_container("web")
    assert not links.exists(c.netns)
    with lab.host("h2").ovsdb() as db:
        assert c.port not in db.list_ports(plan.BRIDGE)


def daolinet(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "daolinet.cli.main", *args],
                          capture_output=True, text=True, timeout=120)


def one_line_error(done: subprocess.CompletedProcess[str], message: str) -> None:
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in done.stderr, done.stderr


def test_cli_refuses_bad_input_without_half_creating(lab_factory: LabFactory) -> None:
    lab = lab_factory(hosts=2, controller=False)
    n = lab.name
    assert daolinet("lab", "container", "add", "web", "--host", "h1", "--name", n).returncode == 0
    one_line_error(daolinet("lab", "container", "add", "web", "--host", "h2", "--name", n),
                   "container web already exists")
    one_line_error(daolinet("lab", "container", "add", "db", "--host", "h7", "--name", n),
                   "has no host h7")
    one_line_error(daolinet("lab", "container", "add", "db", "--host", "h1", "--ip", "10.1/99",
                            "--name", n), "invalid address")
    one_line_error(daolinet("lab", "up", "--hosts", "2", "--name", n), f"lab {n} already exists")
    listing = json.loads(daolinet("lab", "ls", "--name", n, "--json").stdout)
    assert [c["name"] for c in listing[0]["containers"]] == ["web"]
    assert listing[0]["containers"][0]["host"] == "h1"
    assert links.list_netns(plan.netns_prefix(n)) == sorted(
        [f"dl-{n}-fab1", f"dl-{n}-h1", f"dl-{n}-h2", f"dl-{n}-c-web", f"dl-{n}-rtr", f"dl-{n}-out"])
    # The existing lab still works after the refused `up`.
    assert ping(lab, "h1", lab.host("h2").underlay_ip).returncode == 0


def test_cli_exec_passes_the_exit_status(lab_factory: LabFactory) -> None:
    lab = lab_factory(hosts=1, controller=False)
    lab.add_container("c1", host="h1")
    assert daolinet("lab", "exec", "c1", "--name", lab.name, "--", "sh", "-c", "exit 3").returncode == 3
    out = daolinet("lab", "exec", "c1", "--name", lab.name, "--", "ip", "-o", "link").stdout
    assert "eth0" in out
