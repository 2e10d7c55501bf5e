"""IPv6 neighbour discovery by flows: the ARP table's counterpart (docs/pipeline.md,
tables 31 and 32), for hosts and containers with IPv6 addresses only (pure).

Every host answers its containers' Neighbor Solicitations itself, with the gateway
MAC, whatever address they ask for (the gateway's or a peer's on their subnet): as
with ARP, containers never learn each other's MACs, everything goes by the
distributed router.  The uplink's solicitations for this host's IPv6 PIP pool are
answered with the host's MAC (the PIPs live behind it); the rest of the uplink's
ND is the host's own.

    classify  uplink, icmp6 NS|NA|RA|redirect           -> ndp         (the host's ND)
              uplink, ipv6                               -> ingress
              LOCAL, ipv6                                -> uplink      (the host's own, its NAs too)
              in_port=P, eth_src=M, icmp6 NS             -> ndp         (P's, from any address)
              in_port=P, eth_src=M, ipv6, ipv6_src=A     -> guard       (P's, anti-spoofing)
              icmp6 RS|RA|NA|redirect                    drop          (no container sends these)
    ndp       uplink, NS for the PIP pool                 NA(host MAC, S|O) -> na
              uplink                                     -> LOCAL
              NS from ::                                 drop          (DAD: the lab turns it off)
              NS                                         NA(gateway MAC, R|S|O) -> na
    na        NA                                         nd_tll := eth_src, out IN_PORT
    guard     ipv6_dst=ff00::/8                          drop          (containers' multicast)
    ingress   ipv6_dst=the host's IPv6, or uplink multicast  -> LOCAL

Why two tables: the NA is the NS rewritten in place.  Open vSwitch lets a flow that
matches an NS (type 135) set the type (136), the R/S/O flags (`nd_reserved`) and the
option's type (`nd_options_type`: source -> target link-layer address), but not the
target link-layer address itself, an NA-only field; after the rewrite the packet
*is* an NA, so the next table may set it, from the MAC already put in eth_src.
(Setting the source link-layer address instead does nothing: OVS changes the
option's type first, then writes the address of the option's new type.)  OVS
updates the ICMPv6 checksum with every field it sets: tests/integration/test_ndp.py
has a kernel accept the NA.

R (router) is set on the gateway's answers, since every answer comes from the
distributed router; the uplink's proxy answers for PIPs are a host's (no R).
Override is set on both: nobody else on the segment owns those addresses.
Proactive: O(1) per host, 2 per container with an IPv6 address.
"""

from __future__ import annotations

from daolinet.flows.spec import (
    ETH_IPV6,
    IPPROTO_ICMPV6,
    Action,
    FlowSpec,
    Match,
    MatchValue,
    Move,
    Output,
    SetField,
)
from daolinet.model import Endpoint, Host
from daolinet.pipeline import GATEWAY_MAC, OFPP_IN_PORT, OFPP_LOCAL, Cookie, Kind, Priority, Table

BASE = Cookie(Kind.BASE).value  # part of the pipeline, as flows/proactive.py's

ROUTER_SOLICITATION = 133
ROUTER_ADVERTISEMENT = 134
NEIGHBOR_SOLICITATION = 135
NEIGHBOR_ADVERTISEMENT = 136
REDIRECT = 137
TARGET_LINK_LAYER_ADDRESS = 2  # the ND option an NA carries its MAC in
# nd_reserved: the first 32 bits after an NA's checksum
FLAG_ROUTER = 0x80000000
FLAG_SOLICITED = 0x40000000
FLAG_OVERRIDE = 0x20000000
GATEWAY_FLAGS = FLAG_ROUTER | FLAG_SOLICITED | FLAG_OVERRIDE
PROXY_FLAGS = FLAG_SOLICITED | FLAG_OVERRIDE
MULTICAST = "ff00::/8"
UNSPECIFIED = "::"


def icmp6(**fields: MatchValue) -> Match:
    """A match on ICMPv6 (its prerequisites pinned) and `fields`."""
    return Match.of(eth_type=ETH_IPV6, ip_proto=IPPROTO_ICMPV6, **fields)


def na_reply(mac: str, flags: int) -> tuple[Action, ...]:
    """Turn a Neighbor Solicitation around in place: "the target is at `mac`", to the
    asker; table NA then writes `mac` as the target link-layer address and sends it
    back out the port it came in by."""
    return (
        Move("eth_src", "eth_dst", 48),
        SetField("eth_src", mac),
        Move("ipv6_src", "ipv6_dst", 128),
        Move("ipv6_nd_target", "ipv6_src", 128),
        SetField("icmpv6_type", NEIGHBOR_ADVERTISEMENT),
        SetField("nd_reserved", flags),
        SetField("nd_options_type", TARGET_LINK_LAYER_ADDRESS),
    )


def na_finish() -> tuple[Action, ...]:
    return (Move("eth_src", "ipv6_nd_tll", 48), Output(OFPP_IN_PORT))


def has_ipv6(host: Host) -> bool:
    return bool(host.pip_pool6 or host.underlay_ip6)


def _flow(table: Table, prio: int, match: Match, actions: tuple[Action, ...] = (),
          goto: Table | None = None) -> FlowSpec:
    return FlowSpec(table, prio, match, actions, goto=goto, cookie=BASE)


def flows_for_host6(host: Host) -> list[FlowSpec]:
    """A host's IPv6 pipeline; none unless it has an IPv6 PIP pool or underlay address."""
    if not has_ipv6(host):
        return []
    up = host.uplink_ofport
    flows = [
        *[_flow(Table.CLASSIFY, Priority.SPECIFIC, icmp6(in_port=up, icmpv6_type=t), goto=Table.NDP)
          for t in (ROUTER_ADVERTISEMENT, NEIGHBOR_SOLICITATION, NEIGHBOR_ADVERTISEMENT, REDIRECT)],
        _flow(Table.CLASSIFY, Priority.HOST, Match.of(in_port=up, eth_type=ETH_IPV6), goto=Table.INGRESS),
        # The host's own ND (its NAs answering the underlay) leaves before the forged-ND drops.
        _flow(Table.CLASSIFY, Priority.SPECIFIC, Match.of(in_port=OFPP_LOCAL, eth_type=ETH_IPV6),
              (Output(up),)),
        *[_flow(Table.CLASSIFY, Priority.FORGED_ND, icmp6(icmpv6_type=t))
          for t in (ROUTER_SOLICITATION, ROUTER_ADVERTISEMENT, NEIGHBOR_ADVERTISEMENT, REDIRECT)],
        _flow(Table.GUARD, Priority.INFRA, Match.of(eth_type=ETH_IPV6, ipv6_dst=MULTICAST)),
        _flow(Table.INGRESS, Priority.HOST, Match.of(in_port=up, eth_type=ETH_IPV6, ipv6_dst=MULTICAST),
              (Output(OFPP_LOCAL),)),
        _flow(Table.NDP, Priority.HOST, Match.of(in_port=up), (Output(OFPP_LOCAL),)),
        _flow(Table.NDP, Priority.DAD, icmp6(icmpv6_type=NEIGHBOR_SOLICITATION, ipv6_src=UNSPECIFIED)),
        _flow(Table.NDP, Priority.LOW, icmp6(icmpv6_type=NEIGHBOR_SOLICITATION),
              na_reply(GATEWAY_MAC, GATEWAY_FLAGS), goto=Table.NA),
        _flow(Table.NDP, Priority.MISS, Match.of()),
        _flow(Table.NA, Priority.LOW, icmp6(icmpv6_type=NEIGHBOR_ADVERTISEMENT), na_finish()),
        _flow(Table.NA, Priority.MISS, Match.of()),
    ]
    if host.pip_pool6:
        pool = icmp6(in_port=up, icmpv6_type=NEIGHBOR_SOLICITATION, ipv6_nd_target=host.pip_pool6)
        flows.append(_flow(Table.NDP, Priority.SPECIFIC, pool, na_reply(host.underlay_mac, PROXY_FLAGS),
                           goto=Table.NA))
    if host.underlay_ip6:
        own = Match.of(eth_type=ETH_IPV6, ipv6_dst=host.underlay_ip6)
        flows.append(_flow(Table.INGRESS, Priority.HOST, own, (Output(OFPP_LOCAL),)))
    return flows


def flows_for_endpoint6(e: Endpoint) -> list[FlowSpec]:
    """Anti-spoofing for a container's IPv6 address (none without one): only (port, MAC,
    address) gets past classify, and its solicitations (from its link-local address too)
    go to table NDP."""
    if not e.ip6:
        return []
    assert e.ofport is not None, "an unplugged endpoint has no flows"
    return [
        _flow(Table.CLASSIFY, Priority.PORT, Match.of(in_port=e.ofport, eth_src=e.mac, eth_type=ETH_IPV6,
                                                      ipv6_src=e.ip6), goto=Table.GUARD),
        _flow(Table.CLASSIFY, Priority.PORT_NS,
              icmp6(in_port=e.ofport, eth_src=e.mac, icmpv6_type=NEIGHBOR_SOLICITATION), goto=Table.NDP),
    ]
