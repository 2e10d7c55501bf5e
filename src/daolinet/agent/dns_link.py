"""The agent's DNS link: its containers' questions in, the answers out, on its own bridge.

The bridge hands every question a container asks its gateway or the resolver address
(flows/dns.py) to the connections with controller id 53: this one, a service connection
on the bridge's management socket (`<ovs rundir>/<bridge>.mgmt`, as agent/bootstrap.py
uses), which sets that id when it connects.  For each packet-in the link asks
`decide.dns_reply.reply_to` with its replica of the view (agent/resolver_view.py) and
sends the reply back out the asker's port as a packet-out.  So a lookup stays on the host:
no underlay, no controller, no host IP stack.

Names that are not the tenant's go to the host's upstream resolvers (`--dns-upstream`,
else the nameservers of the agent's /etc/resolv.conf), each tried for UPSTREAM_TIMEOUT;
with none answering, the asker gets SERVFAIL.  At most MAX_FORWARDS are in flight (more
get SERVFAIL at once).

Each port may ask RATE questions a second (bursts of BURST): a container flooding its
resolver costs its host little, and the rest are dropped (its resolver times out and
retries, as after a lost packet).

ovs-vswitchd restarting under the agent closes the socket: the link connects again every
RETRY seconds until it is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

import dns.asyncquery
import dns.exception
import dns.rcode
import dns.resolver

from daolinet.agent.bootstrap import BridgeLink
from daolinet.decide import dnswire
from daolinet.decide.dns_reply import Drop, Send, Upstream, reply_to
from daolinet.errors import DaoliError, SystemFailure
from daolinet.flows import wire
from daolinet.flows.dns import DNS_CONTROLLER_ID
from daolinet.model import Endpoint, View
from daolinet.model.addresses import RESOLVER4, RESOLVER6
from daolinet.ofp.channel import Channel, PacketIn

log = logging.getLogger(__name__)

RATE = 1000.0  # questions a second per port (answers carry TTL 0: nothing is cached)...
BURST = 2000.0  # ...in bursts of this many
UPSTREAM_TIMEOUT = 2.0  # seconds per upstream resolver
MAX_FORWARDS = 64  # forwarded questions in flight
RETRY = 1.0  # seconds between attempts to reach ovs-vswitchd
OUTCOMES = ("answer", "nxdomain", "refused", "stale", "forwarded", "upstream_failed", "dropped", "limited")


class Replica(Protocol):
    """What the link reads of the agent's replica of the view."""

    @property
    def view(self) -> View: ...

    @property
    def fresh(self) -> bool: ...

    def asker(self, ofport: int) -> Endpoint | None: ...


@dataclass
class Buckets:
    """A token bucket per port: `take(port)` is False once the port asked too much."""

    rate: float = RATE
    burst: float = BURST
    clock: Callable[[], float] = time.monotonic
    _tokens: dict[int, tuple[float, float]] = field(default_factory=dict)  # port -> (tokens, when)

    def take(self, port: int) -> bool:
        now = self.clock()
        tokens, then = self._tokens.get(port, (self.burst, now))
        tokens = min(self.burst, tokens + (now - then) * self.rate)
        if tokens < 1.0:
            self._tokens[port] = (tokens, now)
            return False
        self._tokens[port] = (tokens - 1.0, now)
        if len(self._tokens) > 4096:  # ports come and go: forget the buckets refilled by now
            self._tokens = {p: (t, w) for p, (t, w) in self._tokens.items()
                            if t + (now - w) * self.rate < self.burst}
        return True


def upstreams_from(given: Iterable[str]) -> tuple[str, ...]:
    """The resolvers to forward to: those given, else the system's (never our own addresses)."""
    found = list(given)
    if not found:
        with contextlib.suppress(dns.exception.DNSException, OSError):
            found = [str(s) for s in dns.resolver.Resolver(configure=True).nameservers]
    return tuple(s for s in found if s not in (str(RESOLVER4), str(RESOLVER6)))


class DnsLink:
    def __init__(self, path: str, replica: Replica, upstreams: tuple[str, ...] = (),
                 registry: Any = None) -> None:
        self.path = path
        self.replica = replica
        self.upstreams = upstreams
        self.buckets = Buckets()
        self.counts = dict.fromkeys(OUTCOMES, 0)
        self._forwards: set[asyncio.Task[None]] = set()
        self._counter = None
        if registry is not None:
            from prometheus_client import Counter

            self._counter = Counter("daolinet_agent_dns_questions", "DNS questions, by outcome",
                                    ["outcome"], registry=registry)

    def _count(self, outcome: str) -> None:
        self.counts[outcome] += 1
        if self._counter is not None:
            self._counter.labels(outcome).inc()

    async def run_forever(self) -> None:
        said = False
        while True:
            try:
                link = await BridgeLink.open(self.path, Channel(miss_send_len=0xFFFF,
                                                                controller_id=DNS_CONTROLLER_ID))
            except (DaoliError, OSError, TimeoutError) as e:
                if not said:
                    log.warning("DNS link: %s (trying again every %.0f s)", e, RETRY)
                    said = True
                await asyncio.sleep(RETRY)
                continue
            log.info("DNS link on %s", self.path)
            said = False
            try:
                await self.serve(link)
            except (DaoliError, OSError) as e:  # ovs-vswitchd went away, or spoke nonsense
                log.warning("DNS link: %s", e)
            except Exception:  # a bug must not end the resolver: say it, go on
                log.exception("DNS link failed; connecting again")
            finally:
                link.close()
            await asyncio.sleep(RETRY)

    async def serve(self, link: BridgeLink) -> None:
        while True:
            for event in await link.read_events():
                if isinstance(event, PacketIn):
                    self.handle(link, event)

    def handle(self, link: BridgeLink, pin: PacketIn) -> None:
        if not self.buckets.take(pin.in_port):
            self._count("limited")
            return
        replica = self.replica
        reply = reply_to(replica.view, replica.fresh, replica.asker(pin.in_port), pin.data)
        if isinstance(reply, Send):
            self._send(link, pin.in_port, reply.frame, reply.outcome)
        elif isinstance(reply, Upstream):
            if len(self._forwards) >= MAX_FORWARDS or not self.upstreams:
                self._send(link, pin.in_port, dnswire.error_frame(reply.query, dns.rcode.SERVFAIL),
                           "upstream_failed")
                return
            task = asyncio.get_running_loop().create_task(self._forward(link, pin.in_port, reply.query))
            self._forwards.add(task)
            task.add_done_callback(self._forwards.discard)
        else:
            assert isinstance(reply, Drop)
            log.debug("DNS link: dropped a packet from port %d: %s", pin.in_port, reply.reason)
            self._count("dropped")

    async def _forward(self, link: BridgeLink, port: int, query: dnswire.Query) -> None:
        for server in self.upstreams:
            qid = secrets.randbelow(0x10000)
            try:
                answer = await dns.asyncquery.udp(dnswire.upstream_query(query, qid), server,
                                                  timeout=UPSTREAM_TIMEOUT, ignore_unexpected=True)
            except (dns.exception.DNSException, OSError) as e:
                log.debug("DNS link: upstream %s: %r", server, e)
                continue
            frame = dnswire.forwarded_frame(query, answer.to_wire(), qid)
            if frame is not None:
                self._send(link, port, frame, "forwarded")
                return
        self._send(link, port, dnswire.error_frame(query, dns.rcode.SERVFAIL), "upstream_failed")

    def _send(self, link: BridgeLink, port: int, frame: bytes, outcome: str) -> None:
        with contextlib.suppress(SystemFailure, OSError):  # the link went meanwhile: the asker retries
            link.send(wire.packet_out_to_port(port, frame))
        self._count(outcome)
