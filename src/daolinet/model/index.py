"""Secondary indexes of the View (model/view.py), each kept up to date by the
View's `apply` so that every query the controller makes per PacketIn or per
switch sync is a dict access, whatever the number of endpoints and hosts.

No I/O; nothing here knows about OpenFlow.
"""

from __future__ import annotations

import ipaddress
from collections import Counter
from collections.abc import Hashable
from typing import Generic, TypeVar

from daolinet.model.objects import ControllerRecord, Endpoint, Host, Network

K = TypeVar("K", bound=Hashable)


class Buckets(Generic[K]):
    """Endpoints grouped by a key (a host's name, a (tenant, name) pair).

    Within a bucket, endpoints keep the order in which they were added; the
    View re-adds an endpoint on every change, as it re-inserts it into
    `View.endpoints`, so a bucket lists its endpoints in the View's order.
    A bucket of one is the endpoint itself: 100,000 one-entry dicts would
    triple the View's load time (allocations and the collector walking them).
    """

    def __init__(self) -> None:
        self._buckets: dict[K, Endpoint | dict[int, Endpoint]] = {}

    def add(self, key: K, e: Endpoint) -> None:
        found = self._buckets.get(key)
        if found is None or (isinstance(found, Endpoint) and found.id == e.id):
            self._buckets[key] = e
        elif isinstance(found, Endpoint):
            self._buckets[key] = {found.id: found, e.id: e}
        else:
            found[e.id] = e

    def remove(self, key: K, eid: int) -> None:
        found = self._buckets.get(key)
        if isinstance(found, Endpoint):
            if found.id == eid:
                del self._buckets[key]
        elif found is not None:
            found.pop(eid, None)
            if len(found) == 1:
                self._buckets[key] = next(iter(found.values()))

    def get(self, key: K) -> list[Endpoint]:
        found = self._buckets.get(key)
        if found is None:
            return []
        return [found] if isinstance(found, Endpoint) else list(found.values())

    def first(self, key: K) -> Endpoint | None:
        found = self._buckets.get(key)
        return found if found is None or isinstance(found, Endpoint) else next(iter(found.values()))


class PrefixSet:
    """A multiset of IPv4 (or, with `version=6`, IPv6) networks answering "is this
    address in any of them?" with one set lookup per distinct prefix length (a
    handful in practice: every host's PIP pool is usually a /24)."""

    def __init__(self, version: int = 4) -> None:
        self._by_len: dict[int, Counter[int]] = {}
        self._net: type[ipaddress.IPv4Network | ipaddress.IPv6Network] = \
            ipaddress.IPv4Network if version == 4 else ipaddress.IPv6Network
        self._addr: type[ipaddress.IPv4Address | ipaddress.IPv6Address] = \
            ipaddress.IPv4Address if version == 4 else ipaddress.IPv6Address
        self._bits = 32 if version == 4 else 128

    def _parse(self, cidr: str) -> tuple[int, int]:
        net = self._net(cidr, strict=False)
        return net.prefixlen, int(net.network_address)

    def add(self, cidr: str) -> None:
        plen, base = self._parse(cidr)
        self._by_len.setdefault(plen, Counter())[base] += 1

    def remove(self, cidr: str) -> None:
        plen, base = self._parse(cidr)
        bases = self._by_len.get(plen)
        if bases is None or base not in bases:
            return
        bases[base] -= 1
        if bases[base] <= 0:
            del bases[base]
            if not bases:
                del self._by_len[plen]

    def __contains__(self, ip: str) -> bool:
        addr, bits = int(self._addr(ip)), self._bits
        return any(addr >> (bits - plen) << (bits - plen) in bases for plen, bases in self._by_len.items())


class Underlay:
    """The hosts' own addresses: underlay IPs and PIP pools of both families,
    counted, so two hosts sharing one (a misconfiguration) do not lose it when one goes."""

    def __init__(self) -> None:
        self._ips: Counter[str] = Counter()
        self._pools = PrefixSet()
        self._pools6 = PrefixSet(version=6)

    def add(self, h: Host) -> None:
        for ip in filter(None, (h.underlay_ip, h.underlay_ip6)):
            self._ips[ip] += 1
        if h.pip_pool:  # "" : a host as a replica sees another host (controller/host_view.py)
            self._pools.add(h.pip_pool)
        if h.pip_pool6:
            self._pools6.add(h.pip_pool6)

    def remove(self, h: Host) -> None:
        for ip in filter(None, (h.underlay_ip, h.underlay_ip6)):
            self._ips[ip] -= 1
            if self._ips[ip] <= 0:
                del self._ips[ip]
        if h.pip_pool:
            self._pools.remove(h.pip_pool)
        if h.pip_pool6:
            self._pools6.remove(h.pip_pool6)

    def __contains__(self, ip: str) -> bool:
        if ip in self._ips:
            return True
        return ip in self._pools6 if ":" in ip else ip in self._pools


def infra_addresses(obj: Host | ControllerRecord | None) -> frozenset[str]:
    """The infrastructure addresses a host or a controller's record holds."""
    if obj is None:
        return frozenset()
    if isinstance(obj, Host):
        return frozenset(filter(None, (obj.underlay_ip, obj.underlay_ip6)))
    return obj.addresses


class Infra:
    """What containers may not reach: hosts' underlay IPs and the addresses controllers
    recorded (their listeners', and their etcd members'), counted, so an address two
    of them share stays infrastructure until both are gone."""

    def __init__(self) -> None:
        self._ips: Counter[str] = Counter()
        self._hosts: dict[str, Host] = {}  # underlay IP -> the host (the last one added)

    def add(self, obj: Host | ControllerRecord) -> None:
        for ip in infra_addresses(obj):
            self._ips[ip] += 1
        if isinstance(obj, Host):
            for ip in filter(None, (obj.underlay_ip, obj.underlay_ip6)):
                self._hosts[ip] = obj

    def remove(self, obj: Host | ControllerRecord) -> None:
        for ip in infra_addresses(obj):
            self._ips[ip] -= 1
            if self._ips[ip] <= 0:
                del self._ips[ip]
        if isinstance(obj, Host):
            for ip in filter(None, (obj.underlay_ip, obj.underlay_ip6)):
                if self._hosts.get(ip) == obj:
                    del self._hosts[ip]

    def __contains__(self, ip: str) -> bool:
        return ip in self._ips

    def ips(self) -> frozenset[str]:
        return frozenset(self._ips)

    def host_at(self, ip: str) -> Host | None:
        return self._hosts.get(ip)


class TenantNets:
    """Each tenant's networks, parsed once and grouped by prefix length, so that
    `containing` costs one dict access per distinct prefix length.  Subnets of a
    tenant never overlap in the store; if they did, the network added first
    (the first in `View.networks`' order) wins, as a scan would find it.
    With `version=6` it indexes the networks' IPv6 subnets (dual-stack ones only)."""

    def __init__(self, version: int = 4) -> None:
        self._v6 = version == 6
        self._bits = 128 if self._v6 else 32
        self._seq = 0
        # tenant -> name -> (order, prefix length, network int, Network)
        self._by_name: dict[str, dict[str, tuple[int, int, int, Network]]] = {}
        # tenant -> prefix length -> network int -> {name: (order, Network)}
        self._by_len: dict[str, dict[int, dict[int, dict[str, tuple[int, Network]]]]] = {}

    def add(self, n: Network) -> None:
        if self._v6 and not n.subnet6:
            self.remove(n)
            return
        net = ipaddress.IPv6Network(n.subnet6) if self._v6 else ipaddress.IPv4Network(n.subnet, strict=False)
        plen, base = net.prefixlen, int(net.network_address)
        self._seq += 1
        self.remove(n)
        self._by_name.setdefault(n.tenant, {})[n.name] = (self._seq, plen, base, n)
        lens = self._by_len.setdefault(n.tenant, {})
        lens.setdefault(plen, {}).setdefault(base, {})[n.name] = (self._seq, n)

    def remove(self, n: Network) -> None:
        names = self._by_name.get(n.tenant, {})
        found = names.pop(n.name, None)
        if found is None:
            return
        _, plen, base, _ = found
        lens = self._by_len[n.tenant]
        bucket = lens[plen][base]
        del bucket[n.name]
        if not bucket:
            del lens[plen][base]
            if not lens[plen]:
                del lens[plen]
        if not names:
            del self._by_name[n.tenant], self._by_len[n.tenant]

    def of(self, tenant: str) -> list[Network]:
        return [n for *_, n in self._by_name.get(tenant, {}).values()]

    def containing(self, tenant: str, ip: str) -> Network | None:
        addr, bits = int(ipaddress.IPv6Address(ip) if self._v6 else ipaddress.IPv4Address(ip)), self._bits
        best: tuple[int, Network] | None = None
        for plen, bases in self._by_len.get(tenant, {}).items():
            bucket = bases.get(addr >> (bits - plen) << (bits - plen))
            if bucket:
                first = min(bucket.values(), key=lambda sn: sn[0])
                if best is None or first[0] < best[0]:
                    best = first
        return best[1] if best else None
