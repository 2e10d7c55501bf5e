"""A containerd per lab host, on demand (`Lab.start_containerd`), for a real CNI runtime:
`ctr run --cni` (containerd 1.6, from Debian's docker.io) reads the network configuration
from /etc/cni/net.d and runs plugins from /opt/cni/bin.  Those, and every other fixed path
containerd, its shims and libcni use, are private to the host: containerd runs in the host's
network namespace and its own mount namespace (containerd_ns.py), every dir under the host's
run dir (`<run dir>/containerd/`), its own --root, --state, socket and config (no CRI plugin),
and `ctr` joins that namespace (`ctr_argv`).  The CNI configuration names `daolinet-cni` and
the host agent's socket (`write_cni_conf`); the image is busybox, built here as a docker
archive from busybox-static (docker.py's rootfs) and imported into containerd namespace
`daolinet-lab` (nothing can be pulled).

Cgroups: `ctr run` is given `--cgroup /dl-<lab>-<host>-ctr/<id>` (cgroupfs), so the lab's
teardown finds and removes them with dockerd's (`docker.cgroup_dirs`: the dl-<lab>-* tops, one
dir on a unified v2 hierarchy, one per controller hierarchy on v1 or the hybrid layout).

Teardown (`stop_all`, called by `cluster.down` before its sweep): kill the containers (the
shims' descendants: a busybox PID 1 ignores SIGTERM, and they name nothing of ours), then the
shims and containerd (their command lines name the run dir).  The sweep then catches anything
left, the cgroups go, then the dirs.
"""

from __future__ import annotations

import glob
import hashlib
import io
import json
import os
import platform
import subprocess
import sys
import tarfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from daolinet.cni import spec
from daolinet.cni.install import CONF_VERSION, cni_binary
from daolinet.errors import SystemFailure
from daolinet.lab import daemons, docker, plan
from daolinet.system import procs

CONTAINERD = "/usr/bin/containerd"
CTR = "/usr/bin/ctr"
NAMESPACE = "daolinet-lab"  # containerd's namespace for the lab's images and containers
IMAGE = "docker.io/library/busybox:latest"  # what `ctr images import` names busybox:latest
START_TIMEOUT = 30.0
STOP_GRACE = 10.0
CNI_CONF = "10-daolinet.conf"
# Plugins a lab containerd does without: the CRI (and its CNI setup), snapshotters this
# machine lacks, tracing, and "opt" (it would make /opt/containerd).
DISABLED_PLUGINS = ("io.containerd.grpc.v1.cri", "io.containerd.internal.v1.opt",
                    "io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
                    "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs",
                    "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing")


@dataclass(frozen=True)
class ContainerdPaths:
    host: plan.HostPlan

    @property
    def dir(self) -> str:
        return os.path.join(self.host.rundir(), "containerd")

    def _in(self, name: str) -> str:
        return os.path.join(self.dir, name)

    root = property(lambda self: self._in("root"))
    state = property(lambda self: self._in("state"))
    sock = property(lambda self: self._in("containerd.sock"))
    config = property(lambda self: self._in("config.toml"))
    log = property(lambda self: self._in("containerd.log"))
    pidfile = property(lambda self: self._in("containerd.pid"))
    fifo = property(lambda self: self._in("fifo"))  # ctr's stdio fifos, opened by the shim too
    net_d = property(lambda self: self._in("cni/net.d"))  # /etc/cni/net.d in the namespace
    bin = property(lambda self: self._in("cni/bin"))  # /opt/cni/bin in the namespace


def cgroup(host: plan.HostPlan, cid: str) -> str:
    """Where `ctr run` puts container CID (cgroupfs path; see the module's docstring)."""
    return f"/dl-{host.lab}-{host.name}-ctr/{cid}"


def config_toml(p: ContainerdPaths) -> str:
    """containerd's config (TOML; its strings written as JSON strings, which TOML reads alike)."""
    q = json.dumps
    return "\n".join([
        "version = 2", f"root = {q(p.root)}", f"state = {q(p.state)}",
        f"disabled_plugins = {q(list(DISABLED_PLUGINS))}",
        "[grpc]", f"  address = {q(p.sock)}",
        "[ttrpc]", '  address = ""', "[debug]", '  address = ""', "[metrics]", '  address = ""', ""])


def containerd_argv(host: plan.HostPlan) -> list[str]:
    p = ContainerdPaths(host)
    return [CONTAINERD, f"--config={p.config}", f"--root={p.root}", f"--state={p.state}",
            f"--address={p.sock}", "--log-level=warn"]


def start(host: plan.HostPlan) -> int:
    """Start HOST's containerd and wait until it answers; its pid."""
    p = ContainerdPaths(host)
    for d in (p.root, p.state, p.fifo, p.net_d, p.bin):
        os.makedirs(d, exist_ok=True)
    with open(p.config, "w") as f:
        f.write(config_toml(p))
    link = os.path.join(p.bin, spec.PLUGIN_TYPE)
    if not os.path.lexists(link):
        os.symlink(cni_binary(), link)
    in_ns = [sys.executable, "-m", "daolinet.lab.containerd_ns", host.rundir(), p.dir, "--"]
    argv = procs.in_netns(host.netns, ["unshare", "--mount", "--propagation", "private", "--",
                                       *in_ns, *containerd_argv(host)])
    with open(p.log, "ab") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)  # nsenter, unshare and python exec: one pid
    with open(p.pidfile, "w") as f:
        f.write(f"{proc.pid}\n")
    _wait_ready(proc, host)
    return proc.pid


def _wait_ready(proc: subprocess.Popen[bytes], host: plan.HostPlan) -> None:
    p = ContainerdPaths(host)
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline and proc.poll() is None:
        if os.path.exists(p.sock) and ctr(host, proc.pid, "version", timeout=10).returncode == 0:
            return
        time.sleep(0.1)
    with open(p.log, errors="replace") as f:
        tail = " | ".join(f.read().strip().splitlines()[-3:])
    raise SystemFailure(f"containerd of {host.name} did not start: {tail}")


def ctr_argv(host: plan.HostPlan, pid: int, args: Sequence[str]) -> list[str]:
    """`ctr ARGS` against HOST's containerd (pid PID), in its network and mount namespaces."""
    return ["nsenter", f"--target={pid}", "--net", "--mount", "--", CTR,
            f"--address={ContainerdPaths(host).sock}", f"--namespace={NAMESPACE}", *args]


def ctr(host: plan.HostPlan, pid: int, *args: str, check: bool = False, timeout: float = 60,
        stdin: bytes | None = None) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(ctr_argv(host, pid, args), capture_output=True, timeout=timeout, input=stdin)
    out = subprocess.CompletedProcess(done.args, done.returncode, done.stdout.decode(errors="replace"),
                                      done.stderr.decode(errors="replace"))
    if check and out.returncode != 0:
        raise SystemFailure(f"ctr {' '.join(args[:3])}... failed: {out.stderr.strip()}")
    return out


def run_args(host: plan.HostPlan, cid: str, argv: Sequence[str]) -> list[str]:
    """`ctr run --cni --rm` of busybox as container CID running ARGV."""
    p = ContainerdPaths(host)
    return ["run", "--rm", "--cni", f"--fifo-dir={p.fifo}", f"--cgroup={cgroup(host, cid)}", IMAGE, cid,
            *argv]


# -- CNI configuration and image ---------------------------------------------------------


def cni_conf(network: str, agent_socket: str) -> dict[str, Any]:
    """The one network `ctr run --cni` sets up: daolinet's, through HOST's agent.  cniVersion
    1.0.0: this containerd's libcni (1.1) refuses a 1.1.0 result ("unsupported CNI result version")."""
    return {"cniVersion": CONF_VERSION, "name": network, "type": spec.PLUGIN_TYPE, "network": network,
            "agentSocket": agent_socket}


def write_cni_conf(host: plan.HostPlan, network: str) -> None:
    """Make NETWORK the one in HOST's private net.d (replaced atomically: ctr reads it at each run)."""
    p = ContainerdPaths(host)
    tmp = os.path.join(p.net_d, f".{CNI_CONF}.tmp")
    with open(tmp, "w") as f:
        json.dump(cni_conf(network, daemons.agent_sock(host)), f)
    os.replace(tmp, os.path.join(p.net_d, CNI_CONF))


def image_archive(rootfs: bytes, arch: str) -> bytes:
    """A docker-archive (`docker save` layout) of one layer, ROOTFS, tagged busybox:latest."""
    layer = hashlib.sha256(rootfs).hexdigest()
    config = json.dumps({"architecture": arch, "os": "linux", "config": {"Cmd": ["sh"]},
                         "rootfs": {"type": "layers", "diff_ids": [f"sha256:{layer}"]}}).encode()
    config_name = f"{hashlib.sha256(config).hexdigest()}.json"
    manifest = json.dumps([{"Config": config_name, "RepoTags": ["busybox:latest"],
                            "Layers": [f"{layer}/layer.tar"]}]).encode()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        files = ((f"{layer}/layer.tar", rootfs), (config_name, config), ("manifest.json", manifest))
        for name, data in files:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def go_arch(machine: str | None = None) -> str:
    """The OCI architecture of this machine (`uname -m` names it otherwise)."""
    machine = machine or platform.machine()
    return {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386"}.get(machine, machine)


def import_busybox(host: plan.HostPlan, pid: int) -> None:
    path = os.path.join(ContainerdPaths(host).dir, "busybox.tar")
    with open(path, "wb") as f:
        f.write(image_archive(docker.busybox_rootfs(), go_arch()))
    ctr(host, pid, "images", "import", path, check=True, timeout=120)
    os.unlink(path)


# -- teardown --------------------------------------------------------------------------


def stop_all(lab_dir: str) -> None:
    """Stop every containerd of the lab whose run dir is `lab_dir`, its shims and containers."""
    for d in glob.glob(os.path.join(lab_dir, "*", "containerd")):
        ours = procs.pids_mentioning(d + "/")  # containerd, its shims, ctr
        procs.stop(docker.descendants(ours) - set(ours), grace=1.0)
        procs.stop(ours, grace=STOP_GRACE)
