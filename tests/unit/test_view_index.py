"""The View's indexes (model/view.py, model/index.py) answer like brute-force
scans, after any sequence of creates, updates, moves and deletes of hosts,
networks and endpoints (with aliases: the name index never answers by one);
and the decisions that use them (decide/route.py
`_outside`) are the same as before.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from daolinet.decide.packet import NO_MATCH, PacketMeta
from daolinet.decide.route import Deny, External, decide
from daolinet.model import Endpoint, Host, Network, View
from daolinet.model.index import PrefixSet
from daolinet.model.view import Change, Obj
from daolinet.pipeline import Table
from daolinet.testing.factories import make_endpoint, make_host, make_network

TENANTS = ("t1", "t2")
ALIASES = ("svc", "api", "n1")  # n1: also a name
HOSTS = ("h1", "h2")
POOLS = ("198.18.1.0/24", "198.18.2.0/24", "198.18.0.0/16", "198.18.1.128/25", "10.0.0.0/8", "0.0.0.0/0")
UNDERLAY = ("198.18.0.1", "198.18.1.5", "192.168.0.1")
SUBNETS = ("10.1.0.0/24", "10.2.0.0/24", "10.1.0.0/16", "10.1.0.128/25")
PROBES = ("198.18.1.1", "198.18.1.200", "198.18.2.3", "198.19.0.1", "10.1.0.5", "10.1.0.200",
          "10.1.7.7", "10.2.0.9", "192.168.0.1", "198.18.0.1", "198.18.1.5", "8.8.8.8")


# -- the brute force: the View's original scanning code, kept here as the reference -------------


class Reference:
    """Hosts, networks and endpoints as the View kept them before its indexes:
    every lookup a scan."""

    def __init__(self) -> None:
        self.hosts: dict[str, Host] = {}
        self.networks: dict[tuple[str, str], Network] = {}
        self.endpoints: dict[int, Endpoint] = {}
        self.by_port: dict[tuple[int, int], Endpoint] = {}

    def apply(self, obj: Obj, deleted: bool) -> None:
        if isinstance(obj, Host):
            old = self.hosts.pop(obj.name, None)
            if not deleted:
                self.hosts[obj.name] = obj
            if old is None or deleted or old.dpid != obj.dpid:
                for e in self.endpoints_on(obj.name):
                    self._endpoint(e, False)
        elif isinstance(obj, Network):
            self.networks.pop((obj.tenant, obj.name), None)
            if not deleted:
                self.networks[(obj.tenant, obj.name)] = obj
        elif isinstance(obj, Endpoint):
            self._endpoint(obj, deleted)

    def _endpoint(self, e: Endpoint, deleted: bool) -> None:
        if self.endpoints.pop(e.id, None) is not None:
            for key, found in list(self.by_port.items()):
                if found.id == e.id:
                    del self.by_port[key]
        if not deleted:
            self.endpoints[e.id] = e
            host = self.hosts.get(e.host)
            if host is not None and e.ofport is not None:
                self.by_port[(host.dpid, e.ofport)] = e

    def endpoints_on(self, host: str) -> list[Endpoint]:
        return [e for e in self.endpoints.values() if e.host == host]

    def endpoint_named(self, tenant: str, name: str) -> Endpoint | None:
        return next((e for e in self.endpoints.values() if (e.tenant, e.name) == (tenant, name)), None)

    def endpoints_aliased(self, tenant: str, alias: str) -> list[Endpoint]:
        return [e for e in self.endpoints.values() if e.tenant == tenant and alias in e.aliases]

    def network_containing(self, tenant: str, ip: str) -> Network | None:
        addr = ipaddress.IPv4Address(ip)
        return next((n for n in self.networks.values() if n.tenant == tenant and addr in n.net), None)

    def is_underlay_ip(self, ip: str) -> bool:
        addr = ipaddress.IPv4Address(ip)
        return any(h.underlay_ip == ip or addr in h.pool for h in self.hosts.values())


# -- random sequences of changes ------------------------------------------------------------------


def hosts() -> st.SearchStrategy[Host]:
    return st.builds(lambda name, dpid, pool, ul: make_host(1, name=name, dpid=dpid, pip_pool=pool,
                                                            underlay_ip=ul),
                     st.sampled_from(HOSTS), st.integers(1, 4), st.sampled_from(POOLS),
                     st.sampled_from(UNDERLAY))


def networks() -> st.SearchStrategy[Network]:
    return st.builds(lambda tenant, k, subnet: dataclasses.replace(make_network(k, tenant), subnet=subnet),
                     st.sampled_from(TENANTS), st.integers(1, 3), st.sampled_from(SUBNETS))


def endpoints() -> st.SearchStrategy[Endpoint]:
    def build(eid: int, host: str, ofport: int | None, name: str, tenant: str, ip: int,
              aliases: list[str]) -> Endpoint:
        e = make_endpoint(eid, make_host(1), make_network(1, tenant), ofport, name)
        return dataclasses.replace(e, host=host, ip=f"10.1.0.{ip}", pip=f"198.18.1.{ip}",
                                   aliases=tuple(aliases))

    return st.builds(build, st.integers(1, 4), st.sampled_from(HOSTS), st.none() | st.integers(2, 3),
                     st.sampled_from(("n1", "n2", "n3")), st.sampled_from(TENANTS), st.integers(10, 13),
                     st.lists(st.sampled_from(ALIASES), max_size=2, unique=True))


changes = st.lists(st.tuples(st.one_of(endpoints(), endpoints(), hosts(), networks()),
                             st.booleans()), min_size=8, max_size=40)


def collides(ref: Reference, obj: Obj, deleted: bool) -> bool:
    """Would this change make two live endpoints claim one switch port (two hosts
    one dpid, two endpoints one (host, ofport))?"""
    if deleted:
        return False
    if isinstance(obj, Host):
        return any(h.dpid == obj.dpid and h.name != obj.name for h in ref.hosts.values())
    if isinstance(obj, Endpoint) and obj.ofport is not None:
        return any((e.host, e.ofport) == (obj.host, obj.ofport) and e.id != obj.id
                   for e in ref.endpoints.values())
    return False


def assert_same(view: View, ref: Reference) -> None:
    assert list(view.endpoints.items()) == list(ref.endpoints.items())
    assert view.by_port == ref.by_port
    for host in HOSTS:
        assert view.endpoints_on(host) == ref.endpoints_on(host)
    for tenant in TENANTS:
        for name in ("n1", "n2", "n3"):
            assert view.endpoint_named(tenant, name) == ref.endpoint_named(tenant, name)  # never by alias
        for alias in ALIASES:
            assert view.endpoints_aliased(tenant, alias) == ref.endpoints_aliased(tenant, alias)
        assert view.networks_of(tenant) == [n for n in ref.networks.values() if n.tenant == tenant]
        for ip in PROBES:
            assert view.network_containing(tenant, ip) == ref.network_containing(tenant, ip)
    for ip in PROBES:
        assert view.is_underlay_ip(ip) == ref.is_underlay_ip(ip), ip


@settings(max_examples=300, deadline=None)
@given(changes)
def test_indexes_answer_like_the_original_scans(seq: list[tuple[Obj, bool]]) -> None:
    """Any sequence, conflicting ports included: the same answers as the scanning View."""
    view, ref = View(), Reference()
    for rev, (obj, deleted) in enumerate(seq, 1):
        view.apply(Change(rev, obj, deleted))
        ref.apply(obj, deleted)
        assert_same(view, ref)


@settings(max_examples=300, deadline=None)
@given(changes)
def test_by_port_is_every_plugged_endpoint_on_a_known_host(seq: list[tuple[Obj, bool]]) -> None:
    """Without two claims on one port: by_port is exactly what a scan of the
    endpoints and hosts says, whatever moved, re-keyed or went."""
    view, ref = View(), Reference()
    for rev, (obj, deleted) in enumerate(seq, 1):
        if collides(ref, obj, deleted):
            continue
        view.apply(Change(rev, obj, deleted))
        ref.apply(obj, deleted)
        scanned = {(view.hosts[e.host].dpid, e.ofport): e for e in view.endpoints.values()
                   if e.host in view.hosts and e.ofport is not None}
        assert view.by_port == scanned


def test_an_endpoint_leaving_a_port_another_took_leaves_it_to_the_other() -> None:
    h1, net = make_host(1), make_network(1)
    a, b = make_endpoint(1, h1, net, 2), make_endpoint(2, h1, net, 2)
    view = View()
    view.load([h1, net, a, b])
    view.apply(Change(2, dataclasses.replace(a, ofport=3)))
    assert view.by_port == {(1, 2): b, (1, 3): dataclasses.replace(a, ofport=3)}


def test_a_host_moving_to_another_dpid_takes_its_endpoints_ports_along() -> None:
    h1, h2 = make_host(1), make_host(2)
    net = make_network(1)
    a, b = make_endpoint(1, h1, net, 2), make_endpoint(2, h2, net, 2)
    view = View()
    view.load([h1, h2, net, a, b])
    view.apply(Change(2, dataclasses.replace(h1, dpid=9)))
    assert view.by_port == {(9, 2): a, (2, 2): b}
    view.apply(Change(3, dataclasses.replace(a, ofport=5)))
    view.apply(Change(4, h2, deleted=True))
    assert view.by_port == {(9, 5): dataclasses.replace(a, ofport=5)}
    assert view.endpoints_on("h2") == [b] and view.endpoint_named(net.tenant, b.name) == b


# -- the underlay lookup -------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(POOLS), st.booleans()), max_size=20),
       st.integers(0, 2**32 - 1))
def test_prefix_set_is_membership_in_any_of_its_networks(ops: list[tuple[str, bool]], addr: int) -> None:
    """A multiset: a network added twice stays until removed twice."""
    pset, held = PrefixSet(), []
    for cidr, add in ops:
        if add:
            pset.add(cidr)
            held.append(cidr)
        elif cidr in held:
            pset.remove(cidr)
            held.remove(cidr)
    for ip in (str(ipaddress.IPv4Address(addr)), *PROBES):
        assert (ip in pset) == any(ipaddress.IPv4Address(ip) in ipaddress.IPv4Network(c) for c in held)


GW_MAC = "02:99:00:00:00:01"


def outside_view() -> tuple[View, Endpoint]:
    h1 = make_host(1, underlay_gateway_mac=GW_MAC)
    h2 = make_host(2, underlay_gateway_mac=GW_MAC, pip_pool="198.18.64.0/20")
    net = dataclasses.replace(make_network(1), external=True)
    a = make_endpoint(1, h1, net, 2)
    view = View()
    view.load([h1, h2, net, a, make_endpoint(2, h2, net, 2)])
    return view, a


def to(src: Endpoint, dst_ip: str, **changes: Any) -> PacketMeta:
    meta = PacketMeta(dpid=1, in_port=src.ofport or 0, table_id=Table.EGRESS, reason=NO_MATCH,
                      eth_src=src.mac, eth_type=0x0800, ip_src=src.ip, ip_dst=dst_ip, ip_proto=6)
    return meta._replace(**changes)


def test_outside_addresses_go_out_and_the_underlays_never() -> None:
    view, a = outside_view()
    assert decide(to(a, "8.8.8.8"), view) == External(a, "8.8.8.8")
    assert decide(to(a, "198.18.80.1"), view) == External(a, "198.18.80.1")  # just past h2's /20
    for underlay in ("198.18.0.2", "198.18.1.99", "198.18.64.1", "198.18.79.255", "198.18.64.12"):
        d = decide(to(a, underlay), view)
        assert isinstance(d, Deny) and "underlay" in d.reason, (underlay, d)
    d = decide(to(a, "10.1.0.77"), view)
    assert isinstance(d, Deny) and "no container" in d.reason


def test_a_host_gone_or_readdressed_leaves_the_underlay() -> None:
    view, a = outside_view()
    h2 = view.hosts["h2"]
    view.apply(Change(2, dataclasses.replace(h2, pip_pool="198.18.2.0/24", underlay_ip="192.168.9.2")))
    assert decide(to(a, "198.18.64.1"), view) == External(a, "198.18.64.1")
    assert decide(to(a, "198.18.0.2"), view) == External(a, "198.18.0.2")
    assert isinstance(decide(to(a, "192.168.9.2"), view), Deny)
    view.apply(Change(3, view.hosts["h2"], deleted=True))
    assert decide(to(a, "192.168.9.2"), view) == External(a, "192.168.9.2")
