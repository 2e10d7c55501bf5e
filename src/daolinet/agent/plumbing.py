"""Plugging a container into the host's bridge, and unplugging it.

A plug is: a veth (host side named after the endpoint, container side eth0
with the endpoint's MAC and address and the underlay's MTU, TX checksum offload
off on the userspace datapath), then an OVS
port whose external_ids name the endpoint.  Inside the container, the subnet
and the default route both go via the gateway, whose MAC is a permanent
neighbour: every frame goes to the gateway MAC anyway (the bridge answers
every ARP request with it), so the container never ARPs and keeps one
neighbour entry instead of one per peer (Linux caps neighbour entries over
all namespaces of a machine, 1,024 by default), and the first packet of a
connection waits for no ARP round trip.  Any failure undoes the steps already made: nothing is left
half-plugged.  For Docker, the container side waits in the host's namespace
until Docker moves it (`plug_docker`).  Blocking (netlink, OVSDB): call from
a thread.
"""

from __future__ import annotations

import contextlib
import ipaddress
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from daolinet.errors import Conflict, DaoliError, NotFound
from daolinet.pipeline import GATEWAY_MAC
from daolinet.system import links
from daolinet.system.ovsdb import Ovsdb

PORT_PREFIX = "dlp"
PEER_PREFIX = "dlc"
EXT_ENDPOINT = "daolinet-endpoint"
EXT_NETNS = "daolinet-netns"
EXT_DOCKER = "daolinet-docker-endpoint"
THIS_NETNS = "/proc/self/ns/net"


def port_name(eid: int) -> str:
    """Host-side interface of endpoint eid: unique, <= 15 characters."""
    return f"{PORT_PREFIX}{eid:06x}"


def peer_name(eid: int) -> str:
    """Container side of endpoint eid's veth while it waits in the host's namespace
    for Docker to move it into the container (and after Docker gives it back)."""
    return f"{PEER_PREFIX}{eid:06x}"


@dataclass(frozen=True)
class PlugSpec:
    eid: int
    netns: str  # container namespace: a name in /run/netns or an absolute path
    mac: str
    ip: str
    prefixlen: int
    gateway: str
    ifname: str = "eth0"
    mtu: int = 1500  # the agent gives the uplink's: no encapsulation, no tax
    ip6: str = ""  # a dual-stack endpoint's IPv6 address ("" : IPv4 only)
    prefixlen6: int = 64
    gateway6: str = ""


@dataclass(frozen=True)
class PluggedPort:
    eid: int
    port: str
    ofport: int
    netns: str
    timings_ms: dict[str, float] = field(default_factory=dict, compare=False)  # per step of the plug


class Steps:
    """Wall-clock milliseconds per named step: `with steps("veth"): ...`."""

    def __init__(self) -> None:
        self.ms: dict[str, float] = {}

    @contextlib.contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.ms[name] = round(self.ms.get(name, 0.0) + (time.perf_counter() - started) * 1e3, 3)


def container_side(spec: PlugSpec, userspace: bool) -> links.InterfaceSetup:
    """The container's interface: MAC, address without its subnet's connected route,
    the subnet (unless /32) and the default route via the gateway, the gateway's MAC
    as a permanent neighbour, TX checksumming off on the userspace datapath.  With `ip6`
    the same in IPv6, except that the gateway6's MAC is learnt by neighbour discovery
    (the bridge answers, flows/ndp.py), and IPv6 is turned on (system/links6.py)."""
    address = f"{spec.ip}/{spec.prefixlen}"
    subnet = str(ipaddress.IPv4Network(address, strict=False))
    dsts = ([subnet] if spec.prefixlen < 32 else []) + ["0.0.0.0/0"]
    routes = tuple(links.Route(dst, spec.gateway, onlink=True) for dst in dsts)
    address6 = f"{spec.ip6}/{spec.prefixlen6}" if spec.ip6 else None
    if address6:
        subnet6 = str(ipaddress.IPv6Network(address6, strict=False))
        dsts6 = ([subnet6] if spec.prefixlen6 < 128 else []) + ["::/0"]
        routes += tuple(links.Route(dst, spec.gateway6, onlink=True) for dst in dsts6)
    return links.InterfaceSetup(
        spec.ifname, mac=spec.mac, mtu=spec.mtu, address=address, prefix_route=False, routes=routes,
        address6=address6, neighbours=((spec.gateway, GATEWAY_MAC),), tx_checksum_off=userspace)


class Plumber:
    def __init__(self, ovsdb: Ovsdb, bridge: str, host_netns: str | None, userspace: bool = True) -> None:
        self.ovsdb = ovsdb
        self.bridge = bridge
        self.host_netns = host_netns
        # The userspace (netdev) datapath leaves a veth's offloaded TX checksums undone:
        # its containers must checksum in software.  The kernel datapath needs nothing.
        self.userspace = userspace

    def plug(self, spec: PlugSpec) -> PluggedPort:
        """Three steps, each timed (PluggedPort.timings_ms): the veth (one netlink
        socket in the host's namespace), the container's side (one in its namespace),
        the OVS port (one OVSDB transaction, which returns with the ofport)."""
        port = port_name(spec.eid)
        steps = Steps()
        try:
            with steps("veth"):
                links.add_veth_pair(self.host_netns, port, spec.netns, spec.ifname, mtu=spec.mtu,
                                    ipv6_a=False)
        except links.LinkExists as e:
            raise DaoliError(f"interface {port} already exists: endpoint {spec.eid} is plugged") from e
        try:
            with steps("container_side"):
                links.setup_interface(spec.netns, container_side(spec, self.userspace))
            with steps("ovs_port"):
                ofport = self.ovsdb.add_port(self.bridge, port, {
                    EXT_ENDPOINT: str(spec.eid), EXT_NETNS: spec.netns})
        except BaseException:
            self.unplug(spec.eid, spec.netns, spec.ifname)
            raise
        return PluggedPort(spec.eid, port, ofport, spec.netns, steps.ms)

    def plug_docker(self, eid: int, mac: str, mtu: int, sandbox: str, docker_eid: str) -> PluggedPort:
        """A veth with both ends in the host's namespace, for Docker to move the
        peer (`peer_name(eid)`) into the container; on the userspace datapath TX
        checksumming is turned off on the peer here, and stays off when Docker moves
        and renames it."""
        port, peer = port_name(eid), peer_name(eid)
        for name in (port, peer):
            if links.has_link(self.host_netns, name):
                raise Conflict(f"interface {name} already exists on this host: endpoint {eid} is "
                               "plugged, or the name is taken")
        here = self.host_netns or THIS_NETNS
        try:
            links.add_veth_pair(self.host_netns, port, here, peer, mtu=mtu, ipv6_a=False)
            links.setup_interface(here, links.InterfaceSetup(peer, mac=mac, mtu=mtu,
                                                             tx_checksum_off=self.userspace))
            ofport = self.ovsdb.add_port(self.bridge, port, {
                EXT_ENDPOINT: str(eid), EXT_NETNS: sandbox, EXT_DOCKER: docker_eid})
        except BaseException:
            self.unplug(eid)
            raise
        return PluggedPort(eid, port, ofport, sandbox)

    def unplug(self, eid: int, netns: str | None = None, ifname: str = "eth0") -> None:
        """Remove the OVS port and the veth; fine if they are already gone."""
        port = port_name(eid)
        self.ovsdb.del_port(port, self.bridge)
        if not links.del_link(self.host_netns, port) and netns:
            # The host side vanished (e.g. moved); the container side may remain.
            with contextlib.suppress(DaoliError):
                links.del_link(netns, ifname)
        links.del_link(self.host_netns, peer_name(eid))  # a Docker peer given back, if any

    def endpoint_with(self, key: str, value: str) -> int | None:
        """The endpoint whose port carries external_ids key=value, if plugged."""
        for row in self.ovsdb.interfaces(["external_ids"]):
            ext = row["external_ids"]
            if ext.get(key) == value and EXT_ENDPOINT in ext:
                return int(ext[EXT_ENDPOINT])
        return None

    def unbridge(self, eid: int) -> None:
        """Take the endpoint's port off the bridge but keep its veth: the
        container keeps its interface, addresses and sockets (a move)."""
        self.ovsdb.del_port(port_name(eid), self.bridge)

    def adopt(self, eid: int, netns: str) -> PluggedPort:
        """Put an existing veth (moved here from another host) on the bridge."""
        port = port_name(eid)
        if not links.has_link(self.host_netns, port):
            raise NotFound(f"interface {port} of endpoint {eid} is not on this host")
        ofport = self.ovsdb.add_port(self.bridge, port, {EXT_ENDPOINT: str(eid), EXT_NETNS: netns})
        return PluggedPort(eid, port, ofport, netns)

    def plugged(self) -> dict[int, PluggedPort]:
        """Endpoints with a port on this bridge, from OVSDB's external_ids."""
        found: dict[int, PluggedPort] = {}
        for row in self.ovsdb.interfaces(["name", "ofport", "external_ids"]):
            ext = row["external_ids"]
            if EXT_ENDPOINT not in ext:
                continue
            ofport = row["ofport"]
            ofport = ofport[0] if isinstance(ofport, list) and ofport else ofport
            eid = int(ext[EXT_ENDPOINT])
            found[eid] = PluggedPort(eid, row["name"], int(ofport or -1), ext.get(EXT_NETNS, ""))
        return found
