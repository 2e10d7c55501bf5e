"""A container's DNS question -> what its host's resolver does with it (issue 18, "Names").

Pure: (view, asker, name, type) in, a decision out; the agent's resolver (agent/dns_link.py,
through decide/dns_reply.py) parses the query, asks `resolve`, and builds the reply or forwards it.

Within the asker's tenant, `NAME` and `NAME.NETWORK` name the endpoint NAME (on network
NETWORK) - case-insensitive, with or without the trailing dot.  When no endpoint has that
name (on NETWORK), they name every endpoint with the *alias* NAME (on NETWORK): an endpoint's
extra DNS names (model/names.py; Docker: the container's name and its network aliases, as
the endpoint's own name is generated).  Aliases are not unique: one answer carries every
endpoint of the alias that the asker may reach.  A name shadows an alias, reachable or not:
a lookup of it never falls through to endpoints it did not name.

- `Answer`: the asker may reach it (them); A gives its `ip`, AAAA its `ip6` (no records,
  NOERROR, on an IPv4-only network), any other type no records; several endpoints of an
  alias give their addresses sorted (deterministic), those the asker may not reach left out;
- `NxDomain`: the name looks like ours - one label, or two whose second is a network of the
  asker's tenant - but names no endpoint of the tenant, or only ones the asker may not
  reach, or ones whose host is down or gone.  All the same on purpose: a denied pair does
  not even resolve, and another tenant's names look like names that do not exist;
- `Forward`: every other name, for the host's upstream resolvers.  A single label is never
  forwarded (it would leak the tenant's names upstream).

"May reach" is the hot-plug route's policy (decide/policy.py) asked without a packet:
`Policy.may_reach`, true when *some* connection the asker could open to the endpoint - any
protocol, port or ICMP type - would be plugged, not only as a reply.  So a server that rules
open on tcp/80 only resolves for its clients, and never for a container it may only answer.
An endpoint always resolves its own name.  An endpoint whose container is not plugged in
yet (moving, starting) still resolves: its addresses do not change, and its route will be
plugged once it is there.

Aliases are checked DNS labels, stored lower-case, so they resolve in any case.  Endpoint
names are not DNS labels: the store takes `[A-Za-z0-9][A-Za-z0-9_.-]{0,127}` (what Docker
allows, store/checks.py ENDPOINT_NAME_RE).  A name is looked up as asked and lower-cased,
so a name with capitals resolves only when asked exactly so, one holding a dot never does,
and one with an underscore or of 64 characters or more resolves though it is no valid DNS
label.  A network named like a top-level domain (`com`) hides that domain from its tenant.
Answers carry TTL 0: the next lookup asks the policy again, so a revoked group stops
resolving at once.

Cost: a handful of dict lookups and the policy's rules covering the one pair, whatever
the number of endpoints; for an alias, that per endpoint of the alias.  Many endpoints of
one alias may not fit a UDP answer: dnswire truncates it (TC).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from enum import IntEnum

from daolinet.decide.route import policy_of
from daolinet.model import Endpoint, Network, View

TTL = 0  # seconds; every lookup is decided afresh


class QType(IntEnum):
    """The query types answered from the view (DNS type codes)."""

    A = 1
    AAAA = 28


@dataclass(frozen=True)
class Answer:
    """Reply NOERROR with these addresses (none: the name exists, with no record of that type)."""

    addresses: tuple[str, ...]
    reason: str


@dataclass(frozen=True)
class NxDomain:
    """Reply NXDOMAIN.  `reason` is for logs and traces, never for the asker."""

    reason: str


@dataclass(frozen=True)
class Forward:
    """Not a name of the tenant: ask the host's upstream resolvers."""


NameDecision = Answer | NxDomain | Forward
FORWARD = Forward()


def resolve(view: View, asker: Endpoint, qname: str, qtype: int) -> NameDecision:
    """What to answer `asker` (the container the query came from) for `qname`/`qtype`."""
    labels = _labels(qname)
    if len(labels) == 1:
        target = _named(view, asker.tenant, labels[0])
        if target is None:
            return _aliased(view, asker, labels[0], None, qtype)
    elif len(labels) == 2:
        net = _network(view, asker.tenant, labels[1])
        if net is None:
            return FORWARD
        target = _named(view, asker.tenant, labels[0])
        if target is None or target.network != net.name:
            return _aliased(view, asker, labels[0], net, qtype)
    else:
        return FORWARD
    return _answer(view, asker, target, qtype)


def _labels(qname: str) -> list[str]:
    """The labels of a name in text form: "web.net1." -> ["web", "net1"]; the root: []."""
    name = qname[:-1] if qname.endswith(".") else qname
    return name.split(".") if name else []


def _named(view: View, tenant: str, label: str) -> Endpoint | None:
    found = view.endpoint_named(tenant, label)
    if found is None and label.lower() != label:
        found = view.endpoint_named(tenant, label.lower())
    return found


def _network(view: View, tenant: str, label: str) -> Network | None:
    found = view.networks.get((tenant, label))
    if found is None and label.lower() != label:
        found = view.networks.get((tenant, label.lower()))
    return found


def _aliased(view: View, asker: Endpoint, label: str, net: Network | None, qtype: int) -> NameDecision:
    """Every endpoint with alias `label` (on `net`) the asker may reach, or NXDOMAIN."""
    where = f"in tenant {asker.tenant}" if net is None else f"on network {net.name} of tenant {asker.tenant}"
    targets = [e for e in view.endpoints_aliased(asker.tenant, label.lower())
               if net is None or e.network == net.name]
    if not targets:
        return NxDomain(f"no container {label} {where}")
    refusals = [_refusal(view, asker, e) for e in targets]
    shown = [e for e, why in zip(targets, refusals, strict=True) if not why]
    if not shown:
        return NxDomain(f"alias {label} {where}: " + "; ".join(refusals))
    found = sorted({a for e in shown if (a := _address(e, qtype))}, key=ipaddress.ip_address)
    return Answer(tuple(found), f"alias {label}: " + ", ".join(f"{e.name} on {e.network}" for e in shown))


def _answer(view: View, asker: Endpoint, target: Endpoint, qtype: int) -> NameDecision:
    why = _refusal(view, asker, target)
    if why:
        return NxDomain(why)
    found = _address(target, qtype)
    return Answer((found,) if found else (), f"{target.name} on {target.network}")


def _refusal(view: View, asker: Endpoint, target: Endpoint) -> str:
    """Why `target` does not resolve for `asker` ("" : it does)."""
    host = view.host_of(target)
    if host is None or not host.alive:
        return f"container {target.name} is down: its host {target.host} is not alive"
    if target.id != asker.id and not _may_reach(view, asker, target):
        return f"{asker.name} may not reach {target.name}"
    return ""


def _address(target: Endpoint, qtype: int) -> str:
    """`target`'s address of the query type ("" : none)."""
    if qtype == QType.A:
        return target.ip
    if qtype == QType.AAAA:
        return target.ip6
    return ""


def _may_reach(view: View, asker: Endpoint, target: Endpoint) -> bool:
    asker_net, target_net = view.network_of(asker), view.network_of(target)
    if asker_net is None or target_net is None:
        return False
    return policy_of(view).may_reach(asker, target, asker_net, target_net)
