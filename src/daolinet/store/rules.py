"""The store's rules, once for every backend: pure decisions over the objects a
transaction read.

A write of `service` reads what it decides from through its backend's
transaction, hands the objects to a function here and writes what it returns;
the function raises the daolinet error (and message) a user sees when the write
must not happen.  Nothing here does I/O, so the same decision holds for SQLite
and etcd, and is tested without either (tests/unit/test_store_rules.py).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network

from daolinet.decide.policy import describe_rule
from daolinet.errors import Conflict, InvalidInput, NotFound
from daolinet.model.objects import Endpoint, Group, Host, Network, Portmap, Rule, Tenant, Token
from daolinet.model.view import Obj
from daolinet.store import ipam
from daolinet.store.base import ChangesPruned
from daolinet.store.checks import ENDPOINT_NAME_RE, MAX_ENDPOINT_ID, check_name

SEQ_KINDS: dict[type, str] = {Network: "network", Group: "group", Rule: "rule", Token: "token",
                              Portmap: "portmap"}  # kinds whose ids are never reused (AUTOINCREMENT)


def names(found: Iterable[str], limit: int = 5) -> str:
    """A short list of names for a message: "a, b, c and 7 more", or ""."""
    ordered = sorted(found)
    more = f" and {len(ordered) - limit} more" if len(ordered) > limit else ""
    return ", ".join(ordered[:limit]) + more


# -- tenants and networks -------------------------------------------------------------------


def check_tenant_free(name: str, existing: Tenant | None) -> None:
    if existing is not None:
        raise Conflict(f"tenant {name} already exists")


def check_tenant_empty(name: str, networks: Sequence[Network]) -> None:
    if networks:
        raise Conflict(f"tenant {name} still has networks: {names(n.name for n in networks)}")


def check_unmapped(store: str, what: str, portmaps: Sequence[Portmap]) -> None:
    """A tenant or host that port mappings name is kept (they would point nowhere)."""
    if portmaps:
        raise Conflict(f"store {store} refused the change: {what} still has port mappings: "
                       f"{names(p.name for p in portmaps)}")


def check_network_free(tenant: str, name: str, net: IPv4Network, others: Sequence[Network],
                       net6: IPv6Network | None = None) -> None:
    """A new network's name is free in its tenant and its subnets overlap none of the tenant's."""
    for other in sorted(others, key=lambda n: n.id):
        if other.name == name:
            raise Conflict(f"network {name} of tenant {tenant} already exists")
        if other.net.overlaps(net):
            raise Conflict(f"subnet {net} overlaps network {other.name} ({other.subnet}) of tenant {tenant}")
        other6 = other.net6
        if net6 is not None and other6 is not None and other6.overlaps(net6):
            raise Conflict(f"subnet6 {net6} overlaps network {other.name} ({other.subnet6}) "
                           f"of tenant {tenant}")


def check_network_unused(network: Network, users: Sequence[Endpoint]) -> None:
    if users:
        raise Conflict(f"network {network.name} of tenant {network.tenant} is still used by endpoints: "
                       f"{names(e.name for e in users)}")


# -- hosts -----------------------------------------------------------------------------------


def registration(new: Host, old: Host | None) -> Host:
    """What registering `new` over `old` stores: a re-registration does not turn the clock back."""
    if old is None:
        return new
    return dataclasses.replace(new, last_seen=max(new.last_seen, old.last_seen))


def check_host_unique(host: Host, others: Sequence[Host]) -> None:
    """No other host has the same dpid or underlay IP(s), or a pool overlapping `host`'s."""
    for other in sorted(others, key=lambda h: h.name):
        if other.name == host.name:
            continue
        if other.dpid == host.dpid:
            raise Conflict(f"dpid {host.dpid:#018x} of host {host.name} is already used by host {other.name}")
        if other.underlay_ip == host.underlay_ip:
            raise Conflict(f"underlay_ip {host.underlay_ip} of host {host.name} is already used by "
                           f"host {other.name}")
        if other.pool.overlaps(host.pool):
            raise Conflict(f"pip_pool {host.pip_pool} of host {host.name} overlaps the pool "
                           f"{other.pip_pool} of host {other.name}")
        _check_host6_unique(host, other)


def _check_host6_unique(host: Host, other: Host) -> None:
    if host.underlay_ip6 and other.underlay_ip6 == host.underlay_ip6:
        raise Conflict(f"underlay_ip6 {host.underlay_ip6} of host {host.name} is already used by "
                       f"host {other.name}")
    pool6, other6 = host.pool6, other.pool6
    if pool6 is not None and other6 is not None and other6.overlaps(pool6):
        raise Conflict(f"pip_pool6 {host.pip_pool6} of host {host.name} overlaps the pool6 "
                       f"{other.pip_pool6} of host {other.name}")


def check_pips_fit(host: Host, endpoints: Sequence[Endpoint]) -> None:
    """A host's PIPs always lie in its pools: new pools must still hold them."""
    pool6 = host.pool6
    for endpoint in endpoints:
        if IPv4Address(endpoint.pip) not in host.pool:
            raise Conflict(f"pip_pool {host.pip_pool} of host {host.name} does not hold the PIP "
                           f"{endpoint.pip} of its endpoint {endpoint.name}")
        if endpoint.pip6 and (pool6 is None or IPv6Address(endpoint.pip6) not in pool6):
            raise Conflict(f"pip_pool6 {host.pip_pool6 or '(none)'} of host {host.name} does not hold "
                           f"the PIP {endpoint.pip6} of its endpoint {endpoint.name}")


def check_host_unused(name: str, users: Sequence[Endpoint]) -> None:
    if users:
        raise Conflict(f"host {name} still has endpoints: {names(e.name for e in users)}")


def check_heartbeat_time(name: str, now: object) -> float:
    if isinstance(now, bool) or not isinstance(now, int | float):
        raise InvalidInput(f"heartbeat time {now!r} of host {name} must be a number")
    return float(now)


# -- endpoints -------------------------------------------------------------------------------


def check_endpoint_free(tenant: str, name: str, holder: Endpoint | None) -> None:
    if holder is not None:
        raise Conflict(f"endpoint {name} of tenant {tenant} already exists")


def check_endpoint_id(eid: int) -> int:
    """The smallest free endpoint id, if ids are left (they are part of route cookies)."""
    if eid > MAX_ENDPOINT_ID:
        raise Conflict(f"no free endpoint ids: all {MAX_ENDPOINT_ID} are in use")
    return eid


def free_pip(host: Host, used: set[IPv4Address]) -> IPv4Address:
    """The lowest free PIP of `host`'s pool (a pool may include the host's own underlay address)."""
    return ipam.pick_pip(host.pool, used, {IPv4Address(host.underlay_ip)}, host.name)


def free_pip6(host: Host, net: Network, used: set[IPv6Address]) -> IPv6Address:
    """The lowest free IPv6 PIP of `host`'s pool6, for an endpoint of dual-stack network `net`.
    A host without a pool6 takes no dual-stack endpoint: its IPv6 could reach nothing."""
    pool6 = host.pool6
    if pool6 is None:
        raise Conflict(f"host {host.name} has no pip_pool6: it cannot hold endpoints of dual-stack "
                       f"network {net.name} of tenant {net.tenant}")
    own = {IPv6Address(host.underlay_ip6)} if host.underlay_ip6 else set()
    return ipam.pick_pip6(pool6, used, own, host.name)


def new_endpoint(eid: int, name: str, net: Network, host: Host, ip: IPv4Address, pip: IPv4Address,
                 mac: str | None, labels: dict[str, str],
                 ip6: IPv6Address | None = None, pip6: IPv6Address | None = None) -> Endpoint:
    return Endpoint(id=eid, name=name, tenant=net.tenant, network=net.name, ip=str(ip),
                    mac=mac or ipam.mac_for_id(eid), host=host.name, pip=str(pip), labels=labels,
                    ip6="" if ip6 is None else str(ip6), pip6="" if pip6 is None else str(pip6))


def pick_ip(net: Network, used: dict[IPv4Address, str], requested: str | None) -> IPv4Address:
    label = f"{net.name} of tenant {net.tenant}"
    return ipam.pick_ip(net.net, IPv4Address(net.gateway), used, requested, label)


def check_ip6_wanted(net: Network, requested: str | None) -> bool:
    """Whether the endpoint gets an IPv6 address: on a dual-stack network always; an ip6
    asked for on an IPv4-only network is refused."""
    if requested is not None and not net.subnet6:
        raise InvalidInput(f"ip6 {requested!r}: network {net.name} of tenant {net.tenant} has no subnet6")
    return bool(net.subnet6)


def pick_ip6(net: Network, used: dict[IPv6Address, str], requested: str | None) -> IPv6Address:
    net6 = net.net6
    assert net6 is not None, "pick_ip6 on an IPv4-only network"
    label = f"{net.name} of tenant {net.tenant}"
    return ipam.pick_ip6(net6, IPv6Address(net.gateway6), used, requested, label)


def check_port_name(id: int, port: object) -> None:
    if port is not None and not isinstance(port, str):
        raise InvalidInput(f"port {port!r} of endpoint {id} must be an interface name")


def updated_endpoint(old: Endpoint, port: str | None, ofport: int | None,
                     aliases: tuple[str, ...] | None = None) -> Endpoint:
    """`old` with what is given set (None leaves a field as it is)."""
    return dataclasses.replace(old, port=old.port if port is None else port,
                               ofport=old.ofport if ofport is None else ofport,
                               aliases=old.aliases if aliases is None else aliases)


def moved_endpoint(old: Endpoint, host: Host, pip: IPv4Address, pip6: IPv6Address | None = None) -> Endpoint:
    """Same IP(s) and MAC on `host` with PIP(s) of its pools, unplugged until its agent plugs it."""
    return dataclasses.replace(old, host=host.name, pip=str(pip), pip6="" if pip6 is None else str(pip6),
                               port="", ofport=None)


# -- groups ----------------------------------------------------------------------------------


def check_group_free(tenant: str, name: str, existing: Group | None) -> None:
    if existing is not None:
        raise Conflict(f"group {name} of tenant {tenant} already exists")


def check_group_unused(group: Group, rules: Sequence[Rule]) -> None:
    """A group stays while an l4 rule names it."""
    users = sorted(r.id for r in rules if r.kind == "l4" and group.name in (r.a, r.b))
    if users:
        raise Conflict(f"group {group.name} of tenant {group.tenant} is still used by l4 rules: "
                       f"{', '.join(map(str, users))}")


def with_member(group: Group, member: str) -> Group | None:
    """The group with `member` added, or None when it has it already (nothing to write)."""
    if member in group.members:
        return None
    return dataclasses.replace(group, members=tuple(sorted((*group.members, member))))


def without_member(group: Group, member: str) -> Group:
    if member not in group.members:
        raise NotFound(f"{member} is not a member of group {group.name} of tenant {group.tenant}")
    return dataclasses.replace(group, members=tuple(m for m in group.members if m != member))


def container_found(tenant: str, name: str, endpoint: Endpoint | None) -> None:
    """A "container:NAME" member names an endpoint of the tenant when it is added."""
    if endpoint is None:
        raise NotFound(f"container {name} of tenant {tenant} not found: no endpoint has that name")


# -- rules -----------------------------------------------------------------------------------


def pair(a: str, b: str) -> tuple[str, str]:
    """The two containers of a pair rule, checked, in the order the rule keeps them."""
    check_name("container", a, ENDPOINT_NAME_RE)
    check_name("container", b, ENDPOINT_NAME_RE)
    if a == b:
        raise InvalidInput(f"a pair rule needs two different containers, got {a} twice")
    return (a, b) if a < b else (b, a)


def pair_rule(old: Rule | None, new_id: int | None, tenant: str, a: str, b: str, action: str) -> Rule | None:
    """The pair rule to write (a new one takes `new_id`), or None when `old` says it already."""
    if old is not None:
        return None if old.action == action else dataclasses.replace(old, action=action)
    assert new_id is not None
    return Rule(id=new_id, tenant=tenant, kind="pair", action=action, a=a, b=b)


def check_pair_rule_found(tenant: str, a: str, b: str, rule: Rule | None) -> Rule:
    if rule is None:
        raise NotFound(f"no pair rule between {a} and {b} in tenant {tenant}")
    return rule


def clear_scope(a: str | None, b: str | None) -> tuple[str | None, str | None]:
    """(a, b) of a clear: one container given as b is the same as given as a."""
    return (b, None) if a is None and b is not None else (a, b)


def doomed_pair_rules(rules: Sequence[Rule], a: str | None, b: str | None) -> list[Rule]:
    """The pair rules a clear of (a, b) deletes: the pair's, a's, or all of them; by id."""
    def doomed(rule: Rule) -> bool:
        if a is not None and b is not None:
            return (rule.a, rule.b) == tuple(sorted((a, b)))
        return a is None or a in (rule.a, rule.b)
    return sorted((r for r in rules if r.kind == "pair" and doomed(r)), key=lambda r: r.id)


def _match(rule: Rule) -> tuple[object, ...]:
    """What makes two l4 rules the same rule, whatever their names and ids."""
    return (rule.a, rule.b, rule.protocol, rule.ports, rule.icmp_type, rule.action, rule.priority)


def check_l4_free(new: Rule, existing: Sequence[Rule]) -> None:
    """`new`'s name is free in its tenant and no rule there is the same rule.  Overlapping and
    contradictory rules are fine: priorities and the evaluation order settle them."""
    for other in sorted(existing, key=lambda r: r.id):
        if other.kind != "l4":
            continue
        if new.name and other.name == new.name:
            raise Conflict(f"rule name {new.name} of tenant {new.tenant} is already taken (rule {other.id})")
        if _match(other) == _match(new):
            verb = "denies" if other.action == "deny" else "allows"
            raise Conflict(f"{other.label} of tenant {new.tenant} already {verb} "
                           f"{describe_rule(other)} from {other.a} to {other.b} at priority {other.priority}")


# -- tokens and port mappings ----------------------------------------------------------------


def check_token_free(what: str, by_name: Token | None, by_hash: Token | None) -> None:
    if by_name is not None:
        raise Conflict(f"{what} already exists")
    if by_hash is not None:
        raise Conflict(f"{what}: another token already has the same secret")


def check_token_found(id: int, token: Token | None) -> Token:
    if token is None:
        raise NotFound(f"token {id} not found")
    return token


def check_portmap_free(tenant: str, name: str, host: str, protocol: str, host_port: int,
                       by_name: Portmap | None, taken: Portmap | None) -> None:
    """A mapping's name is free in its tenant, and (host, protocol, host port) is held by one mapping."""
    if by_name is not None:
        raise Conflict(f"port mapping {name} of tenant {tenant} already exists")
    if taken is not None:
        raise Conflict(f"{protocol} port {host_port} of host {host} is already mapped "
                       f"(port mapping {taken.name})")


# -- the change log --------------------------------------------------------------------------


def check_log_reach(rev: int, pruned: int, now: int, store: str) -> None:
    """changes_since(rev) can be answered from a log holding everything above `pruned`, at `now`."""
    if rev < pruned:
        raise ChangesPruned(f"changes after rev {rev} are no longer logged (the log starts after "
                            f"rev {pruned}): take a snapshot")
    if rev > now:
        raise InvalidInput(f"rev {rev} is ahead of store {store} (at rev {now})")


def top_ids(objs: Iterable[Obj]) -> dict[str, int]:
    """The highest id of every never-reused kind among imported objects: no later id goes below."""
    top: dict[str, int] = {}
    for obj in objs:
        if isinstance(obj, Network | Group | Rule | Token | Portmap):
            kind = SEQ_KINDS[type(obj)]
            top[kind] = max(top.get(kind, 0), obj.id)
    return top
