"""A dockerd per lab host, on demand (`Lab.start_dockerd`): Debian's docker.io
in the host's network namespace and its own mount namespace (dockerd_ns.py),
every dir under the host's run dir (`<run dir>/docker/`), a `busybox`
image imported from busybox-static (nothing can be pulled).  Its plugin dir
is the one the host's agent serves daolinet.sock in; its containers' cgroups
live under /dl-<lab>-<host>, so a teardown can find what it left: on a unified
(v2) hierarchy one dir, /sys/fs/cgroup/dl-<lab>-<host>; on v1 or the hybrid layout
one per controller hierarchy, /sys/fs/cgroup/<controller>/dl-<lab>-<host>
(`cgroup_dirs`).

Teardown (`cluster.down`): stop dockerd first (it kills its containers within
a second), then sweep every process that names the run dir *and its
descendants* (a container's processes name nothing of ours), then the cgroups.
"""

from __future__ import annotations

import contextlib
import glob
import io
import json
import os
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import httpx

from daolinet.errors import SystemFailure
from daolinet.lab import plan
from daolinet.model.addresses import RESOLVER4
from daolinet.system import procs

DOCKERD = "/usr/sbin/dockerd"
DOCKER = "/usr/bin/docker"  # the client of the same release as dockerd
BUSYBOX = "/usr/bin/busybox"  # busybox-static
IMAGE = "busybox:latest"
START_TIMEOUT = 30.0
STOP_GRACE = 15.0
CGROUP_ROOT = "/sys/fs/cgroup"


@dataclass(frozen=True)
class DockerPaths:
    host: plan.HostPlan

    @property
    def dir(self) -> str:
        return os.path.join(self.host.rundir(), "docker")

    def _in(self, name: str) -> str:
        return os.path.join(self.dir, name)

    plugins = property(lambda self: self._in("plugins"))  # the agent's daolinet.sock is here
    etc = property(lambda self: self._in("etc"))
    data = property(lambda self: self._in("data"))
    exec_root = property(lambda self: self._in("exec"))
    sock = property(lambda self: self._in("docker.sock"))
    pidfile = property(lambda self: self._in("docker.pid"))
    config = property(lambda self: self._in("daemon.json"))
    log = property(lambda self: self._in("dockerd.log"))
    cli_config = property(lambda self: self._in("cli"))

    @property
    def url(self) -> str:
        return f"unix://{self.sock}"


def cgroup_parent(host: plan.HostPlan) -> str:
    return f"/dl-{host.lab}-{host.name}"


def dockerd_argv(host: plan.HostPlan) -> list[str]:
    p = DockerPaths(host)
    return [DOCKERD, f"--data-root={p.data}", f"--exec-root={p.exec_root}", f"--host={p.url}",
            f"--pidfile={p.pidfile}", f"--config-file={p.config}", "--bridge=none", "--iptables=false",
            "--ip6tables=false", "--ip-forward=false", "--ip-masq=false", "--userland-proxy=false",
            # cgroupfs on v1 and v2 alike: with systemd's driver (dockerd's default on v2 under
            # systemd) the parent would have to be a slice, and systemd would own the cgroups.
            f"--cgroup-parent={cgroup_parent(host)}", "--exec-opt=native.cgroupdriver=cgroupfs",
            "--shutdown-timeout=1", "--storage-driver=overlay2",
            # Names Docker's embedded DNS does not know (containers on other hosts) go to the
            # resolver address, which each host's agent answers (flows/dns.py).
            f"--dns={RESOLVER4}", "--log-level=warn"]


def start(host: plan.HostPlan) -> int:
    """Start HOST's dockerd and wait until it answers; its pid."""
    p = DockerPaths(host)
    for d in (p.plugins, p.etc, p.data, p.exec_root, p.cli_config):
        os.makedirs(d, exist_ok=True)
    with open(p.config, "w") as f:
        json.dump({"deprecated-key-path": os.path.join(p.dir, "key.json")}, f)  # not /etc/docker
    argv = procs.in_netns(host.netns, ["unshare", "--mount", "--propagation", "private", "--",
                                       sys.executable, "-m", "daolinet.lab.dockerd_ns", p.dir, "--",
                                       *dockerd_argv(host)])
    with open(p.log, "ab") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)  # nsenter, unshare and python exec: one pid
    _wait_ready(proc, p)
    return proc.pid


def _wait_ready(proc: subprocess.Popen[bytes], p: DockerPaths) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    with httpx.Client(transport=httpx.HTTPTransport(uds=p.sock), base_url="http://docker", timeout=5) as c:
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                if os.path.exists(p.sock) and c.get("/_ping").status_code == 200:
                    return
            except httpx.HTTPError:
                pass  # not listening yet
            time.sleep(0.05)
    with open(p.log, errors="replace") as f:
        tail = " | ".join(f.read().strip().splitlines()[-3:])
    raise SystemFailure(f"dockerd of {p.host.name} did not start: {tail}")


def client_argv(host: plan.HostPlan, args: Sequence[str]) -> list[str]:
    """The docker client's command line against HOST's dockerd."""
    return [DOCKER, "-H", DockerPaths(host).url, *args]


def client_env(host: plan.HostPlan) -> dict[str, str]:
    """The client's environment: its own config dir (not the user's ~/.docker)."""
    return {**os.environ, "DOCKER_CONFIG": DockerPaths(host).cli_config}


def cli(host: plan.HostPlan, *args: str, check: bool = False, timeout: float = 60,
        stdin: bytes | None = None) -> subprocess.CompletedProcess[str]:
    """Run the docker client against HOST's dockerd."""
    done = subprocess.run(client_argv(host, args), env=client_env(host), capture_output=True, timeout=timeout,
                          input=stdin)
    out = subprocess.CompletedProcess(done.args, done.returncode, done.stdout.decode(errors="replace"),
                                      done.stderr.decode(errors="replace"))
    if check and out.returncode != 0:
        raise SystemFailure(f"docker {' '.join(args[:3])}... failed: {out.stderr.strip()}")
    return out


def busybox_rootfs() -> bytes:
    """A tar of a minimal root file system: static busybox and its applets."""
    applets = subprocess.run([BUSYBOX, "--list"], capture_output=True, text=True, check=True).stdout.split()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for d in ("bin", "dev", "etc", "proc", "sys", "tmp", "root"):
            info = tarfile.TarInfo(d)
            info.type, info.mode = tarfile.DIRTYPE, 0o1777 if d == "tmp" else 0o755
            tar.addfile(info)
        tar.add(BUSYBOX, arcname="bin/busybox")
        for name in applets:
            if name != "busybox":
                link = tarfile.TarInfo(f"bin/{name}")
                link.type, link.linkname = tarfile.SYMTYPE, "busybox"
                tar.addfile(link)
    return buf.getvalue()


def import_busybox(host: plan.HostPlan) -> None:
    cli(host, "import", "--change", 'CMD ["sh"]', "-", IMAGE, stdin=busybox_rootfs(), check=True)


# -- teardown --------------------------------------------------------------------------


def stop_all(lab_dir: str) -> None:
    """Stop every dockerd of the lab whose run dir is `lab_dir`: kill its
    containers (a busybox PID 1 ignores SIGTERM, and dockerd would give each
    10 s), then stop dockerd itself."""
    pids = []
    for pidfile in glob.glob(os.path.join(lab_dir, "*", "docker", "docker.pid")):
        pid = procs.read_pidfile(pidfile)
        if pid is not None and lab_dir in procs.cmdline(pid):
            _kill_containers(os.path.join(os.path.dirname(pidfile), "docker.sock"))
            pids.append(pid)
    procs.stop(pids, grace=STOP_GRACE)


def _kill_containers(sock: str) -> None:
    with contextlib.suppress(httpx.HTTPError), \
            httpx.Client(transport=httpx.HTTPTransport(uds=sock), base_url="http://docker", timeout=10) as c:
        for ctr in c.get("/containers/json").json():
            c.post(f"/containers/{ctr['Id']}/kill")


def descendants(pids: Iterable[int]) -> set[int]:
    """Every process below `pids` (a container's processes are below its shim)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    found: set[int] = set()
    todo = list(pids)
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def unified(root: str = CGROUP_ROOT) -> bool:
    """Is `root` a cgroup v2 (unified) hierarchy?  Its root holds cgroup.controllers;
    v1's and the hybrid layout's root is a tmpfs of per-controller mounts."""
    return os.path.exists(os.path.join(root, "cgroup.controllers"))


def cgroup_dirs(lab: str, root: str = CGROUP_ROOT) -> list[str]:
    """The top cgroup dirs the lab's dockerds (and containerds: containerd.py) made (see the
    module's docstring)."""
    pattern = f"dl-{lab}-*" if unified(root) else f"*/dl-{lab}-*"
    return sorted(glob.glob(os.path.join(root, pattern)))


def remove_cgroups(lab: str, root: str = CGROUP_ROOT) -> None:
    """The cgroups the lab's dockerds made (empty once their processes are gone): the
    deepest first, since a cgroup with children cannot go."""
    for top in cgroup_dirs(lab, root):
        for d, _, _ in sorted(os.walk(top, topdown=False), key=lambda w: -len(w[0])):
            with contextlib.suppress(OSError):  # still in use, or gone: a later teardown retries
                os.rmdir(d)
