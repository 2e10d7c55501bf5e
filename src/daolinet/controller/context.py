"""What the controller's handlers share: the view, the live switches and
routes, configuration and metrics.  Plain data; no behaviour."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from daolinet.controller.metrics import Metrics
from daolinet.controller.policy_log import PolicyLog
from daolinet.controller.routes import RouteTable
from daolinet.controller.switch import SwitchSession
from daolinet.model import View
from daolinet.store.liveness import DEFAULT_HOST_TTL


@dataclass(frozen=True)
class Config:
    idle_timeout: int = 30  # seconds a route may sit unused
    drop_timeout: int = 3  # seconds a drop flow damps a denied destination
    host_ttl: int = DEFAULT_HOST_TTL  # seconds a host stays alive without a heartbeat


@dataclass
class Context:
    view: View
    config: Config
    metrics: Metrics
    routes: RouteTable = field(default_factory=RouteTable)
    sessions: dict[int, SwitchSession] = field(default_factory=dict)  # switches mastered here
    connected: dict[int, SwitchSession] = field(default_factory=dict)  # every switch connected here
    # A switch mastered by another controller, reached through it (controller/peers.py).
    remote: Callable[[int], Any] = field(default=lambda dpid: None)
    synced: set[int] = field(default_factory=set)  # dpids whose proactive flows are in place
    # Recent PacketIn -> route-installed-and-packet-re-injected times (seconds).
    setup_samples: deque[float] = field(default_factory=lambda: deque(maxlen=10_000))
    clock: Callable[[], float] = time.time
    # The other controllers' APIs (controller/peers.py's Peers); None: the only controller.
    peers: Any = None
    policy_log: PolicyLog = field(default_factory=PolicyLog)  # denials and revocations decided here
    agent_tls: Any = None  # this controller's TlsFiles: it calls agents' trace listeners (trace.py)
