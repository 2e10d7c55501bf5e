"""Simulated machines: each its own network, mount and UTS namespace, so the daemons
inside use their production default paths (/etc/daolinet/*.toml, /run/openvswitch,
/run/docker/plugins, /var/lib/docker, /opt/cni/bin) and nothing lab-specific.

A machine sees the real root file system, except for copy-on-write overlays of /etc,
/var, /opt, /usr/local and /root (what it writes stays its own), a fresh tmpfs on /run and
/tmp (as after a boot), its own /var/lib/docker and /var/lib/containerd (real
directories: Docker's overlay2 cannot stack on an overlay), its own hostname, and
/var/share: a directory shared by every machine of a set (how files "arrive", like
a copied wheel).  Its one network interface, the uplink, sits on a fabric segment
(a Linux bridge in its own namespace, which also holds the segment's gateway) with
the machine's address and default route on it, as on a real server.

A machine's processes are the ones in its mount namespace: `power_off` kills them
all (a crash or a reboot), whoever started them and however they daemonised.
Nothing is mounted outside the machines but the set's own directory (made private
so the pinned namespaces can live in it), and `destroy` removes everything.
"""

from __future__ import annotations

import contextlib
import glob
import ipaddress
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass

from daolinet.errors import SystemFailure
from daolinet.lab import plan
from daolinet.system import links, procs

OVERLAID = ("/etc", "/var", "/opt", "/usr/local", "/root")  # copy-on-write: the machine's own
OWN_DIRS = ("/var/lib/docker", "/var/lib/containerd")  # real directories of its own
SHARE = "/var/share"  # inside the /var overlay: creating it touches no real directory
FABRIC_BRIDGE = "fab"
CGROUP_ROOT = "/sys/fs/cgroup"
UPLINK = "ens3"  # a server NIC's name: nothing here may assume eth0


def _mount_script(root: str, name: str) -> str:
    """Shell commands, run inside the new mount namespace, that make it a machine."""
    lines = []
    for path in OVERLAID:
        key = path.strip("/").replace("/", "_")
        up, work = f"{root}/fs/{key}/up", f"{root}/fs/{key}/work"
        lines.append(f"mount -t overlay overlay -o lowerdir={path},upperdir={up},workdir={work} {path}")
    for path in OWN_DIRS:
        own = f"{root}/fs/own{path.replace('/', '_')}"
        lines += [f"mkdir -p {path}", f"mount --bind {own} {path}"]
    lines += [f"mkdir -p {SHARE}", f"mount --bind {os.path.dirname(root)}/share {SHARE}",
              f"echo {name} > /etc/hostname", "mount -t tmpfs -o mode=1777 tmpfs /tmp",
              "mount -t tmpfs -o mode=755 tmpfs /run", "mkdir -p /run/lock /run/user"]
    return " && ".join(lines)


@dataclass(frozen=True)
class Machine:
    set_name: str
    name: str
    ip: str  # the machine's underlay address (on its uplink at first)
    prefixlen: int
    gateway: str

    @property
    def root(self) -> str:
        return f"{plan.lab_dir(self.set_name)}/{self.name}"

    @property
    def netns(self) -> str:
        return f"{plan.netns_prefix(self.set_name)}{self.name}"

    @property
    def mnt(self) -> str:
        return f"{self.root}/ns/mnt"

    @property
    def uts(self) -> str:
        return f"{self.root}/ns/uts"

    def argv(self, argv: Sequence[str]) -> list[str]:
        """argv that runs inside this machine (root, its namespaces, / as cwd)."""
        return ["nsenter", f"--net={procs.NETNS_RUN_DIR}/{self.netns}", f"--mount={self.mnt}",
                f"--uts={self.uts}", "--wd=/", "--", *argv]

    def run(self, argv: Sequence[str], *, check: bool = True, timeout: float = 120,
            env: dict[str, str] | None = None, input: str | None = None) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(self.argv(argv), capture_output=True, text=True, timeout=timeout,
                              env=_env(env), input=input, check=False)
        if check and done.returncode != 0:
            detail = (done.stderr or done.stdout).strip()
            raise SystemFailure(f"{self.name}: {' '.join(argv)} exited {done.returncode}: {detail[-2000:]}")
        return done

    def sh(self, script: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
        return self.run(["sh", "-c", script], **kwargs)  # type: ignore[arg-type]

    def popen(self, argv: Sequence[str], env: dict[str, str] | None = None,
              **kwargs: object) -> subprocess.Popen[str]:
        return subprocess.Popen(self.argv(argv), env=_env(env), text=True, **kwargs)  # type: ignore[call-overload]

    def read(self, path: str) -> str:
        return self.run(["cat", path]).stdout

    def pids(self) -> list[int]:
        """Every process living in this machine: in its mount namespace, or in its containers'
        cgroups (a container has a mount namespace of its own)."""
        found = _cgroup_pids(self.netns)
        try:
            ino = os.stat(self.mnt).st_ino
        except FileNotFoundError:
            return found
        for entry in os.listdir("/proc"):
            if not entry.isdigit() or int(entry) == os.getpid():
                continue
            with contextlib.suppress(OSError):
                if os.readlink(f"/proc/{entry}/ns/mnt") == f"mnt:[{ino}]" and procs.is_alive(int(entry)):
                    found.append(int(entry))
        return sorted(set(found))

    def power_off(self, timeout: float = 10) -> None:
        """Kill every process of the machine at once and lose /run and /tmp, as a power cut would."""
        deadline = time.monotonic() + timeout
        while (alive := self.pids()) and time.monotonic() < deadline:
            for pid in alive:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.05)  # polling for the kernel to finish them, bounded by the deadline
        if self.pids():
            raise SystemFailure(f"machine {self.name}: processes {self.pids()} survived SIGKILL")
        # What lived in memory is gone: /run and /tmp start empty (and Docker's namespace
        # mounts under /run/docker/netns with them), as after a reboot.
        subprocess.run(["nsenter", f"--mount={self.mnt}", "--", "sh", "-c",
                        "umount -R -l /run /tmp; mount -t tmpfs -o mode=1777 tmpfs /tmp && "
                        "mount -t tmpfs -o mode=755 tmpfs /run && mkdir -p /run/lock /run/user"],
                       capture_output=True, check=False)


def _cgroups(prefix: str) -> list[str]:
    """Top-level cgroups named PREFIX*, in every hierarchy: unified v2 (/sys/fs/cgroup/NAME) and
    hybrid v1 (/sys/fs/cgroup/CONTROLLER/NAME, /sys/fs/cgroup/unified/NAME)."""
    return sorted(glob.glob(f"{CGROUP_ROOT}/{prefix}*") + glob.glob(f"{CGROUP_ROOT}/*/{prefix}*"))


def _cgroup_pids(prefix: str) -> list[int]:
    """Live processes in the cgroups named PREFIX* and below them."""
    found: set[int] = set()
    for top in _cgroups(prefix):
        for path, _dirs, files in os.walk(top):
            if "cgroup.procs" in files:
                with contextlib.suppress(OSError), open(os.path.join(path, "cgroup.procs")) as f:
                    found.update(int(p) for p in f.read().split())
    return [p for p in found if procs.is_alive(p)]


def remove_cgroups(prefix: str) -> None:
    """Remove those cgroups, deepest first (each is empty once its processes are gone)."""
    for top in _cgroups(prefix):
        for path, _dirs, _files in sorted(os.walk(top), key=lambda w: -w[0].count("/")):
            with contextlib.suppress(OSError):
                os.rmdir(path)


def _env(extra: dict[str, str] | None) -> dict[str, str]:
    """A machine's processes get a plain root environment, not the test's virtualenv."""
    env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root",
           "LANG": "C.UTF-8"}
    env.update(extra or {})
    return env


class Machines:
    """A set of machines on one fabric segment (198.18.64.0/24 by default)."""

    def __init__(self, name: str, subnet: str = "198.18.64.0/24") -> None:
        self.name = name
        self.net = ipaddress.IPv4Network(subnet)
        if not self.net.subnet_of(ipaddress.IPv4Network(plan.UNDERLAY)):
            raise SystemFailure(f"{subnet} is not inside the underlay range {plan.UNDERLAY}")
        self.machines: dict[str, Machine] = {}

    @property
    def dir(self) -> str:
        return plan.lab_dir(self.name)

    @property
    def share(self) -> str:
        return f"{self.dir}/share"

    @property
    def fabric(self) -> str:
        return f"{plan.netns_prefix(self.name)}fab"

    @property
    def gateway(self) -> str:
        return str(self.net.network_address + 1)

    def __enter__(self) -> Machines:
        return self

    def __exit__(self, *exc: object) -> None:
        self.destroy()

    def create(self, *names: str) -> list[Machine]:
        if not self.machines:
            self._create_fabric()
        made = [self._create(n) for n in names]
        return made

    def _create_fabric(self) -> None:
        os.makedirs(self.share, exist_ok=True)
        # Pinned namespaces must live on a mount that does not propagate (as ip-netns does).
        procs.run(["mount", "--bind", self.dir, self.dir])
        procs.run(["mount", "--make-private", self.dir])
        links.create_netns(self.fabric)
        links.add_bridge(self.fabric, FABRIC_BRIDGE)
        links.link_up(self.fabric, FABRIC_BRIDGE, address=f"{self.gateway}/{self.net.prefixlen}")

    def _create(self, name: str) -> Machine:
        if name in self.machines or name == "fab":
            raise SystemFailure(f"machine {name} exists")
        ip = str(self.net.network_address + 10 + len(self.machines))
        m = Machine(self.name, name, ip, self.net.prefixlen, self.gateway)
        self.machines[name] = m
        for path in OVERLAID:
            key = path.strip("/").replace("/", "_")
            os.makedirs(f"{m.root}/fs/{key}/up")
            os.makedirs(f"{m.root}/fs/{key}/work")
        for path in OWN_DIRS:
            os.makedirs(f"{m.root}/fs/own{path.replace('/', '_')}")
        os.makedirs(f"{m.root}/ns")
        for f in (m.mnt, m.uts):
            open(f, "w").close()
        procs.run(["unshare", f"--mount={m.mnt}", f"--uts={m.uts}", "--propagation", "private",
                   "sh", "-c", f"hostname {name} && {_mount_script(m.root, name)}"])
        links.create_netns(m.netns)
        links.add_veth(self.fabric, name, m.netns, UPLINK)
        links.set_master(self.fabric, name, FABRIC_BRIDGE)
        links.link_up(self.fabric, name)
        links.link_up(m.netns, UPLINK, address=f"{ip}/{self.net.prefixlen}")
        # A real NIC puts finished checksums on the wire; a veth hands partial ones to its peer,
        # which OVS's userspace datapath passes on unfinished (and the receiver drops TCP).
        for ns, dev in ((m.netns, UPLINK), (self.fabric, name)):
            links.tx_offload_off(ns, dev)
        links.add_route(m.netns, "0.0.0.0/0", self.gateway)
        return m

    def destroy(self) -> None:
        """Power every machine off and remove all of the set; safe to call twice."""
        for m in self.machines.values():
            with contextlib.suppress(SystemFailure):
                m.power_off()
        for m in self.machines.values():
            for f in (m.mnt, m.uts):
                subprocess.run(["umount", f], capture_output=True, check=False)
            links.remove_netns(m.netns)
        links.remove_netns(self.fabric)
        remove_cgroups(plan.netns_prefix(self.name))
        if os.path.isdir(self.dir):
            subprocess.run(["umount", "-R", self.dir], capture_output=True, check=False)
            shutil.rmtree(self.dir, ignore_errors=True)
        self.machines.clear()

    def cgroup_parent(self, machine: str) -> str:
        """Where a machine's dockerd and containerd put their containers' cgroups (found again by
        `destroy`): the machines share this machine's cgroup tree."""
        return f"{plan.netns_prefix(self.name)}{machine}"

    def leftovers(self) -> list[str]:
        found = [f"netns {n}" for n in links.list_netns(plan.netns_prefix(self.name))]
        found += [f"cgroup {d}" for d in _cgroups(plan.netns_prefix(self.name))]
        if os.path.exists(self.dir):
            found.append(f"dir {self.dir}")
        with open("/proc/self/mountinfo") as f:
            found += [f"mount {line.split()[4]}" for line in f if f" {self.dir}" in line]
        return found
