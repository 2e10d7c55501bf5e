"""Prometheus metrics, per dpid where it matters; the registry is passed in."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class Metrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.packet_ins = Counter("daolinet_packet_ins_total", "PacketIns received",
                                  ["dpid"], registry=registry)
        self.flowmods = Counter("daolinet_flowmods_sent_total", "FlowMods sent",
                                ["dpid"], registry=registry)
        self.decisions = Counter("daolinet_decisions_total", "PacketIn decisions by kind",
                                 ["kind"], registry=registry)
        self.flows_removed = Counter("daolinet_flows_removed_total", "FlowRemoved received",
                                     ["dpid"], registry=registry)
        self.switch_errors = Counter("daolinet_switch_errors_total", "OpenFlow errors from switches",
                                     ["dpid"], registry=registry)
        self.openflow_refused = Counter(
            "daolinet_openflow_refused_total", "OpenFlow connections refused (controller/admission.py)",
            ["reason"], registry=registry)
        self.route_setup = Histogram(
            "daolinet_route_setup_seconds", "PacketIn to route installed and packet re-injected",
            buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0),
            registry=registry)
        self.live_routes = Gauge("daolinet_live_routes", "Hot-plug routes alive", registry=registry)
        self.switches = Gauge("daolinet_switches_connected", "Connected switches", registry=registry)
