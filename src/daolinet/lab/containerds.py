"""The lab's containerds, as seen by a `Lab` (a mixin of `cluster.Lab`): one per host on
demand (`start_containerd`), its pid in the lab's state; `ctr` and `ctr_run` drive it,
`cluster.down` stops it (containerd.py)."""

from __future__ import annotations

import subprocess
import threading
from typing import TYPE_CHECKING

from daolinet.errors import NotFound
from daolinet.lab import containerd, state
from daolinet.system import procs

if TYPE_CHECKING:
    from daolinet.lab.cluster import LabHost


class Containerds:
    _state: state.LabState
    _lock: threading.Lock

    def _save(self) -> None:
        raise NotImplementedError

    def host(self, name: str) -> LabHost:
        raise NotImplementedError

    def start_containerd(self, host: str) -> str:
        """Start HOST's own containerd (lab/containerd.py) with a busybox image, unless it
        runs; its socket.  The state holds its pid (`HOST/containerd`); `down` stops it."""
        h = self.host(host)
        p = containerd.ContainerdPaths(h.plan)
        if self._containerd_pid(h.name) is not None:
            return p.sock
        pid = containerd.start(h.plan)
        with self._lock:
            self._state.pids[f"{h.name}/containerd"] = pid
            self._save()
        containerd.import_busybox(h.plan, pid)
        return p.sock

    def _containerd_pid(self, host: str) -> int | None:
        pid = self._state.pids.get(f"{host}/containerd")
        alive = pid is not None and procs.is_alive(pid)
        ours = alive and containerd.ContainerdPaths(self.host(host).plan).dir in procs.cmdline(pid or 0)
        return pid if ours else None

    def ctr(self, host: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """`ctr ARGS` against HOST's containerd (namespace daolinet-lab)."""
        h = self.host(host)
        pid = self._containerd_pid(h.name)
        if pid is None:
            raise NotFound(f"host {h.name} runs no containerd: start one (Lab.start_containerd)")
        return containerd.ctr(h.plan, pid, *args, timeout=timeout)

    def ctr_run(self, host: str, network: str, cid: str, *argv: str,
                timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """`ctr run --cni --rm` busybox as container CID on HOST, running ARGV, attached to
        daolinet network NETWORK by daolinet-cni through HOST's agent (the host's one CNI
        configuration is rewritten for NETWORK: runs on one host share it)."""
        h = self.host(host)
        containerd.write_cni_conf(h.plan, network)
        return self.ctr(h.name, *containerd.run_args(h.plan, cid, argv), timeout=timeout)
