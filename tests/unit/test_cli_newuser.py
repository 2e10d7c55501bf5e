"""The CLI as a new user finds it (issue 16): `--version`, shell completion, one way of
finding the lab, a container found across tenants by an admin, and "not found" for a
container that does not exist.  Against the real controller API (test_cli_commands'
server); the lab look-up with fake labs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from test_cli_commands import Cli, cli, empty_config, no_labs, server

import daolinet
from daolinet.cli import api as cli_api
from daolinet.cli.api import pick_lab
from daolinet.cli.container import tenant_of
from daolinet.errors import NotFound
from daolinet.lab import cluster

__all__ = ["cli", "empty_config", "no_labs", "server"]  # fixtures, used by name


# -- version and completion ------------------------------------------------------------------------

def test_version(cli: Cli) -> None:
    assert cli("--version").ok().strip() == f"daolinet {daolinet.__version__}"


def test_shell_completion_is_offered_and_works() -> None:
    env = {**os.environ, "PYTHONPATH": str(Path(daolinet.__file__).parents[1])}
    run = [sys.executable, "-m", "daolinet.cli.main"]
    helped = subprocess.run([*run, "--help"], capture_output=True, text=True, env=env, timeout=60)
    assert "--install-completion" in helped.stdout and "--show-completion" in helped.stdout
    script = subprocess.run([*run, "--show-completion", "bash"], capture_output=True, text=True,
                            env={**env, "SHELL": "/bin/bash"}, timeout=60)
    assert script.returncode == 0 and "_DAOLINET_COMPLETE" in script.stdout
    words = subprocess.run(run, capture_output=True, text=True, timeout=60,
                           env={**env, "_DAOLINET_COMPLETE": "complete_bash", "COMP_WORDS": "daolinet net",
                                "COMP_CWORD": "1"})
    assert words.stdout.split() == ["network"]


# -- one way of finding the lab --------------------------------------------------------------------

def test_pick_lab_in_the_api_discovery_order() -> None:
    assert pick_lab("mine", "env", ["a", "b"]) == "mine"
    assert pick_lab(None, "env", ["a", "b"]) == "env"
    assert pick_lab(None, None, ["only"]) == "only"
    with pytest.raises(NotFound, match=r"several labs run \(a, b\): give --name or set DAOLINET_LAB"):
        pick_lab(None, None, ["a", "b"])
    with pytest.raises(NotFound, match="no lab runs: start one with: daolinet lab up"):
        pick_lab(None, None, [])


class FakeLab:
    def __init__(self, name: str) -> None:
        self.name = name
        self.added: list[tuple[str, dict[str, Any]]] = []
        self.has_controller = True

    def add_container(self, container: str, **kw: Any) -> Any:
        self.added.append((container, kw))
        return type("C", (), {"name": container, "host": kw["host"], "address": "10.0.0.2/24",
                              "pip": "198.18.1.2", "mac": "02:00:00:00:00:02", "network": kw["network"],
                              "tenant": kw["tenant"], "address6": None, "pip6": None})()


@pytest.fixture
def labs(monkeypatch: pytest.MonkeyPatch) -> dict[str, FakeLab]:
    """Labs the CLI sees (none unless a test adds some); `cluster.Lab.open` opens them."""
    running: dict[str, FakeLab] = {}
    monkeypatch.setattr(cluster, "list_labs", lambda: sorted(running))

    def open_lab(name: str) -> FakeLab:
        if name not in running:
            raise NotFound(f"no lab named {name}")
        return running[name]

    monkeypatch.setattr(cluster.Lab, "open", staticmethod(open_lab))
    return running


def test_lab_container_add_finds_the_only_running_lab(cli: Cli, labs: dict[str, FakeLab]) -> None:
    labs["blue"] = FakeLab("blue")
    out = cli("lab", "container", "add", "c1", "--host", "h1", "--network", "web").ok()
    assert "container c1 on h1" in out and [c for c, _ in labs["blue"].added] == ["c1"]
    assert cli_api.lab_name(None) == "blue"


def test_lab_commands_name_the_labs_when_several_run(cli: Cli, labs: dict[str, FakeLab]) -> None:
    labs["blue"], labs["green"] = FakeLab("blue"), FakeLab("green")
    cli("lab", "container", "add", "c1", "--host", "h1").error(
        "several labs run (blue, green): give --name or set DAOLINET_LAB")
    cli("lab", "container", "rm", "c1").error("several labs run (blue, green)")
    cli("lab", "container", "add", "c2", "--host", "h1", "--network", "web", "--name", "green").ok()
    cli("lab", "container", "add", "c3", "--host", "h1", "--network", "web", DAOLINET_LAB="blue").ok()
    assert [c for c, _ in labs["green"].added] == ["c2"] and [c for c, _ in labs["blue"].added] == ["c3"]


def test_lab_commands_without_a_lab_say_how_to_start_one(cli: Cli, labs: dict[str, FakeLab]) -> None:
    cli("lab", "exec", "h1", "--", "true").error("no lab runs: start one with: daolinet lab up")
    assert "no lab to remove" in cli("lab", "down").ok()  # idempotent


def test_lab_down_finds_the_only_lab(cli: Cli, labs: dict[str, FakeLab],
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    downed: list[str] = []
    monkeypatch.setattr(cluster, "down", lambda name: downed.append(name) or True)
    labs["blue"] = FakeLab("blue")
    assert "lab blue removed" in cli("lab", "down").ok() and downed == ["blue"]
    labs["green"] = FakeLab("green")
    cli("lab", "down").error("several labs run (blue, green)")


# -- a container across tenants --------------------------------------------------------------------

def test_tenant_of_a_name() -> None:
    seen = [{"name": "web", "tenant": "red"}, {"name": "db", "tenant": "blue"},
            {"name": "db", "tenant": "red"}]
    assert tenant_of("web", seen) == "red"
    assert tenant_of("ghost", seen) == "default"  # the API's own "not found"
    assert tenant_of("web", [*seen, {"name": "web", "tenant": "default"}]) == "default"
    with pytest.raises(Exception, match="container db is in tenants blue, red: give --tenant"):
        tenant_of("db", seen)


def test_admin_finds_a_container_of_another_tenant(cli: Cli, server: Any) -> None:
    for tenant in ("nu1", "nu2"):
        cli("tenant", "create", tenant).ok()
        cli("network", "create", "net", "--subnet", "10.77.0.0/24", "-t", tenant).ok()
    cli("container", "create", "solo", "--network", "net", "--host", "h1", "-t", "nu1").ok()
    for tenant in ("nu1", "nu2"):
        cli("container", "create", "twin", "--network", "net", "--host", "h1", "-t", tenant).ok()
    try:
        got = cli.json("container", "shownet", "solo")  # the admin token, no --tenant
        assert got["tenant"] == "nu1" and got["name"] == "solo"
        assert "container solo (tenant nu1)" in cli("container", "shownet", "solo").ok()
        cli("container", "shownet", "twin").error("container twin is in tenants nu1, nu2: give --tenant")
        assert cli.json("container", "shownet", "twin", "-t", "nu2")["tenant"] == "nu2"
        cli("container", "shownet", "ghost").error("not found")

        # a tenant token sees its tenant only: nu2's token finds its twin, never nu1's solo
        secret = cli.json("token", "create", "nu2-ops", "-t", "nu2")["token"]
        assert cli.json("container", "shownet", "twin", DAOLINET_TOKEN=secret)["tenant"] == "nu2"
        line = cli("container", "shownet", "solo", DAOLINET_TOKEN=secret).error("not found")
        assert "nu1" not in line
    finally:
        for tenant, name in (("nu1", "solo"), ("nu1", "twin"), ("nu2", "twin")):
            cli("container", "rm", name, "-t", tenant).ok()
        cli("token", "rm", "nu2-ops")
        for tenant in ("nu1", "nu2"):
            cli("network", "rm", "net", "-t", tenant).ok()
            cli("tenant", "rm", tenant)


# -- route ls --container ------------------------------------------------------------------------

def test_route_ls_of_an_unknown_container_is_not_found(cli: Cli) -> None:
    cli("route", "ls", "--container", "ghost").error("container ghost not found")
    cli("route", "ls", "--container", "ghost", "-t", "default").error(
        "container ghost not found in tenant default")
    cli("network", "create", "rl", "--subnet", "10.78.0.0/24").ok()
    cli("container", "create", "quiet", "--network", "rl", "--host", "h1").ok()
    try:  # a container that exists and has no route: an empty list, not an error
        assert "no live routes" in cli("route", "ls", "--container", "quiet").ok()
        assert cli.json("route", "ls", "--container", "quiet") == []
    finally:
        cli("container", "rm", "quiet").ok()
        cli("network", "rm", "rl").ok()


