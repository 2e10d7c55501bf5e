"""A DNS question's packet-in on a host -> what the host's agent sends back (pure).

The agent's DNS link (agent/dns_link.py) gets, for every question a container asks its
gateway or the resolver address (flows/dns.py), the port it came in on and the whole
frame.  `reply_to` decides, from the agent's replica of the view (agent/resolver_view.py):

- `Send(frame)`: the reply, to go out the asker's port: an answer or NXDOMAIN about the
  tenant's names (decide/names.py), an error for a question we do not resolve, or
  SERVFAIL when the replica is stale (fail closed: a name that was revoked must not
  keep resolving from old data; the asker's resolver tries again);
- `Upstream(query)`: a name that is not the tenant's, for the host's resolvers;
- `Drop(reason)`: not a DNS question (never answered), or from a port no container of
  the view holds (unplugged, or the replica is behind: the asker will retry).

The asker is the endpoint on the port the frame came in on: classify's anti-spoofing let the
frame through only with that port's MAC and address, so the address in the frame is not
trusted for anything else.
"""

from __future__ import annotations

from dataclasses import dataclass

import dns.rcode

from daolinet.decide.dnswire import (
    Malformed,
    Query,
    Refuse,
    answer_frame,
    error_frame,
    nxdomain_frame,
    parse_query,
)
from daolinet.decide.names import TTL, Answer, NxDomain, resolve
from daolinet.model import Endpoint, View


@dataclass(frozen=True)
class Send:
    frame: bytes
    outcome: str  # "answer", "nxdomain", "refused", "stale": for counters and logs
    reason: str = ""


@dataclass(frozen=True)
class Upstream:
    query: Query


@dataclass(frozen=True)
class Drop:
    reason: str


DnsReply = Send | Upstream | Drop


def reply_to(view: View, fresh: bool, asker: Endpoint | None, frame: bytes) -> DnsReply:
    """What to do with the question `frame` that came in from `asker`: the endpoint on the
    port it came in on (None: no container known there)."""
    parsed = parse_query(frame)
    if isinstance(parsed, Malformed):
        return Drop(parsed.reason)
    if isinstance(parsed, Refuse):
        return Send(error_frame(parsed.query, parsed.rcode), "refused", parsed.reason)
    if not fresh:
        return Send(error_frame(parsed, dns.rcode.SERVFAIL), "stale", "the view is stale")
    if asker is None:
        return Drop("no container known on that port")
    decision = resolve(view, asker, parsed.qname, parsed.qtype)
    if isinstance(decision, Answer):
        return Send(answer_frame(parsed, decision.addresses, TTL), "answer", decision.reason)
    if isinstance(decision, NxDomain):
        return Send(nxdomain_frame(parsed), "nxdomain", decision.reason)
    return Upstream(parsed)
