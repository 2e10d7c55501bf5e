"""The lab's dockerds, as seen by a `Lab` (a mixin of `cluster.Lab`): one per host on
demand (`daolinet lab up --docker`, or a test's `start_dockerd`), named in the lab's
state so `daolinet lab docker HOST` finds it; `cluster.down` stops them (docker.py)."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from daolinet.lab import docker, state
from daolinet.system import procs

if TYPE_CHECKING:
    from daolinet.lab.cluster import LabHost


class Dockerds:
    _state: state.LabState
    _lock: threading.Lock
    hosts: list[LabHost]

    def _save(self) -> None:
        raise NotImplementedError

    def host(self, name: str) -> LabHost:
        raise NotImplementedError

    def start_dockerd(self, host: str) -> str:
        """Start HOST's own dockerd (lab/docker.py) with a busybox image, unless it runs;
        its URL.  The state names it (`dockerd_url`); `down` stops it."""
        h = self.host(host)
        found = self.dockerd_url(h.name)
        pid = self._state.pids.get(f"{h.name}/dockerd")
        if found is not None and pid is not None and procs.is_alive(pid):
            return found
        pid = docker.start(h.plan)
        with self._lock:
            self._state.pids[f"{h.name}/dockerd"] = pid
            self._save()
        docker.import_busybox(h.plan)
        with self._lock:
            self._state.extra.setdefault("dockerd", {})[h.name] = docker.DockerPaths(h.plan).url
            self._save()
        return docker.DockerPaths(h.plan).url

    def start_dockerds(self) -> None:
        """A dockerd on every host, started side by side."""
        with ThreadPoolExecutor(max_workers=min(len(self.hosts), 4)) as pool:
            list(pool.map(self.start_dockerd, [h.name for h in self.hosts]))

    def dockerd_url(self, host: str) -> str | None:
        """HOST's dockerd (`docker -H URL`), once started; None before."""
        found = self._state.extra.get("dockerd", {}).get(self.host(host).name)
        return str(found) if found else None
