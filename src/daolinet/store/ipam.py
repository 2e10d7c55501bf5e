"""Address allocation as pure functions: which subnet, which address, which MAC.

Every store backend validates input and picks addresses through these, inside
its own transaction; nothing here does I/O or remembers anything.  Errors are
daolinet errors with messages for humans.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from ipaddress import IPv4Address, IPv4Network

from daolinet.errors import Conflict, InvalidInput

MIN_PREFIX = 8
MAX_PREFIX = 30
MAC_PREFIX = "02:d1"  # locally administered, unicast; the 32-bit endpoint id follows
_MAC_RE = re.compile(r"^[0-9a-f]{2}([:-])[0-9a-f]{2}(\1[0-9a-f]{2}){4}$")


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


def check_subnet(text: str, what: str = "subnet") -> IPv4Network:
    """An IPv4 network in CIDR form, prefix /8../30, host bits zero."""
    if not isinstance(text, str) or "/" not in text:
        raise InvalidInput(f"{what} {text!r} must be in CIDR form, like 10.1.0.0/24")
    try:
        net = ipaddress.ip_network(text.strip(), strict=False)
    except ValueError as e:
        raise InvalidInput(f"{what} {text!r} is not a network: {e}") from None
    if not isinstance(net, IPv4Network):
        raise InvalidInput(f"{what} {text!r} must be an IPv4 network")
    if not MIN_PREFIX <= net.prefixlen <= MAX_PREFIX:
        raise InvalidInput(f"{what} {text!r} must have a prefix between /{MIN_PREFIX} and /{MAX_PREFIX}")
    if str(net) != ipaddress.ip_interface(text.strip()).with_prefixlen:
        raise InvalidInput(f"{what} {text!r} has host bits set (did you mean {net}?)")
    return net


def check_address(text: str, what: str = "address") -> IPv4Address:
    """One IPv4 address in dotted form."""
    try:
        return IPv4Address(text.strip() if isinstance(text, str) else text)
    except ValueError:
        raise InvalidInput(f"{what} {text!r} is not an IPv4 address") from None


def check_in_subnet(text: str, net: IPv4Network, what: str = "address") -> IPv4Address:
    """An address of `net` that a host can use: not its network or broadcast address."""
    addr = check_address(text, what)
    if addr not in net:
        raise InvalidInput(f"{what} {addr} is outside subnet {net}")
    if addr == net.network_address:
        raise InvalidInput(f"{what} {addr} is the network address of {net}")
    if addr == net.broadcast_address:
        raise InvalidInput(f"{what} {addr} is the broadcast address of {net}")
    return addr


def default_gateway(net: IPv4Network) -> IPv4Address:
    return net.network_address + 1


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


def check_mac(text: str, what: str = "mac") -> str:
    """A unicast MAC in canonical form (lowercase, colon separated)."""
    norm = text.strip().lower() if isinstance(text, str) else ""
    if not _MAC_RE.match(norm):
        raise InvalidInput(f"{what} {text!r} is not a MAC address like 02:00:00:00:00:01")
    norm = norm.replace("-", ":")
    first = int(norm[:2], 16)
    if first & 1:
        raise InvalidInput(f"{what} {norm} is a multicast address; a unicast MAC is needed")
    if norm == "00:00:00:00:00:00":
        raise InvalidInput(f"{what} {norm} is the zero address")
    return norm
