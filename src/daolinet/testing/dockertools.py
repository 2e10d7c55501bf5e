"""What Docker integration tests ask of a lab host's dockerd (lab/docker.py):
the docker client, containers' addresses and processes, TCP between
containers, and what is left on a host (veths, OVS ports)."""

from __future__ import annotations

import json
import subprocess
from typing import Any

from daolinet.lab import cluster, docker
from daolinet.lab.probes import wait_for
from daolinet.system import links

PLUG_PREFIXES = ("dlp", "dlc")  # the agent's host-side ports and Docker peers


def dk(lab: cluster.Lab, host: str, *args: str, check: bool = True,
       timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """`docker ARGS` against HOST's dockerd; with check, a failure fails the test."""
    done = docker.cli(lab.host(host).plan, *args, timeout=timeout)
    if check:
        assert done.returncode == 0, f"docker {' '.join(args)}: {done.stderr.strip()}"
    return done


def run(lab: cluster.Lab, host: str, name: str, network: str, *extra: str,
        check: bool = True) -> subprocess.CompletedProcess[str]:
    return dk(lab, host, "run", "-d", "--name", name, "--network", network, *extra, docker.IMAGE,
              "sleep", "100000", check=check)


def inspect(lab: cluster.Lab, host: str, name: str) -> dict[str, Any]:
    return dict(json.loads(dk(lab, host, "inspect", name).stdout)[0])


def ip_of(lab: cluster.Lab, host: str, name: str, network: str) -> str:
    return str(inspect(lab, host, name)["NetworkSettings"]["Networks"][network]["IPAddress"])


def netns_of(lab: cluster.Lab, host: str, name: str) -> str:
    return f"/proc/{inspect(lab, host, name)['State']['Pid']}/ns/net"


def ping(lab: cluster.Lab, host: str, name: str, ip: str, count: int = 1) -> subprocess.CompletedProcess[str]:
    """busybox's ping inside the container."""
    return dk(lab, host, "exec", name, "ping", "-c", str(count), "-W", "2", ip, check=False)


def tcp_transfer(lab: cluster.Lab, client: tuple[str, str], server: tuple[str, str], server_ip: str,
                 seconds: float = 1, port: int = 5201) -> dict[str, Any]:
    """iperf3 between two containers ((host, name) each), run in their network
    namespaces; the JSON report."""
    srv_ns, cli_ns = netns_of(lab, *server), netns_of(lab, *client)
    srv = subprocess.Popen(["nsenter", f"--net={srv_ns}", "iperf3", "-s", "-1", "-p", str(port)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: _listening(srv_ns, port), what="iperf3 server listening")
        argv = ["iperf3", "-c", server_ip, "-p", str(port), "-t", str(seconds), "-J"]
        done = subprocess.run(["nsenter", f"--net={cli_ns}", *argv], capture_output=True, text=True,
                              timeout=seconds + 30)
        return dict(json.loads(done.stdout))
    finally:
        srv.kill()
        srv.wait()


def _listening(netns: str, port: int) -> bool:
    out = subprocess.run(["nsenter", f"--net={netns}", "cat", "/proc/net/tcp", "/proc/net/tcp6"],
                         capture_output=True, text=True).stdout
    return any(f":{port:04X} " in line and " 0A " in line for line in out.splitlines())


def plugs(lab: cluster.Lab, host: str) -> list[str]:
    """The agent's interfaces in HOST's namespace."""
    return sorted(n for n in links.link_names(lab.host(host).netns) if n.startswith(PLUG_PREFIXES))


def ports(lab: cluster.Lab, host: str) -> list[str]:
    """OVS ports of HOST's bridge that plug an endpoint."""
    with lab.host(host).ovsdb() as db:
        return sorted(r["name"] for r in db.interfaces(["name", "external_ids"])
                      if "daolinet-endpoint" in r["external_ids"])
