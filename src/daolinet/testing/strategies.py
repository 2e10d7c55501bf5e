"""Hypothesis strategies for routes: hosts, endpoints and the ends of a route,
with any addresses, ports and L4 scopes OpenFlow can carry; dual-stack hosts and
endpoints too."""

from __future__ import annotations

import ipaddress
from dataclasses import replace

from hypothesis import strategies as st

from daolinet.flows.route import RouteEnds
from daolinet.model import Endpoint, Host

ipv4s = st.ip_addresses(v=4).map(str)
macs = st.binary(min_size=6, max_size=6).map(lambda b: ":".join(f"{x:02x}" for x in b))
ofports = st.integers(1, 0xFFFFFF00)
u16 = st.integers(0, 0xFFFF)


@st.composite
def hosts(draw: st.DrawFn, dpid: int) -> Host:
    return Host(name=f"h{dpid}", dpid=dpid, underlay_ip=draw(ipv4s), underlay_mac=draw(macs),
                pip_pool="198.18.0.0/16", underlay_prefix=draw(st.integers(8, 30)),
                underlay_gateway_mac=draw(st.one_of(st.just(""), macs)), uplink_ofport=draw(ofports))


@st.composite
def endpoints(draw: st.DrawFn, eid: int, host: Host) -> Endpoint:
    return Endpoint(id=eid, name=f"c{eid}", tenant="t", network=draw(st.sampled_from(["a", "b"])),
                    ip=draw(ipv4s), mac=draw(macs), host=host.name, pip=draw(ipv4s), port=f"p{eid}",
                    ofport=draw(ofports))


@st.composite
def routes(draw: st.DrawFn) -> RouteEnds:
    ha = draw(hosts(1))
    hb = ha if draw(st.booleans()) else draw(hosts(2))
    a = draw(endpoints(draw(st.integers(1, 0xFFFFFF)), ha))
    b = draw(endpoints(draw(st.integers(1, 0xFFFFFF)), hb))
    scope = draw(st.one_of(st.none(), st.tuples(st.sampled_from([1, 6, 17, 132]), u16)))
    return RouteEnds(a, b, ha, hb, a.network == b.network, scope, draw(st.booleans()))


ipv6s = st.ip_addresses(v=6).map(str)


@st.composite
def hosts6(draw: st.DrawFn, dpid: int) -> Host:
    """A host with an IPv6 underlay address and PIP pool (either may be left out)."""
    host = draw(hosts(dpid))
    pools = ipv6s.map(lambda ip: str(ipaddress.IPv6Network(f"{ip}/112", strict=False)))
    pool = draw(st.one_of(st.just(""), pools))
    underlay = draw(st.one_of(st.just(""), ipv6s)) if pool else draw(ipv6s)
    return replace(host, pip_pool6=pool, underlay_ip6=underlay)


@st.composite
def endpoints6(draw: st.DrawFn, eid: int, host: Host) -> Endpoint:
    return replace(draw(endpoints(eid, host)), ip6=draw(ipv6s), pip6=draw(ipv6s))


@st.composite
def routes6(draw: st.DrawFn) -> RouteEnds:
    """The ends of an IPv6 route: dual-stack ends, any IPv6 addresses."""
    ends = draw(routes())
    a = draw(endpoints6(ends.a.id, ends.ha))
    b = replace(draw(endpoints6(ends.b.id, ends.hb)), network=ends.b.network)
    return replace(ends, a=replace(a, network=ends.a.network), b=b, family=6)
