"""The two set-fields os-ken cannot write, encoded by hand: `nd_reserved` and
`nd_options_type`, the fields a Neighbor Solicitation becomes an Advertisement
with (flows/ndp.py).

Open vSwitch (2.11+) names them in the ERICOXM class 0x1000, a plain OXM class
(no experimenter id): ERICOXM_OF_ICMPV6_ND_RESERVED is field 1, 4 bytes (the
R/S/O flags and the reserved bits after the ICMPv6 checksum); ERICOXM_OF_ICMPV6_ND_OPTIONS_TYPE
is field 2, 1 byte (the type of the message's first option) - ovs-fields(7).
Neither is maskable, and OVS accepts them only in a flow whose match makes the
packet ND (ICMPv6 type 135 or 136).  tests/unit/test_ndp_wire.py has
`ovs-ofctl ofp-print` read the bytes back.

flows/render.py carries these bytes through os-ken as an action of its own.
"""

from __future__ import annotations

import struct

ERICOXM_CLASS = 0x1000
OFPAT_SET_FIELD = 25
# name -> (field number, value size)
ERICOXM_FIELDS: dict[str, tuple[int, int]] = {"nd_reserved": (1, 4), "nd_options_type": (2, 1)}


def oxm_header(name: str) -> bytes:
    """The 4-byte OXM header of an ERICOXM field (class, field, no mask, length)."""
    number, size = ERICOXM_FIELDS[name]
    return struct.pack("!I", ERICOXM_CLASS << 16 | number << 9 | size)


def tlv(name: str, value: int | str) -> bytes:
    """The field's header and value."""
    size = ERICOXM_FIELDS[name][1]
    return oxm_header(name) + int(value).to_bytes(size, "big")


def set_field(name: str, value: int | str) -> bytes:
    """An OFPAT_SET_FIELD action of an ERICOXM field, padded to 8 bytes as OpenFlow 1.3 wants."""
    field = tlv(name, value)
    length = (4 + len(field) + 7) // 8 * 8
    return struct.pack("!HH", OFPAT_SET_FIELD, length) + field + bytes(length - 4 - len(field))
