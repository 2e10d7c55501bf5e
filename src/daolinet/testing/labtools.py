"""The tests' name for the probes of a running lab (pings, flow dumps, counters, polling with a
deadline), which live in daolinet.lab.probes because the demo measures with them too; testing may
import lab, never the reverse."""

from __future__ import annotations

from daolinet.lab.probes import (
    api,
    flows,
    listening,
    ping,
    route_flows,
    rtts,
    rx_packets,
    tcp_transfer,
    wait_for,
)

__all__ = ["api", "flows", "listening", "ping", "route_flows", "rtts", "rx_packets", "tcp_transfer",
           "wait_for"]
