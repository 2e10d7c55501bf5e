"""Moving a Docker container to another lab host: it is re-created there with
the same logical IP and MAC (as DaoliNet did) and the same `-p` bindings.

    daolinet lab container move NAME --host H      # NAME: a lab or a Docker container

The steps, each on the lab's own dockerds (lab/docker.py):

1. inspect NAME on the dockerd that has it; check the target host, its
   dockerd, the Docker network and the image there, and that the target's
   host ports are free (nothing has changed yet: a refusal changes nothing);
2. move the daolinet endpoint to the target host (`POST /endpoints/{id}/move`):
   the address and MAC stay reserved cluster-wide throughout, the old PIP's
   routes are revoked;
3. `docker rm -f` on the source: its -p mappings are revoked there, and its
   agent only unplugs the endpoint, which is the target's now;
4. `docker run` on the target with `--ip`, `--mac-address` and the same `-p`:
   the target's IPAM adopts the moved endpoint (same id and name) and its
   -p bindings become port mappings on the *target* host, as `docker run -p`
   publishes on the host a container runs on.
If step 4 fails, the endpoint goes back and the container is run again on the
source (best effort), and the move fails with dockerd's message.

Limits: this is a re-creation, not a migration.  The container's state (its
processes, memory, open connections, writable layer) is lost: it starts
afresh from its image; only what `run_argv` carries comes along (image,
command, entrypoint, env, working dir, user, labels, hostname, restart
policy, the daolinet network with IP and MAC, -p).  Volumes, other networks,
resource limits and the like are not.  A lab container (a namespace) moves
live instead: `Lab.move_container`.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from daolinet.agent.docker_api import PLUGIN_NAME
from daolinet.errors import Conflict, DaoliError, InvalidInput, NotFound, SystemFailure
from daolinet.lab import docker

if TYPE_CHECKING:
    from daolinet.lab.cluster import Lab


@dataclass(frozen=True)
class Moved:
    name: str
    source: str
    target: str
    network: str
    ip: str
    mac: str
    endpoint: int
    container_id: str


def docker_hosts(lab: Lab) -> list[str]:
    """The lab's hosts running a dockerd."""
    return [h.name for h in lab.hosts if os.path.exists(docker.DockerPaths(h.plan).sock)]


def find(lab: Lab, name: str) -> tuple[str, dict[str, Any]] | None:
    """(host, `docker inspect`) of Docker container NAME on the lab's dockerds."""
    for host in docker_hosts(lab):
        done = docker.cli(lab.host(host).plan, "inspect", "--type", "container", name)
        if done.returncode == 0:
            return host, dict(json.loads(done.stdout)[0])
    return None


def bindings(info: dict[str, Any]) -> list[tuple[str, int, int]]:
    """(protocol, host port, container port) of every -p."""
    out = []
    for cport, binds in sorted((info["HostConfig"].get("PortBindings") or {}).items()):
        port, _, proto = cport.partition("/")
        for b in binds or []:
            out.append((proto or "tcp", int(b.get("HostPort") or 0), int(port)))
    return out


def run_argv(info: dict[str, Any], network: str, ip: str, mac: str) -> list[str]:
    """`docker run` arguments re-creating the container (see the module's limits)."""
    cfg, hc = info["Config"], info["HostConfig"]
    argv = ["run", "-d", "--name", info["Name"].lstrip("/"), "--network", network, "--ip", ip,
            "--mac-address", mac]
    if cfg.get("Hostname") and cfg["Hostname"] != info["Id"][:12]:
        argv += ["--hostname", cfg["Hostname"]]
    for env in cfg.get("Env") or []:
        argv += ["-e", env]
    for key, value in sorted((cfg.get("Labels") or {}).items()):
        argv += ["--label", f"{key}={value}"]
    if cfg.get("WorkingDir"):
        argv += ["-w", cfg["WorkingDir"]]
    if cfg.get("User"):
        argv += ["-u", cfg["User"]]
    restart = (hc.get("RestartPolicy") or {}).get("Name") or "no"
    if restart != "no":
        argv += ["--restart", restart]
    for proto, host_port, port in bindings(info):
        argv += ["-p", f"{host_port}:{port}/{proto}"]
    entrypoint, cmd = list(cfg.get("Entrypoint") or []), list(cfg.get("Cmd") or [])
    if entrypoint:
        argv += ["--entrypoint", entrypoint[0]]
    return [*argv, cfg["Image"], *entrypoint[1:], *cmd]


def _network(info: dict[str, Any], lab: Lab, host: str) -> tuple[str, str, str]:
    """(Docker network, IP, MAC): the container's only network, a daolinet one."""
    nets = info["NetworkSettings"].get("Networks") or {}
    name = info["Name"].lstrip("/")
    if len(nets) != 1:
        raise InvalidInput(f"container {name} is on {len(nets)} networks: a move re-creates a "
                           "container on exactly one daolinet network")
    (net, cfg), = nets.items()
    driver = docker.cli(lab.host(host).plan, "network", "inspect", "-f", "{{.Driver}}", net).stdout.strip()
    if driver != PLUGIN_NAME:
        raise InvalidInput(f"container {name} is on network {net} of driver {driver or '?'}, not daolinet")
    return net, cfg["IPAddress"], cfg["MacAddress"]


def _check_movable(lab: Lab, name: str, source: str, info: dict[str, Any], target: str) -> None:
    if source == target:
        raise InvalidInput(f"container {name} is already on host {source}")
    if not info["State"].get("Running"):
        raise InvalidInput(f"container {name} is not running: it holds no address to keep "
                           f"(docker start it first, or docker run it on {target})")
    if target not in docker_hosts(lab):
        raise InvalidInput(f"host {target} runs no dockerd: start one (Lab.start_dockerd)")


def move(lab: Lab, name: str, target: str) -> Moved:
    dst = lab.host(target)  # an unknown host: NotFound
    found = find(lab, name)
    if found is None:
        raise NotFound(f"lab {lab.name} has no Docker container {name} (nor lab container)")
    source, info = found
    _check_movable(lab, name, source, info, dst.name)
    net, ip, mac = _network(info, lab, source)
    for what, args in ((f"network {net}", ("network", "inspect", net)),
                       (f"image {info['Config']['Image']}", ("image", "inspect", info["Config"]["Image"]))):
        if docker.cli(dst.plan, *args).returncode != 0:
            raise Conflict(f"host {dst.name}'s dockerd has no {what}")
    with lab.api() as api:
        e = next((e for e in api.call("GET", "/endpoints", params={"host": source})
                  if e["ip"] == ip and e["mac"].lower() == mac.lower()), None)
        if e is None:
            raise NotFound(f"container {name} ({ip}) has no daolinet endpoint on host {source}")
        eid = e["id"]
        taken = {(m["protocol"], m["host_port"]): m["name"]
                 for m in api.call("GET", "/portmaps", params={"host": dst.name})}
        for proto, host_port, _ in bindings(info):
            if (proto, host_port) in taken:
                raise Conflict(f"{proto} port {host_port} of host {dst.name} is already mapped "
                               f"(port mapping {taken[(proto, host_port)]})")
        argv = run_argv(info, net, ip, mac)
        api.call("POST", f"/endpoints/{eid}/move", json={"host": dst.name})  # still reserved
        removed = docker.cli(lab.host(source).plan, "rm", "-f", name)
        if removed.returncode != 0:
            api.call("POST", f"/endpoints/{eid}/move", json={  # still plugged there
                "host": source, "port": e["port"], "ofport": e["ofport"]})
            raise SystemFailure(f"docker rm -f {name} on {source} failed: {removed.stderr.strip()}")
        done = docker.cli(dst.plan, *argv)
        if done.returncode != 0:
            with contextlib.suppress(DaoliError):  # gone if the target released it: run makes a new one
                api.call("POST", f"/endpoints/{eid}/move", json={"host": source})
            back = docker.cli(lab.host(source).plan, *argv)
            raise SystemFailure(f"docker run on {dst.name} failed: {done.stderr.strip()}; container "
                                f"{name} {'is back on' if back.returncode == 0 else 'is lost from'} "
                                f"host {source}")
    return Moved(name=name, source=source, target=dst.name, network=net, ip=ip, mac=mac,
                 endpoint=int(eid), container_id=done.stdout.strip())
