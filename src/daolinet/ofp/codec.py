"""OpenFlow 1.3 encode/decode through os-ken, and stream framing.

os-ken's parser wants a "datapath" carrying the protocol modules; `DP` is
that, and nothing else.  `ofproto_parser.msg()` logs and returns None on a
parse failure: we turn that into a RemoteProtocolError.
"""

from __future__ import annotations

import logging
import struct
from typing import Any

from os_ken.ofproto import ofproto_parser
from os_ken.ofproto import ofproto_v1_3 as ofp
from os_ken.ofproto import ofproto_v1_3_parser as parser

from daolinet.errors import DaoliError

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
    try:
        msg = ofproto_parser.msg(DP, version, msg_type, length, xid, frame)
    except Exception as e:
        raise RemoteProtocolError(f"cannot parse message type {msg_type}: {e}") from e
    if msg is None:
        raise RemoteProtocolError(f"cannot parse message type {msg_type} (xid {xid})")
    return msg


class Framer:
    """Splits a byte stream into OpenFlow frames, wherever the stream is cut."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        self._buf += data
        frames = []
        while len(self._buf) >= HEADER.size:
            _, _, length, _ = HEADER.unpack_from(self._buf)
            if length < HEADER.size:
                raise RemoteProtocolError(f"frame length {length} is shorter than a header")
            if len(self._buf) < length:
                break
            frames.append(bytes(self._buf[:length]))
            del self._buf[:length]
        return frames
