"""The CLI on a lab with two controllers on etcd: when the controller it used last is
killed, `daolinet container ls`, `network ls` and `host ls` still answer (lab/client.py,
cli/api.py), and the next command starts with the live one."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from daolinet.lab import cluster
from daolinet.system import procs

pytestmark = pytest.mark.integration


def daolinet(lab: cluster.Lab, cache: Path, *args: str) -> Any:
    """`daolinet ARGS --json` as a user runs it (a new process each time), on this lab."""
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("DAOLINET_")},
           "DAOLINET_LAB": lab.name, "XDG_CACHE_HOME": str(cache), "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run([sys.executable, "-m", "daolinet.cli.main", *args, "--json"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stderr == "", (args, done.stderr)
    return json.loads(done.stdout)


def last_used(cache: Path) -> dict[str, str]:
    return dict(json.loads((cache / "daolinet" / "api-last.json").read_text()))


def test_the_cli_moves_on_when_its_controller_dies(lab_factory: Callable[..., cluster.Lab],
                                                    tmp_path: Path) -> None:
    lab = lab_factory(hosts=2, controllers=2, store="etcd")
    urls = lab.api_urls
    with lab.api() as admin:
        admin.call("POST", "/networks", json={"name": "net1", "subnet": "10.7.0.0/24"})
    lab.add_container("c1", host="h1", network="net1")

    assert [n["name"] for n in daolinet(lab, tmp_path, "network", "ls")] == ["net1"]
    used = last_used(tmp_path)[",".join(urls)]
    dead = urls.index(used)
    pid = lab.controller_pid(dead)
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    procs.stop([pid])
    assert not procs.is_alive(pid)

    assert [c["name"] for c in daolinet(lab, tmp_path, "container", "ls")] == ["c1"]
    assert [n["name"] for n in daolinet(lab, tmp_path, "network", "ls")] == ["net1"]
    assert sorted(h["name"] for h in daolinet(lab, tmp_path, "host", "ls")) == ["h1", "h2"]
    assert last_used(tmp_path)[",".join(urls)] == urls[1 - dead]  # the next command starts there
