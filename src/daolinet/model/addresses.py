"""Address validation as pure functions: is this text a subnet, an address of
that subnet, a unicast MAC?  Used wherever input enters (the store, the Docker
plugin, the CNI backend), so every one refuses the same input with the same
message.  Errors are daolinet errors with messages for humans; no I/O."""

from __future__ import annotations

import ipaddress
import re
from ipaddress import IPv4Address, IPv4Network

from daolinet.errors import InvalidInput

MIN_PREFIX = 8
MAX_PREFIX = 30
_MAC_RE = re.compile(r"^[0-9a-f]{2}([:-])[0-9a-f]{2}(\1[0-9a-f]{2}){4}$")


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
    """A network's gateway when none is given: its first address."""
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
