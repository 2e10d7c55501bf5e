"""Address validation as pure functions: is this text a subnet, an address of
that subnet, a unicast MAC?  Used wherever input enters (the store, the Docker
plugin, the CNI backend), so every one refuses the same input with the same
message.  Errors are daolinet errors with messages for humans; no I/O."""

from __future__ import annotations

import ipaddress
import re
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network

from daolinet.errors import InvalidInput

MIN_PREFIX = 8
MAX_PREFIX = 30
MIN_PREFIX6 = 48
MAX_PREFIX6 = 120
# The resolver addresses, answered on every network by the container's own host (flows/dns.py):
# no subnet may hold them.
RESOLVER4 = IPv4Address("169.254.53.53")
RESOLVER6 = IPv6Address("fd00:da01::53")
_MAC_RE = re.compile(r"^[0-9a-f]{2}([:-])[0-9a-f]{2}(\1[0-9a-f]{2}){4}$")


def _check_net(text: str, what: str, version: int, prefixes: tuple[int, int],
               example: str) -> IPv4Network | IPv6Network:
    """A network of IP `version` in CIDR form, prefix within `prefixes`, host bits zero."""
    if not isinstance(text, str) or "/" not in text:
        raise InvalidInput(f"{what} {text!r} must be in CIDR form, like {example}")
    try:
        net = ipaddress.ip_network(text.strip(), strict=False)
    except ValueError as e:
        raise InvalidInput(f"{what} {text!r} is not a network: {e}") from None
    if net.version != version:
        raise InvalidInput(f"{what} {text!r} must be an IPv{version} network")
    if not prefixes[0] <= net.prefixlen <= prefixes[1]:
        raise InvalidInput(f"{what} {text!r} must have a prefix between /{prefixes[0]} and /{prefixes[1]}")
    if str(net) != ipaddress.ip_interface(text.strip()).with_prefixlen:
        raise InvalidInput(f"{what} {text!r} has host bits set (did you mean {net}?)")
    return net


def check_subnet(text: str, what: str = "subnet") -> IPv4Network:
    """An IPv4 network in CIDR form, prefix /8../30, host bits zero, not holding the
    resolver address."""
    net = _check_net(text, what, 4, (MIN_PREFIX, MAX_PREFIX), "10.1.0.0/24")
    assert isinstance(net, IPv4Network)
    if RESOLVER4 in net:
        raise InvalidInput(f"{what} {net} holds the resolver address {RESOLVER4}")
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
    """A network's gateway when none is given: its first address."""
    return net.network_address + 1


# -- IPv6 ---------------------------------------------------------------------------------


def check_subnet6(text: str, what: str = "subnet6") -> IPv6Network:
    """An IPv6 network in CIDR form, prefix /48../120, host bits zero, unicast and routable
    (not link-local, multicast, loopback or unspecified), not holding the resolver address."""
    net = _check_net(text, what, 6, (MIN_PREFIX6, MAX_PREFIX6), "fd00:1::/64")
    assert isinstance(net, IPv6Network)
    if net.is_link_local or net.is_multicast or net.is_loopback or net.is_unspecified \
            or net.network_address.ipv4_mapped is not None:
        raise InvalidInput(f"{what} {net} is not a unicast network containers can use")
    if RESOLVER6 in net:
        raise InvalidInput(f"{what} {net} holds the resolver address {RESOLVER6}")
    return net


def check_address6(text: str, what: str = "address") -> IPv6Address:
    """One IPv6 address, in any form ipaddress reads (canonical once str()-ed)."""
    try:
        return IPv6Address(text.strip() if isinstance(text, str) else text)
    except ValueError:
        raise InvalidInput(f"{what} {text!r} is not an IPv6 address") from None


def check_in_subnet6(text: str, net: IPv6Network, what: str = "address") -> IPv6Address:
    """An address of `net` that a host can use: not its network (subnet-router anycast) address."""
    addr = check_address6(text, what)
    if addr not in net:
        raise InvalidInput(f"{what} {addr} is outside subnet {net}")
    if addr == net.network_address:
        raise InvalidInput(f"{what} {addr} is the subnet-router anycast address of {net}")
    return addr


def default_gateway6(net: IPv6Network) -> IPv6Address:
    """A network's IPv6 gateway when none is given: ::1 of its subnet."""
    return net.network_address + 1


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
