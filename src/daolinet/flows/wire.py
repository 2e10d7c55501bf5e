"""The fast path from FlowSpecs to OpenFlow 1.3 bytes, with os-ken as the reference.

`flows/render.py` builds os-ken message objects, and os-ken serialises them:
correct, but ~150 µs a FlowMod.  Here the messages of the hot path (route
FlowMods, PacketOuts, cookie deletes) are packed straight with `struct` from
precompiled pieces: the fixed FlowMod header, one OXM header per match
field, one packer per action.  Addresses are converted once and cached.
Conntrack without NAT (an L4 route's ct(commit) and ct(table=21)) and a
ct_state match are in the vocabulary too, and so are the IPv6 and ND fields,
with the two set-fields os-ken lacks (nd_reserved, nd_options_type: flows/ericoxm.py).

Anything outside it (prefix matches, NAT, reg moves, ...) falls back to
os-ken, so every FlowSpec encodes; tests/unit/test_wire.py proves the fast
bytes identical to os-ken's over hypothesis-generated routes.
Everything is encoded with xid 0: `Channel.send` stamps the xid in.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Callable
from functools import lru_cache

from os_ken.lib import addrconv

from daolinet.flows import ericoxm, render
from daolinet.flows.spec import Conntrack, DecTtl, FlowSpec, Output, SetField
from daolinet.model.family import V6, family_of
from daolinet.ofp.codec import Encoded, encode, ofp

OFP_VERSION = ofp.OFP_VERSION
# FlowMod after the header: cookie, cookie_mask, table, command, idle, hard, priority,
# buffer_id, out_port, out_group, flags, 2 pad.
_FLOW_MOD = struct.Struct("!BBHIQQBBHHHIIIH2x")
_PACKET_OUT = struct.Struct("!BBHIIIH6x")  # header, buffer_id, in_port, actions_len
_OXM_HDR = struct.Struct("!I")
_MATCH_HDR = struct.Struct("!HH")
_INSTRUCTION = struct.Struct("!HH4x")  # apply-actions: type, len, pad
_GOTO = struct.Struct("!HHB3x")
_OUTPUT = struct.Struct("!HHIH6x")


def _oxm(field: int, length: int) -> int:
    return (0x8000 << 16) | (field << 9) | length


# name -> (OXM field number, value packer)
def _u8(v: int | str) -> bytes:
    return struct.pack("!B", int(v))


def _u16(v: int | str) -> bytes:
    return struct.pack("!H", int(v))


def _u32(v: int | str) -> bytes:
    return struct.pack("!I", int(v))


@lru_cache(maxsize=1 << 16)
def ipv4_bytes(v: int | str) -> bytes:
    """An IPv4 address on the wire (cached, as MACs are)."""
    return socket.inet_aton(str(v))


@lru_cache(maxsize=1 << 16)
def mac_bytes(v: int | str) -> bytes:
    """A MAC address on the wire (cached: the hot path meets the same few again and again)."""
    return bytes(addrconv.mac.text_to_bin(str(v)))


@lru_cache(maxsize=1 << 16)
def ipv6_bytes(v: int | str) -> bytes:
    return socket.inet_pton(socket.AF_INET6, str(v))


_FIELDS: dict[str, tuple[int, Callable[[int | str], bytes]]] = {
    "in_port": (0, _u32), "eth_dst": (3, mac_bytes), "eth_src": (4, mac_bytes), "eth_type": (5, _u16),
    "ip_proto": (10, _u8), "ipv4_src": (11, ipv4_bytes), "ipv4_dst": (12, ipv4_bytes),
    "tcp_src": (13, _u16), "tcp_dst": (14, _u16), "udp_src": (15, _u16), "udp_dst": (16, _u16),
    "ipv6_src": (26, ipv6_bytes), "ipv6_dst": (27, ipv6_bytes), "icmpv6_type": (29, _u8),
    "icmpv6_code": (30, _u8), "ipv6_nd_target": (31, ipv6_bytes), "ipv6_nd_sll": (32, mac_bytes),
    "ipv6_nd_tll": (33, mac_bytes),
}
_FIELD_SIZE = {"in_port": 4, "eth_dst": 6, "eth_src": 6, "eth_type": 2, "ip_proto": 1, "ipv4_src": 4,
               "ipv4_dst": 4, "tcp_src": 2, "tcp_dst": 2, "udp_src": 2, "udp_dst": 2, "ipv6_src": 16,
               "ipv6_dst": 16, "icmpv6_type": 1, "icmpv6_code": 1, "ipv6_nd_target": 16, "ipv6_nd_sll": 6,
               "ipv6_nd_tll": 6}
_OXM_HEADERS = {name: _OXM_HDR.pack(_oxm(num, _FIELD_SIZE[name])) for name, (num, _) in _FIELDS.items()}
_ORDER = {name: num for name, (num, _) in _FIELDS.items()}
# The ERICOXM set-fields (never matched on): their own class, by hand.
for _name, (_, _size) in ericoxm.ERICOXM_FIELDS.items():
    _FIELDS[_name] = (0, _u32 if _size == 4 else _u8)
    _FIELD_SIZE[_name] = _size
    _OXM_HEADERS[_name] = ericoxm.oxm_header(_name)
# ct_state: NXM_NX_CT_STATE (class 1, field 105), always with a mask; os-ken writes it first.
_CT_STATE_HDR = _OXM_HDR.pack((0x0001 << 16) | (105 << 9) | (1 << 8) | 8)
_ORDER["ct_state"] = -1


class Unsupported(Exception):
    """Outside the fast vocabulary: os-ken encodes it."""


# A message in pieces: bytes are fixed, an int is a hole the caller fills in (a slot
# number it chose).  flows/route_wire.py compiles route templates this way; with no
# holes the pieces simply join into the message.
Piece = bytes | int
Hole = Callable[[str, int | str], int | None]  # (field, value) -> a slot, or None: fixed


def _no_hole(name: str, value: int | str) -> int | None:
    return None


@lru_cache(maxsize=1 << 18)
def tlv(name: str, value: int | str | tuple[int, int]) -> bytes:
    """One OXM field, header and value (cached: route flows repeat the same few)."""
    if name == "ct_state" and isinstance(value, tuple):
        return _CT_STATE_HDR + struct.pack("!II", *value)
    if name not in _FIELDS or isinstance(value, tuple) or (isinstance(value, str) and "/" in value):
        raise Unsupported(name)
    return _OXM_HEADERS[name] + _FIELDS[name][1](value)


def _u64(v: int | str) -> bytes:
    return struct.pack("!Q", int(v))


def packer(name: str) -> Callable[[int | str], bytes]:
    """How a hole is filled: the value of match field / set-field `name`, of an
    output port ("output"), of a FlowMod's "cookie" or "idle_timeout"."""
    holes = {"output": _u32, "cookie": _u64, "idle_timeout": _u16, "ct_zone": _u16}
    return holes.get(name) or _FIELDS[name][1]


def _tlv(name: str, value: int | str | tuple[int, int], hole: Hole) -> list[Piece]:
    slot = None if isinstance(value, tuple) else hole(name, value)
    if slot is None:
        return [tlv(name, value)]
    tlv(name, value)  # the same checks
    return [_OXM_HEADERS[name], slot]


def _pad8(n: int) -> int:
    return (n + 7) // 8 * 8


def _length(pieces: list[Piece]) -> int:
    """The bytes `pieces` will take once filled: a hole follows the piece naming its
    field (an OXM header, a set-field's head ending in one, an output's head)."""
    total = 0
    for i, p in enumerate(pieces):
        if isinstance(p, bytes):
            total += len(p)
        else:
            head = pieces[i - 1]
            assert isinstance(head, bytes)
            total += 4 if head == _OUTPUT_HEAD else 2 if head in _CT_HEADS else head[-1]  # OXM: its length
    return total


def _match(items: tuple[tuple[str, int | str | tuple[int, int]], ...], hole: Hole) -> list[Piece]:
    """An ofp_match (OXM), fields in OXM order as os-ken writes them, padded to 8."""
    body: list[Piece] = []
    for k, v in sorted(items, key=lambda kv: _ORDER.get(kv[0], 99)):
        body += _tlv(k, v, hole)
    length = 4 + _length(body)
    return [_MATCH_HDR.pack(ofp.OFPMT_OXM, length), *body, bytes(_pad8(length) - length)]


DEC_TTL = struct.pack("!HH4x", ofp.OFPAT_DEC_NW_TTL, 8)
_OUTPUT_HEAD = struct.pack("!HH", ofp.OFPAT_OUTPUT, 16)
_OUTPUT_TAIL = struct.pack("!H6x", 0)


@lru_cache(maxsize=1 << 16)
def output(port: int) -> bytes:
    return _OUTPUT.pack(ofp.OFPAT_OUTPUT, 16, port, 0)


@lru_cache(maxsize=1 << 18)
def set_field(name: str, value: int | str) -> bytes:
    field = tlv(name, value)
    length = _pad8(4 + len(field))
    return struct.pack("!HH", ofp.OFPAT_SET_FIELD, length) + field + bytes(length - 4 - len(field))


_NXAST_CT = struct.Struct("!HHIHHIHB3xH")  # vendor action: type, len, vendor, subtype, flags,
# zone_src, zone, recirc_table, pad, alg (OVS nx_action_conntrack; no nested NAT here)
_CT_HEADS: set[bytes] = set()  # a ct action's bytes up to its zone: a hole of 2 follows


def conntrack(ct: Conntrack) -> bytes:
    """ct(zone, [commit], [table]) without NAT, as os-ken's NXActionCT writes it."""
    if ct.nat or ct.nat_src or ct.nat_dst:
        raise Unsupported("nat")
    table = 0xFF if ct.table is None else ct.table
    return _NXAST_CT.pack(0xFFFF, 24, 0x2320, 35, int(ct.commit), 0, ct.zone, table, 0)


def _action(a: object, hole: Hole) -> list[Piece]:
    if isinstance(a, Output):
        slot = hole("output", a.port)
        return [output(a.port)] if slot is None else [_OUTPUT_HEAD, slot, _OUTPUT_TAIL]
    if isinstance(a, SetField) and a.field != "in_port":  # in_port: render.py's NXM form
        whole = set_field(a.field, a.value)
        slot = hole(a.field, a.value)  # type: ignore[arg-type]
        return [whole] if slot is None else [whole[:8], slot, whole[8 + _FIELD_SIZE[a.field]:]]
    if isinstance(a, DecTtl):
        return [DEC_TTL]
    if isinstance(a, Conntrack):
        whole = conntrack(a)
        slot = hole("ct_zone", a.zone)
        if slot is None:
            return [whole]
        _CT_HEADS.add(whole[:16])
        return [whole[:16], slot, whole[18:]]
    raise Unsupported(type(a).__name__)


def _instructions(spec: FlowSpec, hole: Hole) -> list[Piece]:
    out: list[Piece] = []
    if spec.actions:
        actions = [p for a in spec.actions for p in _action(a, hole)]
        out += [_INSTRUCTION.pack(ofp.OFPIT_APPLY_ACTIONS, 8 + _length(actions)), *actions]
    if spec.goto is not None:
        out.append(_GOTO.pack(ofp.OFPIT_GOTO_TABLE, 8, int(spec.goto)))
    return out


def _flow_mod(length: int, cookie: int, cookie_mask: int, table: int, command: int, idle: int, hard: int,
              priority: int, out_port: int, out_group: int, flags: int) -> bytes:
    """The FlowMod's header and fixed part, for a message of `length` bytes in all."""
    return _FLOW_MOD.pack(OFP_VERSION, ofp.OFPT_FLOW_MOD, length, 0, cookie, cookie_mask, table, command,
                          idle, hard, priority, ofp.OFP_NO_BUFFER, out_port, out_group, flags)


def flow_add_pieces(spec: FlowSpec, hole: Hole) -> list[Piece]:
    """OFPFC_ADD of a FlowSpec in pieces, `hole` choosing which values stay open
    (Unsupported if anything is outside the fast vocabulary)."""
    body = _match(spec.match.items, hole) + _instructions(spec, hole)
    flags = ofp.OFPFF_SEND_FLOW_REM if spec.send_flow_rem else 0
    head = _flow_mod(_FLOW_MOD.size + _length(body), spec.cookie, 0, int(spec.table), ofp.OFPFC_ADD,
                     spec.idle_timeout, spec.hard_timeout, spec.priority, 0, 0, flags)
    cookie, idle = hole("cookie", spec.cookie), hole("idle_timeout", spec.idle_timeout)
    return [head[:8], head[8:16] if cookie is None else cookie, head[16:26],
            head[26:28] if idle is None else idle, head[28:], *body]


def flow_add(spec: FlowSpec) -> Encoded:
    """OFPFC_ADD of a FlowSpec: fast when it can be, os-ken's bytes otherwise."""
    try:
        pieces = flow_add_pieces(spec, _no_hole)
    except Unsupported:
        return Encoded(encode(render.flow_add(spec), 0), spec)
    return Encoded(b"".join(pieces), spec)  # type: ignore[arg-type]


_EMPTY_MATCH = _MATCH_HDR.pack(ofp.OFPMT_OXM, 4) + bytes(4)


def flow_delete_cookie(cookie: int, mask: int, table: int | None = None) -> Encoded:
    """Delete every flow whose cookie matches under mask (in one table or all)."""
    head = _flow_mod(_FLOW_MOD.size + len(_EMPTY_MATCH), cookie, mask,
                     ofp.OFPTT_ALL if table is None else int(table), ofp.OFPFC_DELETE, 0, 0,
                     ofp.OFP_DEFAULT_PRIORITY, ofp.OFPP_ANY, ofp.OFPG_ANY, 0)
    return Encoded(head + _EMPTY_MATCH, f"delete cookie={cookie:#x}/{mask:#x}")


def _packet_out(in_port: int, out_port: int, data: bytes) -> Encoded:
    return packet_out(in_port, output(out_port), data, f"packet-out in_port={in_port} output={out_port}")


def packet_out(in_port: int, actions: bytes, data: bytes, what: str) -> Encoded:
    """A PacketOut of `data` with these (encoded) actions."""
    head = _PACKET_OUT.pack(OFP_VERSION, ofp.OFPT_PACKET_OUT, 24 + len(actions) + len(data), 0,
                            ofp.OFP_NO_BUFFER, in_port, len(actions))
    return Encoded(head + actions + data, what)


def packet_out_commit(in_port: int, src: str, dst: str, zone: int, data: bytes) -> Encoded:
    """Commit a packet's connection to conntrack, its addresses rewritten to src and dst
    first (an L4 route's PIPs), and send it nowhere: the first packet of a connection
    delivered straight to its destination still leaves its entry on its client's host.
    IPv6 addresses rewrite ipv6_src/ipv6_dst."""
    fields = ("ipv6_src", "ipv6_dst") if family_of(src) == V6 else ("ipv4_src", "ipv4_dst")
    actions = set_field(fields[0], src) + set_field(fields[1], dst)
    actions += conntrack(Conntrack(zone, commit=True))
    return packet_out(in_port, actions, data, f"packet-out in_port={in_port} ct(commit,zone={zone})")


def packet_out_to_table(in_port: int, data: bytes) -> Encoded:
    """Re-inject a packet as if it had just arrived on in_port."""
    return _packet_out(in_port, ofp.OFPP_TABLE, data)


def packet_out_to_port(port: int, data: bytes) -> Encoded:
    return _packet_out(ofp.OFPP_CONTROLLER, port, data)
