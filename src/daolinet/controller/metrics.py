"""The controller's Prometheus metrics (docs/observability.md lists them).

What the hot path counts (every PacketIn, FlowMod, route) is plain ints in dicts:
no lock, no prometheus child per increment.  A custom collector turns them into
metric families at scrape time, together with what is read rather than counted
(live routes, switches connected and mastered, policy log records).  Rare events
(refused OpenFlow connections, store calls) use prometheus-client's own metrics.
"""

from __future__ import annotations

import inspect
import time
from bisect import bisect_left
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

SETUP_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0)
STORE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
# A decision's kind (decide/route.py's class, lower-cased) -> the PacketIn's outcome.
OUTCOMES = {"plug": "route", "external": "route", "mappedport": "route", "deny": "deny",
            "echoreply": "icmp", "timeexceeded": "icmp", "relayicmp": "icmp", "ignore": "ignored"}


class FastHistogram:
    """Bucket counts and a sum in plain numbers: `observe` takes no lock."""

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last: above every bound (+Inf)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value

    def buckets(self) -> list[tuple[str, float]]:
        """Cumulative, as Prometheus wants them."""
        out, total = [], 0
        for bound, count in zip((*map(str, self.bounds), "+Inf"), self.counts, strict=True):
            total += count
            out.append((bound, float(total)))
        return out


class Metrics:
    """The counters the controller's handlers bump, and the registry they are published in."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.packet_ins: dict[int, int] = {}  # dpid -> PacketIns
        self.decisions: dict[str, int] = {}  # decision kind -> PacketIns
        self.flowmods: dict[int, int] = {}  # dpid -> messages sent (mastered here, or through its master)
        self.flows_removed: dict[int, int] = {}  # dpid -> FlowRemoved received
        self.switch_errors: dict[int | None, int] = {}  # dpid (None: still handshaking) -> errors
        self.route_setup = FastHistogram(SETUP_BUCKETS)
        self.revocations = 0  # route pairs revoked (policy change, container gone, host down)
        self.switch_connections = 0  # OpenFlow handshakes completed
        self.heartbeats = 0  # host heartbeats received
        self.ctx: Any = None  # the Context read at scrape time (watch)
        self.openflow_refused = Counter(
            "daolinet_openflow_refused_total", "OpenFlow connections refused (controller/admission.py)",
            ["reason"], registry=registry)
        self.store_calls = Histogram("daolinet_store_call_seconds", "Store calls by method, their latency",
                                     ["call"], buckets=STORE_BUCKETS, registry=registry)
        registry.register(_Collector(self))

    def watch(self, ctx: Any) -> None:
        """Read routes, switches and the policy log from `ctx` at each scrape."""
        self.ctx = ctx

    def bump(self, table: dict[Any, int], key: Any, n: int = 1) -> None:
        table[key] = table.get(key, 0) + n

    def timed_store(self, store: Any) -> Any:
        return TimedStore(store, self)


class TimedStore:
    """The store, with each coroutine method's latency observed (and heartbeats counted)."""

    def __init__(self, store: Any, metrics: Metrics) -> None:
        self._store = store
        self._metrics = metrics
        self._wrapped: dict[str, Callable[..., Any]] = {}

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._store, name)
        if not inspect.iscoroutinefunction(attr):
            return attr
        wrapped = self._wrapped.get(name)
        if wrapped is None:
            wrapped = self._wrapped[name] = self._wrap(name)
        return wrapped

    def _wrap(self, name: str) -> Callable[..., Any]:
        child = self._metrics.store_calls.labels(name)
        metrics = self._metrics

        async def call(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return await getattr(self._store, name)(*args, **kwargs)
            finally:
                child.observe(time.perf_counter() - started)
                if name == "heartbeat":
                    metrics.heartbeats += 1

        return call


class _Collector(Collector):
    def __init__(self, metrics: Metrics) -> None:
        self.m = metrics

    def collect(self) -> Iterator[Any]:
        m = self.m
        yield _labelled("daolinet_packet_ins", "PacketIns received, per switch", "dpid", m.packet_ins)
        outcomes: dict[str, int] = dict.fromkeys(("route", "deny", "icmp", "ignored"), 0)
        for kind, n in m.decisions.items():
            outcomes[OUTCOMES.get(kind, kind)] = outcomes.get(OUTCOMES.get(kind, kind), 0) + n
        yield _labelled("daolinet_packet_in_outcomes", "PacketIns by outcome: route, deny, icmp (answered "
                        "or relayed), ignored", "outcome", outcomes)
        yield _labelled("daolinet_decisions", "PacketIn decisions by kind (decide/route.py)", "kind",
                        m.decisions)
        yield _labelled("daolinet_flowmods_sent", "OpenFlow messages sent to switches (FlowMods, "
                        "flushes)", "dpid", m.flowmods)
        yield _labelled("daolinet_flows_removed", "FlowRemoved received (routes idling out)", "dpid",
                        m.flows_removed)
        yield _labelled("daolinet_switch_errors", "OpenFlow errors from switches", "dpid", m.switch_errors)
        setup = HistogramMetricFamily("daolinet_route_setup_seconds",
                                      "PacketIn to route installed and packet re-injected")
        setup.add_metric([], m.route_setup.buckets(), m.route_setup.sum)
        yield setup
        yield _counter("daolinet_route_setups", "Hot-plug routes installed", sum(m.route_setup.counts))
        yield _counter("daolinet_route_revocations", "Route pairs revoked (policy change, container or "
                       "host gone)", m.revocations)
        yield _counter("daolinet_switch_connections", "OpenFlow handshakes completed", m.switch_connections)
        yield _counter("daolinet_heartbeats_received", "Host heartbeats received", m.heartbeats)
        yield from self._read(m.ctx)

    @staticmethod
    def _read(ctx: Any) -> Iterator[Any]:
        if ctx is None:
            return
        yield GaugeMetricFamily("daolinet_live_routes", "Hot-plug routes alive", value=len(ctx.routes))
        yield GaugeMetricFamily("daolinet_switches_connected", "Switches connected to this controller",
                                value=len(ctx.connected))
        yield GaugeMetricFamily("daolinet_switches_mastered", "Switches this controller is master of",
                                value=len(ctx.sessions))
        log = ctx.policy_log
        yield _labelled("daolinet_policy_log_records", "Policy log records written", "decision",
                        {"deny": log.counts.get("deny", 0), "revoke": log.counts.get("revoke", 0)})
        yield _counter("daolinet_policy_log_suppressed", "Policy log records dropped by its rate limit",
                       log.suppressed)


def _counter(name: str, doc: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(name, doc, value=value)


def _labelled(name: str, doc: str, label: str, values: dict[Any, int]) -> CounterMetricFamily:
    """A counter per label value; a dpid (an int) as 0x-hex, as switches are named everywhere."""
    family = CounterMetricFamily(name, doc, labels=[label])
    for key, value in sorted(((f"{k:#x}" if isinstance(k, int) else str(k), v) for k, v in values.items())):
        family.add_metric([key], value)
    return family
