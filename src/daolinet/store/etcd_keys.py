"""The etcd store's key layout, object encoding and claims.

Every key lives under one prefix: /daolinet/ by default, or the path of the
store URL (etcd://h1:2379,h2:2379/site-b puts everything under /site-b/).

    meta/rev                        store revision: every write bumps it and compares its mod revision,
                                    so writes are serialised exactly like SQLite's BEGIN IMMEDIATE
    meta/pruned                     the change log holds every change above this revision
    meta/seq/<kind>                 last id handed out to networks, groups, rules, tokens, port mappings
                                    (never reused)
    meta/heartbeat/<host>           log key of the host's latest heartbeat (older ones are deleted)
    log/<rev:020d>                  one committed write, keyed by its last revision:
                                    {"txn": random id, "changes": [{rev, kind, deleted, obj}, ...]}
    tenant/<name>                   Tenant, as JSON of every field (base.obj_to_json)
    network/<tenant>/<name>         Network
    host/<name>                     Host
    endpoint/<id:08d>               Endpoint (ids are small and dense: the smallest free one is reused)
    group/<tenant>/<name>           Group
    rule/<tenant>/<kind>/<id:010d>  Rule (by kind: clearing a tenant's pair rules is one range delete)
    token/<id:010d>                 Token
    portmap/<tenant>/<name>         Portmap
    controller/<id>                 ControllerRecord
    claim/endpoint/<tenant>/<name>  -> key of the endpoint of that name
    claim/ip/<tenant>/<ip:08x>      -> key of the endpoint holding that logical IP (a subnet is a key range)
    claim/pip/<ip:08x>              -> key of the endpoint holding that PIP (a host's pool is a key range)
    claim/ip6/<tenant>/<ip6:032x>   -> key of the endpoint holding that logical IPv6 address
    claim/pip6/<ip6:032x>           -> key of the endpoint holding that IPv6 PIP
    claim/dpid/<dpid:016x>          -> key of the host with that datapath id
    claim/underlay/<ip:08x>         -> key of the host with that underlay IP
    claim/underlay6/<ip6:032x>      -> key of the host with that IPv6 underlay IP
    claim/pair/<tenant>/<a>/<b>     -> key of the pair rule of containers a < b
    claim/l4/<tenant>/<a>/<b>/<protocol>/<ports>[/<action>/<priority>/<icmp type>]  -> key of that l4 rule
                                    (a cidr: selector's "/" as "_"; the bracketed part only when not
                                    allow/100/any, so rules stored before issue 15 keep their claims)
    claim/rule-name/<tenant>/<name> -> key of the l4 rule of that name
    claim/token-name/<tenant|_>/<name>            -> key of the token (_ : admin tokens)
    claim/token-hash/<sha256>       -> key of the token with that secret
    claim/hostport/<host>/<protocol>/<port>       -> key of the port mapping holding that host port
    alive/<host>                    empty, on the host's lease: present while its agent heartbeats
                                    (etcd_liveness; outside meta/rev and the log, etcd expires it)

A claim is created only if absent (the transaction compares its version with
0) and deleted with its object: the etcd equivalent of SQLite's UNIQUE
constraints, and what keeps two controllers from handing out one address even
if the serialising meta/rev compare were ever bypassed.  Names in keys are
validated before any write (no '/' can reach a key).
"""

from __future__ import annotations

import json
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network

from daolinet.model.objects import (
    DEFAULT_RULE_PRIORITY,
    ControllerRecord,
    Endpoint,
    Group,
    Host,
    Network,
    Portmap,
    Rule,
    Tenant,
    Token,
)
from daolinet.model.view import Obj
from daolinet.store.codec import kind_of, obj_from_json, obj_to_json

SEQ_KINDS = ("network", "group", "rule", "token", "portmap")


def ip_hex(addr: str | IPv4Address) -> str:
    return f"{int(IPv4Address(addr)):08x}"


def ip6_hex(addr: str | IPv6Address) -> str:
    return f"{int(IPv6Address(addr)):032x}"


def _num(id: object, width: int) -> str:
    """An id as a fixed-width key part; anything else as a part that matches no object."""
    if isinstance(id, bool) or not isinstance(id, int) or id < 0:
        return f"?{id!r}"
    return f"{id:0{width}d}"


class Keys:
    """Every key of one store, as bytes."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self._p = prefix.encode()

    def _k(self, *parts: str) -> bytes:
        return self._p + "/".join(parts).encode()

    # -- meta and the change log --------------------------------------------------------

    @property
    def rev(self) -> bytes:
        return self._k("meta", "rev")

    @property
    def pruned(self) -> bytes:
        return self._k("meta", "pruned")

    def seq(self, kind: str) -> bytes:
        return self._k("meta", "seq", kind)

    def heartbeat(self, host: str) -> bytes:
        return self._k("meta", "heartbeat", host)

    @property
    def log_prefix(self) -> bytes:
        return self._k("log", "")

    def log(self, rev: int) -> bytes:
        return self._k("log", f"{rev:020d}")

    def alive(self, host: str) -> bytes:
        """The liveness key of `host`, put with the host's lease ("": the prefix of them all)."""
        return self._k("alive", host)

    # -- objects -----------------------------------------------------------------------------

    def tenant(self, name: str) -> bytes:
        return self._k("tenant", name)

    def network(self, tenant: str, name: str) -> bytes:
        return self._k("network", tenant, name)

    def host(self, name: str) -> bytes:
        return self._k("host", name)

    def endpoint(self, id: object) -> bytes:
        return self._k("endpoint", _num(id, 8))

    def group(self, tenant: str, name: str) -> bytes:
        return self._k("group", tenant, name)

    def rule(self, tenant: str, kind: str, id: object) -> bytes:
        return self._k("rule", tenant, kind, _num(id, 10))

    def token(self, id: object) -> bytes:
        return self._k("token", _num(id, 10))

    def portmap(self, tenant: str, name: str) -> bytes:
        return self._k("portmap", tenant, name)

    def controller(self, id: str) -> bytes:
        return self._k("controller", id)

    def all(self, kind: str, tenant: str | None = None) -> bytes:
        """The prefix of every object of `kind` (of `tenant`, for tenant-scoped kinds)."""
        return self._k(kind, "") if tenant is None else self._k(kind, tenant, "")

    def key_of(self, obj: Obj) -> bytes:
        match obj:
            case Tenant():
                return self.tenant(obj.name)
            case Network():
                return self.network(obj.tenant, obj.name)
            case Host():
                return self.host(obj.name)
            case Endpoint():
                return self.endpoint(obj.id)
            case Group():
                return self.group(obj.tenant, obj.name)
            case Rule():
                return self.rule(obj.tenant, obj.kind, obj.id)
            case Token():
                return self.token(obj.id)
            case Portmap():
                return self.portmap(obj.tenant, obj.name)
            case ControllerRecord():
                return self.controller(obj.id)
        raise TypeError(f"not a model object: {obj!r}")

    # -- claims ------------------------------------------------------------------------------

    def endpoint_name(self, tenant: str, name: str) -> bytes:
        return self._k("claim", "endpoint", tenant, name)

    def ip(self, tenant: str, addr: str | IPv4Address) -> bytes:
        return self._k("claim", "ip", tenant, ip_hex(addr))

    def ips(self, tenant: str, net: IPv4Network) -> tuple[bytes, bytes]:
        """The key range of the IP claims of `net` in `tenant`."""
        return self.ip(tenant, net.network_address), self.ip(tenant, net.broadcast_address) + b"\0"

    def pip(self, addr: str | IPv4Address) -> bytes:
        return self._k("claim", "pip", ip_hex(addr))

    def pips(self, pool: IPv4Network) -> tuple[bytes, bytes]:
        return self.pip(pool.network_address), self.pip(pool.broadcast_address) + b"\0"

    def ip6(self, tenant: str, addr: str | IPv6Address) -> bytes:
        return self._k("claim", "ip6", tenant, ip6_hex(addr))

    def ips6(self, tenant: str, net: IPv6Network) -> tuple[bytes, bytes]:
        """The key range of the IPv6 claims of `net` in `tenant`."""
        return self.ip6(tenant, net.network_address), self.ip6(tenant, net.broadcast_address) + b"\0"

    def pip6(self, addr: str | IPv6Address) -> bytes:
        return self._k("claim", "pip6", ip6_hex(addr))

    def pips6(self, pool: IPv6Network) -> tuple[bytes, bytes]:
        return self.pip6(pool.network_address), self.pip6(pool.broadcast_address) + b"\0"

    def underlay6(self, addr: str) -> bytes:
        return self._k("claim", "underlay6", ip6_hex(addr))

    def dpid(self, dpid: int) -> bytes:
        return self._k("claim", "dpid", f"{dpid:016x}")

    def underlay(self, addr: str) -> bytes:
        return self._k("claim", "underlay", ip_hex(addr))

    def pair(self, tenant: str, a: str, b: str) -> bytes:
        return self._k("claim", "pair", tenant, a, b)

    def l4(self, rule: Rule) -> bytes:
        """The claim that makes an l4 rule unique: everything but its id and name."""
        parts = [rule.tenant, rule.a.replace("/", "_"), rule.b.replace("/", "_"), rule.protocol or "any",
                 rule.ports]
        if (rule.action, rule.priority, rule.icmp_type) != ("allow", DEFAULT_RULE_PRIORITY, None):
            icmp = "any" if rule.icmp_type is None else str(rule.icmp_type)
            parts += [rule.action, str(rule.priority), icmp]
        return self._k("claim", "l4", *parts)

    def rule_name(self, tenant: str, name: str) -> bytes:
        return self._k("claim", "rule-name", tenant, name)

    def token_name(self, tenant: str | None, name: str) -> bytes:
        return self._k("claim", "token-name", "_" if tenant is None else tenant, name)

    def token_hash(self, hash: str) -> bytes:
        return self._k("claim", "token-hash", hash)

    def host_port(self, host: str, protocol: str, port: int) -> bytes:
        return self._k("claim", "hostport", host, protocol, str(port))

    def claims_of(self, obj: Obj) -> dict[bytes, bytes]:
        """The claim keys `obj` holds, each naming the object's key."""
        own = self.key_of(obj)
        match obj:
            case Host():
                keys = [self.dpid(obj.dpid), self.underlay(obj.underlay_ip)]
                keys += [self.underlay6(obj.underlay_ip6)] if obj.underlay_ip6 else []
            case Endpoint():
                keys = [self.endpoint_name(obj.tenant, obj.name), self.ip(obj.tenant, obj.ip),
                        self.pip(obj.pip)]
                keys += [self.ip6(obj.tenant, obj.ip6), self.pip6(obj.pip6)] if obj.ip6 else []
            case Rule() if obj.kind == "pair":
                keys = [self.pair(obj.tenant, obj.a, obj.b)]
            case Rule():
                keys = [self.l4(obj), *([self.rule_name(obj.tenant, obj.name)] if obj.name else [])]
            case Token():
                keys = [self.token_name(obj.tenant, obj.name), self.token_hash(obj.hash)]
            case Portmap():
                keys = [self.host_port(obj.host, obj.protocol, obj.host_port)]
            case _:
                keys = []
        return dict.fromkeys(keys, own)


# -- values ------------------------------------------------------------------------------------


def encode(obj: Obj) -> bytes:
    return json.dumps(obj_to_json(obj), sort_keys=True).encode()


def decode(kind: str, value: bytes) -> Obj:
    return obj_from_json(kind, json.loads(value))


def decode_all(kind: str, kvs: list[tuple[bytes, bytes]]) -> list[Obj]:
    return [decode(kind, value) for _, value in kvs]


def change_json(rev: int, obj: Obj, deleted: bool) -> dict[str, object]:
    return {"rev": rev, "kind": kind_of(obj), "deleted": deleted, "obj": obj_to_json(obj)}
