"""Address allocation as pure functions: which address, which PIP, which MAC.

Every store backend validates input (daolinet.model.addresses, re-exported here)
and picks addresses through these, inside its own transaction; nothing here
does I/O or remembers anything.  Errors are daolinet errors with messages for
humans.
"""

from __future__ import annotations

from collections.abc import Mapping, Set
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network
from typing import TypeVar, cast

from daolinet.errors import Conflict, InvalidInput
from daolinet.model.addresses import (  # re-exported: the store validates through these
    MAX_PREFIX,
    MAX_PREFIX6,
    MIN_PREFIX,
    MIN_PREFIX6,
    check_address,
    check_address6,
    check_in_subnet,
    check_in_subnet6,
    check_mac,
    check_subnet,
    check_subnet6,
    default_gateway,
    default_gateway6,
)

__all__ = ["MAC_PREFIX", "MAX_PREFIX", "MAX_PREFIX6", "MIN_PREFIX", "MIN_PREFIX6", "check_address",
           "check_address6", "check_in_subnet", "check_in_subnet6", "check_mac", "check_subnet",
           "check_subnet6", "default_gateway", "default_gateway6", "first_free", "mac_for_id", "pick_ip",
           "pick_ip6", "pick_pip", "pick_pip6"]

A = TypeVar("A", IPv4Address, IPv6Address)  # one family per call

MAC_PREFIX = "02:d1"  # locally administered, unicast; the 32-bit endpoint id follows


def first_free(network: IPv4Network | IPv6Network, used: Set[A], reserved: Set[A]) -> A | None:
    """The lowest address of `network` neither used nor reserved, or None.

    Walks integers from the bottom and stops at the first gap, so the cost is
    O(len(used) + len(reserved)) whatever the size of the network (an IPv6 /64 too).
    """
    taken = {int(a) for a in used}
    taken.update(int(a) for a in reserved)
    last = int(network.broadcast_address)
    candidate = int(network.network_address)
    while candidate <= last:
        if candidate not in taken:
            return cast(A, type(network.network_address)(candidate))
        candidate += 1
    return None


def _claim(addr: A, gateway: A, used: Mapping[A, str], label: str, what: str) -> A:
    """A requested address, checked against the network's gateway and the addresses in use."""
    if addr == gateway:
        raise InvalidInput(f"{what} {addr} is the gateway of network {label}")
    if addr in used:
        raise Conflict(f"{what} {addr} of network {label} is already used by {used[addr]}")
    return addr


def _lowest(net: IPv4Network | IPv6Network, used: Set[A], reserved: Set[A], full: str) -> A:
    found = first_free(net, used, reserved)
    if found is None:
        raise Conflict(full)
    return found


def pick_ip(net: IPv4Network, gateway: IPv4Address, used: Mapping[IPv4Address, str],
            requested: str | None, label: str) -> IPv4Address:
    """A logical IP for a new endpoint on network `label` (a name for messages).

    `used` maps taken addresses to who holds them.  A requested address is
    honoured if usable and free; otherwise the lowest free one is chosen.
    """
    if requested is not None:
        return _claim(check_in_subnet(requested, net, "ip"), gateway, used, label, "ip")
    reserved = {net.network_address, net.broadcast_address, gateway}
    return _lowest(net, set(used), reserved, f"network {label} has no free addresses")


def pick_ip6(net: IPv6Network, gateway: IPv6Address, used: Mapping[IPv6Address, str],
             requested: str | None, label: str) -> IPv6Address:
    """`pick_ip` for IPv6: reserved are the subnet-router anycast address and the gateway
    (IPv6 has no broadcast address)."""
    if requested is not None:
        return _claim(check_in_subnet6(requested, net, "ip6"), gateway, used, label, "ip6")
    reserved = {net.network_address, gateway}
    return _lowest(net, set(used), reserved, f"network {label} has no free IPv6 addresses")


def pick_pip(pool: IPv4Network, used: set[IPv4Address], also_reserved: set[IPv4Address],
             host: str) -> IPv4Address:
    """The lowest free PIP of host `host`'s pool (never its network or broadcast address)."""
    reserved = {pool.network_address, pool.broadcast_address, *also_reserved}
    return _lowest(pool, used, reserved, f"host {host} has no free addresses in its pip_pool {pool}")


def pick_pip6(pool: IPv6Network, used: set[IPv6Address], also_reserved: set[IPv6Address],
              host: str) -> IPv6Address:
    """The lowest free IPv6 PIP of host `host`'s pool6 (never its subnet-router anycast address)."""
    reserved = {pool.network_address, *also_reserved}
    return _lowest(pool, used, reserved, f"host {host} has no free addresses in its pip_pool6 {pool}")


def mac_for_id(id: int) -> str:
    """02:d1 followed by the endpoint id as 32 bits: unique while ids are."""
    if not 0 <= id < 2**32:
        raise InvalidInput(f"endpoint id {id} does not fit in 32 bits")
    octets = id.to_bytes(4, "big")
    return MAC_PREFIX + "".join(f":{b:02x}" for b in octets)
