"""A container moving to another host under live traffic: make before break.

Pure: the moved endpoint as it was and as it is, its live routes' ends, in; the
FlowSpecs per switch, in the order they must go, out (the shell, controller/moves.py,
sends them, a barrier between the phases).

1. make: every port-agnostic live route of the container is compiled again for its new
   place, its new host's flows first, then its peers' (an egress flow with the same
   match is replaced in place: the peer's packets go to the new PIP from then on);
2. forward: on the old host, one flow sends what still arrives for the old PIP (packets
   in flight, a peer not re-pointed yet) on to the new host with the new PIP, until it
   idles out (the grace period);
3. break: the old routes' flows that the new ones did not replace (on the old host, a
   peer's ingress from the old PIP) are deleted, and then the old port's flows.

No packet of the stream meets a missing flow on the way: each step adds a path before
the step that removes the old one.  L4 (scoped) routes are not re-pointed: their
connections live in conntrack on the client's host under the old PIP; they are revoked
as before and re-plug on their next packet.

Each family's route is re-pointed on its own (RouteEnds.family: the repointed route's
IPv6 flows go to the new pip6); the old host forwards each family's old PIP (a grace
flow per family the container has).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from daolinet.flows.route import FIELDS, RouteEnds, flows_for_route, next_hop_mac
from daolinet.flows.spec import FlowSpec, Match, Output, SetField
from daolinet.model import Endpoint, Host
from daolinet.model.family import pip_of
from daolinet.pipeline import OFPP_IN_PORT, Cookie, Kind, Priority, Table

Steps = tuple[tuple[int, tuple[FlowSpec, ...]], ...]  # (dpid, flows), in order
FlowKey = tuple[int, Table, int, Match]  # (dpid, table, priority, match): what a strict delete names


@dataclass(frozen=True)
class Repoint:
    """One live route compiled again for the moved end: what to add, in order, and what
    of the old route is left to delete once the new one is in."""

    cookie: int
    make: Steps
    stale: tuple[tuple[int, FlowSpec], ...]
    family: int = 4

    def flows_per_switch(self) -> dict[int, int]:
        """The route's flows per switch while the stale ones are still there (each
        deletion's FlowRemoved counts one down: controller/routes.py)."""
        counts: dict[int, int] = {}
        for dpid, flows in self.make:
            counts[dpid] = counts.get(dpid, 0) + len(flows)
        for dpid, _ in self.stale:
            counts[dpid] = counts.get(dpid, 0) + 1
        return counts


def moved_ends(ends: RouteEnds, old: Endpoint, new: Endpoint, new_host: Host) -> RouteEnds:
    """A route's ends with `old` (one of them) in its new place, the moved end as b: its
    new host's flows come first in the route's steps."""
    if ends.a.id == old.id:
        ends = RouteEnds(ends.b, ends.a, ends.hb, ends.ha, ends.same_network, ends.scope,
                         not ends.server_is_b, ends.family)
    return replace(ends, b=new, hb=new_host)


def repoint(before: RouteEnds, old: Endpoint, new: Endpoint, new_host: Host, idle_timeout: int) -> Repoint:
    """The route `before` (one of whose ends is `old`) for `new`: the new route's steps,
    and the old flows no new flow replaces (same switch, table, priority and match)."""
    after = moved_ends(before, old, new, new_host)
    plan = flows_for_route(after, idle_timeout)
    made = {_key(dpid, f) for dpid, flows in plan.steps for f in flows}
    was = flows_for_route(before, idle_timeout)
    stale = tuple((dpid, f) for dpid, flows in was.steps for f in flows if _key(dpid, f) not in made)
    return Repoint(plan.cookie, plan.steps, stale, before.family)


def _key(dpid: int, f: FlowSpec) -> FlowKey:
    return (dpid, f.table, f.priority, f.match)


def grace_forward(old: Endpoint, new: Endpoint, old_host: Host, new_host: Host,
                  idle_timeout: int, hard_timeout: int, family: int = 4) -> FlowSpec:
    """On the old host: what arrives for the old PIP (of `family`) leaves again, to the new
    PIP, out the uplink it came in on.  Above every route (a stale route to the old port
    loses), idle-timed (the grace period), and hard-timed so the old PIP is free again at
    the latest then."""
    old_pip, new_pip = pip_of(old, family), pip_of(new, family)
    assert old_pip and new_pip
    eth_type, _, dst_field = FIELDS[family]
    match = Match.of(in_port=old_host.uplink_ofport, eth_type=eth_type, **{dst_field: old_pip})
    actions = (SetField(dst_field, new_pip), SetField("eth_src", old_host.underlay_mac),
               SetField("eth_dst", next_hop_mac(old_host, new_host)), Output(OFPP_IN_PORT))
    return FlowSpec(Table.INGRESS, Priority.SPECIFIC, match, actions, cookie=move_cookie(old.id),
                    idle_timeout=idle_timeout, hard_timeout=hard_timeout)


def move_cookie(eid: int) -> int:
    return Cookie(Kind.MOVE, 0, eid).value
