"""The lab's containers, as seen by a `Lab` (a mixin of `cluster.Lab`): a network
namespace with eth0 on a host's bridge, attached through the host's agent when
daolinet runs (or a bare port without it), moved between hosts with its processes
and sockets, removed with everything it held.  The lab's state names each one."""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from daolinet.errors import Conflict, InvalidInput, NotFound
from daolinet.lab import plan, state
from daolinet.lab.client import LabClient
from daolinet.system import link_moves, links, procs

if TYPE_CHECKING:
    from daolinet.lab.cluster import LabHost

HOST_NAME_RE = re.compile(r"^h\d+$")
MOVING_IF = "eth0-moving"  # a moving container's new interface, eth0 once the old one is gone


@dataclass(frozen=True)
class LabContainer:
    name: str
    host: str
    netns: str
    port: str = ""
    ofport: int = -1
    mac: str | None = None
    address: str | None = None  # with prefix, e.g. 10.1.0.5/24
    eid: int | None = None  # daolinet endpoint id, when attached through the agent
    network: str | None = None
    tenant: str | None = None
    pip: str | None = None
    address6: str | None = None  # on a dual-stack network, with prefix, e.g. fd00:1::2/64
    pip6: str | None = None

    @property
    def ip(self) -> str | None:
        return self.address.split("/")[0] if self.address else None

    @property
    def ip6(self) -> str | None:
        return self.address6.split("/")[0] if self.address6 else None

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


class Containers:
    name: str
    _state: state.LabState
    _lock: threading.Lock
    # The last add_container's steps in ms: the lab's (netns, agent call, ...) and the agent's own.
    last_add_ms: dict[str, float] = {}  # noqa: RUF012 (replaced, never mutated)

    if TYPE_CHECKING:  # the rest of cluster.Lab (itself, Agents, Controllers) provides these
        @property
        def has_controller(self) -> bool: ...
        @property
        def mtu(self) -> int: ...

        def _save(self) -> None: ...
        def _reload(self) -> None: ...
        def _new_netns(self, name: str) -> None: ...
        def host(self, name: str) -> LabHost: ...
        def agent(self, host: str) -> LabClient: ...
        def api(self, token: str | None = None, index: int | None = None) -> LabClient: ...

    @property
    def containers(self) -> list[LabContainer]:
        return [LabContainer(**c) for c in self._state.containers.values()]

    def container(self, name: str) -> LabContainer:
        found = self._state.containers.get(name)
        if found is None:
            raise NotFound(f"lab {self.name} has no container {name}")
        return LabContainer(**found)

    def add_container(self, name: str, host: str, *, network: str | None = None,
                      tenant: str = "default", ip: str | None = None, address: str | None = None,
                      mac: str | None = None) -> LabContainer:
        """A namespace with eth0 on HOST's bridge.  With daolinet running, the
        host's agent attaches it to `network` (which is then required); without,
        it is a bare port with an optional `address`."""
        plan.check_container_name(name)
        if HOST_NAME_RE.match(name) or name in ("outside", "router"):
            raise InvalidInput(f"container name {name!r} would shadow a host or the outside")
        if self.has_controller and network is None:
            raise InvalidInput("give the container a network (--network NET)")
        if address is not None:
            address = plan.check_cidr(address)
        h = self.host(name=host)
        with state.locked(self.name):
            self._reload()
            if name in self._state.containers:
                raise Conflict(f"container {name} already exists in lab {self.name}")
            c = LabContainer(name=name, host=h.name, netns=plan.container_netns(self.name, name),
                             mac=mac, address=address, network=network, tenant=tenant)
            self._state.containers[name] = c.to_json()
            started = time.perf_counter()
            self._new_netns(c.netns)
            self.last_add_ms = {"lab_netns": round((time.perf_counter() - started) * 1e3, 3)}
            try:
                c = self._attach(h, c, ip) if network else self._plug(h, c)
            except BaseException:
                self._unplug(c)
                raise
            self._state.containers[name] = c.to_json()
            self._save()
        return c

    def _attach(self, h: LabHost, c: LabContainer, ip: str | None) -> LabContainer:
        started = time.perf_counter()
        with self.agent(h.name) as agent:
            e = agent.call("POST", "/containers", json={
                "name": c.name, "netns": c.netns, "network": c.network, "tenant": c.tenant,
                "ip": ip, "mac": c.mac})
        called = time.perf_counter()
        net = self.network(c.tenant or "default", c.network or "")
        self.last_add_ms = {**self.last_add_ms, "lab_agent_call": round((called - started) * 1e3, 3),
                            "lab_network_prefix": round((time.perf_counter() - called) * 1e3, 3),
                            **{f"agent_{k}": v for k, v in (e.get("timings_ms") or {}).items()}}
        v6 = {"address6": f"{e['ip6']}/{net['subnet6'].split('/')[1]}", "pip6": e["pip6"]} \
            if e.get("ip6") else {}
        return LabContainer(**{**c.to_json(), "eid": e["id"], "port": e["port"], "ofport": e["ofport"],
                               "mac": e["mac"], "address": f"{e['ip']}/{net['subnet'].split('/')[1]}",
                               "pip": e["pip"], **v6})

    def network(self, tenant: str, network: str) -> dict[str, Any]:
        """A network's JSON (the controller's API)."""
        with self.api() as api:
            found: dict[str, Any] = api.call("GET", f"/networks/{tenant}/{network}")
            return found

    def network_prefix(self, tenant: str, network: str) -> int:
        return int(self.network(tenant, network)["subnet"].split("/")[1])

    def _plug(self, h: LabHost, c: LabContainer) -> LabContainer:
        port = plan.container_port(c.name)
        links.add_veth(h.netns, port, c.netns, "eth0", mtu=self.mtu, ipv6_a=False)
        links.tx_offload_off(c.netns, "eth0")
        links.link_up(c.netns, "eth0", address=c.address, mac=c.mac)
        with h.ovsdb() as db:
            ofport = db.add_port(plan.BRIDGE, port, {"daolinet-lab-container": c.name})
        return LabContainer(**{**c.to_json(), "port": port, "ofport": ofport})

    def move_container(self, name: str, host: str) -> LabContainer:
        """Move a running container to another host: its namespace, processes and
        sockets stay; it gets an interface on `host` and a new PIP there.

        Make before break: a second interface on the new host first (same MAC, no
        address yet); one controller call moves the endpoint there, and answers once the
        new path is in (the new host's flows, the peers' routes re-pointed, the old host
        forwarding what still arrives: controller/moves.py); then the container's
        addresses and routes move to the new interface; then the old one goes."""
        target = self.host(host)
        with state.locked(self.name):
            self._reload()
            c = self.container(name)
            if c.eid is None:
                raise InvalidInput(f"container {name} is not attached through daolinet")
            old = self.host(c.host)
            if old.name == target.name:
                raise InvalidInput(f"container {name} is already on host {host}")
            links.add_veth(target.netns, c.port, c.netns, MOVING_IF, mtu=self.mtu, ipv6_a=False)
            links.tx_offload_off(c.netns, MOVING_IF)
            links.link_up(c.netns, MOVING_IF, mac=c.mac)
            with self.agent(target.name) as agent:
                e = agent.call("POST", f"/containers/{c.eid}/move-here", json={"netns": c.netns})
            link_moves.take_over(c.netns, "eth0", MOVING_IF)
            with self.agent(old.name) as agent:
                agent.call("POST", f"/containers/{c.eid}/move-away")
            links.del_link(c.netns, "eth0")
            link_moves.rename_link(c.netns, MOVING_IF, "eth0")
            moved = LabContainer(**{**c.to_json(), "host": target.name, "ofport": e["ofport"],
                                    "pip": e["pip"], "pip6": e.get("pip6") or None})
            self._state.containers[name] = moved.to_json()
            self._save()
        return moved

    def remove_container(self, name: str) -> None:
        with state.locked(self.name):
            self._reload()
            self._unplug(self.container(name))

    def _unplug(self, c: LabContainer) -> None:
        procs.stop(links.pids_in([c.netns]))
        if c.eid is not None:
            with self.agent(c.host) as agent:
                agent.call("DELETE", f"/containers/{c.eid}")
        elif c.port:
            with self.host(c.host).ovsdb() as db:
                db.del_port(c.port)
        links.remove_netns(c.netns)
        with self._lock:
            if c.netns in self._state.netns:
                self._state.netns.remove(c.netns)
            self._state.containers.pop(c.name, None)
            self._save()
