"""The switch's side of one OpenFlow 1.3 connection, in memory, for tests.

Sans-IO like `daolinet.ofp.channel.Channel`, which it talks to: feed it the
controller's bytes with `receive_data()`, take what it says with
`data_to_send()`.  It greets with HELLO, answers FEATURES_REQUEST (its dpid),
PORT_DESC (optionally in several OFPMPF_REPLY_MORE parts), DESC, FLOW stats
(an empty table), BARRIER_REQUEST and ECHO_REQUEST, and records every message it
receives in `received`.  Switch-initiated messages (`packet_in`,
`flow_removed`, `echo_request`, `port_status`, `error`) are queued as bytes.

os-ken can serialise what a controller sends and parse what a switch sends,
but mostly not the reverse, so the replies here are packed with os-ken's own
struct layouts (`ofp.OFP_*_PACK_STR`) and the requests os-ken cannot parse are
rebuilt into os-ken message objects by hand.

`pump(channel, switch)` moves bytes both ways until both are quiet and
returns the controller-side events (h11's `ConnectionPair`).
"""

from __future__ import annotations

import itertools
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from daolinet.ofp.channel import Channel, Event
from daolinet.ofp.codec import DP, HEADER, Framer, RemoteProtocolError, decode, encode, ofp, parser

PortSpec = tuple[int, str, str]  # (ofport, name, mac)

N_TABLES = 254
CAPABILITIES = ofp.OFPC_FLOW_STATS | ofp.OFPC_TABLE_STATS | ofp.OFPC_PORT_STATS


class FakeSwitchError(Exception):
    """The controller broke the protocol in a way a real switch would not accept."""


@dataclass(frozen=True)
class UnknownRequest:
    """A controller message the fake does not understand (answered with BAD_TYPE)."""

    msg_type: int
    xid: int
    frame: bytes


# -- bytes a switch sends ------------------------------------------------------------


def _frame(msg_type: int, xid: int, body: bytes = b"") -> bytes:
    return HEADER.pack(ofp.OFP_VERSION, msg_type, HEADER.size + len(body), xid) + body


def _mac_bytes(mac: str) -> bytes:
    raw = bytes.fromhex(mac.replace(":", ""))
    if len(raw) != 6:
        raise ValueError(f"bad MAC {mac!r}")
    return raw


def pack_port(ofport: int, name: str, mac: str, *, config: int = 0, state: int = ofp.OFPPS_LIVE) -> bytes:
    """An ofp_port, as in PORT_DESC replies and PORT_STATUS."""
    speed = 10_000_000  # kbps
    feats = ofp.OFPPF_10GB_FD | ofp.OFPPF_COPPER
    return struct.pack(ofp.OFP_PORT_PACK_STR, ofport, _mac_bytes(mac), name.encode()[:15],
                       config, state, feats, feats, feats, 0, speed, speed)


def _pack_match(match: Any) -> bytes:
    buf = bytearray()
    match.serialize(buf, 0)
    return bytes(buf)


# -- controller messages os-ken cannot parse ---------------------------------------------


def _actions(buf: bytes, offset: int, end: int) -> list[Any]:
    actions = []
    while offset < end:
        action = parser.OFPAction.parser(buf, offset)
        if action.len < 8:
            raise RemoteProtocolError(f"action of length {action.len}")
        actions.append(action)
        offset += action.len
    return actions


def _set_config(frame: bytes) -> Any:
    flags, miss_send_len = struct.unpack_from(ofp.OFP_SWITCH_CONFIG_PACK_STR, frame, HEADER.size)
    return parser.OFPSetConfig(DP, flags, miss_send_len)


def _set_async(frame: bytes) -> Any:
    m = struct.unpack_from(ofp.OFP_ASYNC_CONFIG_PACK_STR, frame, HEADER.size)
    return parser.OFPSetAsync(DP, list(m[0:2]), list(m[2:4]), list(m[4:6]))


def _packet_out(frame: bytes) -> Any:
    buffer_id, in_port, actions_len = struct.unpack_from(ofp.OFP_PACKET_OUT_PACK_STR, frame, HEADER.size)
    start = ofp.OFP_PACKET_OUT_SIZE
    actions = _actions(frame, start, start + actions_len)
    return parser.OFPPacketOut(DP, buffer_id=buffer_id, in_port=in_port, actions=actions,
                               data=frame[start + actions_len:])


def _multipart_request(frame: bytes) -> Any:
    mp_type, flags = struct.unpack_from(ofp.OFP_MULTIPART_REQUEST_PACK_STR, frame, HEADER.size)
    if mp_type == ofp.OFPMP_PORT_DESC:
        return parser.OFPPortDescStatsRequest(DP, flags)
    if mp_type == ofp.OFPMP_DESC:
        return parser.OFPDescStatsRequest(DP, flags)
    if mp_type == ofp.OFPMP_FLOW:
        offset = ofp.OFP_MULTIPART_REQUEST_SIZE
        table_id, out_port, out_group, cookie, cookie_mask = struct.unpack_from(
            ofp.OFP_FLOW_STATS_REQUEST_0_PACK_STR, frame, offset)
        match = parser.OFPMatch.parser(frame, offset + ofp.OFP_FLOW_STATS_REQUEST_0_SIZE)
        return parser.OFPFlowStatsRequest(DP, flags, table_id, out_port, out_group, cookie, cookie_mask,
                                          match)
    return None


def _role_request(frame: bytes) -> Any:
    role, generation_id = struct.unpack_from(ofp.OFP_ROLE_REQUEST_PACK_STR, frame, HEADER.size)
    return parser.OFPRoleRequest(DP, role, generation_id)


_REQUESTS: dict[int, Callable[[bytes], Any]] = {
    ofp.OFPT_ROLE_REQUEST: _role_request,
    ofp.OFPT_FEATURES_REQUEST: lambda frame: parser.OFPFeaturesRequest(DP),
    ofp.OFPT_BARRIER_REQUEST: lambda frame: parser.OFPBarrierRequest(DP),
    ofp.OFPT_SET_CONFIG: _set_config,
    ofp.OFPT_SET_ASYNC: _set_async,
    ofp.OFPT_PACKET_OUT: _packet_out,
    ofp.OFPT_MULTIPART_REQUEST: _multipart_request,
}


def decode_request(frame: bytes) -> Any:
    """One controller->switch frame as an os-ken message (UnknownRequest if unsupported)."""
    version, msg_type, length, xid = HEADER.unpack_from(frame)
    build = _REQUESTS.get(msg_type)
    if build is None or version != ofp.OFP_VERSION:
        try:
            return decode(frame)  # HELLO, ECHO, ERROR, FLOW_MOD, EXPERIMENTER
        except RemoteProtocolError:
            if version != ofp.OFP_VERSION:
                raise
            return UnknownRequest(msg_type, xid, frame)
    try:
        msg = build(frame)
    except (struct.error, AssertionError, KeyError) as e:
        raise RemoteProtocolError(f"cannot parse request type {msg_type}: {e}") from e
    if msg is None:
        return UnknownRequest(msg_type, xid, frame)
    msg.set_headers(version, msg_type, length, xid)
    msg.set_buf(frame)
    return msg


# -- the switch -----------------------------------------------------------------------------


class FakeSwitch:
    def __init__(self, dpid: int, ports: Sequence[PortSpec] = (), *, port_desc_parts: int = 1,
                 answer_barriers: bool = True, n_tables: int = N_TABLES) -> None:
        self.dpid = dpid
        self.ports: list[PortSpec] = list(ports)
        self.port_desc_parts = port_desc_parts
        self.answer_barriers = answer_barriers
        self.n_tables = n_tables
        self.received: list[Any] = []
        self.held_barriers: list[int] = []  # barrier xids not answered (answer_barriers=False)
        self.got_hello = False
        self.role = ofp.OFPCR_ROLE_EQUAL
        self.generation_id: int | None = None  # the highest seen in a MASTER/SLAVE request
        self._framer = Framer()
        self._out: list[bytes] = []
        self._xids = itertools.count(0x5000_0000)
        self._send(parser.OFPHello(DP))

    # -- what was received -------------------------------------------------------

    def of_type(self, cls: type) -> list[Any]:
        return [m for m in self.received if isinstance(m, cls)]

    @property
    def flow_mods(self) -> list[Any]:
        return self.of_type(parser.OFPFlowMod)

    @property
    def packet_outs(self) -> list[Any]:
        return self.of_type(parser.OFPPacketOut)

    @property
    def set_configs(self) -> list[Any]:
        return self.of_type(parser.OFPSetConfig)

    @property
    def set_asyncs(self) -> list[Any]:
        return self.of_type(parser.OFPSetAsync)

    # -- output ----------------------------------------------------------------------

    def _next_xid(self) -> int:
        return next(self._xids) & 0xFFFFFFFF

    def _send(self, msg: Any, xid: int | None = None) -> int:
        xid = self._next_xid() if xid is None else xid
        self._out.append(encode(msg, xid))
        return xid

    def _send_raw(self, msg_type: int, body: bytes, xid: int | None = None) -> int:
        xid = self._next_xid() if xid is None else xid
        self._out.append(_frame(msg_type, xid, body))
        return xid

    def data_to_send(self) -> bytes:
        data = b"".join(self._out)
        self._out.clear()
        return data

    # -- input -------------------------------------------------------------------------

    def receive_data(self, data: bytes) -> None:
        for frame in self._framer.feed(data):
            msg = decode_request(frame)
            self.received.append(msg)
            self._answer(msg)

    def _answer(self, msg: Any) -> None:
        if isinstance(msg, parser.OFPHello):
            self.got_hello = True
            return
        if not self.got_hello:
            raise FakeSwitchError(f"{type(msg).__name__} before HELLO")
        if isinstance(msg, UnknownRequest):
            self.error(msg.xid, ofp.OFPET_BAD_REQUEST, ofp.OFPBRC_BAD_TYPE, msg.frame[:64])
        elif isinstance(msg, parser.OFPEchoRequest):
            self._send(parser.OFPEchoReply(DP, data=msg.data), msg.xid)
        elif self._describe(msg):
            pass
        elif isinstance(msg, parser.OFPRoleRequest):
            self._role(msg)
        elif isinstance(msg, parser.OFPFlowMod) and self.role == ofp.OFPCR_ROLE_SLAVE:
            self.error(msg.xid, ofp.OFPET_BAD_REQUEST, ofp.OFPBRC_IS_SLAVE)
        elif isinstance(msg, parser.OFPBarrierRequest):
            if self.answer_barriers:
                self._send(parser.OFPBarrierReply(DP), msg.xid)
            else:
                self.held_barriers.append(msg.xid)

    def _describe(self, msg: Any) -> bool:
        """Answer a request about the switch itself (features, ports, description, flows)."""
        if isinstance(msg, parser.OFPFeaturesRequest):
            body = struct.pack(ofp.OFP_SWITCH_FEATURES_PACK_STR, self.dpid, 0, self.n_tables, 0,
                               CAPABILITIES, 0)
            self._send_raw(ofp.OFPT_FEATURES_REPLY, body, msg.xid)
        elif isinstance(msg, parser.OFPPortDescStatsRequest):
            self._port_desc(msg.xid)
        elif isinstance(msg, parser.OFPDescStatsRequest):
            body = struct.pack(ofp.OFP_DESC_PACK_STR, b"daolinet", b"FakeSwitch", b"1.3", b"None",
                               f"dpid {self.dpid:#x}".encode())
            self.multipart_reply(msg.xid, ofp.OFPMP_DESC, body)
        elif isinstance(msg, parser.OFPFlowStatsRequest):
            self.multipart_reply(msg.xid, ofp.OFPMP_FLOW, b"")
        else:
            return False
        return True

    def _role(self, msg: Any) -> None:
        """OpenFlow 1.3 section 6.3.5: a MASTER/SLAVE request older than the newest
        generation seen is refused as STALE (compared as a signed 64-bit distance)."""
        if msg.role in (ofp.OFPCR_ROLE_MASTER, ofp.OFPCR_ROLE_SLAVE):
            gen = int(msg.generation_id)
            if self.generation_id is not None and _signed64(gen - self.generation_id) < 0:
                self.error(msg.xid, ofp.OFPET_ROLE_REQUEST_FAILED, ofp.OFPRRFC_STALE)
                return
            self.generation_id = gen
        if msg.role != ofp.OFPCR_ROLE_NOCHANGE:
            self.role = int(msg.role)
        body = struct.pack(ofp.OFP_ROLE_REQUEST_PACK_STR, self.role, self.generation_id or 0)
        self._send_raw(ofp.OFPT_ROLE_REPLY, body, msg.xid)

    def _port_desc(self, xid: int) -> None:
        n = max(1, self.port_desc_parts)
        size = -(-len(self.ports) // n) if self.ports else 0
        chunks = [self.ports[i * size:(i + 1) * size] for i in range(n)] if size else [[]] * n
        for i, chunk in enumerate(chunks):
            body = b"".join(pack_port(*p) for p in chunk)
            self.multipart_reply(xid, ofp.OFPMP_PORT_DESC, body, more=i < n - 1)

    # -- switch-initiated messages (each returns its xid) ---------------------------------

    def multipart_reply(self, xid: int, mp_type: int, body: bytes, *, more: bool = False) -> int:
        flags = ofp.OFPMPF_REPLY_MORE if more else 0
        head = struct.pack(ofp.OFP_MULTIPART_REPLY_PACK_STR, mp_type, flags)
        return self._send_raw(ofp.OFPT_MULTIPART_REPLY, head + body, xid)

    def release_barriers(self) -> list[int]:
        """Answer the barriers held back so far; returns their xids."""
        held, self.held_barriers = self.held_barriers, []
        for xid in held:
            self._send(parser.OFPBarrierReply(DP), xid)
        return held

    def packet_in(self, in_port: int, data: bytes, *, table_id: int = 0,
                  reason: int = ofp.OFPR_NO_MATCH, cookie: int = 0) -> int:
        head = struct.pack(ofp.OFP_PACKET_IN_PACK_STR, ofp.OFP_NO_BUFFER, len(data), reason, table_id, cookie)
        match = _pack_match(parser.OFPMatch(in_port=in_port))
        return self._send_raw(ofp.OFPT_PACKET_IN, head + match + b"\0\0" + data)

    def flow_removed(self, cookie: int, reason: int = ofp.OFPRR_IDLE_TIMEOUT, *, table_id: int = 0,
                     priority: int = 0, idle_timeout: int = 0, match: Any = None) -> int:
        head = struct.pack(ofp.OFP_FLOW_REMOVED_PACK_STR0, cookie, priority, reason, table_id,
                           0, 0, idle_timeout, 0, 0, 0)
        body = _pack_match(match if match is not None else parser.OFPMatch())
        return self._send_raw(ofp.OFPT_FLOW_REMOVED, head + body)

    def echo_request(self, data: bytes = b"") -> int:
        return self._send(parser.OFPEchoRequest(DP, data=data))

    def port_status(self, reason: int, ofport: int, name: str, mac: str, **port: int) -> int:
        body = struct.pack("!B7x", reason) + pack_port(ofport, name, mac, **port)
        if reason == ofp.OFPPR_ADD:
            self.ports.append((ofport, name, mac))
        elif reason == ofp.OFPPR_DELETE:
            self.ports = [p for p in self.ports if p[0] != ofport]
        return self._send_raw(ofp.OFPT_PORT_STATUS, body)

    def error(self, xid: int, type_: int, code: int, data: bytes | None = None) -> int:
        """An ERROR for the message with `xid`; data defaults to (the start of) that message."""
        if data is None:
            data = next((bytes(m.buf[:64]) for m in reversed(self.received)
                         if getattr(m, "xid", None) == xid and getattr(m, "buf", None) is not None), b"")
        return self._send(parser.OFPErrorMsg(DP, type_=type_, code=code, data=data), xid)


def _signed64(value: int) -> int:
    value &= (1 << 64) - 1
    return value - (1 << 64) if value >= 1 << 63 else value


def pump(channel: Channel, switch: FakeSwitch, *, limit: int = 100) -> list[Event]:
    """Move bytes both ways until neither side has anything to say."""
    events: list[Event] = []
    for _ in range(limit):
        to_switch = channel.data_to_send()
        if to_switch:
            switch.receive_data(to_switch)
        to_controller = switch.data_to_send()
        if to_controller:
            events += channel.receive_data(to_controller)
        if not to_switch and not to_controller:
            return events
    raise AssertionError(f"channel and fake switch still talking after {limit} rounds")
