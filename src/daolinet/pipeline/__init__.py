"""The datapath pipeline, defined once: tables, priorities, cookie layout and
the fixed addresses every host shares.  See docs/pipeline.md.

| table | name     | holds                                                        | miss       |
|-------|----------|--------------------------------------------------------------|------------|
| 0     | classify | LOCAL -> uplink; uplink IP -> 20, ARP -> 30; container ports: | drop       |
|       |          | anti-spoof (port+MAC+IP) -> 5 (IP) or 30 (ARP)                |            |
| 5     | guard    | containers' packets to infrastructure (hosts' underlay IPs,   | -> 10      |
|       |          | controllers, etcd) dropped, but published port mappings       |            |
| 10    | egress   | hot-plug routes per (source port, source IP, destination IP)  | controller |
| 20    | ingress  | hot-plug routes per (source PIP, destination PIP);           | controller |
|       |          | the host's own underlay IP -> LOCAL                           |            |
| 21    | stateful | an L4 route's replies on its client's host, after ct():       | drop       |
|       |          | only +trk+est pass (the rule's client opened the connection)  |            |
| 30    | arp      | uplink: proxy replies for this host's PIP pool, rest -> LOCAL;| drop       |
|       |          | containers: every request answered with the gateway MAC      |            |
| 31    | ndp      | IPv6 only: uplink: proxy NA for this host's PIP pool, rest   | drop       |
|       |          | -> LOCAL; containers: every NS (but DAD) made an NA with the  |            |
|       |          | gateway MAC -> 32                                            |            |
| 32    | na       | the NA's target link-layer address, out the port it came in  | drop       |
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum


class Table(IntEnum):
    CLASSIFY = 0
    GUARD = 5
    EGRESS = 10
    INGRESS = 20
    STATEFUL = 21  # reached by ct(table=21) only, never by goto
    ARP = 30
    NDP = 31  # IPv6 neighbour discovery: the ARP table's counterpart
    NA = 32  # finishes the advertisements NDP makes of solicitations


# What each table may goto: checked for every FlowSpec.
NEXT_TABLES: dict[Table, frozenset[Table]] = {
    Table.CLASSIFY: frozenset({Table.GUARD, Table.EGRESS, Table.INGRESS, Table.ARP, Table.NDP}),
    Table.GUARD: frozenset({Table.EGRESS}),
    Table.EGRESS: frozenset({Table.INGRESS}),  # a container's packet to a mapping on its own host
    Table.INGRESS: frozenset(),
    Table.STATEFUL: frozenset(),
    Table.ARP: frozenset(),
    Table.NDP: frozenset({Table.NA}),
    Table.NA: frozenset(),
}


class Priority(IntEnum):
    MISS = 0
    BOOTSTRAP = 1  # a host's own traffic, uplink <-> LOCAL, until its controller's flows carry it
    LOW = 10
    DAD = 20  # ndp: a container's duplicate address detection is dropped, not answered
    HOST = 50
    PORTMAP = 90  # below routes: a container's own connections win over its mappings
    ROUTE = 100
    PORT = 200  # per container port in classify; L4 routes in egress (policy issue)
    PORT_NS = 210  # classify: a container's neighbour solicitations, from any of its addresses
    FORGED_ND = 220  # classify: containers' other neighbour discovery messages, dropped
    PORTMAP_CLIENT = 250  # a container's flows to a port mapping (egress and ingress, reactive)
    SPECIFIC = 300
    INFRA = 400  # guard: containers' packets to an infrastructure address are dropped...
    INFRA_EXCEPT = 410  # ...but those to a published port mapping, and the mapped containers' replies
    DNS = 420  # guard: questions to a gateway or the resolver on udp/53 go to the host's agent


# The gateway MAC every host answers with for every network (a distributed router).
GATEWAY_MAC = "02:da:01:00:00:01"

OFPP_LOCAL = 0xFFFFFFFE
OFPP_CONTROLLER = 0xFFFFFFFD
OFPP_TABLE = 0xFFFFFFF9
OFPP_IN_PORT = 0xFFFFFFF8


# -- cookies -------------------------------------------------------------------
#
#   63      56 55      48 47                    24 23                     0
#   +---------+----------+------------------------+------------------------+
#   |  kind   |   gen    |  endpoint a (24 bits)  |  endpoint b (24 bits)  |
#   +---------+----------+------------------------+------------------------+
#
# kind says who made the flow; a route's cookie names its two endpoints
# (a < b), so "every route of endpoint X" is a cookie mask and a restarted
# controller can read its routes back from the switches.

class Kind(IntEnum):
    BASE = 0xD0  # per-host pipeline, per-port classify: proactive
    ROUTE = 0xD1  # hot-plug route flows: reactive, idle out
    DROP = 0xD2  # short-lived drop flows for denied or unknown destinations
    EXTERNAL = 0xD3  # SNAT egress to the outside world (b = the container's endpoint id)
    PORTMAP = 0xD4  # port mappings, proactive (b = the mapping's id)
    MOVE = 0xD5  # a moved container's grace forward on its old host (b = its endpoint id), idles out


# Conntrack zone of the SNAT to the outside.  Egress is tracked by PIP (unique
# across tenants, unlike logical IPs), so one zone serves every tenant.
NAT_ZONE = 1
PORTMAP_ZONE = 2  # DNAT of port mappings, on the mapping's host
PORTMAP_SNAT_ZONE = 3  # and SNAT to that host when the container runs elsewhere
CT_TRACKED = 0x20
CT_ESTABLISHED = 0x02
# An L4 route's connections, committed on its client's host (flows/route.py, "stateful").
# Cross-host the tuple holds PIPs (unique across tenants): one zone, and one more for ICMP so
# that flushing an ICMP route (whose entries can only be named by addresses) spares the pair's
# TCP/UDP connections.  Same host the tuple holds logical addresses, which tenants may share:
# a zone per client port, 0x8000 | ofport << 1 | icmp (ofports below 0x4000).
ROUTE_ZONE = 4
ROUTE_ICMP_ZONE = 5
LOCAL_ROUTE_ZONES = 0x8000


def route_zone(proto: int, client_ofport: int | None) -> int:
    """The conntrack zone of an L4 route's connections (client_ofport: same host only)."""
    icmp = int(proto == 1)
    if client_ofport is None:
        return ROUTE_ICMP_ZONE if icmp else ROUTE_ZONE
    return LOCAL_ROUTE_ZONES | (client_ofport << 1 & 0x7FFE) | icmp


EID_BITS = 24
EID_MAX = (1 << EID_BITS) - 1
KIND_MASK = 0xFF << 56
GEN_MASK = 0xFF << 48
EID_A_MASK = EID_MAX << EID_BITS
EID_B_MASK = EID_MAX


@dataclass(frozen=True)
class Cookie:
    kind: Kind
    a: int = 0
    b: int = 0
    gen: int = 0

    def __post_init__(self) -> None:
        if not (0 <= self.a <= EID_MAX and 0 <= self.b <= EID_MAX):
            raise ValueError(f"endpoint ids {self.a}, {self.b} do not fit a cookie")

    @property
    def value(self) -> int:
        return (int(self.kind) << 56) | ((self.gen & 0xFF) << 48) | (self.a << EID_BITS) | self.b

    @classmethod
    def decode(cls, value: int) -> Cookie | None:
        try:
            kind = Kind(value >> 56)
        except ValueError:
            return None  # not ours
        return cls(kind=kind, a=(value >> EID_BITS) & EID_MAX, b=value & EID_MAX,
                   gen=(value >> 48) & 0xFF)


def route_cookie(eid1: int, eid2: int, kind: Kind = Kind.ROUTE) -> Cookie:
    a, b = sorted((eid1, eid2))
    return Cookie(kind=kind, a=a, b=b)


def kind_mask(kind: Kind) -> tuple[int, int]:
    """(cookie, mask) selecting every flow of one kind."""
    return int(kind) << 56, KIND_MASK


# The bootstrap flows' cookie (agent/bootstrap.py, host init): kind byte 0, so Cookie.decode
# says "not ours" and a controller's sync leaves them to the agent.
BOOTSTRAP_COOKIE = 0xD1AB
