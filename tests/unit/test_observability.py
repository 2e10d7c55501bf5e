"""Metrics and structured logs, without a lab: the JSON log formatter (one object a
line, the policy log's fields at the top level), the token-less metrics listener
(/metrics only), the controller's plain-int counters as published at scrape time, the
timed store, the agent's table reading, and the settings that turn it all on."""

from __future__ import annotations

import json
import logging
import sys
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry, generate_latest

from daolinet import logformat, metrics_server
from daolinet.agent.metrics import AgentMetrics, Reading, rate_limited, tables_of
from daolinet.controller.context import Config, Context
from daolinet.controller.metrics import FastHistogram, Metrics
from daolinet.controller.policy_log import PolicyLog, RateLimit
from daolinet.daemon_settings import AgentSettings, ControllerSettings, load
from daolinet.errors import BadConfig, InvalidInput
from daolinet.model import View
from daolinet.testing import promql

NOW = 1_765_000_000.0


def record(msg: str, *args: Any, **extra: Any) -> logging.LogRecord:
    rec = logging.LogRecord("daolinet.controller", logging.WARNING, __file__, 1, msg, args, None)
    rec.created = NOW
    for key, value in extra.items():
        setattr(rec, key, value)
    return rec


def test_a_json_line_has_time_level_logger_and_message() -> None:
    line = logformat.JsonFormatter().format(record("switch %s: %s\nclosing", "0x1", "gone"))
    assert "\n" not in line
    assert json.loads(line) == {"time": "2025-12-06T05:46:40.000Z", "level": "warning",
                                "logger": "daolinet.controller", "message": "switch 0x1: gone\nclosing"}


def test_a_policy_record_s_fields_are_top_level_and_its_event_is_the_message() -> None:
    fields = {"seq": 3, "tenant": "t1", "decision": "deny", "src": {"name": "web", "ip": "10.1.0.2"},
              "dst": {"ip": "10.1.0.3"}, "proto": "tcp", "sport": 40000, "dport": 5432,
              "rule": "rule lockdown", "reason": "rule lockdown denies tcp/5432", "level": "spoofed"}
    out = json.loads(logformat.JsonFormatter().format(record("%s", "{...}", fields=fields,
                                                             event="policy deny")))
    assert out["message"] == "policy deny" and out["level"] == "warning"  # fields never override the core
    assert {k: out[k] for k in ("tenant", "src", "dst", "rule", "dport")} == {
        "tenant": "t1", "src": {"name": "web", "ip": "10.1.0.2"}, "dst": {"ip": "10.1.0.3"},
        "rule": "rule lockdown", "dport": 5432}


def test_an_exception_stays_on_the_line() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        rec = record("failed")
        rec.exc_info = sys.exc_info()
    out = json.loads(logformat.JsonFormatter().format(rec))
    assert out["message"] == "failed" and "ValueError: boom" in out["exception"]


def test_the_policy_log_writes_json_lines_with_its_fields(capsys: pytest.CaptureFixture[str]) -> None:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    logformat.setup("info", "json")
    try:
        plog = PolicyLog(limit=RateLimit(burst=1, rate=0.001))
        for _ in range(3):
            plog.add(7, lambda: {"time": NOW, "tenant": "t1", "decision": "deny", "src": {"name": "a"},
                                 "dst": {"ip": "10.0.0.9"}, "rule": None, "reason": "isolated"}, NOW)
    finally:
        logging.captureWarnings(False)
        root.handlers[:] = handlers
        root.setLevel(level)
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if "daolinet.policy" in line]
    assert len(lines) == 1 and lines[0]["logger"] == "daolinet.policy"
    assert lines[0]["tenant"] == "t1" and lines[0]["reason"] == "isolated" and lines[0]["seq"] == 1
    assert plog.counts == {"deny": 1} and plog.suppressed == 2


async def test_the_metrics_listener_serves_only_metrics_and_refreshes_first() -> None:
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    refreshed = []

    async def refresh() -> None:
        refreshed.append(True)

    app = metrics_server.app(registry, refresh)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://m") as web:
        got = await web.get("/metrics")
        assert got.status_code == 200 and "daolinet_route_setups_total 0.0" in got.text
        assert refreshed == [True]
        for path in ("/", "/metrics/", "/health", "/routes", "/docs"):
            assert (await web.get(path)).status_code == 404, path
    assert metrics.registry is registry


def test_a_bad_metrics_address_is_one_line() -> None:
    with pytest.raises(InvalidInput, match=r"invalid --metrics-listen 'nowhere': use HOST:PORT"):
        metrics_server.MetricsServer("nowhere", CollectorRegistry())


def test_counters_are_plain_ints_published_at_scrape_time() -> None:
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    ctx = Context(view=View(), config=Config(), metrics=metrics)
    metrics.watch(ctx)
    for kind in ("plug", "plug", "deny", "echoreply", "ignore", "external"):
        metrics.bump(metrics.decisions, kind)
    metrics.bump(metrics.packet_ins, 0x2a, 6)
    metrics.bump(metrics.flowmods, 0x2a, 4)
    metrics.route_setup.observe(0.0007)
    metrics.route_setup.observe(3.0)
    metrics.revocations += 1
    ctx.policy_log.counts["deny"] = 2

    def value(name: str, **labels: str) -> float | None:
        return registry.get_sample_value(name, labels)

    assert value("daolinet_packet_ins_total", dpid="0x2a") == 6
    outcomes = ("route", "deny", "icmp", "ignored")
    assert [value("daolinet_packet_in_outcomes_total", outcome=o) for o in outcomes] == [3, 1, 1, 1]
    assert value("daolinet_flowmods_sent_total", dpid="0x2a") == 4
    assert value("daolinet_route_setups_total") == 2
    assert value("daolinet_route_setup_seconds_bucket", le="0.001") == 1
    assert value("daolinet_route_setup_seconds_bucket", le="+Inf") == 2
    assert value("daolinet_route_setup_seconds_sum") == pytest.approx(3.0007)
    assert value("daolinet_route_revocations_total") == 1
    assert value("daolinet_live_routes") == 0 and value("daolinet_switches_mastered") == 0
    assert value("daolinet_policy_log_records_total", decision="deny") == 2


def test_the_histogram_counts_a_value_on_a_bound_in_that_bucket() -> None:
    h = FastHistogram((0.1, 1.0))
    for v in (0.1, 0.5, 1.0, 7.0):
        h.observe(v)
    assert h.buckets() == [("0.1", 1.0), ("1.0", 3.0), ("+Inf", 4.0)]


async def test_the_timed_store_observes_each_call_and_counts_heartbeats() -> None:
    class Store:
        rev = 5

        async def heartbeat(self, name: str, now: float) -> str:
            return name

        def subscribe(self, callback: Any) -> None:
            pass

    registry = CollectorRegistry()
    metrics = Metrics(registry)
    store = metrics.timed_store(Store())
    assert await store.heartbeat("h1", NOW) == "h1" and store.rev == 5
    store.subscribe(None)
    assert registry.get_sample_value("daolinet_heartbeats_received_total") == 1
    assert registry.get_sample_value("daolinet_store_call_seconds_count", {"call": "heartbeat"}) == 1


def test_tables_are_named_and_only_used_ones_kept() -> None:
    def stats(table_id: int, active: int) -> Any:
        return SimpleNamespace(table_id=table_id, active_count=active, lookup_count=10, matched_count=4)

    got = tables_of([stats(0, 12), stats(20, 0), stats(30, 3), stats(77, 0), stats(99, 1)])
    assert got == {"classify": (12, 10, 4), "ingress": (0, 10, 4), "arp": (3, 10, 4), "99": (1, 10, 4)}


def test_both_daemons_take_log_format_and_metrics_listen(monkeypatch: pytest.MonkeyPatch) -> None:
    c = load(ControllerSettings, {"log_format": "JSON", "metrics_listen": "127.0.0.1:9650"}, "")
    assert (c.log_format, c.metrics_listen) == ("json", "127.0.0.1:9650")
    monkeypatch.setenv("DAOLINET_LOG_FORMAT", "json")
    a = load(AgentSettings, {"controller": ["tcp:1.2.3.4:6653"], "pip_pool": "198.18.1.0/26"}, "")
    assert a.log_format == "json" and a.metrics_listen is None
    with pytest.raises(BadConfig, match=r"^--log-format: expected one of text, json, got \"yaml\"$"):
        load(ControllerSettings, {"log_format": "yaml"}, "")


def test_every_dashboard_query_parses_and_reads_metrics_the_daemons_define() -> None:
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    metrics.watch(Context(view=View(), config=Config(), metrics=metrics))
    service = SimpleNamespace(heartbeats={"sent": 0, "failed": 0}, attached=None)
    agent = AgentMetrics(service, None, "", "eth0")  # type: ignore[arg-type]
    agent.reading = Reading(1, {"classify": (3, 1, 1)}, {"rx_packets": 1, "tx_packets": 2, "rx_bytes": 3,
                                                          "tx_bytes": 4, "rx_dropped": 0, "tx_dropped": 0,
                                                          "rx_errors": 0, "tx_errors": 0})
    defined = promql.exposed(generate_latest(registry).decode() + generate_latest(agent.registry).decode())
    found = promql.queries()
    assert len(found) >= 20
    for title, expr in found:
        wanted = promql.metrics_of(expr)
        assert wanted and all(name.startswith("daolinet_") for name in wanted), (title, expr)
        assert wanted <= defined, f"panel {title!r} queries {sorted(wanted - defined)}"


def test_promql_parsing_tells_metrics_from_functions_labels_and_keywords() -> None:
    expr = ('histogram_quantile(0.99, sum by (le, call) (rate(daolinet_store_call_seconds_bucket'
            '{job="x", call=~"a|b"}[5m]))) / on (instance) group_left 2 * daolinet_live_routes offset 5m')
    assert promql.metrics_of(expr) == {"daolinet_store_call_seconds_bucket", "daolinet_live_routes"}
    with pytest.raises(ValueError, match="unbalanced"):
        promql.metrics_of("sum(rate(daolinet_x[1m])))")


def test_ovs_rate_limit_counts_are_summed_over_controllers_and_reasons() -> None:
    statuses = [{"packet-in-miss-queued": "7", "packet-in-miss-dropped": "2", "packet-in-action-dropped": "1",
                 "packet-in-miss-backlog": "5", "sec_since_connect": "9", "state": "ACTIVE"},
                {"packet-in-miss-queued": "3"}, {}]
    assert rate_limited(statuses) == {"queued": 10, "dropped": 3}
