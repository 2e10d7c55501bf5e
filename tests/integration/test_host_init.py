"""`daolinet host init` on a simulated machine: a netns with its own ovsdb-server and
ovs-vswitchd, an uplink veth whose peer (the gateway, 198.18.0.1) sits in a "fabric"
netns, and the machine's address and default route on the uplink, as on a real server."""

from __future__ import annotations

import json
import secrets
import subprocess
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from daolinet.cli.main import run
from daolinet.lab.ovs import PrivateOvs
from daolinet.system import links, procs
from daolinet.system.hostinit import FAIL_AT_ENV
from daolinet.system.ovsdb import Ovsdb
from daolinet.testing.fixtures import need_root

pytestmark = pytest.mark.integration

GATEWAY = "198.18.0.1"
ADDRESS = "198.18.0.2/24"
BRIDGE = "daolinet"
UPLINK = "up0"


@dataclass
class Machine:
    netns: str
    fabric: str
    ovs: PrivateOvs
    root: Path

    def args(self, *extra: str) -> list[str]:
        return ["host", "init", "--netns", self.netns, "--ovsdb", self.ovs.db_endpoint,
                "--datapath", "netdev", "--sysctl-file", str(self.root / "etc/sysctl.d/60-daolinet.conf"),
                "--config-out", str(self.root / "etc/daolinet/agent.toml"),
                "--state", str(self.root / "var/lib/daolinet/host-init.json"), *extra]

    def pings(self, ip: str = GATEWAY) -> bool:
        argv = procs.in_netns(self.netns, ["ping", "-c", "1", "-W", "2", "-n", ip])
        return subprocess.run(argv, capture_output=True, check=False).returncode == 0

    def ip(self, *argv: str) -> str:
        return procs.run(procs.in_netns(self.netns, ["ip", *argv]))

    def snapshot(self) -> dict[str, object]:
        """Everything host init may touch, for 'left exactly as it was'."""
        with Ovsdb(self.ovs.db_endpoint) as db:
            bridges = {b: sorted(db.list_ports(b)) for b in db.api.list_br().execute(check_error=True)}
        files = {str(p.relative_to(self.root)): p.read_text() for p in self.root.rglob("*") if p.is_file()}
        return {"addrs": self.ip("-4", "-o", "addr", "show"), "routes": self.ip("-4", "route", "show"),
                "bridges": bridges, "files": files,
                "arp_ignore": links.read_sysctl(self.netns, "net.ipv4.conf.all.arp_ignore")}


@pytest.fixture
def machine(tmp_path: Path) -> Iterator[Machine]:
    need_root()
    tag = secrets.token_hex(3)
    netns, fabric = f"hi-m-{tag}", f"hi-f-{tag}"
    pids: dict[str, int] = {}
    try:
        links.create_netns(netns)
        links.create_netns(fabric)
        links.add_veth(netns, UPLINK, fabric, "fab0")
        links.link_up(fabric, "fab0", address=f"{GATEWAY}/24")
        links.tx_offload_off(fabric, "fab0")
        links.link_up(netns, UPLINK, address=ADDRESS)
        links.add_route(netns, "0.0.0.0/0", GATEWAY)
        ovs = PrivateOvs(rundir=str(tmp_path / "ovs"), netns=netns)
        pids = ovs.start()
        root = tmp_path / "root"
        root.mkdir()
        yield Machine(netns, fabric, ovs, root)
    finally:
        procs.stop(pids.values())
        links.remove_netns(netns)
        links.remove_netns(fabric)


def init(m: Machine, *extra: str) -> int:
    return run(m.args("--uplink", UPLINK, *extra))


def test_init_moves_the_uplink_onto_the_bridge_and_the_machine_still_reaches_its_gateway(
        machine: Machine, capsys: pytest.CaptureFixture[str]) -> None:
    assert machine.pings()
    assert init(machine, "--pip-pool", "198.18.0.128/25", "--controller", "ssl:198.18.0.9:6653",
                "--api", "https://198.18.0.9:8650", "--name", "m1") == 0
    assert machine.pings(), "the machine lost its gateway"
    assert "198.18.0.2/24" in machine.ip("-4", "-o", "addr", "show", "dev", BRIDGE)
    assert "inet " not in machine.ip("-4", "-o", "addr", "show", "dev", UPLINK)
    assert f"default via {GATEWAY} dev {BRIDGE}" in machine.ip("-4", "route", "show")
    with Ovsdb(machine.ovs.db_endpoint) as db:
        assert UPLINK in db.list_ports(BRIDGE)
    assert links.read_sysctl(machine.netns, "net.ipv4.conf.all.arp_ignore") == "1"
    assert "net.ipv4.conf.all.arp_ignore = 1" in (machine.root / "etc/sysctl.d/60-daolinet.conf").read_text()
    cfg = tomllib.loads((machine.root / "etc/daolinet/agent.toml").read_text())
    assert cfg == {"uplink": UPLINK, "bridge": BRIDGE, "datapath": "netdev", "ovsdb": machine.ovs.db_endpoint,
                   "pip_pool": "198.18.0.128/25", "controller": ["ssl:198.18.0.9:6653"],
                   "api": ["https://198.18.0.9:8650"], "name": "m1"}
    record = json.loads((machine.root / "var/lib/daolinet/host-init.json").read_text())
    assert record["addresses"] == ["198.18.0.2/24"] and record["routes"][0]["gateway"] == GATEWAY
    capsys.readouterr()

    before = machine.snapshot()
    assert init(machine, "--pip-pool", "198.18.0.128/25", "--controller", "ssl:198.18.0.9:6653",
                "--api", "https://198.18.0.9:8650", "--name", "m1") == 0
    assert "nothing to do" in capsys.readouterr().out
    assert machine.snapshot() == before

    assert init(machine, "--check", "--json", "--pip-pool", "198.18.0.128/25", "--controller",
                "ssl:198.18.0.9:6653", "--api", "https://198.18.0.9:8650", "--name", "m1") == 0
    report = json.loads(capsys.readouterr().out)
    assert {r["status"] for r in report} == {"done"}, report

    assert run(machine.args("--undo")) == 0
    assert machine.pings(), "after --undo the machine lost its gateway"
    assert "198.18.0.2/24" in machine.ip("-4", "-o", "addr", "show", "dev", UPLINK)
    assert f"default via {GATEWAY} dev {UPLINK}" in machine.ip("-4", "route", "show")
    assert not links.has_link(machine.netns, BRIDGE)
    assert not (machine.root / "etc/sysctl.d/60-daolinet.conf").exists()
    assert links.read_sysctl(machine.netns, "net.ipv4.conf.all.arp_ignore") == "0"
    assert run(machine.args("--undo")) == 0  # idempotent
    assert "nothing to do" in capsys.readouterr().out


def test_check_before_init_reports_missing_parts_and_changes_nothing(
        machine: Machine, capsys: pytest.CaptureFixture[str]) -> None:
    before = machine.snapshot()
    assert init(machine, "--check", "--json") == 1
    report = {r["step"]: r["status"] for r in json.loads(capsys.readouterr().out)}
    assert report["bridge"] == "missing" and report["addresses"] == "missing"
    assert report["sysctls"] == "missing" and report["agent config"] == "missing"
    assert init(machine, "--check") == 1
    table = capsys.readouterr().out
    assert "bootstrap flows" in table and "missing" in table
    assert machine.snapshot() == before


@pytest.mark.parametrize("step", [2, 5, 7, 11])  # add_port, add_addr, del_addr, config
def test_a_failure_midway_leaves_the_machine_as_it_was(
        machine: Machine, step: int, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    before = machine.snapshot()
    monkeypatch.setenv(FAIL_AT_ENV, str(step))
    assert init(machine) == 1
    err = capsys.readouterr().err
    assert "injected failure" in err and "undid" in err, err
    assert machine.snapshot() == before
    assert not links.has_link(machine.netns, BRIDGE)
    assert machine.pings()


def test_an_unreachable_probe_rolls_the_move_back(machine: Machine,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    before = machine.snapshot()
    assert init(machine, "--probe", "198.18.0.77") == 1
    assert "cannot reach 198.18.0.77" in capsys.readouterr().err
    assert machine.snapshot() == before
    assert machine.pings()


def _bad(machine: Machine, capsys: pytest.CaptureFixture[str], uplink: str) -> str:
    before = machine.snapshot()
    assert run(machine.args("--uplink", uplink)) == 1
    err = capsys.readouterr().err.strip()
    assert machine.snapshot() == before
    assert len(err.splitlines()) == 1, err
    return err


def test_bad_uplinks_are_refused_in_one_line_and_change_nothing(
        machine: Machine, capsys: pytest.CaptureFixture[str]) -> None:
    assert "no interface nosuch0" in _bad(machine, capsys, "nosuch0")
    assert "is the bridge itself" in _bad(machine, capsys, BRIDGE)
    links.add_veth(machine.netns, "bare0", machine.fabric, "bare1")
    assert "bare0 has no IPv4 address" in _bad(machine, capsys, "bare0")
    links.add_veth(machine.netns, "lb0", machine.fabric, "lb1")
    links.link_up(machine.netns, "lb0", address="198.18.5.2/24")
    links.add_bridge(machine.netns, "br-linux")
    links.set_master(machine.netns, "lb0", "br-linux")
    assert "lb0 is already a port of Linux bridge br-linux" in _bad(machine, capsys, "lb0")
    links.add_veth(machine.netns, "ov0", machine.fabric, "ov1")
    links.link_up(machine.netns, "ov0", address="198.18.6.2/24")
    with Ovsdb(machine.ovs.db_endpoint) as db:
        db.api.add_br("other", datapath_type="netdev").execute(check_error=True)
        db.add_port("other", "ov0")
    assert "ov0 is already a port of OVS bridge other" in _bad(machine, capsys, "ov0")


def test_a_different_agent_config_is_kept_without_force(
        machine: Machine, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = machine.root / "etc/daolinet/agent.toml"
    cfg.parent.mkdir(parents=True)
    cfg.write_text('uplink = "eth9"\n')
    before = machine.snapshot()
    assert init(machine) == 1
    assert "exists and differs: --force" in capsys.readouterr().err
    assert machine.snapshot() == before
    assert init(machine, "--force") == 0
    assert tomllib.loads(cfg.read_text())["uplink"] == UPLINK
    assert machine.pings()

