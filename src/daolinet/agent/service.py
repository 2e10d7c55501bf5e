"""The agent's work, as async operations over the controller client and the
plumber: join the cluster (register + heartbeat), attach and detach
containers, and reconcile after a restart.

Attach is: ask the controller for an endpoint (it allocates IP, MAC, PIP),
plug it, then tell the controller its port.  A failure after the endpoint
exists deletes it again: nothing is left allocated for a container that is
not there.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from daolinet.agent.client import ControllerClient
from daolinet.agent.plumbing import PlugSpec, Plumber, Steps
from daolinet.errors import DaoliError, NotFound

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class HostInfo:
    name: str
    dpid: int
    underlay_ip: str
    underlay_prefix: int
    underlay_mac: str
    pip_pool: str
    uplink_ofport: int
    underlay_gateway_mac: str = ""
    pip_pool6: str = ""  # IPv6: "" unless the host has an IPv6 underlay address and a pool6
    underlay_ip6: str = ""
    underlay_prefix6: int = 64

    def to_json(self) -> dict[str, Any]:
        """What the agent registers; the IPv6 fields only when set (an IPv4 host's is as it was)."""
        out = dict(self.__dict__)
        if not self.underlay_ip6:
            del out["underlay_ip6"], out["underlay_prefix6"]
        if not self.pip_pool6:
            del out["pip_pool6"]
        return out


def plug_spec(endpoint: dict[str, Any], net: dict[str, Any], netns: str, ifname: str, mtu: int) -> PlugSpec:
    """What plugging `endpoint` of network `net` (their API JSON) into `netns` takes; its IPv6
    when the store gave it one (a dual-stack network, a host with an IPv6 pool)."""
    v6 = {"ip6": endpoint["ip6"], "prefixlen6": ipaddress.IPv6Network(net["subnet6"]).prefixlen,
          "gateway6": net["gateway6"]} if endpoint.get("ip6") else {}
    return PlugSpec(eid=endpoint["id"], netns=netns, mac=endpoint["mac"], ip=endpoint["ip"],
                    prefixlen=ipaddress.IPv4Network(net["subnet"]).prefixlen, gateway=net["gateway"],
                    mtu=mtu, ifname=ifname, **v6)


class AgentService:
    def __init__(self, host: HostInfo, client: ControllerClient, plumber: Plumber,
                 mtu: int = 1500) -> None:
        self.host = host
        self.client = client
        self.plumber = plumber
        self.mtu = mtu
        self._lock = asyncio.Lock()  # one plumbing change at a time
        # Read by agent/metrics.py: heartbeats sent and failed, and each attach's duration.
        self.heartbeats = {"sent": 0, "failed": 0}
        self.attached: Callable[[float], None] = lambda seconds: None

    async def register(self) -> None:
        await self.client.register_host(self.host.to_json())

    async def heartbeat_forever(self, every: float) -> None:
        while True:
            await asyncio.sleep(every)  # a period, not synchronisation
            try:
                # An attempt may take one period: one hung controller still leaves time for another.
                await self.client.heartbeat(self.host.name, timeout=every)
                self.heartbeats["sent"] += 1
            except NotFound:
                self.heartbeats["failed"] += 1
                await self.register()  # the controller forgot us: join again
            except DaoliError as e:
                self.heartbeats["failed"] += 1
                log.warning("heartbeat failed: %s", e)

    async def attach(self, name: str, netns: str, network: str, tenant: str,
                     ip: str | None = None, mac: str | None = None,
                     labels: dict[str, str] | None = None, ifname: str = "eth0") -> dict[str, Any]:
        started = time.perf_counter()
        steps = Steps()
        async with self._lock:
            with steps("controller_network"):
                net = await self.client.network(tenant, network)
            with steps("controller_create_endpoint"):
                endpoint = await self.client.create_endpoint({
                    "name": name, "network": network, "tenant": tenant, "host": self.host.name,
                    "ip": ip, "mac": mac, "labels": labels or {}})
            try:
                spec = plug_spec(endpoint, net, netns, ifname, self.mtu)
                with steps("plug"):
                    plugged = await asyncio.to_thread(self.plumber.plug, spec)
                with steps("controller_port_flows"):  # the port, its classify flows and barrier
                    done = await self.client.patch_endpoint(endpoint["id"], port=plugged.port,
                                                            ofport=plugged.ofport)
                elapsed = time.perf_counter() - started
                self.attached(elapsed)
                timings = {**steps.ms, **{f"plug_{k}": v for k, v in plugged.timings_ms.items()},
                           "total": round(elapsed * 1e3, 3)}
                log.debug("attached %s (endpoint %s): %s ms", name, endpoint["id"], timings)
                return {**done, "timings_ms": timings}
            except BaseException:
                await asyncio.to_thread(self.plumber.unplug, endpoint["id"], netns, ifname)
                with contextlib.suppress(DaoliError):
                    await self.client.delete_endpoint(endpoint["id"])
                raise

    async def detach(self, eid: int) -> dict[str, Any]:
        async with self._lock:
            plugged = (await asyncio.to_thread(self.plumber.plugged)).get(eid)
            endpoint = await self.client.delete_endpoint(eid)  # routes are revoked first
            await asyncio.to_thread(self.plumber.unplug, eid, plugged.netns if plugged else None)
            return endpoint

    async def plug_docker(self, endpoint: dict[str, Any], sandbox: str, docker_eid: str) -> dict[str, Any]:
        """Plug an endpoint for Docker (which then moves its peer into `sandbox`)."""
        started = time.perf_counter()
        async with self._lock:
            plugged = await asyncio.to_thread(self.plumber.plug_docker, endpoint["id"], endpoint["mac"],
                                              self.mtu, sandbox, docker_eid)
            try:
                done = await self.client.patch_endpoint(endpoint["id"], port=plugged.port,
                                                        ofport=plugged.ofport)
            except BaseException:
                await asyncio.to_thread(self.plumber.unplug, endpoint["id"])
                raise
            self.attached(time.perf_counter() - started)
            return done

    async def release(self, eid: int, netns: str | None = None,
                      ifname: str = "eth0") -> dict[str, Any] | None:
        """Delete endpoint eid (its routes are revoked first) and unplug it: what a
        container's removal does.  Fine if either is already gone; returns the
        deleted endpoint, or None.  `netns` None: the port's own record; "": none
        (the container side is not ours to chase, e.g. Docker's)."""
        async with self._lock:
            if netns is None:
                plugged = (await asyncio.to_thread(self.plumber.plugged)).get(eid)
                netns = plugged.netns if plugged else None
            try:
                endpoint: dict[str, Any] | None = await self.client.delete_endpoint(eid)
            except NotFound:
                endpoint = None
            await asyncio.to_thread(self.plumber.unplug, eid, netns, ifname)
            return endpoint

    async def unplug(self, eid: int) -> None:
        """Unplug endpoint eid here, keeping the endpoint (it has moved to another host)."""
        async with self._lock:
            await asyncio.to_thread(self.plumber.unplug, eid)

    async def reconcile(self) -> dict[str, list[int]]:
        """Make the controller's endpoints for this host and the bridge's ports agree."""
        async with self._lock:
            ports = await asyncio.to_thread(self.plumber.plugged)
            endpoints = {found["id"]: found for found in await self.client.endpoints_on(self.host.name)}
            report: dict[str, list[int]] = {"kept": [], "unplugged": [], "forgotten": [], "fixed": []}
            for eid, port in ports.items():
                if eid not in endpoints:
                    await asyncio.to_thread(self.plumber.unplug, eid, port.netns)
                    report["unplugged"].append(eid)
            for eid, endpoint in endpoints.items():
                plugged = ports.get(eid)
                if plugged is None or plugged.ofport < 1:
                    await self.client.delete_endpoint(eid)  # its container is gone
                    report["forgotten"].append(eid)
                elif endpoint.get("ofport") != plugged.ofport or endpoint.get("port") != plugged.port:
                    await self.client.patch_endpoint(eid, port=plugged.port, ofport=plugged.ofport)
                    report["fixed"].append(eid)
                else:
                    report["kept"].append(eid)
            log.info("reconciled: %s", report)
            return report

    async def move_away(self, eid: int) -> None:
        """Moving away: off the bridge, veth kept for the host it moves to."""
        async with self._lock:
            await asyncio.to_thread(self.plumber.unbridge, eid)

    async def move_here(self, eid: int, netns: str) -> dict[str, Any]:
        """Moving here: the endpoint's veth is in this host's namespace; plug it
        into the bridge and move the endpoint here, with its new port, in one call."""
        async with self._lock:
            plugged = await asyncio.to_thread(self.plumber.adopt, eid, netns)
            return await self.client.call("POST", f"/endpoints/{eid}/move", json={
                "host": self.host.name, "port": plugged.port, "ofport": plugged.ofport})

    async def containers(self) -> list[dict[str, Any]]:
        return await self.client.endpoints_on(self.host.name)
