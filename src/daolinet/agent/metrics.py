"""The agent's Prometheus metrics (docs/observability.md lists them), read fresh at
each scrape of its metrics listener (`--metrics-listen`): the ports it attached and
the uplink's counters from OVSDB's Interface table (through ovsdbapp, as the rest of
the agent talks to OVS), flows per table from an OpenFlow table-stats request on the
bridge's management socket (agent/bootstrap.py's BridgeLink, as `ovs-ofctl
dump-tables` does; no shelling out), and what the agent counted itself: heartbeats
sent and failed, and each attach's duration."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from daolinet.agent.bootstrap import BridgeLink
from daolinet.agent.service import AgentService
from daolinet.ofp.codec import DP, parser
from daolinet.pipeline import Table
from daolinet.system.ovsdb import Ovsdb

ATTACH_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
UPLINK_KEYS = {"packets": ("rx_packets", "tx_packets"), "bytes": ("rx_bytes", "tx_bytes"),
               "dropped": ("rx_dropped", "tx_dropped"), "errors": ("rx_errors", "tx_errors")}


def table_name(table_id: int) -> str:
    try:
        return Table(table_id).name.lower()
    except ValueError:
        return str(table_id)


@dataclass
class Reading:
    """What the last scrape read from OVS."""

    ports: int = 0
    tables: dict[str, tuple[int, int, int]] = field(default_factory=dict)  # name -> flows, lookups, matched
    uplink: dict[str, int] = field(default_factory=dict)  # Interface statistics key -> value
    packet_ins: dict[str, int] = field(default_factory=dict)  # queued, dropped by OVS's rate limit


def rate_limited(statuses: list[Any]) -> dict[str, int]:
    """OVS's PacketIn rate limit (controller_rate_limit), summed over the bridge's controllers
    and PacketIn reasons: packets it queued, and those it dropped (its Controller rows' status
    keys packet-in-TYPE-queued and -dropped)."""
    out = {"queued": 0, "dropped": 0}
    for status in statuses:
        for key, value in dict(status).items():
            kind = key.rpartition("-")[2]
            if key.startswith("packet-in-") and kind in out and str(value).isdigit():
                out[kind] += int(value)
    return out


def tables_of(stats: list[Any]) -> dict[str, tuple[int, int, int]]:
    """daolinet's tables, and any other holding flows: (flows, lookups, matched)."""
    named = {int(t) for t in Table}
    return {table_name(s.table_id): (int(s.active_count), int(s.lookup_count), int(s.matched_count))
            for s in stats if s.table_id in named or s.active_count}


class AgentMetrics:
    def __init__(self, service: AgentService, ovsdb: Ovsdb, mgmt: str, uplink: str,
                 registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.service, self.ovsdb, self.mgmt, self.uplink = service, ovsdb, mgmt, uplink
        self.reading = Reading()
        self.attach = Histogram("daolinet_agent_attach_seconds", "Container attach: request to port "
                                "plugged and the controller told", buckets=ATTACH_BUCKETS,
                                registry=self.registry)
        service.attached = self.attach.observe
        self.registry.register(_Collector(self))

    async def refresh(self) -> None:
        plugged, interfaces, controllers = await asyncio.gather(
            asyncio.to_thread(self.service.plumber.plugged),
            asyncio.to_thread(self.ovsdb.interfaces, ["name", "statistics"]),
            asyncio.to_thread(self._controller_status))
        link = await BridgeLink.open(self.mgmt)
        try:
            stats = await link.multipart(parser.OFPTableStatsRequest(DP, 0))
        finally:
            link.close()
        uplink: Any = next((row["statistics"] for row in interfaces if row["name"] == self.uplink), {})
        self.reading = Reading(len(plugged), tables_of(stats), {k: int(v) for k, v in dict(uplink).items()},
                               rate_limited(controllers))

    def _controller_status(self) -> list[Any]:
        rows = self.ovsdb.api.db_list("Controller", columns=["status"]).execute(check_error=True)
        return [row["status"] for row in rows]


class _Collector(Collector):
    def __init__(self, metrics: AgentMetrics) -> None:
        self.m = metrics

    def collect(self) -> Iterator[Any]:
        r, service = self.m.reading, self.m.service
        yield GaugeMetricFamily("daolinet_agent_ports", "Container ports attached to the bridge",
                                value=r.ports)
        flows = GaugeMetricFamily("daolinet_agent_flows", "Flows installed, per table", labels=["table"])
        lookups = CounterMetricFamily("daolinet_agent_table_lookups", "Packets looked up, per table",
                                      labels=["table"])
        matched = CounterMetricFamily("daolinet_agent_table_matched", "Packets that matched a flow, per "
                                      "table", labels=["table"])
        for name, (active, looked, hit) in sorted(r.tables.items()):
            flows.add_metric([name], active)
            lookups.add_metric([name], looked)
            matched.add_metric([name], hit)
        yield from (flows, lookups, matched)
        for what, keys in UPLINK_KEYS.items():
            family = CounterMetricFamily(f"daolinet_agent_uplink_{what}", f"Uplink {what} (OVSDB Interface "
                                         "statistics)", labels=["direction"])
            for direction, key in zip(("rx", "tx"), keys, strict=True):
                if key in r.uplink:
                    family.add_metric([direction], r.uplink[key])
            yield family
        limited = CounterMetricFamily("daolinet_agent_packet_ins_rate_limited", "PacketIns OVS's rate "
                                      "limit queued, and dropped (never reaching a controller)",
                                      labels=["fate"])
        for fate in ("queued", "dropped"):
            limited.add_metric([fate], r.packet_ins.get(fate, 0))
        yield limited
        beats = service.heartbeats
        yield CounterMetricFamily("daolinet_agent_heartbeats_sent", "Heartbeats the controller took",
                                  value=beats["sent"])
        yield CounterMetricFamily("daolinet_agent_heartbeats_failed", "Heartbeats that failed",
                                  value=beats["failed"])
