"""contrib/systemd's units: systemd itself accepts them, they order the agent between OVS
and the container runtimes, the controller runs unprivileged; and the daemons really tell
$NOTIFY_SOCKET READY=1 once they serve, STOPPING=1 when they stop."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from daolinet.system.notify import notify

UNITS = Path(__file__).resolve().parents[2] / "contrib" / "systemd"
INSTALLED = "/usr/local/bin/daolinet"
DAOLINET = shutil.which("daolinet") or os.path.join(os.path.dirname(sys.executable), "daolinet")


def directives(unit: str) -> dict[str, list[str]]:
    """'Section.Key' -> every value given, in order (systemd keys may repeat)."""
    out: dict[str, list[str]] = {}
    section = ""
    for line in (UNITS / unit).read_text().splitlines():
        line = line.strip()
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
        elif line and not line.startswith("#"):
            key, _, value = line.partition("=")
            out.setdefault(f"{section}.{key}", []).append(value)
    return out


def words(d: dict[str, list[str]], key: str) -> set[str]:
    return {w for value in d.get(key, []) for w in value.split()}


@pytest.mark.parametrize("unit", ["daolinet-controller.service", "daolinet-agent.service"])
def test_systemd_analyze_verify_accepts_the_unit(unit: str, tmp_path: Path) -> None:
    """verify needs ExecStart's binary to exist: the copy runs this installation's daolinet
    instead of /usr/local/bin's, and nothing else changes.  Parse problems are only warnings
    on stderr (exit status 0), so stderr must be empty too."""
    if shutil.which("systemd-analyze") is None:
        pytest.skip("no systemd-analyze")
    text = (UNITS / unit).read_text()
    assert f"ExecStart={INSTALLED} " in text
    (tmp_path / unit).write_text(text.replace(INSTALLED, DAOLINET))
    done = subprocess.run(["systemd-analyze", "verify", "--man=no", str(tmp_path / unit)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stderr == "", done.stderr


def test_the_agent_starts_between_ovs_and_the_container_runtimes() -> None:
    d = directives("daolinet-agent.service")
    assert d["Service.Type"] == ["notify"] and d["Service.Restart"] == ["on-failure"]
    assert {"ovs-vswitchd.service", "network-online.target"} <= words(d, "Unit.After")
    assert {"ovs-vswitchd.service", "network-online.target"} <= words(d, "Unit.Wants")
    assert {"docker.service", "containerd.service"} <= words(d, "Unit.Before")
    assert d["Service.ExecStart"] == [f"{INSTALLED} agent --config=/etc/daolinet/agent.toml"]
    assert d["Install.WantedBy"] == ["multi-user.target"]


def test_the_controller_runs_unprivileged_and_reads_its_key_as_a_credential() -> None:
    d = directives("daolinet-controller.service")
    assert d["Service.Type"] == ["notify"]
    for key, value in (("DynamicUser", "yes"), ("StateDirectory", "daolinet"), ("NoNewPrivileges", "yes"),
                       ("ProtectSystem", "strict"), ("ProtectHome", "yes"), ("PrivateTmp", "yes"),
                       ("CapabilityBoundingSet", "")):
        assert d[f"Service.{key}"] == [value], key
    assert "User" not in {k.split(".")[1] for k in d}  # no fixed account to create or to share
    (exec_start,) = d["Service.ExecStart"]
    assert exec_start.startswith(f"{INSTALLED} controller --config=/etc/daolinet/controller.toml ")
    assert "--tls-key=%d/controller.key" in exec_start
    assert "controller.key:/etc/daolinet/pki/controller.key" in d["Service.LoadCredential"]


def test_notify_is_a_no_op_without_a_socket(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                            caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert notify("READY=1") is False
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "nobody-listens"))
    with caplog.at_level(logging.WARNING):
        assert notify("READY=1") is False  # logged, never fatal
    assert "cannot tell systemd READY=1" in caplog.text


def test_a_real_controller_sends_ready_then_stopping(tmp_path: Path) -> None:
    path = str(tmp_path / "notify.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(path)
        sock.settimeout(30)  # the deadline for each message
        env = {k: v for k, v in os.environ.items() if not k.startswith("DAOLINET_")}
        env["NOTIFY_SOCKET"] = path
        ready = tmp_path / "ready.json"
        proc = subprocess.Popen(
            [sys.executable, "-m", "daolinet.cli.main", "controller", "--config=", "--insecure",
             f"--store=sqlite://{tmp_path}/store.db", "--of-listen=tcp:127.0.0.1:0",
             "--api-listen=127.0.0.1:0", f"--ready-file={ready}", "--log-level=warning"],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            assert sock.recv(4096) == b"READY=1"
            assert ready.exists()  # told once it serves: the listeners are up
            proc.send_signal(signal.SIGTERM)
            assert sock.recv(4096) == b"STOPPING=1"
            assert proc.wait(timeout=30) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            assert proc.stderr is not None
            proc.stderr.close()
