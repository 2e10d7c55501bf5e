"""Input checks every store backend applies before it reads anything: names,
numbers, addresses, group members, rule ports, tokens.  Pure; each raises
InvalidInput with one line for a human, or returns the value in canonical form.
The rules that need what a transaction read are in `rules`."""

from __future__ import annotations

import contextlib
import dataclasses
import ipaddress
import math
import re
from collections.abc import Mapping, Sequence

from daolinet.errors import InvalidInput
from daolinet.model.objects import (
    CIDR_PREFIX,
    DEFAULT_RULE_PRIORITY,
    MEMBER_KINDS,
    RULE_PRIORITY_MAX,
    Host,
    Rule,
    cidr_of,
)
from daolinet.store import ipam

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,62}$")  # tenants and networks
HOST_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
ENDPOINT_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")  # what Docker allows, and more
MAX_ENDPOINT_ID = 2**24 - 1  # ids are part of every route cookie
MAX_OFPORT = 0xFFFFFF00  # OFPP_MAX
LABEL_PART_RE = re.compile(r"^[A-Za-z0-9_.-]{1,63}$")  # KEY and VALUE of a "label:KEY=VALUE" member
TOKEN_HASH_RE = re.compile(r"^[0-9a-f]{64}$")  # sha256, lowercase hex
PAIR_ACTIONS = ("connect", "disconnect")
L4_PROTOCOLS = ("tcp", "udp", "icmp", "any")  # "any" is stored as ""
L4_ACTIONS = ("allow", "deny")
RULE_KINDS = ("pair", "l4")
PORTMAP_PROTOCOLS = ("tcp", "udp")
_PORTS_RE = re.compile(r"^([0-9]{1,10})(?:-([0-9]{1,10}))?$")

def check_name(kind: str, name: str, pattern: re.Pattern[str] = NAME_RE) -> str:
    if not isinstance(name, str) or not pattern.match(name):
        raise InvalidInput(f"invalid {kind} name {name!r}: must match {pattern.pattern}")
    return name


def check_labels(labels: Mapping[str, str] | None) -> dict[str, str]:
    out = dict(labels or {})
    for key, value in out.items():
        if not isinstance(key, str) or not key or not isinstance(value, str):
            raise InvalidInput(f"label {key!r}={value!r}: labels map non-empty strings to strings")
    return out


def check_int(what: str, value: object, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidInput(f"{what} {value!r} must be an integer between {low} and {high}")
    return value


def check_host(host: Host) -> Host:
    """`host` with every field validated and addresses in canonical form."""
    check_name("host", host.name, HOST_NAME_RE)
    check_int(f"dpid of host {host.name}", host.dpid, 0, 2**64 - 1)
    check_int(f"underlay_prefix of host {host.name}", host.underlay_prefix, 1, 32)
    check_int(f"uplink_ofport of host {host.name}", host.uplink_ofport, 1, MAX_OFPORT)
    gw_mac = host.underlay_gateway_mac
    if isinstance(host.last_seen, bool) or not isinstance(host.last_seen, int | float) \
            or not math.isfinite(host.last_seen):
        raise InvalidInput(f"last_seen {host.last_seen!r} of host {host.name} must be a number")
    if not isinstance(host.alive, bool):
        raise InvalidInput(f"alive {host.alive!r} of host {host.name} must be true or false")
    return _host6(dataclasses.replace(
        host,
        underlay_ip=str(ipam.check_address(host.underlay_ip, f"underlay_ip of host {host.name}")),
        underlay_mac=ipam.check_mac(host.underlay_mac, f"underlay_mac of host {host.name}"),
        pip_pool=str(ipam.check_subnet(host.pip_pool, f"pip_pool of host {host.name}")),
        underlay_gateway_mac=ipam.check_mac(gw_mac, f"underlay_gateway_mac of host {host.name}")
        if gw_mac else "",
        last_seen=float(host.last_seen),
    ))


def _host6(host: Host) -> Host:
    """`host` with its IPv6 fields validated, in canonical form ("" stays "": the host has none)."""
    check_int(f"underlay_prefix6 of host {host.name}", host.underlay_prefix6, 1, 128)
    pool6, ip6 = host.pip_pool6, host.underlay_ip6
    return dataclasses.replace(
        host,
        pip_pool6=str(ipam.check_subnet6(pool6, f"pip_pool6 of host {host.name}")) if pool6 else "",
        underlay_ip6=str(ipam.check_address6(ip6, f"underlay_ip6 of host {host.name}")) if ip6 else "",
    )


def check_member(member: object) -> str:
    """A group member: "network:NAME", "container:NAME" or "label:KEY=VALUE"."""
    form = "network:NAME, container:NAME or label:KEY=VALUE"
    if not isinstance(member, str):
        raise InvalidInput(f"group member {member!r} must be a string: {form}")
    kind, sep, rest = member.partition(":")
    if not sep or kind not in MEMBER_KINDS:
        raise InvalidInput(f"invalid group member {member!r}: must be {form}")
    try:
        if kind == "network":
            check_name("network", rest)
        elif kind == "container":
            check_name("container", rest, ENDPOINT_NAME_RE)
    except InvalidInput as e:
        raise InvalidInput(f"invalid group member {member!r}: {e}") from None
    key, eq, value = rest.partition("=")
    if kind == "label" and not (eq and LABEL_PART_RE.match(key) and LABEL_PART_RE.match(value)):
        raise InvalidInput(f"invalid group member {member!r}: must be label:KEY=VALUE with KEY and "
                           f"VALUE each matching {LABEL_PART_RE.pattern}")
    return member


def check_members(members: Sequence[str]) -> tuple[str, ...]:
    """Checked members, sorted and without duplicates."""
    if isinstance(members, str) or not isinstance(members, Sequence):
        raise InvalidInput(f"group members {members!r} must be a list of strings")
    return tuple(sorted({check_member(m) for m in members}))


def check_choice(what: str, value: object, choices: Sequence[str]) -> str:
    if not isinstance(value, str) or value not in choices:
        raise InvalidInput(f"{what} {value!r} must be one of: {', '.join(choices)}")
    return value


def check_ports(protocol: str, ports: object) -> str:
    """`ports` of an l4 rule in canonical form: "N" or "N-M" for tcp and udp ("" any port);
    "" for icmp and any protocol.  `protocol` is canonical already ("" for any)."""
    if not isinstance(ports, str):
        raise InvalidInput(f"ports {ports!r} must be a string like \"80\" or \"8000-8100\"")
    if not ports:
        return ""
    if protocol not in ("tcp", "udp"):
        raise InvalidInput(f"ports {ports!r} need protocol tcp or udp, not {protocol or 'any'}")
    match = _PORTS_RE.match(ports)
    if match is None:
        raise InvalidInput(f"ports {ports!r} of a {protocol} rule must be \"N\" or \"N-M\"")
    lo = int(match[1])
    hi = lo if match[2] is None else int(match[2])
    for port in (lo, hi):
        if not 1 <= port <= 65535:
            raise InvalidInput(f"port {port} in {ports!r} is out of range: ports are 1 to 65535")
    if lo > hi:
        raise InvalidInput(f"port range {ports!r} is empty: {lo} is above {hi}")
    return str(lo) if lo == hi else f"{lo}-{hi}"


def check_selector(side: str, selector: object) -> str:
    """One side ("from", "to") of an l4 rule: a group name, or "cidr:NETWORK" with NETWORK an
    IPv4 or IPv6 network (no host bits set), in canonical form (IPv6 compressed, lower case)."""
    if not isinstance(selector, str):
        raise InvalidInput(f"{side} {selector!r} must be a group name or cidr:NETWORK")
    network = cidr_of(selector)
    if network is None:
        return check_name(f"{side} group", selector)
    try:
        return CIDR_PREFIX + str(ipaddress.ip_network(network, strict=True))
    except ValueError as e:
        hint = ""
        with contextlib.suppress(ValueError):
            hint = f" (its network is {CIDR_PREFIX}{ipaddress.ip_network(network, strict=False)})"
        raise InvalidInput(f"{side} {selector!r} is not a network: {e}{hint}") from None


def check_rule_name(name: object) -> str:
    """An l4 rule's optional name: like a tenant's, and never all digits (those are ids)."""
    if name == "":
        return ""
    if not isinstance(name, str):
        raise InvalidInput(f"invalid rule name {name!r}: must match {NAME_RE.pattern}")
    check_name("rule", name)
    if name.isdigit():
        raise InvalidInput(f"invalid rule name {name!r}: all digits would read as a rule id")
    return name


def check_icmp_type(protocol: str, icmp_type: object) -> int | None:
    if icmp_type is None:
        return None
    if protocol != "icmp":
        raise InvalidInput(f"icmp type {icmp_type!r} needs protocol icmp, not {protocol or 'any'}")
    return check_int("icmp type", icmp_type, 0, 255)


def check_l4_rule(tenant: str, a: object, b: object, protocol: object = "any", ports: object = "",
                  icmp_type: object = None, action: object = "allow",
                  priority: object = DEFAULT_RULE_PRIORITY, name: object = "") -> Rule:
    """A new l4 rule's input, checked and in canonical form: the Rule to store, id 0 until the
    store gives it one.  Protocol "any" (or "") is stored as ""."""
    a, b = check_selector("from", a), check_selector("to", b)
    if cidr_of(a) is not None and cidr_of(b) is not None:
        raise InvalidInput(f"a rule from {a} to {b} names no group: one side must be a group")
    proto = check_choice("protocol", "any" if protocol == "" else protocol, L4_PROTOCOLS)
    proto = "" if proto == "any" else proto
    return Rule(id=0, tenant=tenant, kind="l4", action=check_choice("action", action, L4_ACTIONS), a=a, b=b,
                protocol=proto, ports=check_ports(proto, ports), name=check_rule_name(name),
                priority=check_int("priority", priority, 0, RULE_PRIORITY_MAX),
                icmp_type=check_icmp_type(proto, icmp_type))


def check_token(name: str, hash: str, created: float, tenant: str | None = None,
                host: str | None = None) -> float:
    """Checks a new token's fields; returns `created` as a float."""
    check_name("token", name)
    if host is not None:
        check_name("host", host)
        if tenant is not None:
            raise InvalidInput(f"token {name} is for tenant {tenant} or for host {host}, not both")
    if not isinstance(hash, str) or not TOKEN_HASH_RE.match(hash):
        raise InvalidInput(f"hash of token {name} must be 64 lowercase hex digits (a sha256)")
    if isinstance(created, bool) or not isinstance(created, int | float) or not math.isfinite(created):
        raise InvalidInput(f"created {created!r} of token {name} must be a number")
    return float(created)


def token_what(name: str, tenant: str | None, host: str | None) -> str:
    """A token as messages name it."""
    if host is not None:
        return f"token {name} of host {host}"
    return f"admin token {name}" if tenant is None else f"token {name} of tenant {tenant}"



def check_network(name: str, subnet: str, gateway: str | None, isolated: bool,
                  external: bool) -> tuple[ipaddress.IPv4Network, ipaddress.IPv4Address]:
    """A new network's input, checked the same way by every backend: (subnet, gateway)."""
    check_name("network", name)
    net = ipam.check_subnet(subnet)
    gw = ipam.default_gateway(net) if gateway is None else ipam.check_in_subnet(gateway, net, "gateway")
    for flag, value in (("isolated", isolated), ("external", external)):
        if not isinstance(value, bool):
            raise InvalidInput(f"{flag} {value!r} of network {name} must be true or false")
    return net, gw


def check_network6(name: str, subnet6: str | None, gateway6: str | None
                   ) -> tuple[ipaddress.IPv6Network | None, ipaddress.IPv6Address | None]:
    """A new network's IPv6 input: (subnet6, gateway6), or (None, None) for an IPv4-only network."""
    if subnet6 is None:
        if gateway6 is not None:
            raise InvalidInput(f"gateway6 {gateway6!r} of network {name} needs a subnet6")
        return None, None
    net6 = ipam.check_subnet6(subnet6)
    if gateway6 is None:
        return net6, ipam.default_gateway6(net6)
    return net6, ipam.check_in_subnet6(gateway6, net6, "gateway6")


def check_portmap(name: str, protocol: str, host_port: int, container_port: int) -> None:
    check_name("port mapping", name)
    if protocol not in PORTMAP_PROTOCOLS:
        raise InvalidInput(f"protocol {protocol!r} of port mapping {name}: use tcp or udp")
    check_int("host port", host_port, 1, 65535)
    check_int("container port", container_port, 1, 65535)
