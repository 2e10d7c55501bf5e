"""`daolinet install-cni`: a launcher runtimes find in their bin dir, a conflist the plugin
accepts, written idempotently and atomically; a differing file refused unless --force."""

from __future__ import annotations

import json
import os
import stat
import subprocess
from pathlib import Path

import pytest

from daolinet.cli.main import run
from daolinet.cni import install, spec
from daolinet.errors import Conflict, InvalidInput


def plugin_config(conflist_path: Path) -> bytes:
    """What libcni hands the plugin: the plugin's entry plus the list's name and version."""
    conf = json.loads(conflist_path.read_text())
    (plugin,) = conf["plugins"]
    return json.dumps({**plugin, "name": conf["name"], "cniVersion": conf["cniVersion"]}).encode()


def test_the_files(tmp_path: Path) -> None:
    files = install.plan(str(tmp_path / "bin"), str(tmp_path / "conf"), "web", "/run/x/agent.sock",
                         "/opt/daolinet venv/bin/daolinet-cni")
    launcher, conflist = files
    assert launcher.path == f"{tmp_path}/bin/daolinet" and launcher.mode == 0o755
    assert launcher.content.startswith("#!/bin/sh\n")
    assert "exec '/opt/daolinet venv/bin/daolinet-cni' \"$@\"\n" in launcher.content
    assert conflist.path == f"{tmp_path}/conf/10-daolinet-web.conflist" and conflist.mode == 0o644
    assert json.loads(conflist.content) == {"cniVersion": "1.0.0", "name": "web", "plugins": [
        {"type": "daolinet", "agentSocket": "/run/x/agent.sock"}]}
    install.apply(files)
    req = spec.parse({"CNI_COMMAND": "STATUS"}, plugin_config(Path(conflist.path)))
    assert (req.network, req.agent_socket, req.version) == ("web", "/run/x/agent.sock", "1.0.0")


def test_bad_names_are_refused() -> None:
    with pytest.raises(InvalidInput, match="--network"):
        install.plan("/b", "/c", "../etc", spec.DEFAULT_SOCKET, "/x")
    with pytest.raises(InvalidInput, match="--agent-socket"):
        install.plan("/b", "/c", "web", "agent.sock", "/x")


def test_idempotent_refused_unless_force(tmp_path: Path) -> None:
    files = install.plan(str(tmp_path / "bin"), str(tmp_path / "conf"), "web", spec.DEFAULT_SOCKET, "/a/cni")
    assert [what for _, what in install.apply(files)] == ["installed", "installed"]
    assert stat.S_IMODE(os.stat(files[0].path).st_mode) == 0o755
    assert stat.S_IMODE(os.stat(files[1].path).st_mode) == 0o644
    assert [what for _, what in install.apply(files)] == ["unchanged", "unchanged"]
    other = install.plan(str(tmp_path / "bin"), str(tmp_path / "conf"), "web", "/run/other.sock", "/b/cni")
    with pytest.raises(Conflict, match="--force"):
        install.apply(other)
    assert Path(files[0].path).read_text() == files[0].content  # refused: neither file touched
    assert Path(files[1].path).read_text() == files[1].content
    assert [what for _, what in install.apply(other, force=True)] == ["replaced", "replaced"]
    assert Path(files[1].path).read_text() == other[1].content
    os.chmod(files[0].path, 0o777)  # a mode that differs is a difference too
    assert install.state(other[0]) == "different"
    assert sorted(os.listdir(tmp_path / "bin")) == ["daolinet"]  # no temporary files left


def test_the_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["install-cni", f"--bin-dir={tmp_path}/bin", f"--conf-dir={tmp_path}/conf", "--network=web"]
    assert run(args) == 0
    assert capsys.readouterr().out.split("\n")[:2] == [f"installed {tmp_path}/bin/daolinet",
                                                       f"installed {tmp_path}/conf/10-daolinet-web.conflist"]
    assert run(args) == 0 and "unchanged" in capsys.readouterr().out
    assert run([*args, "--agent-socket=/run/elsewhere.sock"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: {tmp_path}/conf/10-daolinet-web.conflist exists with other content: "
                   "add --force to replace it"]
    # The launcher runs this installation's plugin: VERSION is answered without an agent.
    done = subprocess.run([f"{tmp_path}/bin/daolinet"], input=b'{"cniVersion": "1.0.0"}',
                          env={"CNI_COMMAND": "VERSION", "PATH": "/usr/bin:/bin"}, capture_output=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"cniVersion": "1.0.0", "supportedVersions": ["1.0.0", "1.1.0"]}
