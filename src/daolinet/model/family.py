"""IP families: which of an endpoint's, network's or host's addresses a route of
family 4 (IPv4) or 6 (IPv6) uses.  A dual-stack pair has one route per family;
both share the pair's cookie (docs/pipeline.md, "Cookies"), so revoking the pair
deletes both, while each family's flows idle out on their own."""

from __future__ import annotations

from daolinet.model.objects import Endpoint, Host, Network

V4, V6 = 4, 6


def family_of(ip: str) -> int:
    """The family of an address written as text."""
    return V6 if ":" in ip else V4


def ip_of(e: Endpoint, family: int) -> str:
    """e's logical address of that family ("" if it has none)."""
    return e.ip6 if family == V6 else e.ip


def pip_of(e: Endpoint, family: int) -> str:
    """e's physical address of that family ("" if it has none)."""
    return e.pip6 if family == V6 else e.pip


def gateway_of(net: Network, family: int) -> str:
    return net.gateway6 if family == V6 else net.gateway


def underlay_ip_of(host: Host, family: int) -> str:
    return host.underlay_ip6 if family == V6 else host.underlay_ip
