"""FlowSpec: one OpenFlow flow as a frozen, hashable value, checked against
its table when it is made (allowed match fields, set-fields and gotos)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from daolinet.errors import DaoliError
from daolinet.pipeline import NEXT_TABLES, Table

ETH_IP = 0x0800  # the EtherTypes flows match on
ETH_ARP = 0x0806
ETH_IPV6 = 0x86DD
IPPROTO_ICMPV6 = 58
MatchValue = int | str | tuple[int, int]  # (value, mask) for bit fields like ct_state


@dataclass(frozen=True)
class Match:
    """Sorted (field, value) pairs; IPv4 and IPv6 values may be 'address/len' prefixes."""

    items: tuple[tuple[str, MatchValue], ...] = ()

    @classmethod
    def of(cls, **fields: MatchValue) -> Match:
        return cls(tuple(sorted(fields.items())))

    def get(self, name: str) -> MatchValue | None:
        for k, v in self.items:
            if k == name:
                return v
        return None

    def as_dict(self) -> dict[str, MatchValue]:
        return dict(self.items)


@dataclass(frozen=True)
class Output:
    port: int


@dataclass(frozen=True)
class SetField:
    field: str
    value: MatchValue


@dataclass(frozen=True)
class DecTtl:
    pass


@dataclass(frozen=True)
class Move:
    """Copy n_bits of one field into another (Nicira reg-move)."""

    src: str
    dst: str
    n_bits: int


@dataclass(frozen=True)
class ToController:
    """A packet-in.  `controller_id` 0: to the controllers (OpenFlow output:CONTROLLER);
    otherwise only to the connections that set that id (Nicira controller(id=N)): the
    agent's own service connection takes DNS questions (flows/dns.py) that way."""

    max_len: int = 0xFFFF  # OFPCML_NO_BUFFER: the whole packet
    controller_id: int = 0


@dataclass(frozen=True)
class Conntrack:
    """OVS ct(): track in `zone`; commit; NAT (nat_src: SNAT to that address;
    nat=True alone: apply the connection's NAT in reverse); `table`: recirculate."""

    zone: int
    commit: bool = False
    nat: bool = False
    nat_src: str | None = None
    nat_dst: str | None = None
    nat_port: int | None = None  # with nat_dst: the destination port too
    table: int | None = None


Action = Output | SetField | DecTtl | Move | ToController | Conntrack


class FlowSpecError(DaoliError):
    """A FlowSpec breaks its table's rules: a bug in a flow builder."""


# Match fields each table may use.
_ICMPV6 = frozenset({"ip_proto", "icmpv6_type"})
MATCH_FIELDS: dict[Table, frozenset[str]] = {
    Table.CLASSIFY: frozenset({"in_port", "eth_src", "eth_type", "ipv4_src", "arp_spa", "arp_sha",
                               "ipv6_src"}) | _ICMPV6,
    Table.GUARD: frozenset({"in_port", "eth_type", "ipv4_src", "ipv4_dst", "ip_proto",
                            "tcp_src", "tcp_dst", "udp_src", "udp_dst", "ipv6_src", "ipv6_dst"}) | _ICMPV6,
    Table.EGRESS: frozenset({"in_port", "eth_type", "ipv4_src", "ipv4_dst", "ip_proto",
                             "tcp_src", "tcp_dst", "udp_src", "udp_dst", "ipv6_src", "ipv6_dst"}),
    Table.INGRESS: frozenset({"in_port", "eth_type", "ipv4_src", "ipv4_dst", "ip_proto",
                              "tcp_src", "tcp_dst", "udp_src", "udp_dst", "ct_state", "ct_mark",
                              "ipv6_src", "ipv6_dst"}),
    Table.STATEFUL: frozenset({"in_port", "eth_type", "ipv4_src", "ipv4_dst", "ip_proto",
                               "tcp_src", "tcp_dst", "udp_src", "udp_dst", "ct_state",
                               "ipv6_src", "ipv6_dst"}),
    Table.ARP: frozenset({"in_port", "eth_type", "arp_op", "arp_tpa"}),
    Table.NDP: frozenset({"in_port", "eth_type", "ipv6_src", "ipv6_nd_target"}) | _ICMPV6,
    Table.NA: frozenset({"eth_type"}) | _ICMPV6,
}
SET_FIELDS: dict[Table, frozenset[str]] = {
    Table.CLASSIFY: frozenset(),
    Table.GUARD: frozenset(),
    Table.EGRESS: frozenset({"eth_src", "eth_dst", "ipv4_src", "ipv4_dst", "in_port",
                             "ipv6_src", "ipv6_dst"}),
    Table.INGRESS: frozenset({"eth_src", "eth_dst", "ipv4_src", "ipv4_dst", "ipv6_src", "ipv6_dst"}),
    Table.STATEFUL: frozenset({"eth_src", "eth_dst", "ipv4_src", "ipv4_dst", "ipv6_src", "ipv6_dst"}),
    Table.ARP: frozenset({"eth_src", "eth_dst", "arp_op", "arp_sha", "arp_tha", "arp_spa", "arp_tpa"}),
    # An NS turned into an NA: OVS lets a flow matching type 135 set these, but not the
    # target link-layer address (an NA-only field): table NA does that (flows/ndp.py).
    Table.NDP: frozenset({"eth_src", "eth_dst", "ipv6_src", "ipv6_dst", "icmpv6_type", "nd_reserved",
                          "nd_options_type"}),
    Table.NA: frozenset({"ipv6_nd_tll"}),
}


@dataclass(frozen=True)
class FlowSpec:
    table: Table
    priority: int
    match: Match
    actions: tuple[Action, ...] = ()
    goto: Table | None = None
    cookie: int = 0
    idle_timeout: int = 0
    hard_timeout: int = 0
    send_flow_rem: bool = False
    meta: Mapping[str, str] = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self) -> None:
        bad = {k for k, _ in self.match.items} - MATCH_FIELDS[self.table]
        if bad:
            raise FlowSpecError(f"table {self.table.name} may not match on {sorted(bad)}")
        for a in self.actions:
            if isinstance(a, SetField) and a.field not in SET_FIELDS[self.table]:
                raise FlowSpecError(f"table {self.table.name} may not set {a.field}")
        if self.goto is not None and self.goto not in NEXT_TABLES[self.table]:
            raise FlowSpecError(f"table {self.table.name} may not goto {self.goto.name}")

    def describe(self) -> str:
        """One line in the spirit of ovs-ofctl, for traces and logs."""
        match = ",".join(f"{k}={hex(v) if k == 'eth_type' and isinstance(v, int) else v}"
                         for k, v in self.match.items)
        acts = [_describe_action(a) for a in self.actions]
        if self.goto is not None:
            acts.append(f"goto_table:{int(self.goto)}")
        timeouts = "".join(f" {n}={v}" for n, v in (("idle_timeout", self.idle_timeout),
                                                      ("hard_timeout", self.hard_timeout)) if v)
        return (f"cookie={self.cookie:#x} table={int(self.table)} priority={self.priority}{timeouts} "
                f"{match or '*'} actions={','.join(acts) or 'drop'}")

    @property
    def key(self) -> tuple[Table, int, Match]:
        """What OpenFlow identifies a flow by (strict match)."""
        return (self.table, self.priority, self.match)


def _describe_action(a: Action) -> str:
    if isinstance(a, Output):
        return f"output:{a.port}"
    if isinstance(a, SetField):
        return f"set_field:{a.value}->{a.field}"
    if isinstance(a, DecTtl):
        return "dec_ttl"
    if isinstance(a, Move):
        return f"move:{a.src}->{a.dst}"
    if isinstance(a, Conntrack):
        parts = [f"zone={a.zone}"] + (["commit"] if a.commit else [])
        if a.nat or a.nat_src or a.nat_dst:
            parts.append(f"nat(src={a.nat_src})" if a.nat_src else
                         f"nat(dst={a.nat_dst}{':' + str(a.nat_port) if a.nat_port else ''})"
                         if a.nat_dst else "nat")
        if a.table is not None:
            parts.append(f"table={a.table}")
        return f"ct({','.join(parts)})"
    return f"controller(id={a.controller_id})" if a.controller_id else "controller"
