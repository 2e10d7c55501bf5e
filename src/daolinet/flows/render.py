"""FlowSpec -> os-ken OpenFlow 1.3 messages.  The one place our flow vocabulary
meets os-ken's; install and delete share `match_for`, so a delete always
matches what was installed.  The two ND set-fields os-ken lacks are carried as
bytes (flows/ericoxm.py)."""

from __future__ import annotations

import ipaddress
from typing import Any

from daolinet.flows import ericoxm
from daolinet.flows.spec import Conntrack, DecTtl, FlowSpec, Match, Move, Output, SetField, ToController
from daolinet.model.family import V6, family_of
from daolinet.ofp.codec import DP, ofp, parser
from daolinet.pipeline import Table

PREFIX_FIELDS = frozenset({"ipv4_src", "ipv4_dst", "arp_spa", "arp_tpa", "ipv6_src", "ipv6_dst",
                           "ipv6_nd_target"})


def _match_value(name: str, value: int | str | tuple[int, int]) -> Any:
    if isinstance(value, str) and "/" in value and name in PREFIX_FIELDS:
        net = ipaddress.ip_network(value, strict=False)
        return (str(net.network_address), str(net.netmask))
    return value


def match_for(match: Match) -> Any:
    return parser.OFPMatch(**{k: _match_value(k, v) for k, v in match.items})


def _action(a: Any) -> Any:
    if isinstance(a, Output):
        return parser.OFPActionOutput(a.port, 0)
    if isinstance(a, SetField) and a.field in ericoxm.ERICOXM_FIELDS:
        return SetFieldBytes(a.field, a.value)
    if isinstance(a, SetField) and a.field == "in_port":  # OVS sets only the 16-bit NXM view of it
        return parser.OFPActionSetField(in_port_nxm=a.value)
    if isinstance(a, SetField):
        return parser.OFPActionSetField(**{a.field: a.value})
    if isinstance(a, DecTtl):
        return parser.OFPActionDecNwTtl()
    if isinstance(a, Move):
        return parser.NXActionRegMove(src_field=a.src, dst_field=a.dst, n_bits=a.n_bits,
                                      src_ofs=0, dst_ofs=0)
    if isinstance(a, ToController):
        if a.controller_id:
            return parser.NXActionController(max_len=a.max_len, controller_id=a.controller_id,
                                             reason=ofp.OFPR_ACTION)
        return parser.OFPActionOutput(ofp.OFPP_CONTROLLER, a.max_len)
    if isinstance(a, Conntrack):
        return _conntrack(a)
    raise TypeError(f"unknown action {a!r}")


class SetFieldBytes(parser.OFPAction):  # type: ignore[misc]  # os-ken is untyped
    """A set-field os-ken lacks (flows/ericoxm.py), as an os-ken action: what its
    OFPInstructionActions asks of one is `serialize(buf, offset)` and `len`."""

    def __init__(self, name: str, value: int | str | tuple[int, int]) -> None:
        if isinstance(value, tuple):
            raise TypeError(f"{name} is not maskable")
        parser.OFPActionHeader.__init__(self, ofp.OFPAT_SET_FIELD, 0)
        self.field, self.value = name, value
        self.data = ericoxm.set_field(name, value)
        self.len = len(self.data)

    def serialize(self, buf: bytearray, offset: int) -> None:
        end = offset + self.len
        if len(buf) < end:
            buf += bytes(end - len(buf))
        buf[offset:end] = self.data


NX_NAT_F_SRC, NX_NAT_F_DST = 1 << 0, 1 << 1  # not exported by os-ken


def _conntrack(a: Conntrack) -> Any:
    nat: list[Any] = []
    addr = a.nat_src or a.nat_dst
    if addr:
        flag = NX_NAT_F_SRC if a.nat_src else NX_NAT_F_DST
        v = "ipv6" if family_of(addr) == V6 else "ipv4"  # NAT66 (flows/external.py) names an IPv6 address
        ranges: dict[str, Any] = {f"range_{v}_min": addr, f"range_{v}_max": addr}
        if a.nat_port:
            ranges |= {"range_proto_min": a.nat_port, "range_proto_max": a.nat_port}
        nat.append(parser.NXActionNAT(flags=flag, **ranges))
    elif a.nat:
        nat.append(parser.NXActionNAT(flags=0))
    return parser.NXActionCT(
        flags=1 if a.commit else 0, zone_src="", zone_ofs_nbits=a.zone,
        recirc_table=0xFF if a.table is None else a.table, alg=0, actions=nat)


def instructions_for(spec: FlowSpec) -> list[Any]:
    inst: list[Any] = []
    if spec.actions:
        inst.append(parser.OFPInstructionActions(ofp.OFPIT_APPLY_ACTIONS,
                                                 [_action(a) for a in spec.actions]))
    if spec.goto is not None:
        inst.append(parser.OFPInstructionGotoTable(int(spec.goto)))
    return inst


def flow_add(spec: FlowSpec) -> Any:
    flags = ofp.OFPFF_SEND_FLOW_REM if spec.send_flow_rem else 0
    return parser.OFPFlowMod(
        DP, cookie=spec.cookie, table_id=int(spec.table), command=ofp.OFPFC_ADD,
        idle_timeout=spec.idle_timeout, hard_timeout=spec.hard_timeout, priority=spec.priority,
        buffer_id=ofp.OFP_NO_BUFFER, flags=flags, match=match_for(spec.match),
        instructions=instructions_for(spec),
    )


def flow_delete_strict(spec: FlowSpec) -> Any:
    return parser.OFPFlowMod(
        DP, table_id=int(spec.table), command=ofp.OFPFC_DELETE_STRICT, priority=spec.priority,
        out_port=ofp.OFPP_ANY, out_group=ofp.OFPG_ANY, match=match_for(spec.match),
    )


def flow_delete_cookie(cookie: int, mask: int, table: Table | None = None) -> Any:
    """Delete every flow whose cookie matches under mask (in one table or all)."""
    return parser.OFPFlowMod(
        DP, cookie=cookie, cookie_mask=mask,
        table_id=ofp.OFPTT_ALL if table is None else int(table), command=ofp.OFPFC_DELETE,
        out_port=ofp.OFPP_ANY, out_group=ofp.OFPG_ANY, match=parser.OFPMatch(),
    )


def flow_stats_request(cookie: int, mask: int) -> Any:
    return parser.OFPFlowStatsRequest(
        DP, 0, ofp.OFPTT_ALL, ofp.OFPP_ANY, ofp.OFPG_ANY, cookie, mask, parser.OFPMatch(),
    )


def packet_out_to_table(in_port: int, data: bytes) -> Any:
    """Re-inject a packet as if it had just arrived on in_port."""
    return parser.OFPPacketOut(DP, buffer_id=ofp.OFP_NO_BUFFER, in_port=in_port,
                               actions=[parser.OFPActionOutput(ofp.OFPP_TABLE, 0)], data=data)


def packet_out_to_port(port: int, data: bytes) -> Any:
    return parser.OFPPacketOut(DP, buffer_id=ofp.OFP_NO_BUFFER, in_port=ofp.OFPP_CONTROLLER,
                               actions=[parser.OFPActionOutput(port, 0)], data=data)
