"""`daolinet lab up --docker` and `daolinet lab docker HOST -- ARGS`, as a newcomer types
them (each a new process): a network created on h1 is usable on h2, a container on h2
pings one on h1, and `lab down` leaves no dockerd, cgroup or namespace behind."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from daolinet.lab import cluster, docker
from daolinet.testing.fixtures import lab_leftovers, need_root, new_lab_name
from daolinet.testing.labtools import wait_for

pytestmark = pytest.mark.integration


def daolinet(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("DAOLINET_")},
           "PYTHONPATH": os.pathsep.join(sys.path)}
    return subprocess.run([sys.executable, "-m", "daolinet.cli.main", *args], env=env, capture_output=True,
                          text=True, timeout=timeout)


def test_a_newcomers_docker_lab() -> None:
    need_root()
    if not os.path.exists(docker.DOCKERD):
        pytest.skip("needs Debian's docker.io")
    name = new_lab_name()
    try:
        up = daolinet("lab", "up", "--docker", "--hosts", "2", "--name", name)
        assert up.returncode == 0, up.stderr

        def dk(host: str, *args: str) -> subprocess.CompletedProcess[str]:
            return daolinet("lab", "docker", host, "--name", name, "--", *args)

        made = dk("h1", "network", "create", "-d", "daolinet", "--ipam-driver", "daolinet",
                  "--subnet", "10.5.0.0/24", "net1")
        assert made.returncode == 0, made.stderr
        assert dk("h1", "run", "-d", "--name", "web", "--network", "net1", docker.IMAGE,
                  "httpd", "-f", "-p", "80").returncode == 0
        ip = dk("h1", "inspect", "-f", "{{.NetworkSettings.Networks.net1.IPAddress}}", "web").stdout.strip()
        assert ip == "10.5.0.2"
        wait_for(lambda: "net1" in dk("h2", "network", "ls", "--format", "{{.Name}}").stdout.split(),
                 what="net1 in h2's dockerd")
        ping = dk("h2", "run", "--rm", "--network", "net1", docker.IMAGE, "ping", "-c1", "-W2", ip)
        assert ping.returncode == 0 and "1 packets received" in ping.stdout, ping.stdout + ping.stderr
        got = dk("h2", "run", "--rm", "--network", "net1", docker.IMAGE, "wget", "-q", "-O-", f"http://{ip}/")
        assert got.returncode != 0 and "404" in got.stderr  # httpd on h1 answered (it serves no files)
        # the docker client's exit status is the command's
        assert dk("h2", "run", "--rm", docker.IMAGE, "sh", "-c", "exit 3").returncode == 3
        nobody = daolinet("lab", "docker", "h9", "--name", name, "--", "ps")
        assert nobody.returncode == 1 and nobody.stderr.startswith(f"error: lab {name} has no host h9")
    finally:
        down = daolinet("lab", "down", "--name", name)
        assert down.returncode == 0, down.stderr
    assert lab_leftovers(name) == [] and docker.cgroup_dirs(name) == []
    assert not cluster.lab_exists(name)
