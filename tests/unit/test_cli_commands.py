"""The operator CLI against the real controller API, served by uvicorn on
127.0.0.1 (an ephemeral port) from a thread with its own event loop, over an
in-memory store.  No root: nothing touches OVS or namespaces.

Every command runs through `daolinet.cli.main.run`, the function behind the
console script, so errors are checked as a user sees them: one line on
stderr starting with "error:", a non-zero status, nothing on stdout."""

from __future__ import annotations

import asyncio
import functools
import json
import os
import queue
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest
import typer
import uvicorn
from typer.testing import CliRunner

from daolinet.cli import main as cli_main
from daolinet.controller.api import create_app
from daolinet.controller.api.auth import hash_token
from daolinet.controller.context import Config
from daolinet.controller.controller import Controller
from daolinet.decide.packet import NO_MATCH, PacketMeta
from daolinet.decide.route import decide
from daolinet.lab import cluster
from daolinet.model import ControllerRecord
from daolinet.pipeline import Table, route_cookie
from daolinet.store import open_store

ADMIN = "dl_cli-test-admin-token"
NOUNS = ("tenant", "network", "container", "host", "group", "policy", "rule", "route", "trace", "token")


class ApiServer:
    """The controller's API in a background thread (its own event loop)."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.server: uvicorn.Server | None = None
        self.ctrl: Controller | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.failed: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="api-server", daemon=True)

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as e:  # noqa: BLE001 -- reported by start()
            self.failed = e

    async def _serve(self) -> None:
        store = open_store("sqlite://:memory:")
        await store.create_token("admin", None, hash_token(ADMIN), time.time())
        ctrl = Controller(store, Config())
        await ctrl.start()
        self.ctrl, self.loop = ctrl, asyncio.get_running_loop()
        self.server = uvicorn.Server(uvicorn.Config(create_app(ctrl), log_level="warning", lifespan="off"))
        try:
            await self.server.serve(sockets=[self.sock])
        finally:
            await asyncio.gather(*list(ctrl._tasks), return_exceptions=True)
            await store.close()

    def start(self, timeout: float = 15.0) -> None:
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not (self.server is not None and self.server.started):
            if self.failed is not None or not self.thread.is_alive():
                raise RuntimeError(f"API server did not start: {self.failed!r}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"API server not started within {timeout}s")
            time.sleep(0.01)

    def stop(self) -> None:
        if self.server is not None:
            self.server.should_exit = True
        self.thread.join(timeout=15)
        assert not self.thread.is_alive(), "API server did not stop"
        self.sock.close()

    def in_loop(self, fn: Callable[[Controller], Any]) -> Any:
        """Run fn(controller) on the server's loop (the controller is not thread-safe)."""
        assert self.loop is not None and self.ctrl is not None
        ctrl = self.ctrl

        async def call() -> Any:
            return fn(ctrl)

        return asyncio.run_coroutine_threadsafe(call(), self.loop).result(timeout=10)

    def api(self, method: str, path: str, **kwargs: Any) -> Any:
        resp = httpx.request(method, self.url + path, headers={"Authorization": f"Bearer {ADMIN}"},
                             timeout=10, **kwargs)
        assert resp.status_code < 300, resp.text
        return resp.json()


@pytest.fixture(scope="module")
def server() -> Iterator[ApiServer]:
    srv = ApiServer()
    srv.start()
    for i in (1, 2):  # hosts register themselves (their agents do): here, through the API
        srv.api("POST", "/hosts", json={"name": f"h{i}", "dpid": i, "underlay_ip": f"198.18.0.{i}",
                                        "underlay_mac": f"02:18:00:00:00:{i:02x}",
                                        "pip_pool": f"198.18.{i}.0/24", "underlay_prefix": 16})
    srv.api("POST", "/tenants", json={"name": "default"})  # else its first network makes it
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def empty_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cfg") / "config.json"
    path.write_text("{}")
    return path


@pytest.fixture(autouse=True)
def no_labs(monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever runs on this machine, the CLI sees no lab."""
    monkeypatch.setattr(cluster, "list_labs", lambda: [])


@dataclass
class Done:
    args: tuple[str, ...]
    code: int
    out: str
    err: str

    def json(self) -> Any:
        assert self.code == 0, (self.args, self.err)
        assert self.err == "", self.err
        return json.loads(self.out)  # the whole of stdout, nothing else

    def ok(self) -> str:
        assert self.code == 0 and self.err == "", (self.args, self.code, self.err)
        return self.out

    def error(self, *words: str) -> str:
        """A failure as the user must see it: one line on stderr, non-zero, stdout empty."""
        assert self.code != 0, (self.args, self.out)
        lines = self.err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), (self.args, self.err)
        assert "Traceback" not in self.err and self.out == "", (self.args, self.out)
        for word in words:
            assert word in lines[0], f"{word!r} not in {lines[0]!r}"
        return lines[0]


JSON_RUN: set[str] = set()  # command paths run with --json


class Cli:
    def __init__(self, url: str, config: Path) -> None:
        self.env: dict[str, str | None] = {
            "DAOLINET_API": url, "DAOLINET_TOKEN": ADMIN, "DAOLINET_CONFIG": str(config),
            "DAOLINET_LAB": None, "DAOLINET_TENANT": None, "DAOLINET_DEBUG": None, "COLUMNS": "250",
        }

    def __call__(self, *args: str, **env: str | None) -> Done:
        if "--json" in args:
            JSON_RUN.add(max((" ".join(p) for p in command_paths() if tuple(args[:len(p)]) == p), key=len))
        with CliRunner().isolation(env={**self.env, **env}) as (out, err, _):
            code = cli_main.run(list(args))
            sys.stdout.flush()
            sys.stderr.flush()
            return Done(args, code, out.getvalue().decode(), err.getvalue().decode())

    def json(self, *args: str, **env: str | None) -> Any:
        return self(*args, "--json", **env).json()


@pytest.fixture
def cli(server: ApiServer, empty_config: Path) -> Cli:
    return Cli(server.url, empty_config)


@functools.cache
def command_paths() -> list[tuple[str, ...]]:
    """Every command and sub-command of `daolinet`, as argv prefixes."""
    out: list[tuple[str, ...]] = [()]

    def walk(cmd: Any, path: tuple[str, ...]) -> None:
        for name, sub in getattr(cmd, "commands", {}).items():
            out.append((*path, name))
            walk(sub, (*path, name))

    walk(typer.main.get_command(cli_main.app), ())
    return out


def json_commands() -> set[str]:
    found = set()
    root = typer.main.get_command(cli_main.app)
    for path in command_paths():
        if not path or path[0] not in NOUNS:
            continue
        cmd: Any = root
        for name in path:
            cmd = cmd.commands[name]
        if any("--json" in p.opts for p in cmd.params):
            found.add(" ".join(path))
    return found


# -- help -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", command_paths(), ids=lambda p: " ".join(p) or "daolinet")
def test_every_command_has_help(path: tuple[str, ...], tmp_path: Path) -> None:
    done = Cli("http://127.0.0.1:9", tmp_path / "none.json")(*path, "--help")
    assert done.code == 0 and done.err == "", done.err
    assert "Usage:" in done.out and len(done.out.strip()) > 40
    cmd: Any = typer.main.get_command(cli_main.app)
    for name in path:
        cmd = cmd.commands[name]
    assert cmd.help and cmd.help.strip(), f"{' '.join(path)} has no help text"


def test_every_noun_is_registered_and_every_command_has_json() -> None:
    names = {p[0] for p in command_paths() if p}
    assert set(NOUNS) | {"lab", "controller", "agent"} <= names
    root: Any = typer.main.get_command(cli_main.app)
    leaves = {" ".join(p) for p in command_paths()
              if p and p[0] in NOUNS and not hasattr(_command(root, p), "commands")}
    assert len(leaves) > 30 and leaves == json_commands()


def _command(root: Any, path: tuple[str, ...]) -> Any:
    for name in path:
        root = root.commands[name]
    return root


# -- a realistic session ----------------------------------------------------------------------------


def test_operator_session(server: ApiServer, cli: Cli) -> None:
    # tenants
    assert cli.json("tenant", "create", "red") == {"name": "red"}
    assert "tenant blue created" in cli("tenant", "create", "blue").ok()
    # networks (default tenant created with its first network)
    web = cli.json("network", "create", "web", "--subnet", "10.1.0.0/24")
    assert web["gateway"] == "10.1.0.1" and web["tenant"] == "default"
    out = cli("network", "create", "db", "--subnet", "10.2.0.0/24", "--gateway", "10.2.0.254").ok()
    assert "network db (10.2.0.0/24, gateway 10.2.0.254) of tenant default" in out
    assert cli.json("network", "create", "web", "-t", "red", "--subnet", "10.1.0.0/24",
                    "--isolated")["isolated"] is True
    assert [g["name"] for g in cli.json("group", "ls")] == []
    assert {(n["tenant"], n["name"]) for n in cli.json("network", "ls")} == {
        ("default", "web"), ("default", "db"), ("red", "web")}
    assert [n["name"] for n in cli.json("network", "ls", "-t", "red")] == ["web"]
    table = cli("network", "ls").ok()
    for word in ("tenant", "subnet", "gateway", "isolated", "10.2.0.254"):
        assert word in table
    assert {t["name"] for t in cli.json("tenant", "ls")} == {"default", "red", "blue"}

    # containers: endpoints reserved through POST /endpoints, plugged by "the agent" (PATCH)
    web1 = cli.json("container", "create", "web1", "--network", "web", "--host", "h1")
    assert (web1["ip"], web1["host"], web1["tenant"]) == ("10.1.0.2", "h1", "default")
    out = cli("container", "create", "db1", "--network", "db", "--host", "h2", "--ip", "10.2.0.10",
              "-l", "role=db").ok()
    assert "container db1 on h2: 10.2.0.10 pip 198.18.2." in out
    cli("container", "create", "web2", "--network", "web", "--host", "h2",
        "--alias", "WWW", "--alias", "w2").ok()
    cli("container", "create", "r1", "--network", "web", "--host", "h1", "-t", "red").ok()
    for name, port in (("web1", 3), ("db1", 4)):
        e = cli.json("container", "show", name)
        server.api("PATCH", f"/endpoints/{e['id']}", json={"port": f"dl{e['id']}", "ofport": port})

    net = cli.json("container", "shownet", "db1")
    assert {k: net[k] for k in ("ip", "host", "gateway", "subnet")} == {
        "ip": "10.2.0.10", "host": "h2", "gateway": "10.2.0.254", "subnet": "10.2.0.0/24"}
    out = cli("container", "shownet", "db1").ok()
    for word in ("IP", "PIP", "MAC", "host", "gateway", "subnet", "10.2.0.10", net["pip"], net["mac"],
                 "10.2.0.254", "10.2.0.0/24", "h2"):
        assert word in out, word
    show = cli.json("container", "show", "db1")
    assert show["labels"] == {"role": "db"} and show["ofport"] == 4 and "aliases" not in show
    assert cli.json("container", "show", "web2")["aliases"] == ["www", "w2"]
    assert "www, w2" in cli("container", "show", "web2").ok()
    assert "aliases" not in cli("container", "show", "db1").ok()
    assert {e["name"] for e in cli.json("container", "ls", "--host", "h2")} == {"db1", "web2"}
    assert {e["name"] for e in cli.json("container", "ls", "--network", "web", "-t", "default")} == {
        "web1", "web2"}
    assert "not plugged" in cli("container", "ls").ok()
    assert cli.json("network", "show", "web")["containers"] == ["web1", "web2"]
    assert cli.json("tenant", "show", "red") == {"name": "red", "networks": ["web"], "containers": ["r1"],
                                                 "groups": []}

    # hosts
    hosts = cli.json("host", "ls")
    assert [h["name"] for h in hosts] == ["h1", "h2"]
    assert cli.json("host", "show", "h1")["containers"] == ["default/web1", "red/r1"]
    assert "198.18.1.0/24" in cli("host", "ls").ok()
    assert "default/web1" in cli("host", "show", "h1").ok()
    assert server.loop is not None and server.ctrl is not None
    asyncio.run_coroutine_threadsafe(server.ctrl.store.record_controller(ControllerRecord(
        "c1", api=("198.18.0.200:8650",), advertise=("198.18.0.201",))), server.loop).result(timeout=10)
    assert [c["id"] for c in cli.json("host", "controllers")] == ["c1"]
    assert "198.18.0.201" in cli("host", "controllers").ok()

    # trace: different networks, no group: denied, and why
    denied = cli.json("trace", "web1", "db1")
    assert denied["allowed"] is False and "share no group" in denied["reason"]
    assert denied["flows"] == {} and set(denied["hosts"]) == {"h1", "h2"}  # a denied packet is traced too
    out = cli("trace", "web1", "db1").ok()
    assert "web1 -> db1: denied: networks web and db share no group or rule" in out

    # a group joins them
    g = cli.json("group", "create", "app", "-m", "network:web", "-m", "container:db1")
    assert g["members"] == ["container:db1", "network:web"]
    assert set(cli.json("group", "show", "app")["containers"]) == {"web1", "web2", "db1"}
    allowed = cli.json("trace", "web1", "db1")
    assert allowed["allowed"] is True and allowed["reason"] == "group app holds both"
    assert set(allowed["flows"]) == {"h1", "h2"} and all(allowed["flows"].values())
    assert set(allowed["probe"]) == {"h1"} and "nw_dst=10.2.0.10" in allowed["probe"]["h1"]
    # an --insecure controller asks no agent (they serve traces over TLS only): said per host
    assert set(allowed["hosts"]) == {"h1", "h2"}
    assert all("--insecure" in got["error"] for got in allowed["hosts"].values())
    out = cli("trace", "web1", "db1").ok()
    assert "web1 -> db1: allowed: group app holds both" in out
    flow_lines = [ln for ln in out.splitlines() if ln.startswith("    cookie=")]
    assert len(flow_lines) == sum(len(f) for f in allowed["flows"].values())  # one flow a line
    assert "host h1:" in out and "host h2: no answer: this controller runs --insecure" in out

    # L4 rules: only tcp/5432 from front to back
    cli("group", "create", "front", "-m", "network:web").ok()
    cli("group", "create", "back").ok()
    assert cli.json("group", "add", "back", "container:db1")["members"] == ["container:db1"]
    rule = cli.json("rule", "create", "--from", "front", "--to", "back", "--proto", "tcp", "--port", "5432")
    assert (rule["a"], rule["b"], rule["protocol"], rule["ports"]) == ("front", "back", "tcp", "5432")
    assert "allow udp/8000-8100 from front to back at priority 100" in cli(
        "rule", "create", "--from", "front", "--to", "back", "--proto", "udp", "--port", "8000-8100").ok()
    assert len(cli.json("rule", "ls")) == 2 and cli.json("rule", "show", str(rule["id"]))["id"] == rule["id"]
    assert "5432" in cli("rule", "ls").ok()
    assert cli.json("group", "show", "back")["rules"] == [rule["id"], rule["id"] + 1]
    ok = cli.json("trace", "web1", "db1", "--proto", "tcp", "--port", "5432")
    assert ok["allowed"] and ok["reason"] == f"rule {rule['id']} allows tcp/5432 from front to back"
    assert ok["scope"] == [6, 5432] and "tp_dst=5432" in ok["probe"]["h1"]
    no = cli.json("trace", "web1", "db1", "--proto", "tcp", "--port", "80")
    assert not no["allowed"]
    assert no["reason"] == "rules front->back allow only tcp/5432, udp/8000-8100, not tcp/80"
    assert "denied: rules front->back" in cli("trace", "web1", "db1", "--proto", "tcp", "--port", "80").ok()
    assert cli.json("rule", "rm", str(rule["id"] + 1))["protocol"] == "udp"

    # pair rules override everything
    assert cli.json("policy", "disconnect", "web1", "db1")["action"] == "disconnect"
    cut = cli.json("trace", "web1", "db1", "--proto", "tcp", "--port", "5432")
    assert not cut["allowed"] and cut["reason"] == "policy disconnect db1 web1"
    assert cut["rule"].startswith("rule ") and f"({cut['rule']})" in cli("trace", "web1", "db1").ok()
    # the policy log: web1's first packet to db1, denied by that rule, named as trace names it
    assert cli("policy", "log", "--json").ok() == "" and "no policy log records" in cli("policy", "log").ok()
    server.in_loop(lambda c: deny_first_packet(c, "web1", "db1", 5432))
    records = [json.loads(line) for line in cli("policy", "log", "--json").ok().splitlines()]
    assert [(r["decision"], r["src"]["name"], r["dst"]["name"], r["dport"], r["rule"], r["reason"])
            for r in records] == [("deny", "web1", "db1", 5432, cut["rule"], cut["reason"])]
    out = cli("policy", "log", "--container", "db1").ok()
    assert (f"default deny web1 (10.1.0.2) -> db1 (10.2.0.10) tcp 40000->5432: {cut['rule']}: "
            "policy disconnect db1 web1") in out
    assert cli("policy", "log", "--container", "web2").ok().strip() == "no policy log records"
    assert cli.json("policy", "connect", "web1", "web2")["action"] == "connect"
    assert ": connect web1 web2 (tenant default)" in cli("policy", "connect", "web1", "web2").ok()
    assert len(cli.json("policy", "show")) == 2
    assert [(r["a"], r["b"]) for r in cli.json("policy", "show", "web1", "web2")] == [("web1", "web2")]
    assert len(cli.json("policy", "show", "web1")) == 2
    assert "disconnect" in cli("policy", "show").ok()
    assert [r["action"] for r in cli.json("policy", "clear", "db1", "web1")] == ["disconnect"]
    assert cli.json("trace", "web1", "db1", "--proto", "tcp", "--port", "5432")["allowed"]
    assert "1 pair rule(s) of tenant default cleared" in cli("policy", "clear").ok()
    assert cli.json("policy", "show") == []

    # live routes (as the hot-plug route records them) and their listing
    ids = {n: cli.json("container", "show", n)["id"] for n in ("web1", "db1")}
    cookie = route_cookie(ids["web1"], ids["db1"]).value
    server.in_loop(lambda c: c.ctx.routes.plugged(cookie, ("web1", "db1"), {1: 2, 2: 2}, time.time(),
                                                  scope=(6, 5432), client=ids["web1"]))
    routes = cli.json("route", "ls")
    assert [(r["names"], r["flows"], r["scope"]) for r in routes] == [(["web1", "db1"], 4, [6, 5432])]
    assert cli.json("route", "ls", "--host", "h2") == routes
    assert cli.json("route", "ls", "--container", "web2") == []
    out = cli("route", "ls").ok()
    for word in ("names", "switches", "scope", "flows", "packets", "bytes", "idle_s", "plugged",
                 "web1 <-> db1", "tcp/5432", "0x1, 0x2"):
        assert word in out, word
    assert "no live routes" in cli("route", "ls", "--container", "web2").ok()
    traced = cli.json("trace", "web1", "db1", "--proto", "tcp", "--port", "5432")
    assert [r["cookie"] for r in traced["live"]] == [f"{cookie:#018x}"]
    assert "web1 <-> db1" in cli("trace", "web1", "db1", "--proto", "tcp", "--port", "5432").ok()

    # a tenant token sees its tenant only
    issued = cli.json("token", "create", "ci", "-t", "red")
    secret = issued["token"]
    assert issued["tenant"] == "red" and secret.startswith("dl_")
    out = cli("token", "create", "ops", "--admin").ok()
    assert "(admin); its secret, shown only this once:" in out
    assert out.strip().splitlines()[-1].startswith("dl_")
    listed = cli.json("token", "ls")
    assert {t["name"] for t in listed} == {"admin", "ci", "ops"}
    assert all("token" not in t and "hash" not in t for t in listed)
    assert "(admin)" in cli("token", "ls").ok()
    red = Cli(server.url, Path(cli.env["DAOLINET_CONFIG"] or ""))
    red.env["DAOLINET_TOKEN"] = secret
    assert [e["name"] for e in red.json("container", "ls")] == ["r1"]
    assert [(n["tenant"], n["name"]) for n in red.json("network", "ls")] == [("red", "web")]
    assert red.json("tenant", "ls") == [{"name": "red"}]
    assert red.json("container", "shownet", "r1", "-t", "red")["ip"] == "10.1.0.2"
    assert red.json("route", "ls") == []
    assert red("policy", "log", "--json").ok() == ""  # default's records are not red's
    red("policy", "log", "-t", "default").error("tenant default not found")
    red("container", "show", "web1").error("web1", "not found")
    red("network", "ls", "-t", "default").error("tenant default not found")
    red("host", "ls").error("admin token")
    red("token", "ls").error("admin token")
    assert red.json("trace", "r1", "r1", "-t", "red")["reason"] == "network web is isolated"
    assert "revoked" in cli("token", "rm", str(issued["id"])).ok()
    assert cli.json("token", "rm", str(next(t["id"] for t in listed if t["name"] == "ops")))["name"] == "ops"
    red("container", "ls").error("invalid token")

    # tearing down
    assert cli.json("group", "remove", "app", "container:db1")["members"] == ["network:web"]
    cli("group", "rm", "app").ok()
    cli("group", "rm", "front").error("still used by l4 rules")
    assert cli.json("rule", "rm", str(rule["id"]))["id"] == rule["id"]
    assert cli.json("group", "rm", "front")["name"] == "front"
    moved = cli.json("container", "move", "web2", "--host", "h1")
    assert moved["host"] == "h1" and moved["ofport"] is None
    cli("container", "move", "web2", "--host", "h1").error("already on host h1")
    cli("container", "move", "web2", "--host", "h7").error("h7")
    assert cli.json("container", "rm", "web2")["name"] == "web2"
    assert "container db1 of tenant default removed" in cli("container", "rm", "db1").ok()
    assert cli.json("route", "ls") == []  # removing db1 revoked its route
    cli("network", "rm", "db").ok()
    cli("host", "rm", "h1").error("host h1 still has endpoints: ")
    cli("container", "rm", "r1", "-t", "red").ok()
    assert cli.json("network", "rm", "web", "-t", "red")["tenant"] == "red"
    assert cli.json("tenant", "rm", "red") == {"name": "red"}
    assert "tenant blue removed" in cli("tenant", "rm", "blue").ok()
    assert "container:db1" in cli("group", "ls").ok()  # back

    # every command that prints has --json, and each was run with it above
    # (`host init` changes the machine, not the API: tests/integration/test_host_init.py runs its --json)
    missing = json_commands() - JSON_RUN - {"host rm", "network rm", "host init"}
    assert not missing, f"--json never exercised for: {sorted(missing)}"


def deny_first_packet(ctrl: Controller, src_name: str, dst_name: str, port: int,
                      tenant: str = "default") -> None:
    """src's first TCP packet to dst reaches the controller (a PacketIn): decided, answered."""
    view = ctrl.view
    src, dst = view.endpoint_named(tenant, src_name), view.endpoint_named(tenant, dst_name)
    assert src is not None and dst is not None and src.ofport is not None
    meta = PacketMeta(dpid=view.hosts[src.host].dpid, in_port=src.ofport, table_id=Table.EGRESS,
                      reason=NO_MATCH, eth_src=src.mac, eth_type=0x0800, ip_src=src.ip, ip_dst=dst.ip,
                      ip_proto=6, ttl=64, l4_src=40000, l4_dst=port)
    ctrl.hotplug.carry_out(decide(meta, view), meta, b"", 0.0)


def test_policy_log_follow_streams_new_records(server: ApiServer, cli: Cli) -> None:
    """`policy log --follow --json`, a real process: the backlog, then a new denial as it happens."""
    server.api("POST", "/tenants", json={"name": "follow"})
    net = server.api("POST", "/networks", json={"name": "f", "subnet": "10.9.0.0/24", "tenant": "follow",
                                               "isolated": True})
    for name, ofport in (("f1", 7), ("f2", 8)):
        e = server.api("POST", "/endpoints", json={"name": name, "network": net["name"], "host": "h1",
                                                   "tenant": "follow"})
        server.api("PATCH", f"/endpoints/{e['id']}", json={"port": f"dl{e['id']}", "ofport": ofport})
    server.in_loop(lambda c: deny_first_packet(c, "f1", "f2", 80, "follow"))
    env = {**os.environ, **{k: v for k, v in cli.env.items() if v is not None}}
    for k in (k for k, v in cli.env.items() if v is None):
        env.pop(k, None)
    proc = subprocess.Popen([sys.executable, "-m", "daolinet.cli.main", "policy", "log", "--follow",
                             "--json", "-t", "follow"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            env=env, text=True)
    lines: queue.Queue[str] = queue.Queue()  # a reader thread: no buffer hides a line from select

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line)

    threading.Thread(target=read, daemon=True).start()
    try:
        first = json.loads(lines.get(timeout=20))
        assert (first["tenant"], first["dport"], first["reason"]) == ("follow", 80, "network f is isolated")
        server.in_loop(lambda c: deny_first_packet(c, "f2", "f1", 443, "follow"))
        second = json.loads(lines.get(timeout=5))  # pushed: nobody polls
        assert (second["src"]["name"], second["dport"]) == ("f2", 443)
    finally:
        proc.kill()
        proc.wait(timeout=10)
        assert proc.stdout is not None
        proc.stdout.close()


def test_host_rm(server: ApiServer, cli: Cli) -> None:
    server.api("POST", "/hosts", json={"name": "h9", "dpid": 9, "underlay_ip": "198.18.0.9",
                                       "underlay_mac": "02:18:00:00:00:09", "pip_pool": "198.18.9.0/24",
                                       "underlay_prefix": 16})
    assert cli.json("host", "rm", "h9")["name"] == "h9"
    cli("host", "show", "h9").error("host h9 not found")
    cli("network", "create", "tmp", "--subnet", "10.99.0.0/24").ok()
    assert cli.json("network", "rm", "tmp")["name"] == "tmp"
    JSON_RUN.update({"host rm", "network rm"})


def test_dual_stack_network_and_container(server: ApiServer, cli: Cli) -> None:
    """--subnet6 makes a network dual-stack; its IPv6 shows in ls/show only where it is set."""
    server.api("POST", "/hosts", json={"name": "h6", "dpid": 6, "underlay_ip": "198.18.0.6",
                                       "underlay_mac": "02:18:00:00:00:06", "pip_pool": "198.18.6.0/24",
                                       "underlay_prefix": 16, "underlay_ip6": "2001:2:0:1::6",
                                       "pip_pool6": "2001:2:0:1:6::/112"})
    out = cli("network", "create", "dual", "--subnet", "10.60.0.0/24", "--subnet6", "fd00:60::/64").ok()
    assert "network dual (10.60.0.0/24, gateway 10.60.0.1; fd00:60::/64, gateway fd00:60::1)" in out
    n = cli.json("network", "create", "dual2", "--subnet", "10.61.0.0/24", "--subnet6", "fd00:61::/64",
                 "--gateway6", "fd00:61::fe")
    assert (n["subnet6"], n["gateway6"]) == ("fd00:61::/64", "fd00:61::fe")
    assert "subnet6" not in cli.json("network", "create", "v4only", "--subnet", "10.62.0.0/24")
    assert "fd00:60::/64" in cli("network", "ls").ok()
    assert "subnet6" not in cli("network", "ls", "-t", "red").ok()  # no IPv6 there: no IPv6 columns
    assert "fd00:61::fe" in cli("network", "show", "dual2").ok()
    assert "subnet6" not in cli("network", "show", "v4only").ok()
    e = cli.json("container", "create", "d1", "--network", "dual", "--host", "h6")
    assert e["ip6"] == "fd00:60::2" and e["pip6"].startswith("2001:2:0:1:6::")
    net = cli.json("container", "shownet", "d1")
    assert (net["ip6"], net["gateway6"], net["subnet6"]) == ("fd00:60::2", "fd00:60::1", "fd00:60::/64")
    assert "fd00:60::2" in cli("container", "show", "d1").ok()
    assert "ip6" not in cli.json("container", "shownet", "web1")
    cli("container", "rm", "d1").ok()
    for name in ("dual", "dual2", "v4only"):
        cli("network", "rm", name).ok()
    cli("host", "rm", "h6").ok()


@pytest.mark.parametrize(("args", "words"), [
    (("--subnet6", "fd00:1::"), ("subnet6", "CIDR")),
    (("--subnet6", "fd00:1::/130"), ("subnet6",)),
    (("--subnet6", "fe80::/64"), ("subnet6", "unicast")),
    (("--subnet6", "10.9.0.0/24"), ("subnet6", "IPv6")),
    (("--subnet6", "fd00:1::/64", "--gateway6", "fd00:2::1"), ("gateway6", "outside")),
    (("--gateway6", "fd00:2::1"), ("gateway6", "needs a subnet6")),
])
def test_bad_subnet6_is_one_line(cli: Cli, args: tuple[str, ...], words: tuple[str, ...]) -> None:
    cli("network", "create", "n6", "--subnet", "10.9.0.0/24", *args).error(*words)


# -- the live trace on a lab -----------------------------------------------------------------------


TRACE_OUT = ("Flow: tcp,in_port=7\n\nbridge(\"daolinet\")\n 0. priority 0\n    controller\n\n"
             "Final flow: unchanged\nMegaflow: recirc_id=0,ip,in_port=7\n"
             "Datapath actions: userspace(pid=0,controller(reason=1))\n")


class FakeAgents:
    """Stands for the hosts' agents (controller/agent_trace.py's AgentCaller): h2's never answers."""

    calls: ClassVar[list[tuple[str, str, str, Any]]] = []

    def __init__(self, tls: Any) -> None:
        pass

    async def __call__(self, host: Any, method: str, path: str, body: Any) -> Any:
        FakeAgents.calls.append((host.name, method, path, body))
        if host.name == "h2":
            await asyncio.Event().wait()  # no answer: the controller's deadline must cut it
        if path == "/trace/ofproto":
            return {"host": host.name, "probe": "tcp,in_port=7", "verdict": "to the controller (userspace)",
                    "output": TRACE_OUT}
        return {"host": host.name, "flows": ["cookie=0xd100000000000001, priority=300 actions=drop"]}

    async def close(self) -> None:
        pass


def test_trace_shows_each_hosts_verdict_from_its_agent(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    from daolinet.controller import agent_trace
    from daolinet.controller import trace as ctrl_trace
    cli("network", "create", "lt", "--subnet", "10.50.0.0/24", "-t", "default").ok()
    for name, host, port in (("lt1", "h1", 7), ("lt2", "h2", 8)):
        e = cli.json("container", "create", name, "--network", "lt", "--host", host)
        httpx.patch(f"{cli.env['DAOLINET_API']}/endpoints/{e['id']}",
                    json={"port": f"p{port}", "ofport": port},
                    headers={"Authorization": f"Bearer {ADMIN}"}).raise_for_status()
    monkeypatch.setattr(ctrl_trace, "AgentCaller", FakeAgents)
    monkeypatch.setattr(agent_trace, "TIMEOUT", 0.3)
    FakeAgents.calls.clear()
    out = cli("trace", "lt1", "lt2", "--proto", "tcp", "--port", "443").ok()
    assert "host h1: to the controller (userspace)" in out
    assert "Datapath actions: userspace(pid=0,controller(reason=1))" in out and "Megaflow" not in out
    assert "route flow: cookie=0xd100000000000001" in out
    assert "host h2: no answer: the agent of h2 did not answer within 0.3 s" in out
    probes = {host: body for host, method, path, body in FakeAgents.calls if method == "POST"}
    assert (probes["h1"]["in_port"], probes["h1"]["tp_dst"], probes["h1"]["protocol"]) == (7, 443, "tcp")
    assert probes["h2"]["in_port"] == 1 and probes["h2"]["nw_ttl"] == 63  # on h2's uplink, PIPs
    got = cli.json("trace", "lt1", "lt2")
    assert got["hosts"]["h1"]["source"] == "agent" and got["hosts"]["h2"]["verdict"] is None
    for name in ("lt1", "lt2"):
        cli("container", "rm", name).ok()
    cli("network", "rm", "lt").ok()


# -- bad input: one line, non-zero, nothing printed ------------------------------------------------


@pytest.mark.parametrize(("args", "words"), [
    (("container", "create", "x", "--network", "nosuch", "--host", "h1"), ("network nosuch",)),
    (("container", "create", "x", "--network", "web", "--host", "h1", "-l", "novalue"), ("KEY=VALUE",)),
    (("container", "show", "nosuch"), ("nosuch", "not found")),
    (("container", "rm", "nosuch"), ("nosuch", "not found")),
    (("network", "create", "n1", "--subnet", "10.0.0.0/33"), ("10.0.0.0/33",)),
    (("network", "create", "n1", "--subnet", "banana"), ("banana", "CIDR")),
    (("network", "create", "n1", "--subnet", "10.3.0.0/24", "-t", "nosuch"), ("tenant nosuch not found",)),
    (("network", "show", "nosuch"), ("network nosuch",)),
    (("group", "show", "nosuch"), ("group nosuch",)),
    (("group", "add", "nosuch", "network:web"), ("group nosuch",)),
    (("group", "create", "g1", "-m", "bogus"), ("invalid group member 'bogus'",)),
    (("rule", "create", "--from", "nosuch", "--to", "other", "--proto", "tcp", "--port", "80"),
     ("group nosuch",)),
    (("rule", "create", "--from", "a", "--to", "b", "--proto", "tcp", "--port", "80-70"), ("80-70",)),
    (("rule", "create", "--from", "a", "--to", "b", "--proto", "gre"), ("protocol 'gre'",)),
    (("rule", "rm", "999"), ("rule 999",)),
    (("rule", "rm", "notanumber"), ("rule notanumber of tenant default not found",)),
    (("policy", "connect", "a", "a"), ("two different containers",)),
    (("trace", "nosuch", "other"), ("no container nosuch",)),
    (("trace", "a", "b", "--port", "70000"), ("--port", "65535")),
    (("tenant", "show", "nosuch"), ("tenant nosuch not found",)),
    (("tenant", "create", "bad name!"), ("bad name!",)),
    (("host", "show", "nosuch"), ("host nosuch not found",)),
    (("token", "create", "x", "--admin", "-t", "red"), ("--tenant or --admin",)),
    (("token", "create", "x", "-t", "nosuch"), ("tenant nosuch not found",)),
    (("token", "rm", "999"), ("token 999 not found",)),
    (("network", "create", "n1"), ("--subnet", "network create --help")),
    (("container", "frobnicate"), ("frobnicate",)),
])
def test_bad_input_is_one_line(cli: Cli, args: tuple[str, ...], words: tuple[str, ...]) -> None:
    cli(*args).error(*words)
    cli(*args, "--json").error(*words)


def test_missing_and_wrong_tokens(cli: Cli) -> None:
    cli("network", "ls", DAOLINET_TOKEN=None).error("no API token", "DAOLINET_TOKEN")
    cli("network", "ls", "--json", DAOLINET_TOKEN=None).error("no API token")
    cli("network", "ls", DAOLINET_TOKEN="dl_wrong").error("invalid token", "$DAOLINET_TOKEN")
    cli("tenant", "create", "x", "--json", DAOLINET_TOKEN="dl_wrong").error("invalid token")


def test_unreachable_or_malformed_api(cli: Cli) -> None:
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()
    cli("network", "ls", DAOLINET_API=f"http://127.0.0.1:{port}").error("unreachable")
    cli("network", "ls", DAOLINET_API="127.0.0.1:8650").error("must start with http://")


def test_no_api_anywhere(cli: Cli, tmp_path: Path) -> None:
    cli("network", "ls", DAOLINET_API=None, DAOLINET_TOKEN=None, DAOLINET_CONFIG=None,
        XDG_CONFIG_HOME=str(tmp_path)).error("no controller API", "DAOLINET_API")


def test_config_file(cli: Cli, server: ApiServer, tmp_path: Path) -> None:
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"api": server.url, "token": ADMIN}))
    env: dict[str, str | None] = {"DAOLINET_API": None, "DAOLINET_TOKEN": None,
                                  "DAOLINET_CONFIG": str(config)}
    assert isinstance(cli.json("tenant", "ls", **env), list)
    # the default place: ~/.config/daolinet/config.json (here under XDG_CONFIG_HOME)
    (tmp_path / "daolinet").mkdir()
    (tmp_path / "daolinet" / "config.json").write_text(config.read_text())
    assert isinstance(cli.json("host", "ls", **{**env, "DAOLINET_CONFIG": None,
                                                "XDG_CONFIG_HOME": str(tmp_path)}), list)
    # the environment wins; the file's token goes only to the file's API
    cli("tenant", "ls", **{**env, "DAOLINET_TOKEN": "dl_wrong"}).error("invalid token")
    config.write_text(json.dumps({"api": "http://127.0.0.1:9", "token": ADMIN}))
    cli("tenant", "ls", DAOLINET_TOKEN=None, DAOLINET_CONFIG=str(config)).error("no API token")
    config.write_text(json.dumps({"token": ADMIN}))  # a token without an API: for $DAOLINET_API
    assert isinstance(cli.json("tenant", "ls", DAOLINET_TOKEN=None, DAOLINET_CONFIG=str(config)), list)
    # broken files
    config.write_text("{not json")
    cli("tenant", "ls", **env).error("not valid JSON")
    config.write_text(json.dumps({"api": server.url, "tokn": ADMIN}))
    cli("tenant", "ls", **env).error("unknown key(s) tokn")
    config.write_text(json.dumps(["x"]))
    cli("tenant", "ls", **env).error("JSON object")
    cli("tenant", "ls", **{**env, "DAOLINET_CONFIG": str(tmp_path / "nope.json")}).error("not found")
