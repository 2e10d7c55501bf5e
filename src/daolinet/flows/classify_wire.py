"""A container's two IPv4 classify flows (flows/proactive.py flows_for_endpoint) as bytes,
filled into templates: the first sync after a controller restart sends every
container's pair, most of its work, and os-ken takes ~40 µs for the ARP one
(arp_spa/arp_sha are outside flows/wire.py's fast vocabulary).

Each template is compiled once from a stand-in container, encoded by flows/wire.py
(os-ken where it falls back), by finding the stand-in's port, MAC and IP in the
bytes; a second stand-in, all of whose values differ, must then fill in to exactly
its own encoding, else the templates are not used (every flow still encodes, the
slow way).  tests/unit/test_classify_wire.py compares them with os-ken.  A container's
IPv6 flows (flows/ndp.py), rarer, are encoded one by one.
"""

from __future__ import annotations

import itertools
import socket
import struct
from collections.abc import Callable
from functools import lru_cache

from daolinet.flows import wire
from daolinet.flows.ndp import flows_for_endpoint6
from daolinet.flows.proactive import flows_for_endpoint
from daolinet.model import Endpoint
from daolinet.ofp.codec import Encoded

_U32 = struct.Struct("!I")
# The values a classify flow takes from its container, as they are on the wire.
_VALUES: tuple[Callable[[Endpoint], bytes], ...] = (
    lambda e: _U32.pack(e.ofport or 0),
    lambda e: bytes.fromhex(e.mac.replace(":", "")),
    lambda e: socket.inet_aton(e.ip),
)


def _stand_in(ofport: int, mac: str, ip: str) -> Endpoint:
    return Endpoint(id=1, name="stand-in", tenant="t", network="n", ip=ip, mac=mac, host="h",
                    pip="0.0.0.0", ofport=ofport)


FIRST = _stand_in(0x7A5B3C1D, "02:a1:b2:c3:d4:e5", "10.201.202.203")
SECOND = _stand_in(0x1C2D3E4F, "0e:1f:2e:3d:4c:5b", "172.31.254.253")


class Template:
    """Fixed bytes with holes, each filled by one of the container's values."""

    def __init__(self, data: bytes, holes: list[tuple[int, int, int]]) -> None:
        self.fixed: list[bytes] = []
        self.order: list[int] = []
        at = 0
        for offset, length, value in holes:
            self.fixed.append(data[at:offset])
            self.order.append(value)
            at = offset + length
        self.fixed.append(data[at:])

    def fill(self, values: tuple[bytes, ...]) -> bytes:
        out = [self.fixed[0]]
        for i, value in enumerate(self.order):
            out += (values[value], self.fixed[i + 1])
        return b"".join(out)


def _holes(data: bytes, values: tuple[bytes, ...]) -> list[tuple[int, int, int]] | None:
    """Where each value occurs in data (offset, length, which value); None if two overlap."""
    found = []
    for which, v in enumerate(values):
        at = data.find(v)
        while at >= 0:
            found.append((at, len(v), which))
            at = data.find(v, at + len(v))
    found.sort()
    if any(a + n > b for (a, n, _), (b, _, _) in itertools.pairwise(found)):
        return None
    return found


def _values(e: Endpoint) -> tuple[bytes, ...]:
    return tuple(v(e) for v in _VALUES)


@lru_cache(maxsize=1)
def templates() -> list[Template] | None:
    """One template per classify flow, or None if the stand-ins do not prove them."""
    first, second = _values(FIRST), _values(SECOND)
    out = []
    for one, other in zip(flows_for_endpoint(FIRST), flows_for_endpoint(SECOND), strict=True):
        data = wire.flow_add(one).data
        holes = _holes(data, first)
        if holes is None:
            return None
        template = Template(data, holes)
        if template.fill(first) != data or template.fill(second) != wire.flow_add(other).data:
            return None
        out.append(template)
    return out


def classify_flows(e: Endpoint) -> list[Encoded]:
    """flows_for_endpoint(e), encoded (xid 0)."""
    compiled = templates()
    if compiled is None:
        return [wire.flow_add(f) for f in flows_for_endpoint(e)]
    values, what = _values(e), f"classify flow of ofport {e.ofport}"
    v6 = [wire.flow_add(f) for f in flows_for_endpoint6(e)]
    return [Encoded(t.fill(values), what) for t in compiled] + v6
