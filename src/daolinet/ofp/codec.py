"""OpenFlow 1.3 encode/decode through os-ken, and stream framing.

os-ken's parser wants a "datapath" carrying the protocol modules; `DP` is
that, and nothing else.  `ofproto_parser.msg()` logs and returns None on a
parse failure: we turn that into a RemoteProtocolError.
"""

from __future__ import annotations

import logging
import struct
from typing import Any, NamedTuple

from os_ken.ofproto import ofproto_parser, ofproto_v1_3, ofproto_v1_3_parser

from daolinet.errors import DaoliError

ofp = ofproto_v1_3  # the one OpenFlow version, for every module that speaks it
parser = ofproto_v1_3_parser

HEADER = struct.Struct("!BBHI")  # version, type, length, xid
MAX_MESSAGE = 0xFFFF

# os-ken logs a full hex dump on every parse failure; we raise instead.
logging.getLogger("os_ken.ofproto.ofproto_parser").setLevel(logging.CRITICAL)


class ProtocolError(DaoliError):
    """An OpenFlow conversation went wrong."""


class LocalProtocolError(ProtocolError):
    """We were asked to send something invalid."""


class RemoteProtocolError(ProtocolError):
    """The switch sent something we cannot accept; the channel is closed."""


class _Datapath:
    """What os-ken's message classes need from a datapath."""

    ofproto = ofp
    ofproto_parser = parser
    id: int | None = None


DP = _Datapath()


class Encoded(NamedTuple):
    """A message already in wire form (xid 0; the channel stamps its own), and
    what it is, for error reports: the FlowSpec it came from, or a description."""

    data: bytes
    what: Any

    def with_xid(self, xid: int) -> bytes:
        d = self.data
        return d[:4] + xid.to_bytes(4, "big") + d[8:]


def encode(msg: Any, xid: int) -> bytes:
    msg.xid = xid
    try:
        msg.serialize()
    except Exception as e:  # os-ken raises assorted errors for bad fields
        raise LocalProtocolError(f"cannot encode {type(msg).__name__}: {e}") from e
    return bytes(msg.buf)


def decode(frame: bytes) -> Any:
    version, msg_type, length, xid = HEADER.unpack_from(frame)
    if version != ofp.OFP_VERSION:
        raise RemoteProtocolError(f"switch speaks OpenFlow version {version:#x}, not 1.3")
    _check_lengths(msg_type, frame)
    try:
        msg = ofproto_parser.msg(DP, version, msg_type, length, xid, frame)
    except Exception as e:
        raise RemoteProtocolError(f"cannot parse message type {msg_type}: {e}") from e
    if msg is None:
        raise RemoteProtocolError(f"cannot parse message type {msg_type} (xid {xid})")
    return msg


# os-ken's parsers walk length-prefixed elements with `offset += element.len`
# and never finish when a length is 0 (one bad HELLO would hang the event
# loop).  Before os-ken sees a frame, check every such chain in the message
# types a switch may send us (and FLOW_MOD, which tests decode), and refuse
# the types we never ask for whose parsers loop the same way.
_U16 = struct.Struct("!H")
_SAFE_MULTIPART = frozenset({  # fixed-size bodies: os-ken steps by a constant
    ofp.OFPMP_DESC, ofp.OFPMP_AGGREGATE, ofp.OFPMP_TABLE, ofp.OFPMP_PORT_STATS, ofp.OFPMP_QUEUE,
    ofp.OFPMP_GROUP_FEATURES, ofp.OFPMP_METER_FEATURES, ofp.OFPMP_PORT_DESC,
})
_UNSUPPORTED = frozenset({ofp.OFPT_QUEUE_GET_CONFIG_REPLY})
_NXAST_CT = 35  # nested actions at offset 24
_ACTION_LISTS = frozenset({ofp.OFPIT_WRITE_ACTIONS, ofp.OFPIT_APPLY_ACTIONS})


def _chain(frame: bytes, offset: int, end: int, what: str, minimum: int, align: int = 1) -> list[int]:
    """Offsets of the elements of a chain whose 16-bit length follows a 16-bit type."""
    starts = []
    while offset < end:
        if offset + 4 > end:
            raise RemoteProtocolError(f"truncated {what} at offset {offset}")
        (length,) = _U16.unpack_from(frame, offset + 2)
        if length < minimum or length % align or offset + length > end:
            raise RemoteProtocolError(f"{what} at offset {offset} has bad length {length}")
        starts.append(offset)
        offset += length
    return starts


def _check_actions(frame: bytes, offset: int, end: int) -> None:
    for at in _chain(frame, offset, end, "action", 8, 8):
        a_type, a_len = struct.unpack_from("!HH", frame, at)
        if a_type == ofp.OFPAT_EXPERIMENTER and a_len >= 10:
            (subtype,) = _U16.unpack_from(frame, at + 8)
            if subtype == _NXAST_CT:
                _check_actions(frame, at + 24, at + a_len)


def _check_instructions(frame: bytes, offset: int, end: int) -> None:
    for at in _chain(frame, offset, end, "instruction", 8, 8):
        i_type, i_len = struct.unpack_from("!HH", frame, at)
        if i_type not in parser.OFPInstruction._INSTRUCTION_TYPES:
            raise RemoteProtocolError(f"unknown instruction type {i_type}")
        if i_type in _ACTION_LISTS:
            _check_actions(frame, at + ofp.OFP_INSTRUCTION_ACTIONS_SIZE, at + i_len)


def _match_end(frame: bytes, offset: int, end: int) -> int:
    """Where the instructions after an ofp_match at offset begin."""
    if offset + 4 > end:
        raise RemoteProtocolError("truncated match")
    (length,) = _U16.unpack_from(frame, offset + 2)
    return offset + (int(length) + 7) // 8 * 8


def _check_lengths(msg_type: int, frame: bytes) -> None:
    end = len(frame)
    if msg_type == ofp.OFPT_HELLO:
        _chain(frame, HEADER.size, end, "hello element", 4)
    elif msg_type == ofp.OFPT_FLOW_MOD:
        match_at = ofp.OFP_FLOW_MOD_SIZE - ofp.OFP_MATCH_SIZE
        _check_instructions(frame, _match_end(frame, match_at, end), end)
    elif msg_type == ofp.OFPT_MULTIPART_REPLY and len(frame) >= ofp.OFP_MULTIPART_REPLY_SIZE:
        (mp_type,) = _U16.unpack_from(frame, HEADER.size)
        if mp_type == ofp.OFPMP_FLOW:
            for at in _flow_stats(frame, ofp.OFP_MULTIPART_REPLY_SIZE, end):
                (length,) = _U16.unpack_from(frame, at)
                match_at = at + ofp.OFP_FLOW_STATS_SIZE - ofp.OFP_MATCH_SIZE
                _check_instructions(frame, _match_end(frame, match_at, at + length), at + length)
        elif mp_type not in _SAFE_MULTIPART:
            raise RemoteProtocolError(f"unsupported multipart reply type {mp_type}")
    elif msg_type == ofp.OFPT_EXPERIMENTER and len(frame) >= ofp.OFP_EXPERIMENTER_HEADER_SIZE:
        key = struct.unpack_from(ofp.OFP_EXPERIMENTER_HEADER_PACK_STR, frame, HEADER.size)
        if key in parser.OFPExperimenter._subtypes:
            raise RemoteProtocolError(f"unsupported experimenter message {key}")
    elif msg_type in _UNSUPPORTED:
        raise RemoteProtocolError(f"unsupported message type {msg_type}")


def _flow_stats(frame: bytes, offset: int, end: int) -> list[int]:
    """Offsets of ofp_flow_stats entries (their 16-bit length comes first)."""
    starts = []
    while offset < end:
        if offset + 2 > end:
            raise RemoteProtocolError("truncated flow stats")
        (length,) = _U16.unpack_from(frame, offset)
        if length < ofp.OFP_FLOW_STATS_SIZE or offset + length > end:
            raise RemoteProtocolError(f"flow stats at offset {offset} has bad length {length}")
        starts.append(offset)
        offset += length
    return starts


_PACKET_IN = struct.Struct("!IHBBQ")  # buffer_id, total_len, reason, table_id, cookie
_OXM_HEADER = struct.Struct("!I")
_OXM_IN_PORT = (ofp.OFPXMC_OPENFLOW_BASIC << 16) | 4  # field 0 (in_port), no mask, 4 bytes


def parse_packet_in(frame: bytes) -> tuple[int, int, int, int, bytes]:
    """(in_port, table_id, reason, cookie, data) of a PACKET_IN, read straight
    from the frame: the hot path's one message, without building os-ken
    objects.  tests/unit/test_fastpath_parse.py holds it equal to os-ken's parse."""
    end = len(frame)
    if end < 32:
        raise RemoteProtocolError(f"packet-in of {end} bytes is too short")
    _, _, reason, table_id, cookie = _PACKET_IN.unpack_from(frame, 8)
    m_type, m_len = struct.unpack_from("!HH", frame, 24)
    m_end = 24 + m_len
    data_at = 24 + (m_len + 7) // 8 * 8 + 2
    if m_type != ofp.OFPMT_OXM or m_len < 4 or data_at > end:
        raise RemoteProtocolError(f"packet-in has a bad match (type {m_type}, length {m_len})")
    in_port, at = 0, 28
    while at + 4 <= m_end:
        (header,) = _OXM_HEADER.unpack_from(frame, at)
        length = header & 0xFF
        if at + 4 + length > m_end:
            raise RemoteProtocolError(f"packet-in match field at offset {at} overruns the match")
        if header == _OXM_IN_PORT:
            (in_port,) = _OXM_HEADER.unpack_from(frame, at + 4)
        at += 4 + length
    return in_port, table_id, reason, cookie, frame[data_at:]


class Framer:
    """Splits a byte stream into OpenFlow frames, wherever the stream is cut."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        buf = self._buf
        buf += data
        frames = []
        at, end = 0, len(buf)
        while end - at >= HEADER.size:
            _, _, length, _ = HEADER.unpack_from(buf, at)
            if length < HEADER.size:
                raise RemoteProtocolError(f"frame length {length} is shorter than a header")
            if end - at < length:
                break
            frames.append(bytes(buf[at:at + length]))
            at += length
        del buf[:at]  # once per read, not once per frame
        return frames
