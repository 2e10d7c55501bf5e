"""Rules with actions, priorities and addresses (docs/policy.md), decided by the one Policy."""

from __future__ import annotations

from daolinet.decide.policy import L4, Policy
from daolinet.model import Endpoint, Group, Network, Rule

NET = Network(1, "n1", "t", "10.0.0.0/24", "10.0.0.1")
OTHER = Network(2, "n2", "t", "10.0.1.0/24", "10.0.1.1")
FRONT = Endpoint(1, "front", "t", "n1", "10.0.0.2", "02:00:00:00:00:02", "h1", "198.18.1.2")
BACK = Endpoint(2, "back", "t", "n1", "10.0.0.3", "02:00:00:00:00:03", "h2", "198.18.2.3")
GROUPS = [Group(1, "t", "fe", ("container:front",)), Group(2, "t", "be", ("container:back",))]
TCP80 = L4(6, 40000, 80)


def rule(rid: int, action: str, a: str = "fe", b: str = "be", proto: str = "tcp", ports: str = "80",
         **kw: object) -> Rule:
    return Rule(rid, "t", "l4", action, a, b, proto, ports, **kw)  # type: ignore[arg-type]


def test_a_higher_priority_deny_beats_an_allow_and_is_named() -> None:
    policy = Policy(GROUPS, [rule(1, "allow", name="web"), rule(2, "deny", ports="", proto="",
                                                                  name="lockdown", priority=500)])
    v = policy.decide(FRONT, BACK, NET, NET, TCP80)
    assert not v.allowed and v.rule is not None and v.rule.name == "lockdown"
    assert v.reason == "rule lockdown denies any from fe to be"


def test_at_equal_priority_deny_wins_and_lower_priority_deny_loses() -> None:
    tie = Policy(GROUPS, [rule(1, "allow"), rule(2, "deny")])
    assert not tie.decide(FRONT, BACK, NET, NET, TCP80).allowed
    v = Policy(GROUPS, [rule(1, "allow", priority=200), rule(2, "deny")]).decide(FRONT, BACK, NET, NET, TCP80)
    assert v.allowed and v.scope == (6, 80) and not v.reply


def test_the_server_may_answer_from_its_port_but_it_is_a_reply() -> None:
    v = Policy(GROUPS, [rule(1, "allow")]).decide(BACK, FRONT, NET, NET, L4(6, 80, 5555))
    assert v.allowed and v.reply and v.scope == (6, 80)


def test_a_deny_covering_one_port_leaves_the_rest_to_the_default_but_scoped() -> None:
    policy = Policy(GROUPS, [rule(1, "deny", ports="22")])
    assert not policy.decide(FRONT, BACK, NET, NET, L4(6, 1000, 22)).allowed
    v = policy.decide(FRONT, BACK, NET, NET, L4(6, 1000, 443))
    assert v.allowed and v.scope == (6, 443)  # stateful, so port 22 stays closed
    assert not policy.decide(FRONT, BACK, NET, NET, None).allowed  # never a port-agnostic route
    # different networks with no group: the default still denies
    assert not policy.decide(FRONT, BACK.__class__(**{**BACK.to_json(), "network": "n2"}), NET, OTHER,
                             L4(6, 1000, 443)).allowed


def test_icmp_by_type() -> None:
    policy = Policy(GROUPS, [rule(1, "allow", proto="icmp", ports="", icmp_type=8)])
    assert policy.decide(FRONT, BACK, NET, NET, L4(1, 0, 0, 8)).scope == (1, 8)
    assert not policy.decide(FRONT, BACK, NET, NET, L4(1, 0, 0, 13)).allowed
    reply = policy.decide(BACK, FRONT, NET, NET, L4(1, 0, 0, 0))
    assert reply.allowed and reply.reply


def test_egress_to_addresses_is_narrowed_by_cidr_rules() -> None:
    ext = [Group(1, "t", "fe", ("container:front",))]
    assert Policy(ext, []).decide_outside(FRONT, "198.19.255.1", TCP80).allowed
    policy = Policy(ext, [rule(1, "allow", b="cidr:198.19.255.1/32")])
    v = policy.decide_outside(FRONT, "198.19.255.1", TCP80)
    assert v.allowed and v.scope == (6, 80)
    assert not policy.decide_outside(FRONT, "198.19.255.1", L4(6, 1000, 443)).allowed
    assert not policy.decide_outside(FRONT, "198.19.255.2", TCP80).allowed
    deny = Policy(ext, [rule(1, "deny", b="cidr:198.19.0.0/16", proto="", ports="")])
    assert not deny.decide_outside(FRONT, "198.19.3.3", TCP80).allowed
    assert deny.decide_outside(FRONT, "203.0.113.9", TCP80).allowed


def test_who_may_use_a_port_mapping() -> None:
    policy = Policy(GROUPS, [rule(1, "allow", a="cidr:198.19.0.0/16", b="be"),
                             rule(2, "deny", a="cidr:198.19.7.0/24", b="be", priority=200),
                             rule(3, "allow", a="cidr:10.9.0.0/16", b="be", ports="443")])
    ordered, others = policy.sources_of(BACK, 6, 80)
    assert [(net, r.action) for net, r in ordered] == [("198.19.7.0/24", "deny"), ("198.19.0.0/16", "allow")]
    assert not others
    assert policy.sources_of(BACK, 17, 80) == ([], True)


def test_address_blocks_are_of_one_family() -> None:
    ext = [Group(1, "t", "fe", ("container:front",))]
    deny4 = Policy(ext, [rule(1, "deny", b="cidr:0.0.0.0/0", proto="", ports="")])
    assert not deny4.decide_outside(FRONT, "198.19.3.3", TCP80).allowed
    # ::c613:303 is 198.19.3.3's bits in IPv6 form: an IPv4 block never holds it
    assert deny4.decide_outside(FRONT, "::c613:303", TCP80).allowed
    assert deny4.decide_outside(FRONT, "2001:db8::1", TCP80).allowed
    deny6 = Policy(ext, [rule(1, "deny", b="cidr:::/0", proto="", ports="")])
    assert not deny6.decide_outside(FRONT, "2001:db8::1", TCP80).allowed
    assert deny6.decide_outside(FRONT, "198.19.3.3", TCP80).allowed


def test_an_allow_block_of_either_family_limits_both() -> None:
    ext = [Group(1, "t", "fe", ("container:front",))]
    only6 = Policy(ext, [rule(1, "allow", b="cidr:2001:db8::/32")])
    v = only6.decide_outside(FRONT, "2001:db8::7", TCP80)
    assert v.allowed and v.scope == (6, 80) and v.rule is not None and v.rule.id == 1
    assert not only6.decide_outside(FRONT, "2001:db9::7", TCP80).allowed
    refused = only6.decide_outside(FRONT, "198.19.255.1", TCP80)  # IPv4: limited too (fails closed)
    assert not refused.allowed and "tcp/80 to 2001:db8::/32" in refused.reason
    only4 = Policy(ext, [rule(1, "allow", b="cidr:198.19.255.1/32")])
    assert not only4.decide_outside(FRONT, "2001:db8::7", TCP80).allowed


def test_who_may_use_a_port_mapping_per_family() -> None:
    policy = Policy(GROUPS, [rule(1, "allow", a="cidr:198.19.0.0/16", b="be"),
                             rule(2, "deny", a="cidr:2001:db8:7::/48", b="be", priority=200),
                             rule(3, "allow", a="cidr:2001:db8::/32", b="be")])
    ordered4, others4 = policy.sources_of(BACK, 6, 80)
    ordered6, others6 = policy.sources_of(BACK, 6, 80, family=6)
    assert [(net, r.action) for net, r in ordered4] == [("198.19.0.0/16", "allow")]
    assert [(net, r.action) for net, r in ordered6] == [("2001:db8:7::/48", "deny"),
                                                         ("2001:db8::/32", "allow")]
    assert not others4 and not others6
    v4_only = Policy(GROUPS, [rule(1, "allow", a="cidr:198.19.0.0/16", b="be")])
    assert v4_only.sources_of(BACK, 6, 80, family=6) == ([], False)  # no IPv6 client may
