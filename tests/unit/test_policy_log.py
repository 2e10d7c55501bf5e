"""The policy log (controller/policy_log.py): the records built from real decisions of
decide/route.py, the per-source rate limit, the ring, followers, and the hot-plug shell
handing it its Deny decisions and revocations.  A deny rule named "lockdown" above a
group's allow: the record names the rule exactly as `trace` (its Verdict) does."""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import replace
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from daolinet.controller.context import Config, Context
from daolinet.controller.hotplug import HotPlug
from daolinet.controller.metrics import Metrics
from daolinet.controller.policy_log import PolicyLog, RateLimit, deny_record, matches, revoke_record
from daolinet.controller.routes import LiveRoute
from daolinet.decide.packet import NO_MATCH, PacketMeta
from daolinet.decide.policy import L4
from daolinet.decide.route import Deny, decide, verdict
from daolinet.model import Group, Rule, Tenant, View
from daolinet.model.objects import DEFAULT_TENANT
from daolinet.model.view import Change
from daolinet.pipeline import Table, route_cookie
from daolinet.testing.factories import make_endpoint, make_host, make_network

NOW = 1000.0
H1, H2 = make_host(1, underlay_gateway_mac="02:18:00:00:00:fe"), make_host(2)
NET1, NET2 = make_network(1), make_network(2)
WEB = make_endpoint(1, H1, NET1, 3, "web")
DB = make_endpoint(2, H2, NET2, 3, "db")
GROUP = Group(1, DEFAULT_TENANT, "app", ("network:net1", "network:net2"))
LOCKDOWN = Rule(7, DEFAULT_TENANT, "l4", "deny", "app", "app", "tcp", "5432", name="lockdown", priority=500)
TCP = Rule(8, DEFAULT_TENANT, "l4", "allow", "app", "app", "tcp", name="tcp")


def view_of(*objs: Any) -> View:
    view = View()
    view.load([Tenant(DEFAULT_TENANT), H1, H2, NET1, NET2, WEB, DB, GROUP, *objs], rev=1)
    return view


def tcp_from(src: Any, dst_ip: str, dport: int, sport: int = 40000) -> PacketMeta:
    return PacketMeta(dpid=1, in_port=src.ofport, table_id=Table.EGRESS, reason=NO_MATCH, eth_src=src.mac,
                      eth_type=0x0800, ip_src=src.ip, ip_dst=dst_ip, ip_proto=6, ttl=64, l4_dst=dport,
                      l4_src=sport)


# -- the records --------------------------------------------------------------------------------


def test_a_deny_rule_s_record_names_the_rule_as_trace_does() -> None:
    view = view_of(LOCKDOWN)
    meta = tcp_from(WEB, DB.ip, 5432)
    decision = decide(meta, view)
    assert isinstance(decision, Deny)
    record = deny_record(decision, meta, view, NOW)
    assert record == {
        "time": NOW, "tenant": "default", "decision": "deny",
        "src": {"name": "web", "ip": WEB.ip, "pip": WEB.pip},
        "dst": {"name": "db", "ip": DB.ip, "pip": DB.pip},
        "proto": "tcp", "sport": 40000, "dport": 5432, "rule": "rule lockdown", "reason": decision.reason}
    assert record["reason"].startswith("rule lockdown denies tcp/5432")
    traced = verdict(WEB, DB, view, L4(6, 40000, 5432))  # what `daolinet trace` reports
    assert traced is not None and traced.rule is not None
    assert traced.rule.label == record["rule"] and traced.reason == record["reason"]
    json.dumps(record)  # JSON as it is


def test_a_denial_without_a_rule_gives_the_reason_and_an_outside_address() -> None:
    view = view_of()
    meta = tcp_from(WEB, "198.19.0.9", 443)._replace(ip_proto=1, l4_dst=0, l4_src=0, icmp_type=8)
    decision = decide(meta, view)
    assert isinstance(decision, Deny)  # net1 is not external
    record = deny_record(decision, meta, view, NOW)
    assert record["dst"] == {"ip": "198.19.0.9"} and record["rule"] is None
    assert record["proto"] == "icmp" and record["icmp_type"] == 8 and "sport" not in record
    assert "not external" in record["reason"]


def test_a_revoked_route_names_the_rule_that_now_denies_it() -> None:
    view = view_of(LOCKDOWN)
    scoped = LiveRoute(route_cookie(1, 2).value, 1, 2, ("web", "db"), {1: 2, 2: 2}, NOW, scope=(6, 5432),
                       client=1)
    record = revoke_record(scoped, view, NOW)
    assert record is not None
    assert (record["decision"], record["src"]["name"], record["dst"]["name"]) == ("revoke", "web", "db")
    assert (record["proto"], record["sport"], record["dport"]) == ("tcp", None, 5432)
    assert record["rule"] == "rule lockdown" and record["reason"].startswith("rule lockdown denies")
    # opened by db: db is the source
    reverse = replace(scoped, client=2)
    record = revoke_record(reverse, view, NOW)
    assert record is not None and record["src"]["name"] == "db"


def test_a_port_agnostic_route_revoked_by_isolation_and_one_whose_end_is_gone() -> None:
    net = replace(NET1, isolated=True)
    b = make_endpoint(3, H2, net, 4, "b")
    view = view_of(net, b)
    route = LiveRoute(route_cookie(1, 3).value, 1, 3, ("web", "b"), {1: 2, 2: 2}, NOW)
    record = revoke_record(route, view, NOW)
    assert record is not None and record["proto"] == "any" and record["rule"] is None
    assert record["reason"] == "network net1 is isolated"
    gone = LiveRoute(route_cookie(1, 9).value, 1, 9, ("web", "x"), {1: 2}, NOW)
    assert revoke_record(gone, view, NOW) is None  # a deletion, not a policy decision


def test_matches_filters_by_tenant_container_and_time() -> None:
    record = {"time": NOW, "tenant": "t1", "src": {"name": "a"}, "dst": {"ip": "198.19.0.1"}}
    assert matches(record, None, None, None) and matches(record, "t1", "a", NOW - 1)
    assert not matches(record, "t2", None, None)
    assert not matches(record, None, "b", None)
    assert not matches(record, None, None, NOW)


# -- the rate limit -----------------------------------------------------------------------------


def test_a_burst_then_the_rate_and_the_suppressed_are_counted() -> None:
    limit = RateLimit(burst=3, rate=2.0)
    assert [limit.take("a", NOW) for _ in range(5)] == [0, 0, 0, None, None]
    assert limit.take("b", NOW) == 0  # per source
    assert limit.take("a", NOW + 0.25) is None  # half a token
    assert limit.take("a", NOW + 0.5) == 3  # one token: the 3 suppressed are told
    assert limit.take("a", NOW + 0.5) is None
    assert limit.take("a", NOW + 100) == 1  # refilled, never beyond the burst
    assert [limit.take("a", NOW + 100) for _ in range(3)] == [0, 0, None]


def test_the_limit_keeps_a_bounded_number_of_sources() -> None:
    limit = RateLimit(burst=1, rate=1.0, keys=10)
    for key in range(100):
        assert limit.take(key, NOW + key) == 0
    assert len(limit._buckets) <= 10


def test_the_log_rate_limits_per_source_and_says_how_many_were_suppressed(
        caplog: pytest.LogCaptureFixture) -> None:
    view = view_of(LOCKDOWN)
    plog = PolicyLog(limit=RateLimit(burst=2, rate=1.0))
    meta = tcp_from(WEB, DB.ip, 5432)
    decision = decide(meta, view)
    assert isinstance(decision, Deny)
    with caplog.at_level(logging.INFO, logger="daolinet.policy"):
        kept = [plog.denied(decision, meta, view, NOW) for _ in range(10)]
        assert sum(r is not None for r in kept) == 2
        later = plog.denied(decision, meta, view, NOW + 1.0)
    assert later is not None and later["suppressed"] == 8 and later["seq"] == 3
    assert [r["seq"] for r in plog.query()] == [1, 2, 3]
    lines = [r.getMessage() for r in caplog.records if r.name == "daolinet.policy"]
    assert [json.loads(line) for line in lines] == plog.query()  # one JSON line per record


def test_the_ring_is_bounded_and_a_query_gives_the_newest_oldest_first() -> None:
    plog = PolicyLog(size=5, limit=RateLimit(burst=100))
    for i in range(8):
        plog.add(1, lambda i=i: {"time": NOW + i, "tenant": "t1", "src": {"name": "a"}, "dst": {"ip": "x"}},
                 NOW)
    assert [r["time"] for r in plog.query()] == [NOW + i for i in range(3, 8)]
    assert [r["time"] for r in plog.query(limit=2)] == [NOW + 6, NOW + 7]
    assert [r["time"] for r in plog.query(since=NOW + 5)] == [NOW + 6, NOW + 7]
    assert plog.query(tenant="t2") == []


async def test_followers_get_each_new_record_and_none_when_the_log_closes() -> None:
    plog = PolicyLog(limit=RateLimit(burst=100))
    plog.add(1, lambda: {"time": NOW, "tenant": "t1"}, NOW)
    with plog.follow() as queue:
        plog.add(1, lambda: {"time": NOW + 1, "tenant": "t1"}, NOW)
        got = await asyncio.wait_for(queue.get(), 1)
        assert got is not None and got["time"] == NOW + 1  # only what came after
        plog.close()
        assert await asyncio.wait_for(queue.get(), 1) is None
    assert not plog._followers


# -- the hot-plug shell hands it its decisions --------------------------------------------------


def hotplug_of(view: View) -> HotPlug:
    ctx = Context(view=view, config=Config(), metrics=Metrics(CollectorRegistry()), clock=lambda: NOW)
    return HotPlug(ctx)


def test_hotplug_logs_a_denied_first_packet() -> None:
    hotplug = hotplug_of(view_of(LOCKDOWN))
    meta = tcp_from(WEB, DB.ip, 5432)
    hotplug.carry_out(decide(meta, hotplug.ctx.view), meta, b"", 0.0)
    allowed = tcp_from(WEB, DB.ip, 80)
    hotplug.carry_out(decide(allowed, hotplug.ctx.view), allowed, b"", 0.0)  # a Plug: not logged
    records = hotplug.ctx.policy_log.query()
    assert [(r["decision"], r["rule"], r["dport"]) for r in records] == [("deny", "rule lockdown", 5432)]


def test_revalidation_logs_each_revoked_route_once() -> None:
    hotplug = hotplug_of(view_of(TCP))  # scoped grants for both routes
    cookie = route_cookie(1, 2).value
    hotplug.ctx.routes.plugged(cookie, ("web", "db"), {1: 2, 2: 2}, NOW, (6, 5432), client=1)
    hotplug.ctx.routes.plugged(cookie, ("web", "db"), {1: 2, 2: 2}, NOW, (6, 80), client=1)
    hotplug.revalidate()
    assert hotplug.ctx.policy_log.query() == []  # still allowed: nothing revoked
    hotplug.ctx.view.apply(Change(2, LOCKDOWN))
    hotplug.revalidate()
    records = hotplug.ctx.policy_log.query()
    assert [(r["decision"], r["dport"], r["rule"]) for r in records] == [("revoke", 5432, "rule lockdown")]
    assert len(hotplug.ctx.routes) == 0  # the pair's routes are gone (tcp/80 with it)
