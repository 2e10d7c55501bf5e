"""`trace SRC DST`: the decision with its reason, the flows a route would have
on each host, and what is live now (the controller's view), then what each of
the two hosts' bridges does with SRC's first packet: the controller asks their
agents (agent/trace.py) for `ofproto/trace` and the route's flows, in parallel,
over mutual TLS with its own certificate.  A host whose agent does not answer in
time is reported as such: the rest of the answer stands.

IPv6 (`family` 6, `daolinet trace --ipv6`): the pair's IPv6 route, probed with the
ip6/pip6 addresses (an ICMPv6 echo request for "any" and icmp).  Decided: asked for,
never automatic, so a dual-stack pair's trace stays IPv4 unless told (IPv4 is what
every container has); refused when either end has no IPv6 address."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from daolinet.controller.agent_trace import AgentCaller, fan_out
from daolinet.decide.policy import L4, PROTOCOLS
from daolinet.decide.route import verdict
from daolinet.errors import InvalidInput
from daolinet.flows.route import RouteEnds, flows_for_route
from daolinet.model import Endpoint
from daolinet.model.family import V4, V6, ip_of, pip_of
from daolinet.pipeline import GATEWAY_MAC, route_cookie

if TYPE_CHECKING:
    from daolinet.controller.controller import Controller


def l4_for(protocol: str | None, port: int | None) -> L4 | None:
    if protocol is None:
        if port is not None:
            raise InvalidInput("give --proto with --port")
        return None
    proto = PROTOCOLS.get(protocol)
    if proto is None:
        raise InvalidInput(f"unknown protocol {protocol!r}: use tcp, udp or icmp")
    if proto != PROTOCOLS["icmp"] and not port:
        raise InvalidInput(f"{protocol} needs a port")
    return L4(proto, 40000 if port else 0, port or 0)


def check_family(src: Endpoint, dst: Endpoint, family: int) -> None:
    if family == V6:
        missing = next((e for e in (src, dst) if not e.ip6), None)
        if missing is not None:
            raise InvalidInput(f"container {missing.name} has no IPv6 address: trace it without --ipv6")


def trace(ctrl: Controller, src: Endpoint, dst: Endpoint, protocol: str | None,
          port: int | None, family: int = V4) -> dict[str, Any]:
    view = ctrl.view
    l4 = l4_for(protocol, port)
    check_family(src, dst, family)
    decided = verdict(src, dst, view, l4)
    out: dict[str, Any] = {
        "src": src.name, "dst": dst.name, "allowed": bool(decided and decided.allowed),
        "reason": decided.reason if decided else "a network is gone",
        # the deciding rule's label, as the policy log names it (controller/policy_log.py)
        "rule": decided.rule.label if decided and decided.rule else None,
        "scope": list(decided.scope) if decided and decided.scope else None,
        "flows": {}, "live": [], "probe": {},
    }
    if family == V6:
        out["family"] = V6  # (left out for IPv4, as in a route's JSON)
    src_host, dst_host = view.host_of(src), view.host_of(dst)
    src_net, dst_net = view.network_of(src), view.network_of(dst)
    if (decided and decided.allowed and src_host and dst_host and src_net and dst_net
            and src.ofport and dst.ofport):
        ends = RouteEnds(src, dst, src_host, dst_host, src_net.name == dst_net.name, decided.scope,
                         not decided.reply, family)
        plan = flows_for_route(ends, ctrl.ctx.config.idle_timeout)
        names = {host.dpid: host.name for host in view.hosts.values()}
        out["flows"] = {names[dpid]: [flow.describe() for flow in flows] for dpid, flows in plan.steps}
        out["probe"] = {src_host.name: _probe(src, dst, l4, family)}
    cookie = route_cookie(src.id, dst.id).value
    out["live"] = [route.to_json() for route in ctrl.ctx.routes.all() if route.cookie == cookie]
    return out


async def trace_on_hosts(ctrl: Controller, src: Endpoint, dst: Endpoint, protocol: str | None,
                         port: int | None, family: int = V4) -> dict[str, Any]:
    """`trace`, plus each host's own verdict from its agent (`hosts`: {name: answer})."""
    out = trace(ctrl, src, dst, protocol, port, family)
    view = ctrl.view
    hosts = {h.name: h for h in (view.host_of(src), view.host_of(dst)) if h is not None}
    found = probes(src, dst, view, l4_for(protocol, port), family)
    targets = [(hosts[name], probe) for name, probe in found.items()]
    caller = AgentCaller(ctrl.ctx.agent_tls)
    try:
        out["hosts"] = await fan_out(targets, route_cookie(src.id, dst.id).value, caller)
    finally:
        await caller.close()
    return out


def _probe(src: Endpoint, dst: Endpoint, l4: L4 | None, family: int = V4) -> str:
    """An ovs-appctl ofproto/trace flow for src's first packet on its host."""
    v6 = family == V6
    ips = f"ipv6_src={src.ip6},ipv6_dst={dst.ip6}" if v6 else f"nw_src={src.ip},nw_dst={dst.ip}"
    base = f"in_port={src.ofport},dl_src={src.mac},dl_dst={GATEWAY_MAC},{ips},nw_ttl=64"
    if l4 is None or l4.proto == PROTOCOLS["icmp"]:
        return f"icmp6,{base},icmpv6_type=128" if v6 else "icmp," + base
    name = ("tcp" if l4.proto == PROTOCOLS["tcp"] else "udp") + ("6" if v6 else "")
    return f"{name},{base},tp_src={l4.sport},tp_dst={l4.dport}"


def probes(src: Endpoint, dst: Endpoint, view: Any, l4: L4 | None,
           family: int = V4) -> dict[str, dict[str, Any]]:
    """Per host, SRC's first packet as it arrives on that host's bridge (agent/trace.py's
    ProbeIn): from SRC's port on its host; on DST's host (another one), from the uplink
    with PIPs, as the source host's route flow sends it (flows/route.py).  IPv6 with the
    ip6 and pip6 addresses (ProbeIn reads the family from them)."""
    src_host, dst_host = view.host_of(src), view.host_of(dst)
    if src_host is None or dst_host is None or not src.ofport:
        return {}
    proto = "icmp" if l4 is None or l4.proto == PROTOCOLS["icmp"] else (
        "tcp" if l4.proto == PROTOCOLS["tcp"] else "udp")
    ports = {} if proto == "icmp" or l4 is None else {"tp_src": l4.sport, "tp_dst": l4.dport}
    out = {src_host.name: {"in_port": src.ofport, "dl_src": src.mac, "dl_dst": GATEWAY_MAC,
                           "nw_src": ip_of(src, family), "nw_dst": ip_of(dst, family), "nw_ttl": 64,
                           "protocol": proto, **ports}}
    if dst_host.name != src_host.name:
        via = src_host.underlay_mac if src_host.same_segment(dst_host) else (
            src_host.underlay_gateway_mac or src_host.underlay_mac)
        out[dst_host.name] = {"in_port": dst_host.uplink_ofport, "dl_src": via,
                              "dl_dst": dst_host.underlay_mac, "nw_src": pip_of(src, family),
                              "nw_dst": pip_of(dst, family), "nw_ttl": 63, "protocol": proto, **ports}
    return out
