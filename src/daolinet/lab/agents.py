"""The lab's agents, as seen by a `Lab` (a mixin of `cluster.Lab`): one per host, started
with the host's credential (a certificate, or with `--insecure` a host token), and
waited for until the controllers have synced the host's bridge and the agent's
bootstrap flows are gone; its unix socket is `Lab.agent(host)`."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from typing import TYPE_CHECKING

from daolinet.agent import bootstrap
from daolinet.errors import SystemFailure
from daolinet.lab import credentials, daemons, plan, state
from daolinet.lab.client import LabClient
from daolinet.system import procs

if TYPE_CHECKING:
    from daolinet.lab.cluster import LabHost


class Agents:
    name: str
    hosts: list[LabHost]
    _state: state.LabState
    _lock: threading.Lock

    if TYPE_CHECKING:  # the rest of cluster.Lab (itself, Controllers) provides these
        @property
        def secure(self) -> bool: ...
        @property
        def host_ttl(self) -> int: ...
        @property
        def controller_paths(self) -> list[daemons.ControllerPaths]: ...
        @property
        def log_format(self) -> str: ...
        @property
        def ipv6(self) -> bool: ...

        def _save(self) -> None: ...
        def host(self, name: str) -> LabHost: ...
        def api(self, token: str | None = None, index: int | None = None) -> LabClient: ...
        def wait_synced(self, dpids: list[int], timeout: float = 30.0) -> None: ...

    def agent(self, host: str) -> LabClient:
        return LabClient(uds=daemons.agent_sock(self.host(host).plan))

    def agent_metrics(self, host: str) -> tuple[str, str]:
        """(namespace, URL) of HOST's agent's token-less /metrics."""
        h = self.host(host)
        return h.plan.netns, f"http://{daemons.agent_metrics(h.plan)}/metrics"

    def start_agents(self, hosts: list[str] | None = None) -> None:
        """Start (or restart) agents; wait until their bridges are synced."""
        chosen = [self.host(n) for n in hosts] if hosts else self.hosts
        started = {}
        for h in chosen:
            gw_mac = self._state.extra.get("gateway_macs", {}).get(str(h.plan.rack), "")
            tls = credentials.host(self.name, h.name) if self.secure else None
            token = None if self.secure else self._host_token(h)
            started[h.name] = daemons.start_agent(h.plan, self.controller_paths, h.ovs.db_endpoint,
                                                  gw_mac, self.host_ttl, tls, token, self.log_format,
                                                  self.ipv6)
            with self._lock:
                self._state.pids[f"{h.name}/agent"] = started[h.name].pid
                self._save()
        for h in chosen:
            daemons.wait_agent(h.plan, started[h.name])
        self.wait_synced([h.plan.index for h in chosen])
        for h in chosen:  # the controllers' flows carry the host's traffic now: the agent's go
            self._wait_unbootstrapped(h)

    @staticmethod
    def _wait_unbootstrapped(h: LabHost, timeout: float = 30.0) -> None:
        path = h.ovs.mgmt_sock(plan.BRIDGE)
        deadline = time.monotonic() + timeout
        while asyncio.run(bootstrap.bootstrap_flows_on(path)):
            if time.monotonic() > deadline:
                raise SystemFailure(f"agent of {h.name} kept its bootstrap flows {timeout:.0f} s after "
                                    "the controller synced its bridge (see its agent.log)")
            time.sleep(0.05)  # polling the bridge, with a deadline

    def _host_token(self, h: LabHost) -> str:
        """An --insecure lab's agent credential: a host token bound to its host (never the
        admin token), made once and kept in the host's run dir (mode 600)."""
        path = os.path.join(h.plan.rundir(), "agent.token")
        if not os.path.exists(path):
            with self.api() as api:
                made = api.call("POST", "/tokens", json={"name": f"agent-{h.name}", "host": h.name})
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(str(made["token"]) + "\n")
        return path

    def stop_agent(self, host: str) -> None:
        pid = self._state.pids.get(f"{self.host(host).name}/agent")
        if pid is not None:
            procs.stop([pid])
