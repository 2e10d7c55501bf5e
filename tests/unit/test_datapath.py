"""The datapath choice (kernel or userspace) and what follows from it: the bridge the
agent asks OVSDB for, its MTU, and TX checksum offload on the veths it makes.  This
machine has no OVS kernel module: `system` is tested through the decision and a fake
OVSDB; the lab's integration tests run netdev for real."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from daolinet.agent import main as agent_main
from daolinet.agent.plumbing import PlugSpec, Plumber
from daolinet.errors import InvalidInput, SystemFailure
from daolinet.security.settings import Security
from daolinet.system import datapath, links
from daolinet.system.datapath import Decision, choose
from daolinet.system.ovsdb import BridgeConfig

# -- the decision -------------------------------------------------------------------


@pytest.mark.parametrize(("choice", "loaded", "loadable", "expected"), [
    ("auto", True, True, Decision("system")),
    ("auto", True, False, Decision("system")),
    ("auto", False, True, Decision("system", load_module=True)),
    ("system", True, False, Decision("system")),
    ("system", False, True, Decision("system", load_module=True)),
    ("netdev", True, True, Decision("netdev")),
    ("netdev", False, False, Decision("netdev")),
])
def test_choice_without_fallback(choice: str, loaded: bool, loadable: bool, expected: Decision) -> None:
    assert choose(choice, loaded, loadable) == expected


def test_auto_without_the_module_falls_back_to_netdev_saying_why() -> None:
    d = choose("auto", loaded=False, loadable=False)
    assert d.datapath == "netdev" and d.userspace and not d.load_module
    assert d.warning is not None and "openvswitch kernel module" in d.warning and "\n" not in d.warning


def test_system_without_the_module_is_refused_in_one_line() -> None:
    with pytest.raises(InvalidInput, match=r"--datapath system: the openvswitch kernel module") as e:
        choose("system", loaded=False, loadable=False)
    assert "\n" not in str(e.value)


def test_unknown_choice_is_refused() -> None:
    with pytest.raises(InvalidInput, match="use auto, system or netdev"):
        choose("kernel", loaded=True, loadable=True)


# -- the probes ----------------------------------------------------------------------


def test_module_loadable_reads_the_kernels_module_index(tmp_path: Path) -> None:
    assert not datapath.module_loadable(str(tmp_path))  # no index at all: not loadable
    (tmp_path / "modules.dep").write_text(
        "kernel/net/openvswitch/vport-vxlan.ko.xz: kernel/net/openvswitch/openvswitch.ko.xz\n")
    assert not datapath.module_loadable(str(tmp_path))  # only a dependency of another module
    (tmp_path / "modules.dep").write_text(
        "kernel/net/openvswitch/openvswitch.ko.zst: kernel/net/nsh/nsh.ko.zst\n")
    assert datapath.module_loadable(str(tmp_path))


def test_module_built_into_the_kernel_counts(tmp_path: Path) -> None:
    (tmp_path / "modules.builtin").write_text("kernel/net/openvswitch/openvswitch.ko\n")
    assert datapath.module_loadable(str(tmp_path))


def test_module_loaded_is_its_sysfs_directory(tmp_path: Path) -> None:
    assert not datapath.module_loaded(str(tmp_path / "openvswitch"))
    (tmp_path / "openvswitch").mkdir()
    assert datapath.module_loaded(str(tmp_path / "openvswitch"))


def _machine(monkeypatch: pytest.MonkeyPatch, loaded: bool, loadable: bool, modprobe_ok: bool) -> list[str]:
    loads: list[str] = []

    def load() -> None:
        loads.append("openvswitch")
        if not modprobe_ok:
            raise SystemFailure("modprobe openvswitch failed: FATAL: Module openvswitch not found")

    monkeypatch.setattr(datapath, "module_loaded", lambda: loaded)
    monkeypatch.setattr(datapath, "module_loadable", lambda: loadable)
    monkeypatch.setattr(datapath, "load_module", load)
    return loads


def test_resolve_loads_the_module_when_it_is_only_loadable(monkeypatch: pytest.MonkeyPatch) -> None:
    loads = _machine(monkeypatch, loaded=False, loadable=True, modprobe_ok=True)
    assert datapath.resolve("auto") == Decision("system", load_module=True)
    assert loads == ["openvswitch"]


def test_resolve_never_loads_for_netdev_or_a_loaded_module(monkeypatch: pytest.MonkeyPatch) -> None:
    loads = _machine(monkeypatch, loaded=True, loadable=True, modprobe_ok=True)
    assert datapath.resolve("auto").datapath == "system"
    assert datapath.resolve("netdev").datapath == "netdev"
    assert loads == []


def test_auto_falls_back_once_when_modprobe_fails(monkeypatch: pytest.MonkeyPatch,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    _machine(monkeypatch, loaded=False, loadable=True, modprobe_ok=False)
    with caplog.at_level(logging.WARNING):
        d = datapath.resolve("auto")
    assert d.datapath == "netdev"
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "modprobe openvswitch failed" in warnings[0]


def test_system_refuses_when_modprobe_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    _machine(monkeypatch, loaded=False, loadable=True, modprobe_ok=False)
    with pytest.raises(SystemFailure, match="--datapath system: modprobe openvswitch failed"):
        datapath.resolve("system")


# -- what the agent asks OVSDB for -----------------------------------------------------


class FakeOvsdb:
    def __init__(self) -> None:
        self.bridges: list[BridgeConfig] = []
        self.ports: list[tuple[str, str, dict[str, str] | None]] = []

    def ensure_bridge(self, cfg: BridgeConfig) -> None:
        self.bridges.append(cfg)

    def add_port(self, bridge: str, port: str, external_ids: dict[str, str] | None = None) -> int:
        self.ports.append((bridge, port, external_ids))
        return len(self.ports)

    def del_port(self, port: str, bridge: str | None = None) -> None:
        pass

    def datapath_id(self, bridge: str) -> int:
        return 7


def _cfg(**kwargs: Any) -> agent_main.AgentConfig:
    return agent_main.AgentConfig(name="h1", controllers=("tcp:198.18.0.200:6653",),
                                  api=("http://198.18.0.200:8650",), bridge="daolinet", uplink="eth1",
                                  pip_pool="198.18.1.0/24", token_file="/dev/null",
                                  security=Security(tls=None, insecure=True), **kwargs)


@pytest.mark.parametrize("kind", ["system", "netdev"])
def test_agent_builds_the_chosen_datapath_at_the_uplinks_mtu(monkeypatch: pytest.MonkeyPatch,
                                                              kind: str) -> None:
    mtus = {"eth1": 9000}
    monkeypatch.setattr(links, "mtu_of", lambda ns, ifname: mtus[ifname])
    monkeypatch.setattr(links, "address_of", lambda ns, ifname: ("198.18.0.1", 18, "02:00:00:00:00:01"))
    monkeypatch.setattr(links, "address6_of", lambda ns, ifname: None)
    db = FakeOvsdb()
    host, underlay = agent_main.prepare_bridge(_cfg(), db, Decision(kind))  # type: ignore[arg-type]
    assert [(b.name, b.datapath_type, b.mtu) for b in db.bridges] == [("daolinet", kind, 9000)]
    assert db.ports == [("daolinet", "eth1", None)]
    assert underlay.mtu == 9000 and underlay.datapath.datapath == kind and host.uplink_ofport == 1


def test_agent_refuses_an_unknown_datapath_before_touching_anything() -> None:
    with pytest.raises(InvalidInput, match="invalid --datapath 'kernel'"):
        agent_main.check(_cfg(datapath="kernel"))


# -- the veths the agent makes ----------------------------------------------------------


def _record_links(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, tuple[Any, ...], dict[str, Any]]]:
    calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []
    for fn in ("add_veth_pair", "setup_interface", "del_link"):
        monkeypatch.setattr(links, fn, lambda *a, _fn=fn, **k: calls.append((_fn, a, k)))
    monkeypatch.setattr(links, "has_link", lambda ns, ifname: False)
    return calls


@pytest.mark.parametrize(("userspace", "offload_off"), [(True, 1), (False, 0)])
def test_plug_turns_checksum_offload_off_only_on_netdev(monkeypatch: pytest.MonkeyPatch,
                                                         userspace: bool, offload_off: int) -> None:
    calls = _record_links(monkeypatch)
    plumber = Plumber(FakeOvsdb(), "daolinet", "hostns", userspace=userspace)  # type: ignore[arg-type]
    plumber.plug(PlugSpec(eid=1, netns="c1", mac="02:00:00:00:00:02", ip="10.1.0.2", prefixlen=24,
                          gateway="10.1.0.1", mtu=9000))
    plumber.plug_docker(2, "02:00:00:00:00:03", 9000, "/var/run/docker/netns/x", "d0c")
    assert [k["mtu"] for fn, _, k in calls if fn == "add_veth_pair"] == [9000, 9000]
    setups = [a[1] for fn, a, _ in calls if fn == "setup_interface"]
    assert [s.mtu for s in setups] == [9000, 9000]
    assert len([s for s in setups if s.tx_checksum_off]) == 2 * offload_off
