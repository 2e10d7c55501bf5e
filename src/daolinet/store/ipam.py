"""Address allocation as pure functions: which address, which PIP, which MAC.

Every store backend validates input (daolinet.model.addresses, re-exported here)
and picks addresses through these, inside its own transaction; nothing here
does I/O or remembers anything.  Errors are daolinet errors with messages for
humans.
"""

from __future__ import annotations

from collections.abc import Mapping
from ipaddress import IPv4Address, IPv4Network

from daolinet.errors import Conflict, InvalidInput
from daolinet.model.addresses import (  # re-exported: the store validates through these
    MAX_PREFIX,
    MIN_PREFIX,
    check_address,
    check_in_subnet,
    check_mac,
    check_subnet,
    default_gateway,
)

__all__ = ["MAC_PREFIX", "MAX_PREFIX", "MIN_PREFIX", "check_address", "check_in_subnet", "check_mac",
           "check_subnet", "default_gateway", "first_free", "mac_for_id", "pick_ip", "pick_pip"]

MAC_PREFIX = "02:d1"  # locally administered, unicast; the 32-bit endpoint id follows


def first_free(network: IPv4Network, used: set[IPv4Address],
               reserved: set[IPv4Address]) -> IPv4Address | None:
    """The lowest address of `network` neither used nor reserved, or None.

    Walks integers from the bottom and stops at the first gap, so the cost is
    O(len(used) + len(reserved)) whatever the size of the network.
    """
    taken = {int(a) for a in used}
    taken.update(int(a) for a in reserved)
    last = int(network.broadcast_address)
    candidate = int(network.network_address)
    while candidate <= last:
        if candidate not in taken:
            return IPv4Address(candidate)
        candidate += 1
    return None


def pick_ip(net: IPv4Network, gateway: IPv4Address, used: Mapping[IPv4Address, str],
            requested: str | None, label: str) -> IPv4Address:
    """A logical IP for a new endpoint on network `label` (a name for messages).

    `used` maps taken addresses to who holds them.  A requested address is
    honoured if usable and free; otherwise the lowest free one is chosen.
    """
    if requested is not None:
        addr = check_in_subnet(requested, net, "ip")
        if addr == gateway:
            raise InvalidInput(f"ip {addr} is the gateway of network {label}")
        if addr in used:
            raise Conflict(f"ip {addr} of network {label} is already used by {used[addr]}")
        return addr
    reserved = {net.network_address, net.broadcast_address, gateway}
    found = first_free(net, set(used), reserved)
    if found is None:
        raise Conflict(f"network {label} has no free addresses")
    return found


def pick_pip(pool: IPv4Network, used: set[IPv4Address], also_reserved: set[IPv4Address],
             host: str) -> IPv4Address:
    """The lowest free PIP of host `host`'s pool (never its network or broadcast address)."""
    reserved = {pool.network_address, pool.broadcast_address, *also_reserved}
    found = first_free(pool, used, reserved)
    if found is None:
        raise Conflict(f"host {host} has no free addresses in its pip_pool {pool}")
    return found


def mac_for_id(id: int) -> str:
    """02:d1 followed by the endpoint id as 32 bits: unique while ids are."""
    if not 0 <= id < 2**32:
        raise InvalidInput(f"endpoint id {id} does not fit in 32 bits")
    octets = id.to_bytes(4, "big")
    return MAC_PREFIX + "".join(f":{b:02x}" for b in octets)
