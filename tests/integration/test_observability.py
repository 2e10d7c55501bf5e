"""Metrics and structured logs on the real lab: every controller and agent answers
`/metrics` on its own listener without a token (and nothing else there); a cross-host
ping between two new containers and one denied attempt move the counters by exactly
what they did; every metric the Grafana dashboard queries is in the live output; with
`--log-format json` the daemons' logs are one JSON object a line, the policy log's
denial among them with its fields.

The lab's listeners sit on lab addresses inside its namespaces (the controller's in the
control namespace, each agent's on its host's underlay address): the scrapes run there."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable

import pytest
from prometheus_client.parser import text_string_to_metric_families

from daolinet.lab import cluster, daemons
from daolinet.system import procs
from daolinet.testing import promql
from daolinet.testing.labtools import api, ping, wait_for

pytestmark = pytest.mark.integration
LabFactory = Callable[..., cluster.Lab]
FETCH = """
import sys, urllib.error, urllib.request
try:
    reply = urllib.request.urlopen(sys.argv[1], timeout=5)
    print(reply.status)
    sys.stdout.write(reply.read().decode())
except urllib.error.HTTPError as e:
    print(e.code)
"""


def get(where: tuple[str, str], path: str = "/metrics") -> tuple[int, str]:
    """GET the listener's `path` from inside its namespace, with no token: (status, body)."""
    netns, url = where
    url = url.removesuffix("/metrics") + path
    done = subprocess.run(procs.in_netns(netns, [sys.executable, "-c", FETCH, url]), capture_output=True,
                          text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    status, _, body = done.stdout.partition("\n")
    return int(status), body


def scrape(where: tuple[str, str]) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """(sample name, labels) -> value."""
    status, body = get(where)
    assert status == 200
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(body) for s in family.samples}


def value(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def names(where: tuple[str, str]) -> set[str]:
    """Every metric and sample name the listener exposes (families without samples too)."""
    return promql.exposed(get(where)[1])


def obs_lab(lab_factory: LabFactory) -> cluster.Lab:
    """Tenant t1: web (a on h1, b on h2) and db (d on h2): a may reach b, not d."""
    lab = lab_factory(hosts=2, log_format="json")
    api(lab, "POST", "/tenants", json={"name": "t1"})
    api(lab, "POST", "/networks", json={"name": "web", "subnet": "10.1.0.0/24", "tenant": "t1"})
    api(lab, "POST", "/networks", json={"name": "db", "subnet": "10.2.0.0/24", "tenant": "t1"})
    lab.add_container("a", host="h1", network="web", tenant="t1", ip="10.1.0.10")
    lab.add_container("b", host="h2", network="web", tenant="t1", ip="10.1.0.20")
    lab.add_container("d", host="h2", network="db", tenant="t1", ip="10.2.0.30")
    return lab


def test_metrics_listeners_need_no_token_serve_only_metrics_and_count_what_happened(
        lab_factory: LabFactory) -> None:
    lab = obs_lab(lab_factory)
    ctl, h1, h2 = lab.controller_metrics(), lab.agent_metrics("h1"), lab.agent_metrics("h2")
    for where in (ctl, h1, h2):
        assert get(where)[0] == 200  # no token
        for path in ("/", "/health", "/routes", "/tenants", "/containers", "/metrics/x"):
            assert get(where, path)[0] == 404, (where, path)
    dpid1 = f"{lab.host('h1').plan.index:#x}"
    before, h1_before = scrape(ctl), scrape(h1)

    assert ping(lab, "a", "10.1.0.20").returncode == 0  # a new route, across hosts
    assert ping(lab, "a", "10.2.0.30").returncode != 0  # denied: different networks, no group

    after = wait_for(lambda: (s := scrape(ctl)) and value(s, "daolinet_policy_log_records_total",
                                                          decision="deny") > 0 and s,
                     what="the denial in the controller's metrics")

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    # The ping's first packet plugs the route, once: its reply may come back to h1 before h1's
    # switch has applied the route's flows (they are sent at once, unconfirmed); that PacketIn
    # decides "plug" again but is only handed on after the flows (controller/hotplug.py).
    plugs = delta("daolinet_decisions_total", kind="plug")
    assert plugs in (1, 2) and delta("daolinet_live_routes") == 1
    assert delta("daolinet_route_setups_total") == delta("daolinet_route_setup_seconds_count") == 1
    assert delta("daolinet_packet_in_outcomes_total", outcome="route") == plugs
    assert delta("daolinet_packet_in_outcomes_total", outcome="deny") == 1
    assert delta("daolinet_decisions_total", kind="deny") == 1
    assert delta("daolinet_policy_log_records_total", decision="deny") == 1
    assert delta("daolinet_packet_ins_total", dpid=dpid1) == plugs + 1  # a's first packets (and the reply)
    assert delta("daolinet_flowmods_sent_total", dpid=dpid1) >= 2  # the route's flows and the drop
    assert value(after, "daolinet_switches_connected") == value(after, "daolinet_switches_mastered") == 2
    assert value(after, "daolinet_route_revocations_total") == 0
    assert sum(v for (name, _), v in after.items() if name == "daolinet_store_call_seconds_count") > 0

    for host, ports in (("h1", 1), ("h2", 2)):
        samples = scrape(lab.agent_metrics(host))
        assert value(samples, "daolinet_agent_ports") == ports
        assert value(samples, "daolinet_agent_attach_seconds_count") == ports
        assert value(samples, "daolinet_agent_flows", table="classify") > 0
        assert value(samples, "daolinet_agent_packet_ins_rate_limited_total", fate="dropped") == 0
    # The route's flows on h1; the uplink's counters move (OVS refreshes them every 5 s).
    sent = value(h1_before, "daolinet_agent_uplink_packets_total", direction="tx")
    samples = wait_for(lambda: (s := scrape(h1)) and value(s, "daolinet_agent_uplink_packets_total",
                                                           direction="tx") > sent and s,
                       timeout=15, what="h1's uplink statistics")
    flows = [sum(v for (name, _), v in s.items() if name == "daolinet_agent_flows")
             for s in (h1_before, samples)]
    assert flows[1] > flows[0]  # the route's flows on h1 (the drop flow may have expired by now)
    assert value(samples, "daolinet_agent_uplink_bytes_total", direction="tx") > 0
    # Heartbeats every host TTL / 3 s: counted on both sides.
    wait_for(lambda: value(scrape(h1), "daolinet_agent_heartbeats_sent_total") >= 1
             and value(scrape(ctl), "daolinet_heartbeats_received_total") >= 1,
             timeout=lab.host_ttl, what="a heartbeat counted")
    assert value(scrape(h2), "daolinet_agent_heartbeats_failed_total") == 0

    # Every metric the dashboard queries exists in the live output of a controller or an agent.
    live = names(ctl) | names(h1)
    queries = promql.queries()
    assert len(queries) >= 20
    for title, expr in queries:
        wanted = promql.metrics_of(expr)
        assert wanted, (title, expr)
        assert wanted <= live, f"panel {title!r} queries {sorted(wanted - live)}, not exposed"

    # --log-format json: one JSON object a line, in every daemon's log; the denial with its fields.
    logs = [daemons.ControllerPaths(lab.name).log,
            *(os.path.join(h.plan.rundir(), "agent.log") for h in lab.hosts)]
    records = []
    for path in logs:
        with open(path) as f:
            lines = [line for line in f.read().splitlines() if line.strip()]
        assert lines, path
        for line in lines:
            out = json.loads(line)
            assert {"time", "level", "logger", "message"} <= out.keys(), line
            records.append(out)
    denials = [r for r in records if r["logger"] == "daolinet.policy" and r.get("decision") == "deny"]
    assert len(denials) == 1
    assert denials[0]["tenant"] == "t1" and denials[0]["src"]["name"] == "a"
    assert denials[0]["dst"]["ip"] == "10.2.0.30" and denials[0]["proto"] == "icmp"
    assert denials[0]["message"] == "policy deny" and denials[0]["reason"]
