"""The lab's controllers, as seen by a `Lab` (a mixin of `cluster.Lab`): starting and
stopping them, their APIs, and the store they share (SQLite, or the lab's etcd cluster
with several controllers: lab/ha.py)."""

from __future__ import annotations

import os
import threading
import time

from daolinet.errors import DaoliError, NotFound, SystemFailure
from daolinet.lab import credentials, daemons, ha, plan, state
from daolinet.lab.client import Endpoint, LabClient
from daolinet.security.tls import TlsFiles
from daolinet.store.liveness import DEFAULT_HOST_TTL
from daolinet.system import procs


class Controllers:
    name: str
    _state: state.LabState
    _lock: threading.Lock

    def _save(self) -> None:
        raise NotImplementedError

    @property
    def has_controller(self) -> bool:
        return "controller" in self._state.extra

    @property
    def api_url(self) -> str:
        if not self.has_controller:
            raise NotFound(f"lab {self.name} runs no controller")
        return str(self._state.extra["controller"]["api"])

    @property
    def admin_token(self) -> str:
        with open(daemons.ControllerPaths(self.name).admin_token) as f:
            return f.read().strip()

    @property
    def api_urls(self) -> list[str]:
        """Every controller's API (the first is `api_url`)."""
        if not self.has_controller:
            raise NotFound(f"lab {self.name} runs no controller")
        ctls = self._state.extra.get("controllers") or [self._state.extra["controller"]]
        return [str(c["api"]) for c in ctls]

    @property
    def secure(self) -> bool:
        """TLS and certificates everywhere (not an `--insecure` lab)."""
        return not self._state.extra.get("insecure", False)

    @property
    def api_tls(self) -> TlsFiles | None:
        """The lab's CA and its admin user's pair (None: an --insecure lab)."""
        return credentials.admin(self.name) if self.secure else None

    @property
    def api_uds(self) -> str:
        """The unix socket of the first running controller's API (the root namespace has no
        address on the underlay)."""
        return daemons.ControllerPaths(self.name, self._running_index()).api_sock

    def _running_index(self) -> int:
        running = [i for i in range(len(self.api_urls))
                   if (pid := self.controller_pid(i)) is not None and procs.is_alive(pid)]
        return running[0] if running else 0

    def api(self, token: str | None = None, index: int | None = None) -> LabClient:
        """A client of controller `index`'s API, as the lab's admin (its user certificate; the
        admin token in an --insecure lab) unless given another token.  Without `index`: every
        controller, starting with the first one running, failing over as the CLI does."""
        if token is None and not self.secure:
            token = self.admin_token
        if index is not None:
            return LabClient(self.api_urls[index], uds=daemons.ControllerPaths(self.name, index).api_sock,
                             token=token, tls=self.api_tls)
        endpoints = [Endpoint(url, daemons.ControllerPaths(self.name, i).api_sock)
                     for i, url in enumerate(self.api_urls)]
        return LabClient(endpoints, token=token, tls=self.api_tls, start=self.api_urls[self._running_index()])

    def _start_store(self, store: str) -> None:
        if store == "etcd":
            url, pids, tls = ha.start_etcd(self.name, netns=plan.control_netns(self.name),
                                           host=str(plan.etcd_ip()), tls=self.secure)
            with self._lock:
                self._state.extra["store"] = url
                if tls is not None:  # the controllers' etcd client pair (etcd_tls below)
                    self._state.extra["etcd_tls"] = {"ca": tls.ca, "cert": tls.cert, "key": tls.key}
                self._state.pids.update(pids)
                self._save()

    @property
    def log_format(self) -> str:
        """Its daemons' --log-format: text, or json."""
        return str(self._state.extra.get("log_format", "text"))

    def controller_metrics(self, index: int = 0) -> tuple[str, str]:
        """(namespace, URL) of controller `index`'s token-less /metrics."""
        address = daemons.ControllerPaths(self.name, index).metrics
        return plan.control_netns(self.name), f"http://{address}/metrics"

    @property
    def host_ttl(self) -> int:
        """Seconds without a heartbeat before a host is marked down (controllers' --host-ttl)."""
        return int(self._state.extra.get("host_ttl", DEFAULT_HOST_TTL))

    @property
    def controller_paths(self) -> list[daemons.ControllerPaths]:
        n = len(self._state.extra.get("controllers", [None]))
        return [daemons.ControllerPaths(self.name, i) for i in range(n)]

    @property
    def etcd_tls(self) -> TlsFiles | None:
        found = self._state.extra.get("etcd_tls")
        return TlsFiles(**found) if found else None

    def start_controller(self, index: int = 0) -> None:
        """Start (or restart) controller `index`; its store survives restarts."""
        tls = credentials.controller(self.name, index) if self.secure else None
        proc, ready = daemons.start_controller(self.name, int(self._state.extra["idle_timeout"]), index,
                                               self._state.extra.get("store"), self.host_ttl, tls,
                                               self.etcd_tls, self.log_format)
        with self._lock:
            entry = {"api": ready["api"], "pid": proc.pid}
            ctls = self._state.extra.setdefault("controllers", [])
            ctls[index:index + 1] = [entry]
            if index == 0:
                self._state.extra["controller"] = entry
            self._state.pids[self._controller_role(index)] = proc.pid
            self._save()
            daemons.write_api_file(self.name, [str(c["api"]) for c in ctls])

    @staticmethod
    def _controller_role(index: int) -> str:
        return "controller" if index == 0 else f"controller{index}"

    def controller_pid(self, index: int = 0) -> int | None:
        return self._state.pids.get(self._controller_role(index))

    def stop_controller(self, sig: int = 15, index: int = 0) -> None:
        pid = self._state.pids.get(self._controller_role(index))
        if pid is not None and procs.is_alive(pid):
            os.kill(pid, sig)
            procs.stop([pid])
    def wait_synced(self, dpids: list[int], timeout: float = 30.0) -> None:
        """Until every switch is synced by its master (with several controllers: by any)."""
        deadline = time.monotonic() + timeout
        clients = [self.api(index=i) for i in range(len(self.api_urls))]
        try:
            while True:
                synced = {d for api in clients for d in self._synced(api)}
                if set(dpids) <= synced:
                    return
                if time.monotonic() > deadline:
                    raise SystemFailure(f"switches {sorted(set(dpids) - synced)} never synced")
                time.sleep(0.02)
        finally:
            for api in clients:
                api.http.close()

    @staticmethod
    def _synced(api: LabClient) -> list[int]:
        try:
            return list(api.call("GET", "/health")["synced"])
        except DaoliError:
            return []  # a dead controller of several
