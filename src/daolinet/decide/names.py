"""A container's DNS question -> what its host's resolver does with it (issue 18, "Names").

Pure: (view, asker, name, type) in, a decision out; the agent's resolver (agent/dns_link.py,
to come) parses the query, asks `resolve`, and builds the reply or forwards the query.

Within the asker's tenant, `NAME` and `NAME.NETWORK` name the endpoint NAME (on network
NETWORK) - case-insensitive, with or without the trailing dot:

- `Answer`: the asker may reach it; A gives its `ip`, AAAA its `ip6` (no records, NOERROR,
  on an IPv4-only network), any other type no records;
- `NxDomain`: the name looks like ours - one label, or two whose second is a network of the
  asker's tenant - but names no endpoint of the tenant, or one the asker may not reach, or
  one whose host is down or gone.  All the same on purpose: a denied pair does not even
  resolve, and another tenant's names look like names that do not exist;
- `Forward`: every other name, for the host's upstream resolvers.  A single label is never
  forwarded (it would leak the tenant's names upstream).

"May reach" is the hot-plug route's policy (decide/policy.py) asked without a packet:
`Policy.may_reach`, true when *some* connection the asker could open to the endpoint - any
protocol, port or ICMP type - would be plugged, not only as a reply.  So a server that rules
open on tcp/80 only resolves for its clients, and never for a container it may only answer.
An endpoint always resolves its own name.  An endpoint whose container is not plugged in
yet (moving, starting) still resolves: its addresses do not change, and its route will be
plugged once it is there.

The names come from the store unchecked (DNS-label checks are to come, issue 18 step 1):
a name is looked up as asked and lower-cased, so a name with capitals resolves only when
asked exactly so, and one holding a dot never does.  A network named like a top-level
domain (`com`) hides that domain from its tenant.  Answers carry TTL 0: the next lookup
asks the policy again, so a revoked group stops resolving at once.

Cost: a handful of dict lookups and the policy's rules covering the one pair, whatever
the number of endpoints.
"""

from __future__ import annotations

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
            return NxDomain(f"no container {labels[0]} in tenant {asker.tenant}")
    elif len(labels) == 2:
        net = _network(view, asker.tenant, labels[1])
        if net is None:
            return FORWARD
        target = _named(view, asker.tenant, labels[0])
        if target is None or target.network != net.name:
            return NxDomain(f"no container {labels[0]} on network {net.name} of tenant {asker.tenant}")
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


def _answer(view: View, asker: Endpoint, target: Endpoint, qtype: int) -> NameDecision:
    host = view.host_of(target)
    if host is None or not host.alive:
        return NxDomain(f"container {target.name} is down: its host {target.host} is not alive")
    if target.id != asker.id and not _may_reach(view, asker, target):
        return NxDomain(f"{asker.name} may not reach {target.name}")
    if qtype == QType.A:
        found = target.ip
    elif qtype == QType.AAAA:
        found = target.ip6
    else:
        found = ""
    return Answer((found,) if found else (), f"{target.name} on {target.network}")


def _may_reach(view: View, asker: Endpoint, target: Endpoint) -> bool:
    asker_net, target_net = view.network_of(asker), view.network_of(target)
    if asker_net is None or target_net is None:
        return False
    return policy_of(view).may_reach(asker, target, asker_net, target_net)
