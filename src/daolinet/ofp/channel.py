"""The controller's side of one OpenFlow 1.3 connection, as a state machine.

Theory of operation (h11-style): the shell feeds bytes in with
`receive_data()` and gets Events back; whatever the channel wants to say
(handshake, echo replies, queued messages) accumulates and is taken with
`data_to_send()`.  The channel never touches a socket or a clock.

    HELLO      -> got HELLO: send FEATURES_REQUEST                -> FEATURES
    FEATURES   -> got FEATURES_REPLY (dpid): SET_CONFIG, PORT_DESC -> PORTS
    PORTS      -> got the last PORT_DESC part: emit SwitchReady     -> READY
    READY      -> PacketIn, FlowRemoved, PortStatus, BarrierReply,
                  MultipartDone, RoleReply, SwitchError events; ECHO answered here

Roles (several controllers): `request_role(MASTER or SLAVE, generation_id)`
queues an OFPT_ROLE_REQUEST; the switch answers RoleReply, or a SwitchError
(OFPET_ROLE_REQUEST_FAILED / OFPRRFC_STALE) when a newer generation has been
seen.  A slave gets no PacketIns and may not modify flows.

A service connection (the agent's own, on the bridge's management socket) may take a
controller id (`Channel(controller_id=N)`, Nicira NXT_SET_CONTROLLER_ID, sent with
SET_CONFIG): flows' `controller(id=N)` packet-ins then come to it and to no controller.
    any        -> bad input: RemoteProtocolError, state CLOSED
"""

from __future__ import annotations

import enum
import itertools
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from daolinet.ofp.codec import (
    DP,
    Encoded,
    Framer,
    ProtocolError,
    RemoteProtocolError,
    decode,
    encode,
    ofp,
    parse_packet_in,
    parser,
)

NX_VENDOR_ID = 0x2320
NXT_SET_CONTROLLER_ID = 20  # nx_controller_id: 6 pad bytes, then the id (os-ken has no class for it)
RECENT_SENT = 256  # kept (as bytes) by xid so an error can name the message that caused it


class State(enum.Enum):
    HELLO = "hello"
    FEATURES = "features"
    PORTS = "ports"
    READY = "ready"
    CLOSED = "closed"


@dataclass(frozen=True)
class Port:
    ofport: int
    name: str
    mac: str


@dataclass(frozen=True)
class SwitchReady:
    dpid: int
    ports: tuple[Port, ...]


@dataclass(frozen=True, slots=True)
class PacketIn:
    """The hot path's message, parsed without os-ken (codec.parse_packet_in)."""

    xid: int
    in_port: int
    table_id: int
    reason: int
    cookie: int
    data: bytes


@dataclass(frozen=True)
class FlowRemoved:
    msg: Any  # OFPFlowRemoved


@dataclass(frozen=True)
class PortStatus:
    reason: int  # OFPPR_ADD / DELETE / MODIFY
    port: Port


@dataclass(frozen=True)
class BarrierReply:
    xid: int


@dataclass(frozen=True)
class MultipartDone:
    xid: int
    body: list[Any]


@dataclass(frozen=True)
class RoleReply:
    xid: int
    role: int  # ofp.OFPCR_ROLE_*
    generation_id: int


@dataclass(frozen=True)
class SwitchError:
    """The switch rejected something; `cause` is the message we sent, if recent."""

    xid: int
    type: int
    code: int
    cause: Any | None
    reply_to: Any = field(default=None, repr=False)

    def describe(self) -> str:
        cause = self.cause
        if cause is None:
            what = "unknown message"
        elif isinstance(cause, str):  # a fast-path message's description
            what = cause
        elif isinstance(cause, int):  # a route FlowMod: its cookie
            what = f"route FlowMod cookie={cause:#x}"
        else:
            what = f"{type(cause).__name__} {cause}"
        return f"switch error type={self.type} code={self.code} (xid {self.xid}) for {what}"


Event = (SwitchReady | PacketIn | FlowRemoved | PortStatus | BarrierReply | MultipartDone | RoleReply
         | SwitchError)
_PACKET_IN, _BARRIER_REPLY, _VERSION = ofp.OFPT_PACKET_IN, ofp.OFPT_BARRIER_REPLY, ofp.OFP_VERSION
_BARRIER = Encoded(encode(parser.OFPBarrierRequest(DP), 0), "barrier request")
ROLE_MASTER = ofp.OFPCR_ROLE_MASTER
ROLE_SLAVE = ofp.OFPCR_ROLE_SLAVE
GENERATION_MASK = (1 << 64) - 1


class Channel:
    def __init__(self, miss_send_len: int = 0xFFFF, controller_id: int = 0) -> None:
        self.state = State.HELLO
        self.dpid: int | None = None
        self._framer = Framer()
        self._out: list[bytes] = []
        self._xids = itertools.count(1)
        self._sent: OrderedDict[int, Any] = OrderedDict()
        self._parts: dict[int, list[Any]] = {}
        self._miss_send_len = miss_send_len
        self._controller_id = controller_id
        self._out.append(encode(parser.OFPHello(DP), self._next_xid()))

    # -- output -----------------------------------------------------------------

    def _next_xid(self) -> int:
        return next(self._xids) & 0xFFFFFFFF

    def send(self, msg: Any) -> int:
        """Queue a message (an os-ken message, or already Encoded); returns its xid."""
        if self.state is State.CLOSED:
            raise ProtocolError("channel is closed")
        xid = self._next_xid()
        if isinstance(msg, Encoded):
            data = msg.with_xid(xid)
            cause = msg.what if isinstance(msg.what, str | int) else data
        else:
            data = cause = encode(msg, xid)
        self._out.append(data)
        # Bytes (decoded again only if an error names them) or a short description: a
        # thousand switches' worth of message objects would be most of the controller's memory.
        self._sent[xid] = cause
        if len(self._sent) > RECENT_SENT:
            self._sent.popitem(last=False)
        return xid

    def send_barrier(self) -> int:
        return self.send(_BARRIER)

    def request_role(self, role: int, generation_id: int) -> int:
        """Queue a ROLE_REQUEST (MASTER or SLAVE) with a generation id; returns its xid."""
        if role not in (ROLE_MASTER, ROLE_SLAVE):
            raise ProtocolError(f"role {role} is neither MASTER nor SLAVE")
        return self.send(parser.OFPRoleRequest(DP, role, generation_id & GENERATION_MASK))

    def queue_raw(self, data: bytes) -> None:
        """Bytes already framed elsewhere (another controller's messages), in order with ours."""
        if data:
            self._out.append(data)

    def data_to_send(self) -> bytes:
        data = b"".join(self._out)
        self._out.clear()
        return data

    # -- input --------------------------------------------------------------------

    def receive_data(self, data: bytes) -> list[Event]:
        if self.state is State.CLOSED:
            raise ProtocolError("channel is closed")
        events: list[Event] = []
        try:
            for frame in self._framer.feed(data):
                if frame[0] == _VERSION and self.state is State.READY:  # the hot path: no os-ken objects
                    if frame[1] == _PACKET_IN:
                        events.append(PacketIn(int.from_bytes(frame[4:8], "big"), *parse_packet_in(frame)))
                        continue
                    if frame[1] == _BARRIER_REPLY and len(frame) == 8:
                        events.append(BarrierReply(int.from_bytes(frame[4:8], "big")))
                        continue
                event = self._on_message(decode(frame))
                if event is not None:
                    events.append(event)
        except RemoteProtocolError:
            self.state = State.CLOSED
            raise
        return events

    def _on_message(self, msg: Any) -> Event | None:
        if isinstance(msg, parser.OFPEchoRequest):
            reply = parser.OFPEchoReply(DP, data=msg.data)
            self._out.append(encode(reply, msg.xid))
            return None
        if isinstance(msg, parser.OFPErrorMsg):
            return SwitchError(msg.xid, msg.type, msg.code, _cause(self._sent.get(msg.xid)), msg)
        handler = getattr(self, f"_in_{self.state.value}")
        event: Event | None = handler(msg)
        return event

    def _in_hello(self, msg: Any) -> Event | None:
        if not isinstance(msg, parser.OFPHello):
            raise RemoteProtocolError(f"expected HELLO, got {type(msg).__name__}")
        self.send(parser.OFPFeaturesRequest(DP))
        self.state = State.FEATURES
        return None

    def _in_features(self, msg: Any) -> Event | None:
        if not isinstance(msg, parser.OFPSwitchFeatures):
            return None  # e.g. an early PORT_STATUS: nothing depends on it yet
        self.dpid = int(msg.datapath_id)
        self.send(parser.OFPSetConfig(DP, ofp.OFPC_FRAG_NORMAL, self._miss_send_len))
        if self._controller_id:
            self.send(parser.OFPExperimenter(DP, NX_VENDOR_ID, NXT_SET_CONTROLLER_ID,
                                             self._controller_id.to_bytes(8, "big")))
        self.send(async_config())
        self._ports_xid = self.send(parser.OFPPortDescStatsRequest(DP, 0))
        self.state = State.PORTS
        return None

    def _in_ports(self, msg: Any) -> Event | None:
        if not isinstance(msg, parser.OFPPortDescStatsReply):
            return None
        done = self._collect(msg)
        if done is None:
            return None
        self.state = State.READY
        assert self.dpid is not None
        return SwitchReady(self.dpid, tuple(_port(p) for p in done.body))

    def _in_ready(self, msg: Any) -> Event | None:
        if isinstance(msg, parser.OFPFlowRemoved):
            return FlowRemoved(msg)
        if isinstance(msg, parser.OFPPortStatus):
            return PortStatus(msg.reason, _port(msg.desc))
        if isinstance(msg, parser.OFPBarrierReply):
            return BarrierReply(msg.xid)
        if isinstance(msg, parser.OFPMultipartReply):
            return self._collect(msg)
        if isinstance(msg, parser.OFPRoleReply):
            return RoleReply(msg.xid, int(msg.role), int(msg.generation_id))
        return None  # echo replies, ... nothing to report

    def _collect(self, msg: Any) -> MultipartDone | None:
        parts = self._parts.setdefault(msg.xid, [])
        parts.extend(msg.body if isinstance(msg.body, list) else [msg.body])  # DESC, AGGREGATE: one struct
        if msg.flags & ofp.OFPMPF_REPLY_MORE:
            return None
        return MultipartDone(msg.xid, self._parts.pop(msg.xid))

    def close(self) -> None:
        self.state = State.CLOSED


_TYPE_NAMES = {v: k for k, v in vars(ofp).items() if k.startswith("OFPT_") and isinstance(v, int)}


def _cause(sent: Any) -> Any:
    """What a SwitchError names: the message we sent, decoded again from its bytes
    (os-ken parses only what switches send; the rest is named by its type)."""
    if isinstance(sent, bytes):
        try:
            return decode(sent)
        except ProtocolError:
            return f"{_TYPE_NAMES.get(sent[1], f'message type {sent[1]}')} ({len(sent)} bytes)"
    return sent


def async_config() -> Any:
    """What a master wants to hear.  OVS leaves INVALID_TTL packet-ins off by
    default; traceroute needs them."""
    packet_in = (1 << ofp.OFPR_NO_MATCH) | (1 << ofp.OFPR_ACTION) | (1 << ofp.OFPR_INVALID_TTL)
    port_status = (1 << ofp.OFPPR_ADD) | (1 << ofp.OFPPR_DELETE) | (1 << ofp.OFPPR_MODIFY)
    flow_removed = ((1 << ofp.OFPRR_IDLE_TIMEOUT) | (1 << ofp.OFPRR_HARD_TIMEOUT)
                    | (1 << ofp.OFPRR_DELETE) | (1 << ofp.OFPRR_GROUP_DELETE))
    return parser.OFPSetAsync(DP, [packet_in, 0], [port_status, 0], [flow_removed, 0])


def _port(desc: Any) -> Port:
    name = desc.name.decode(errors="replace") if isinstance(desc.name, bytes) else str(desc.name)
    return Port(ofport=int(desc.port_no), name=name.rstrip("\0"), mac=str(desc.hw_addr))
