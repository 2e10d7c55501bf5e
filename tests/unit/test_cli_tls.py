"""The CLI against a controller API served over TLS (uvicorn as `daolinet controller`
serves it, on TCP and on a unix socket, with a CA made for the test): verified against
the CA from the environment, the config file or a lab; a client certificate instead of a
token; every TLS failure and refusal one line on stderr, never a traceback; and host
tokens issued with `daolinet token create --host`."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from typer.testing import CliRunner

from daolinet.cli import main as cli_main
from daolinet.controller.api import create_app
from daolinet.controller.api.auth import hash_token
from daolinet.controller.context import Config
from daolinet.controller.controller import Controller
from daolinet.controller.main import api_config
from daolinet.lab import cluster, daemons, plan
from daolinet.model import Host
from daolinet.security import pki
from daolinet.security.settings import Security
from daolinet.security.tls import TlsFiles, client_context
from daolinet.store import open_store

ADMIN = "dl_cli-tls-admin"
LAB_IP = "198.18.0.200"  # a lab controller's address: not reachable from here, only through its socket


class TlsApi:
    """A controller API over TLS in a thread: https://127.0.0.1:PORT and unix:SOCK."""

    def __init__(self, ca: str, sock_path: str) -> None:
        self.ca = ca
        self.tcp = socket.socket()
        self.tcp.bind(("127.0.0.1", 0))
        self.tcp.listen(16)
        self.unix = socket.socket(socket.AF_UNIX)
        self.unix.bind(sock_path)
        self.unix.listen(16)
        self.sock_path = sock_path
        self.url = f"https://127.0.0.1:{self.tcp.getsockname()[1]}"
        self.server: uvicorn.Server | None = None
        self.failed: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as e:  # noqa: BLE001 -- reported by start()
            self.failed = e

    async def _serve(self) -> None:
        store = open_store("sqlite://:memory:")
        await store.create_token("admin", None, hash_token(ADMIN), time.time())
        for i in (1, 2):
            await store.register_host(Host(f"h{i}", i, f"198.18.0.{i}", f"02:00:00:00:00:0{i}",
                                           f"198.18.{i}.0/24"))
        await store.create_network("default", "web", "10.1.0.0/24")
        ctrl = Controller(store, Config())
        await ctrl.start()
        security = Security(tls=TlsFiles.of(self.ca, "controller", "c0"))
        self.server = uvicorn.Server(api_config(create_app(ctrl, tls=True), security))
        try:
            await self.server.serve(sockets=[self.tcp, self.unix])
        finally:
            await asyncio.gather(*list(ctrl._tasks), return_exceptions=True)
            await ctrl.stop()
            await store.close()

    def start(self, timeout: float = 15.0) -> None:
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not (self.server is not None and self.server.started):
            if self.failed is not None or not self.thread.is_alive():
                raise RuntimeError(f"API server did not start: {self.failed!r}")
            assert time.monotonic() < deadline, f"API server not started within {timeout}s"
            time.sleep(0.01)

    def stop(self) -> None:
        if self.server is not None:
            self.server.should_exit = True
        self.thread.join(timeout=15)
        assert not self.thread.is_alive(), "API server did not stop"
        self.tcp.close()
        self.unix.close()


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> str:
    d = str(tmp_path_factory.mktemp("pki"))
    pki.init_ca(d)
    pki.issue(d, "controller", "c0", sans=("127.0.0.1", LAB_IP))
    for role, name in (("user", "ops"), ("host", "h1"), ("host", "h2")):
        pki.issue(d, role, name)  # type: ignore[arg-type]
    return d


@pytest.fixture(scope="module")
def api(ca: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsApi]:
    srv = TlsApi(ca, str(tmp_path_factory.mktemp("run") / "api.sock"))
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture(autouse=True)
def no_labs(monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever runs on this machine, the CLI sees no lab."""
    monkeypatch.setattr(cluster, "list_labs", lambda: [])


def files(ca: str, role: str, name: str) -> dict[str, str]:
    pair = pki.holder_pair(ca, role, name)  # type: ignore[arg-type]
    return {"DAOLINET_CA": pki.ca_pair(ca).cert, "DAOLINET_CERT": pair.cert, "DAOLINET_KEY": pair.key}


def daolinet(*args: str, **env: str | None) -> tuple[int, str, str]:
    """`daolinet ARGS` with exactly this environment of ours: (status, stdout, stderr)."""
    base: dict[str, str | None] = {k: None for k in (
        "DAOLINET_API", "DAOLINET_TOKEN", "DAOLINET_LAB", "DAOLINET_CA", "DAOLINET_CERT", "DAOLINET_KEY",
        "DAOLINET_DEBUG", "DAOLINET_TENANT")}
    with CliRunner().isolation(env={**base, "DAOLINET_CONFIG": None, "XDG_CONFIG_HOME": "/nonexistent",
                                    "COLUMNS": "250", **env}) as (out, err, _):
        code = cli_main.run(list(args))
        sys.stdout.flush()
        sys.stderr.flush()
        return code, out.getvalue().decode(), err.getvalue().decode()


def ok(*args: str, **env: str | None) -> Any:
    code, out, err = daolinet(*args, "--json", **env)
    assert code == 0 and err == "", (args, err)
    return json.loads(out)


def error(*args: str, **env: str | None) -> str:
    """The one line a failure prints: on stderr, nothing on stdout, non-zero."""
    code, out, err = daolinet(*args, **env)
    lines = err.strip().splitlines()
    assert code != 0 and out == "", (args, out)
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    return lines[0]


def test_a_user_certificate_is_an_admin_credential(api: TlsApi, ca: str) -> None:
    hosts = ok("host", "ls", DAOLINET_API=api.url, **files(ca, "user", "ops"))
    assert [h["name"] for h in hosts] == ["h1", "h2"]
    # a token, when sent, is the credential: a wrong one is not rescued by the certificate
    line = error("host", "ls", DAOLINET_API=api.url, DAOLINET_TOKEN="dl_wrong", **files(ca, "user", "ops"))
    assert line == f"error: invalid token (token from $DAOLINET_TOKEN, API {api.url})"
    # the CA alone verifies the server; the admin token is then the credential
    assert len(ok("host", "ls", DAOLINET_API=api.url, DAOLINET_TOKEN=ADMIN,
                  DAOLINET_CA=pki.ca_pair(ca).cert)) == 2


def test_a_host_certificate_is_refused_in_one_line(api: TlsApi, ca: str) -> None:
    env = {"DAOLINET_API": api.url, **files(ca, "host", "h2")}
    line = error("container", "create", "c1", "--network", "web", "--host", "h1", **env)
    assert line == "error: TLS: certificate of h2 is not valid for host h1"
    line = error("host", "ls", **env)
    assert line == ("error: TLS: certificate of h2 may not GET /hosts: a host credential only registers "
                    "its host and plugs endpoints on it")
    made = ok("container", "create", "c2", "--network", "web", "--host", "h2", **env)
    assert made["host"] == "h2"


def test_tls_failures_are_one_line(api: TlsApi, ca: str, tmp_path: Path) -> None:
    user = files(ca, "user", "ops")
    line = error("host", "ls", DAOLINET_API=api.url, DAOLINET_TOKEN=ADMIN)
    assert line.startswith(f"error: TLS: cannot verify the controller at {api.url}: certificate verify "
                           "failed: ") and line.endswith("(the system's trust store)")
    other = str(tmp_path / "other")
    pki.init_ca(other)
    line = error("host", "ls", DAOLINET_API=api.url, **{**user, "DAOLINET_CA": pki.ca_pair(other).cert})
    assert line.startswith(f"error: TLS: cannot verify the controller at {api.url}: certificate verify "
                           "failed: ") and line.endswith(f"(CA {pki.ca_pair(other).cert})")
    line = error("host", "ls", DAOLINET_API=api.url.replace("https:", "http:"), DAOLINET_TOKEN=ADMIN)
    assert "unreachable" in line
    line = error("host", "ls", DAOLINET_API=api.url, **{**user, "DAOLINET_KEY": None})
    assert line == ("error: a client certificate and its key go together: give both cert and key "
                    "($DAOLINET_CA, $DAOLINET_CERT)")
    line = error("host", "ls", DAOLINET_API=api.url, **{**user, "DAOLINET_CA": str(tmp_path / "nope.crt")})
    assert "cannot read" in line and "nope.crt" in line


def test_the_config_file_names_the_ca_and_the_pair(api: TlsApi, ca: str, tmp_path: Path) -> None:
    user = files(ca, "user", "ops")
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"api": api.url, "ca": user["DAOLINET_CA"], "cert": user["DAOLINET_CERT"],
                                  "key": user["DAOLINET_KEY"]}))
    assert len(ok("host", "ls", DAOLINET_CONFIG=str(config))) == 2
    # the file's pair goes only to the file's API
    line = error("host", "ls", DAOLINET_CONFIG=str(config), DAOLINET_API="https://127.0.0.1:9")
    assert "no API token" in line
    config.write_text(json.dumps({"api": api.url, "cert": user["DAOLINET_CERT"]}))
    assert "give both cert and key" in error("host", "ls", DAOLINET_CONFIG=str(config))
    config.write_text(json.dumps({"api": api.url, "cafile": "x"}))
    assert "unknown key(s) cafile (known: api, token, ca, cert, key)" in error("host", "ls",
                                                                              DAOLINET_CONFIG=str(config))


class FakeLab:
    """What the CLI reads of a secure lab (lab/controllers.py)."""

    name = "secure"

    def __init__(self, ca: str) -> None:
        self.api_url = f"https://{LAB_IP}:8650"
        self.api_urls = [self.api_url]
        self.api_tls = TlsFiles.of(ca, "user", "ops")
        self.has_controller = True

    @property
    def admin_token(self) -> str:
        raise AssertionError("a secure lab needs no token")


def test_a_lab_needs_no_flags(api: TlsApi, ca: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    lab = FakeLab(ca)
    monkeypatch.setattr(plan, "RUN_ROOT", str(tmp_path))  # the lab's controller socket: the API's
    os.makedirs(daemons.ControllerPaths(lab.name).dir)
    os.symlink(api.sock_path, daemons.ControllerPaths(lab.name).api_sock)
    monkeypatch.setattr(cluster.Lab, "open", classmethod(lambda cls, name: lab))
    monkeypatch.setattr(cluster, "list_labs", lambda: ["secure"])
    assert [h["name"] for h in ok("host", "ls")] == ["h1", "h2"]  # through its socket, as its admin user
    assert len(ok("host", "ls", DAOLINET_LAB="secure")) == 2
    # $DAOLINET_CERT/KEY replace the lab's pair: as h2, the host list is refused
    h2 = files(ca, "host", "h2")
    line = error("host", "ls", DAOLINET_CERT=h2["DAOLINET_CERT"], DAOLINET_KEY=h2["DAOLINET_KEY"])
    assert line.startswith("error: TLS: certificate of h2 may not GET /hosts")


def test_host_tokens_from_the_cli(api: TlsApi, ca: str) -> None:
    env = {"DAOLINET_API": api.url, "DAOLINET_TOKEN": ADMIN, "DAOLINET_CA": pki.ca_pair(ca).cert}
    made = ok("token", "create", "agent-h1", "--host", "h1", **env)
    assert made["host"] == "h1" and made["tenant"] is None and made["token"].startswith("dl_")
    code, out, _ = daolinet("token", "ls", **env)
    assert code == 0 and "(host h1)" in out
    with httpx.Client(verify=client_context(TlsFiles(pki.ca_pair(ca).cert)), base_url=api.url, timeout=10,
                      headers={"Authorization": f"Bearer {made['token']}"}) as agent:
        assert agent.put("/hosts/h1/heartbeat").status_code == 200
        refused = agent.put("/hosts/h2/heartbeat")
        assert refused.status_code == 403
        assert refused.json() == {"error": "token agent-h1 of host h1 is not valid for host h2"}
    line = error("token", "create", "x", "--host", "h1", "--admin", **env)
    assert line == "error: give --tenant or --admin or --host, not --admin and --host"
    assert ok("token", "rm", str(made["id"]), **env)["name"] == "agent-h1"
