"""The daemons' settings: flags over $DAOLINET_* over the TOML file over the defaults,
and every bad setting refused at start-up in one line naming its source and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from daolinet.cli.main import run
from daolinet.daemon_settings import AgentSettings, ControllerSettings, load
from daolinet.errors import BadConfig
from daolinet.lab import daemons as lab_daemons

AGENT_FLAGS = {"controller": ["ssl:198.18.0.200:6653"], "pip_pool": "198.18.1.0/24"}


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No setting of the machine's leaks in: no $DAOLINET_*, no /etc/daolinet file."""
    import os

    for key in list(os.environ):
        if key.startswith("DAOLINET_"):
            monkeypatch.delenv(key)
    monkeypatch.setattr(ControllerSettings, "default_file", str(tmp_path / "absent-controller.toml"))
    monkeypatch.setattr(AgentSettings, "default_file", str(tmp_path / "absent-agent.toml"))


def _file(tmp_path: Path, text: str, name: str = "agent.toml") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def _one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


def test_defaults_without_a_file() -> None:
    s = load(ControllerSettings, {})
    assert s.store == "sqlite:///var/lib/daolinet/daolinet.db" and s.of_listen == ("ssl:0.0.0.0:6653",)
    assert s.idle_timeout == 30 and s.insecure is False and s.tls_cert == "/etc/daolinet/pki/controller.crt"
    a = load(AgentSettings, AGENT_FLAGS)
    assert (a.bridge, a.uplink, a.datapath, a.api) == ("daolinet", "eth0", "auto", ())


def test_flag_beats_env_beats_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _file(tmp_path, 'pip_pool = "198.18.9.0/24"\nuplink = "ens1"\nbridge = "br-file"\n'
                           'controller = ["ssl:198.18.0.9:6653"]\nheartbeat = 2.5\n')
    monkeypatch.setenv("DAOLINET_UPLINK", "ens-env")
    monkeypatch.setenv("DAOLINET_BRIDGE", "br-env")
    s = load(AgentSettings, {"bridge": "br-flag", "uplink": None}, path)
    assert s.bridge == "br-flag"  # flag > env > file
    assert s.uplink == "ens-env"  # env > file; a flag not given (None) is no flag
    assert s.pip_pool == "198.18.9.0/24" and s.heartbeat == 2.5  # file > defaults
    assert s.controller == ("ssl:198.18.0.9:6653",)


def test_lists_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DAOLINET_CONTROLLER", "ssl:198.18.0.1:6653, ssl:198.18.0.2:6653")
    monkeypatch.setenv("DAOLINET_API", '["https://198.18.0.1:8650", "https://198.18.0.2:8650"]')
    monkeypatch.setenv("DAOLINET_PIP_POOL", "198.18.1.0/24")
    monkeypatch.setenv("DAOLINET_INSECURE", "true")
    s = load(AgentSettings, {})
    assert s.controller == ("ssl:198.18.0.1:6653", "ssl:198.18.0.2:6653")
    assert s.api == ("https://198.18.0.1:8650", "https://198.18.0.2:8650") and s.insecure is True


@pytest.mark.parametrize(("text", "line"), [
    ('heartbeat = "fast"\n', 'agent.toml: heartbeat: expected a number above 0, got "fast"'),
    ("pip_pol = \"x\"\n", "agent.toml: pip_pol: unknown key (did you mean pip_pool?)"),
    ('datapath = "kernel"\n', 'agent.toml: datapath: expected one of auto, system, netdev, got "kernel"'),
    ("controller = []\n", "agent.toml: controller: expected a list of strings, not empty"),
    ("insecure = 1.5\n", "agent.toml: insecure: expected true or false, got 1.5"),
    ("heartbeat = \n", "agent.toml: not valid TOML"),
])
def test_a_bad_file_is_one_line_naming_file_and_key(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                    text: str, line: str) -> None:
    path = _file(tmp_path, text)
    assert run(["agent", f"--config={path}", "--pip-pool=198.18.1.0/24"]) == 2
    got = _one_error_line(capsys)
    assert got.startswith(f"error: {tmp_path}/") and line in got, got


def test_bad_values_from_env_and_flags_name_them(monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("DAOLINET_IDLE_TIMEOUT", "0")
    assert run(["controller", "--insecure"]) == 2
    assert _one_error_line(capsys) == \
        'error: $DAOLINET_IDLE_TIMEOUT: expected a whole number from 1 to 65535, got "0"'
    assert run(["controller", "--insecure", "--idle-timeout=70000"]) == 2  # the flag wins, and is wrong
    assert _one_error_line(capsys) == \
        "error: --idle-timeout: expected a whole number from 1 to 65535, got 70000"
    assert run(["controller", "--insecure", "--idle-timeout=10", "--host-ttl=0"]) == 2
    assert "--host-ttl: expected a whole number from 1 to" in _one_error_line(capsys)


def test_missing_required_keys_say_how_to_give_them(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    path = _file(tmp_path, 'controller = "ssl:198.18.0.200:6653"\n')
    assert run(["agent", f"--config={path}"]) == 2
    assert _one_error_line(capsys) == \
        f"error: pip_pool is required: give --pip-pool, $DAOLINET_PIP_POOL or pip_pool in {path}"


def test_unreadable_or_missing_explicit_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["controller", f"--config={tmp_path}"]) == 2  # a directory: cannot be read as a file
    assert _one_error_line(capsys).startswith(f"error: {tmp_path}: cannot read it: ")
    assert run(["controller", f"--config={tmp_path}/nope.toml"]) == 2
    assert _one_error_line(capsys) == f"error: {tmp_path}/nope.toml: no such file"
    with pytest.raises(BadConfig, match="no such file"):
        load(ControllerSettings, {}, str(tmp_path / "nope.toml"))


def test_the_default_file_is_read_when_present_and_skipped_with_empty_config(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    stray = _file(tmp_path, "idle_timeout = 99\n", "controller.toml")
    monkeypatch.setattr(ControllerSettings, "default_file", stray)
    assert load(ControllerSettings, {}).idle_timeout == 99
    assert load(ControllerSettings, {}, "").idle_timeout == 30  # --config= : no file at all


def test_settings_are_frozen() -> None:
    s = load(ControllerSettings, {})
    with pytest.raises(ValueError, match="frozen"):
        s.idle_timeout = 5  # type: ignore[misc]


def test_help_names_key_env_and_default() -> None:
    text = ControllerSettings.help("idle_timeout")
    assert "(default: 30)" in text and "config key idle_timeout" in text and "$DAOLINET_IDLE_TIMEOUT" in text


def test_lab_daemons_ignore_stray_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """A lab daemon gets --config= (no file) and an environment without $DAOLINET_* settings."""
    env = lab_daemons.daemon_env({"PATH": "/bin", "DAOLINET_UPLINK": "ens9", "DAOLINET_DEBUG": "1",
                                  "NOTIFY_SOCKET": "/run/systemd/notify"})
    assert env == {"PATH": "/bin", "DAOLINET_DEBUG": "1"}
    spawned: list[list[str]] = []

    class Proc:
        def __init__(self, cmd: list[str], **kwargs: object) -> None:
            spawned.append(cmd)
            assert kwargs["env"] == lab_daemons.daemon_env()

    monkeypatch.setattr(lab_daemons.subprocess, "Popen", Proc)
    lab_daemons._spawn(["controller", "--insecure"], "/dev/null")
    assert spawned[0][-3:] == ["controller", "--insecure", "--config="]
