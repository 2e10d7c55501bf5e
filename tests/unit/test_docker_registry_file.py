"""The agent's Docker network bindings outlive it: after a reboot dockerd restores its
containers (asking for addresses) before its API can answer the agent's sync."""

from __future__ import annotations

from pathlib import Path

from daolinet.agent.docker_networks import Binding, Registry

NET = Binding(nid="n" * 64, tenant="default", name="net1", subnet="10.5.0.0/24")


def test_a_binding_is_known_to_the_next_run(tmp_path: Path) -> None:
    path = str(tmp_path / "state" / "docker-networks.json")
    Registry(path).bind(NET)
    again = Registry(path)
    assert again.nid_for_subnet("10.5.0.0/24") == NET.nid and again.bound(NET.nid) == NET


def test_a_forgotten_binding_is_forgotten_by_the_next_run_too(tmp_path: Path) -> None:
    path = str(tmp_path / "docker-networks.json")
    first = Registry(path)
    first.bind(NET)
    first.forget(NET.nid)
    assert Registry(path).bindings() == []


def test_an_unreadable_file_starts_empty(tmp_path: Path) -> None:
    path = tmp_path / "docker-networks.json"
    path.write_text("not json")
    assert Registry(str(path)).bindings() == []
