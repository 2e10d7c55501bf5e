"""Pure naming and addressing of a lab: what every namespace, interface and
address is called, computed from (lab name, host count, rack count).

Nothing here touches the system; cluster.py carries the plan out.

Underlay (all inside 198.18.0.0/15, never in the root namespace):

    rack r (1-based)      198.18.(64*(r-1)).0/18, router leg at .254
    host i in rack r      198.18.(64*(r-1)).i
    host i's PIP pool     198.18.(64*(r-1) + k).0/24, k = host's index in its rack
    outside               198.19.255.0/24 behind the router: server .1, router .254
    control namespace     rack 1's segment: controller i at 198.18.0.(200+i), etcd at .210

IPv6 underlay beside it (all inside 2001:2::/48, RFC 5180's benchmarking prefix):

    rack r                2001:2:0:r::/64, router leg at ::fe
    host i in rack r      2001:2:0:r::i (i in hex, as ipaddress writes it)
    host i's PIP pool6    2001:2:0:r::k:0/112, k = host's index in its rack (slot 0 holds the
                          hosts and the router; every pool lies in the rack's /64, so the router
                          needs no per-host route)
    outside               2001:2:0:ff::/64 behind the router: server ::1, router ::fe
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from dataclasses import dataclass

from daolinet.errors import InvalidInput

LAB_NAME_RE = re.compile(r"^[a-z][a-z0-9]{0,11}$")
CONTAINER_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,31}$")
MAX_HOSTS = 62
MAX_RACKS = 4
RUN_ROOT = "/run/daolinet/lab"
UNDERLAY = ipaddress.ip_network("198.18.0.0/15")
RACK_PREFIX = 18
BRIDGE = "daolinet"
UPLINK = "uplink"
FABRIC_BRIDGE = "br0"


UNDERLAY6 = ipaddress.IPv6Network("2001:2::/48")
RACK_PREFIX6 = 64
POOL_PREFIX6 = 112


def check_lab_name(name: str) -> str:
    if not LAB_NAME_RE.match(name):
        raise InvalidInput(
            f"invalid lab name {name!r}: use 1-12 lowercase letters and digits, starting with a letter"
        )
    return name


def check_container_name(name: str) -> str:
    if not CONTAINER_NAME_RE.match(name):
        raise InvalidInput(
            f"invalid container name {name!r}: use 1-32 lowercase letters, digits and '-'"
        )
    return name


def check_counts(hosts: int, racks: int) -> None:
    if not 1 <= hosts <= MAX_HOSTS:
        raise InvalidInput(f"--hosts must be between 1 and {MAX_HOSTS}, not {hosts}")
    if not 1 <= racks <= MAX_RACKS:
        raise InvalidInput(f"--racks must be between 1 and {MAX_RACKS}, not {racks}")
    if racks > hosts:
        raise InvalidInput(f"--racks {racks} needs at least {racks} hosts, not {hosts}")


DEFAULT_MTU = 1500
MIN_MTU, MAX_MTU = 1280, 9216  # IPv6's minimum link MTU; the usual largest jumbo frame


def check_mtu(mtu: int) -> int:
    """The underlay's MTU: every link of the fabric, hosts' uplinks and so containers."""
    if not MIN_MTU <= mtu <= MAX_MTU:
        raise InvalidInput(f"--mtu must be between {MIN_MTU} and {MAX_MTU}, not {mtu}")
    return mtu


def netns_prefix(lab: str) -> str:
    """Every namespace of lab LAB starts with this; lab names contain no '-'."""
    return f"dl-{lab}-"


def rack_network(rack: int) -> ipaddress.IPv4Network:
    base = int(UNDERLAY.network_address) + (rack - 1) * (1 << (32 - RACK_PREFIX))
    return ipaddress.IPv4Network((base, RACK_PREFIX))


def rack_gateway(rack: int) -> ipaddress.IPv4Address:
    return rack_network(rack).network_address + 254


def rack_network6(rack: int) -> ipaddress.IPv6Network:
    base = int(UNDERLAY6.network_address) + (rack << (128 - RACK_PREFIX6))
    return ipaddress.IPv6Network((base, RACK_PREFIX6))


def rack_gateway6(rack: int) -> ipaddress.IPv6Address:
    return rack_network6(rack).network_address + 0xfe


# "The outside world": a network behind the router that no daolinet network
# covers, with one namespace (`outside`) holding a server at OUTSIDE_IP.
OUTSIDE_NET = ipaddress.IPv4Network("198.19.255.0/24")
OUTSIDE_IP = OUTSIDE_NET.network_address + 1
OUTSIDE_GW = OUTSIDE_NET.network_address + 254
# ... and in a dual-stack lab its IPv6 network (in the IPv6 underlay's /48, beside the racks'
# 2001:2:0:r::/64): the server at ::1, the router at ::fe.
OUTSIDE_NET6 = ipaddress.IPv6Network("2001:2:0:ff::/64")
OUTSIDE_IP6 = OUTSIDE_NET6.network_address + 1
OUTSIDE_GW6 = OUTSIDE_NET6.network_address + 0xfe


def outside_netns(lab: str) -> str:
    return f"{netns_prefix(lab)}out"


# The control plane runs as it would on its own machines: controllers and etcd in one
# namespace on rack 1's segment of the underlay, reached by every host over the fabric.
CONTROL_BASE = 200
ETCD_OFFSET = 210
OF_PORT = 6653
API_PORT = 8650
METRICS_PORT = 9650  # a controller's token-less /metrics (--metrics-listen)
AGENT_METRICS_PORT = 9651  # an agent's, on its host's underlay address


def control_netns(lab: str) -> str:
    return f"{netns_prefix(lab)}ctl"


def controller_ip(index: int) -> ipaddress.IPv4Address:
    return rack_network(1).network_address + CONTROL_BASE + index


def etcd_ip() -> ipaddress.IPv4Address:
    return rack_network(1).network_address + ETCD_OFFSET


@dataclass(frozen=True)
class HostPlan:
    """Where host `name` lives and what it is called."""

    lab: str
    index: int
    rack: int
    slot: int  # 1-based position inside its rack

    @property
    def name(self) -> str:
        return f"h{self.index}"

    @property
    def netns(self) -> str:
        return f"{netns_prefix(self.lab)}{self.name}"

    @property
    def fabric_netns(self) -> str:
        return fabric_netns(self.lab, self.rack)

    @property
    def fabric_port(self) -> str:
        """The uplink's peer, inside the fabric namespace."""
        return self.name

    @property
    def underlay_ip(self) -> ipaddress.IPv4Address:
        return rack_network(self.rack).network_address + self.index

    @property
    def underlay_cidr(self) -> str:
        return f"{self.underlay_ip}/{RACK_PREFIX}"

    @property
    def pip_pool(self) -> ipaddress.IPv4Network:
        base = int(rack_network(self.rack).network_address) + self.slot * 256
        return ipaddress.IPv4Network((base, 24))

    @property
    def gateway(self) -> ipaddress.IPv4Address:
        return rack_gateway(self.rack)

    @property
    def underlay_ip6(self) -> ipaddress.IPv6Address:
        return rack_network6(self.rack).network_address + self.index

    @property
    def underlay_cidr6(self) -> str:
        return f"{self.underlay_ip6}/{RACK_PREFIX6}"

    @property
    def pip_pool6(self) -> ipaddress.IPv6Network:
        base = int(rack_network6(self.rack).network_address) + (self.slot << (128 - POOL_PREFIX6))
        return ipaddress.IPv6Network((base, POOL_PREFIX6))

    @property
    def gateway6(self) -> ipaddress.IPv6Address:
        return rack_gateway6(self.rack)

    def rundir(self) -> str:
        return f"{RUN_ROOT}/{self.lab}/{self.name}"


def fabric_netns(lab: str, rack: int) -> str:
    return f"{netns_prefix(lab)}fab{rack}"


def router_netns(lab: str) -> str:
    return f"{netns_prefix(lab)}rtr"


def container_netns(lab: str, container: str) -> str:
    return f"{netns_prefix(lab)}c-{container}"


def container_port(container: str) -> str:
    """Host-side veth name: <=15 chars, stable, unique per host in practice."""
    return "vc" + hashlib.sha1(container.encode()).hexdigest()[:10]


def plan_hosts(lab: str, hosts: int, racks: int = 1) -> list[HostPlan]:
    """Hosts are dealt round-robin over racks: h1 rack 1, h2 rack 2, ..."""
    check_lab_name(lab)
    check_counts(hosts, racks)
    plans = []
    for i in range(1, hosts + 1):
        rack = (i - 1) % racks + 1
        slot = (i - 1) // racks + 1
        plans.append(HostPlan(lab=lab, index=i, rack=rack, slot=slot))
    return plans


def lab_dir(lab: str) -> str:
    return f"{RUN_ROOT}/{lab}"


def check_cidr(value: str) -> str:
    """An interface address with prefix, e.g. 10.1.0.5/24."""
    try:
        iface = ipaddress.IPv4Interface(value)
    except ValueError as e:
        raise InvalidInput(f"invalid address {value!r}: expected IPv4 address/prefix") from e
    if "/" not in value:
        raise InvalidInput(f"invalid address {value!r}: give a prefix length, e.g. {value}/24")
    return str(iface)
