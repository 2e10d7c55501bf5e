"""What the controller sends for one decision (docs/architecture.md, "The hot-plug route").

decide/route.py says *what* to do with a PacketIn; this says it in OpenFlow: a
`Response` holds every message, addressed by dpid, in the order it must go out,
and how it must be delivered.  Pure (no socket, no clock, no session): the
controller's hot-plug handler only sends it, sequences its barriers, records
its route and counts, and tests/unit/test_respond.py runs it through the fake
flow table.

    Plug      cross-host from an egress miss (the common case): both switches'
              flows at once, then the packet handed straight to the destination
              container's port as the route would deliver it (decide/direct.py):
              no barrier.  For an L4 route (stateful on its client's host,
              flows/route.py) only when the packet is its client's: a PacketOut
              on the client's switch commits the connection there (no output);
              a server's packet must pass its client's conntrack, so it takes
              the long way.  Otherwise (same host, an ingress miss, a TTL about to
              run out, a frame that is not plain IPv4) the flows switch by switch,
              the packet's switch last, each earlier step confirmed by a barrier,
              and the packet re-injected through the table after: it never
              overtakes its route.
    Deny      a short-lived drop flow on the source switch.
    External / MappedPort   the source's flows to the outside, or to a published
              port mapping (flows/infra.py), on its own switch; the packet re-injected.
    EchoReply / TimeExceeded / RelayIcmp    the distributed router answers by PacketOut.
    Ignore    nothing.

IPv6 (meta.family 6) the same way: a Plug of family 6 compiles that family's
route (flows/route.py), its first packet delivered or re-injected as above; the
router's answers are ICMPv6 (decide/icmp6.py).
"""

from __future__ import annotations

import logging
from typing import NamedTuple, Protocol

from daolinet.decide import icmp, icmp6
from daolinet.decide.direct import delivered
from daolinet.decide.packet import PacketMeta
from daolinet.decide.route import (
    Decision,
    Deny,
    EchoReply,
    External,
    Ignore,
    MappedPort,
    Plug,
    RelayIcmp,
    TimeExceeded,
)
from daolinet.flows import wire
from daolinet.flows.external import flows_for_external
from daolinet.flows.infra import flows_for_portmap_client
from daolinet.flows.route import RouteEnds, drop_flow
from daolinet.flows.route_wire import route_bytes
from daolinet.model import View
from daolinet.model.family import V6, ip_of, pip_of
from daolinet.ofp.codec import Encoded
from daolinet.pipeline import GATEWAY_MAC, Table

log = logging.getLogger(__name__)
GATEWAY_MAC_BYTES = wire.mac_bytes(GATEWAY_MAC)

Step = tuple[int, tuple[Encoded, ...]]  # (dpid, its FlowMods)


class Timeouts(Protocol):
    """What respond reads of the controller's settings (controller/context.Config has it)."""

    @property
    def idle_timeout(self) -> int: ...

    @property
    def drop_timeout(self) -> int: ...


class RouteRecord(NamedTuple):  # tuples: one of each per PacketIn, built cheaply
    """The route to record once its flows are in (controller/routes.py's table)."""

    cookie: int
    names: tuple[str, str]
    scope: tuple[int, int] | None
    client: int | None  # the client end's endpoint id, for an L4-scoped route
    family: int = 4  # IPv4 or IPv6: a dual-stack pair's routes are one per family


class Response(NamedTuple):
    """Every message one decision sends.  `steps` go out in order; with `confirm`
    each step but the last is confirmed by a barrier before the next is sent (and a
    step whose switch cannot be reached ends the response), else all at once.
    `packet_outs` (dpid, PacketOut) follow the last step.  `route`, when set, is
    recorded once every step is sent; another PacketIn for the same route meanwhile
    only adds its packet-outs to those sent at the end."""

    steps: tuple[Step, ...] = ()
    packet_outs: tuple[tuple[int, Encoded], ...] = ()
    confirm: bool = False
    route: RouteRecord | None = None


NOTHING = Response()


def respond(decision: Decision, meta: PacketMeta, frame: bytes, view: View, config: Timeouts) -> Response:
    """The messages for `decision` about the PacketIn (`meta`, its `frame`) on switch meta.dpid."""
    if isinstance(decision, Plug):
        return _plug(decision, meta, frame, view, config.idle_timeout)
    if isinstance(decision, Deny):
        log.info("deny %s -> %s: %s", decision.src.name, decision.dst_ip, decision.reason)
        drop = wire.flow_add(drop_flow(decision.src, decision.dst_ip, config.drop_timeout, decision.scope))
        return Response(steps=((meta.dpid, (drop,)),))
    if isinstance(decision, EchoReply):
        return _echo_reply(decision, meta, frame)
    if isinstance(decision, TimeExceeded):
        return _time_exceeded(decision, meta, frame, view)
    if isinstance(decision, RelayIcmp):
        return _relay_icmp(decision, meta, frame, view)
    if isinstance(decision, External | MappedPort):
        return _to_the_outside(decision, meta, frame, view, config.idle_timeout)
    if isinstance(decision, Ignore):
        log.debug("ignore packet-in on %#x port %d: %s", meta.dpid, meta.in_port, decision.reason)
    return NOTHING


def _plug(plug: Plug, meta: PacketMeta, frame: bytes, view: View, idle_timeout: int) -> Response:
    ha, hb = view.host_of(plug.a), view.host_of(plug.b)
    na, nb = view.network_of(plug.a), view.network_of(plug.b)
    if ha is None or hb is None or na is None or nb is None:
        return NOTHING
    family = plug.family
    ends = RouteEnds(plug.a, plug.b, ha, hb, na.name == nb.name, plug.scope, plug.server_is_b, family)
    plan = route_bytes(ends, idle_timeout)
    client = (plug.a.id if plug.server_is_b else plug.b.id) if plug.scope else None
    route = RouteRecord(plan.cookie, (plug.a.name, plug.b.name), plug.scope, client, family)
    here = meta.dpid
    steps = plan.steps
    if steps[-1][0] != here:  # the packet's switch last
        steps = tuple(sorted(steps, key=lambda step: step[0] == here))
    dst = plug.b
    if (meta.table_id == Table.EGRESS and len(steps) == 2 and steps[1][0] == here and dst.ofport is not None
            and plug.server_is_b):
        straight = delivered(frame, GATEWAY_MAC_BYTES, wire.mac_bytes(dst.mac))
        if straight is not None:
            far = steps[0][0]
            outs: tuple[tuple[int, Encoded], ...] = ((far, wire.packet_out_to_port(dst.ofport, straight)),)
            if plug.scope is not None:
                commit = wire.packet_out_commit(meta.in_port, pip_of(plug.a, family), pip_of(plug.b, family),
                                                ends.ct_zone(), frame)
                outs = ((here, commit), *outs)
            return Response(steps, outs, False, route)
    return Response(steps, ((here, wire.packet_out_to_table(meta.in_port, frame)),), True, route)


def _to_the_outside(decision: External | MappedPort, meta: PacketMeta, frame: bytes, view: View,
                    idle_timeout: int) -> Response:
    """The source's flows to the outside or to a port mapping, on its own switch, then
    the packet back through that switch's table."""
    src = decision.src
    host = view.host_of(src)
    if host is None:
        return NOTHING
    if isinstance(decision, External):
        flows = flows_for_external(src, host, decision.dst_ip, idle_timeout, decision.scope)
    else:
        flows = flows_for_portmap_client(src, host, decision.pm, decision.host, idle_timeout, decision.family)
    return Response(steps=((meta.dpid, tuple([wire.flow_add(f) for f in flows])),),
                    packet_outs=((meta.dpid, wire.packet_out_to_table(meta.in_port, frame)),))


def _echo_reply(decision: EchoReply, meta: PacketMeta, frame: bytes) -> Response:
    reply = icmp6.echo_reply(frame, GATEWAY_MAC) if meta.family == V6 else icmp.echo_reply(frame, GATEWAY_MAC)
    if reply is None or decision.src.ofport is None:
        return NOTHING
    return Response(packet_outs=((meta.dpid, wire.packet_out_to_port(decision.src.ofport, reply)),))


def _time_exceeded(decision: TimeExceeded, meta: PacketMeta, frame: bytes, view: View) -> Response:
    to, family = decision.to, meta.family
    to_ip, dst_ip = ip_of(to, family), ip_of(decision.orig_dst, family)
    v6 = family == V6
    original = icmp6.original_packet if v6 else icmp.original_header
    embedded = original(frame, to_ip, dst_ip)
    host = view.host_of(to)
    if embedded is None or host is None or to.ofport is None or not decision.router_ip:
        return NOTHING
    build = icmp6.time_exceeded if v6 else icmp.time_exceeded
    answer = build(embedded, decision.router_ip, GATEWAY_MAC, to_ip, to.mac)
    return Response(packet_outs=((host.dpid, wire.packet_out_to_port(to.ofport, answer)),))


def _relay_icmp(decision: RelayIcmp, meta: PacketMeta, frame: bytes, view: View) -> Response:
    """The error reached the switch of the container it concerns: it goes out there."""
    to, family = decision.to, meta.family
    by_pip = view.by_pip

    def logical(addr: str) -> str:
        e = by_pip.get(addr)
        return ip_of(e, family) if e is not None and e.tenant == to.tenant else addr

    relay = icmp6.relay_error if family == V6 else icmp.relay_error
    relayed = relay(frame, ip_of(to, family), to.mac, GATEWAY_MAC, logical)
    if relayed is None or to.ofport is None:
        return NOTHING
    return Response(packet_outs=((meta.dpid, wire.packet_out_to_port(to.ofport, relayed)),))
