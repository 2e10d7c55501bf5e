"""The agent's way out of the secure bridge's deadlock: bootstrap flows on its own bridge.

A host's underlay address lives on its bridge's LOCAL port and the bridge is
fail_mode=secure, so the host reaches its controllers through the very bridge
they program.  A bridge that has just gained its first controller (OVS flushes
its flows then), or whose ovs-vswitchd restarted (a reboot), holds no flow at
all: the host reaches no controller, so no controller ever gives it flows.

The agent breaks the circle from inside.  Over the bridge's management socket
(`<ovs rundir>/<bridge>.mgmt`, which ovs-vswitchd serves whatever its
controllers) it installs two bootstrap flows, uplink <-> LOCAL at priority 1 in
classify, and deletes them once the controller's own base flows carry the host's
traffic: left in place they would hand the uplink's other traffic (IPv6, say) to
the host instead of classify's drop.  Their cookie is no daolinet cookie, so the
controller's sync leaves them alone.  The agent watches on: an ovs-vswitchd that
restarts under it closes the socket, and the returning bridge is bootstrapped again.

`next_step` decides (pure; tests/unit/test_bootstrap.py); `BridgeLink` and `keep`
are the thin shell: the controller's side of OpenFlow (ofp/channel.py) over the
unix socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from daolinet.agent.service import AgentService, HostInfo
from daolinet.errors import DaoliError, SystemFailure
from daolinet.flows import render
from daolinet.flows.proactive import BASE, flows_for_host
from daolinet.flows.spec import FlowSpec, Match, Output
from daolinet.model import Host
from daolinet.ofp.channel import BarrierReply, Channel, Event, MultipartDone, SwitchError, SwitchReady
from daolinet.pipeline import BOOTSTRAP_COOKIE, OFPP_LOCAL, Priority, Table

log = logging.getLogger(__name__)

BOOTSTRAP_PRIORITY = Priority.BOOTSTRAP  # above classify's drop only: every controller flow wins
ALL_BITS = (1 << 64) - 1
DEFAULT_OVS_RUNDIR = "/var/run/openvswitch"
POLL = 0.25  # seconds between looks at the bridge while the controller has not synced it
WARN_AFTER = 30.0  # seconds without the controller's flows before the agent says so
REPLY_TIMEOUT = 10.0
START_TIMEOUT = 20.0  # the first install (or finding the bridge synced) before register
_KEEPERS: set[asyncio.Task[None]] = set()  # the loop holds tasks weakly: these run until cancelled


# -- the decision ------------------------------------------------------------------------


class Step(enum.Enum):
    INSTALL = "install"  # neither the controller's flows nor ours: the host is cut off
    WAIT = "wait"  # ours carry the host until the controller syncs the bridge
    REMOVE = "remove"  # the controller's flows carry the host: ours must go
    DONE = "done"  # the controller's flows only


@dataclass(frozen=True)
class SeenFlow:
    """A flow as a switch reports it, reduced to what identifies it."""

    table: int
    priority: int
    cookie: int
    match: tuple[tuple[str, str], ...]

    @classmethod
    def from_stats(cls, stats: Any) -> SeenFlow:
        """From an os-ken OFPFlowStats."""
        return cls(int(stats.table_id), int(stats.priority), int(stats.cookie), _match_key(stats.match))

    @classmethod
    def of(cls, spec: FlowSpec) -> SeenFlow:
        """What the switch reports for a flow installed from `spec`."""
        return cls(int(spec.table), int(spec.priority), spec.cookie, _match_key(render.match_for(spec.match)))


def _match_key(match: Any) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((k, str(v)) for k, v in match.items()))


def bootstrap_flows(uplink_ofport: int) -> list[FlowSpec]:
    """The host's own traffic <-> the uplink, and nothing else."""
    return [FlowSpec(Table.CLASSIFY, BOOTSTRAP_PRIORITY, Match.of(in_port=src), (Output(dst),),
                     cookie=BOOTSTRAP_COOKIE)
            for src, dst in ((uplink_ofport, OFPP_LOCAL), (OFPP_LOCAL, uplink_ofport))]


def host_path_flows(host: Host) -> list[FlowSpec]:
    """The controller's base flows that carry the host's own traffic (flows/proactive.py): what
    leaves LOCAL or arrives on the uplink in classify, and what is delivered to LOCAL."""
    def on_path(f: FlowSpec) -> bool:
        in_port = f.match.get("in_port")
        classify = f.table is Table.CLASSIFY and in_port in (OFPP_LOCAL, host.uplink_ofport)
        return f.priority > Priority.MISS and (classify or Output(OFPP_LOCAL) in f.actions)
    return [f for f in flows_for_host(host) if on_path(f)]


def next_step(host: Host, seen: Iterable[SeenFlow]) -> Step:
    have = set(seen)
    carried = all(SeenFlow.of(f) in have for f in host_path_flows(host))
    ours = [SeenFlow.of(f) for f in bootstrap_flows(host.uplink_ofport)]
    if carried:
        return Step.REMOVE if any(f.cookie == BOOTSTRAP_COOKIE for f in have) else Step.DONE
    return Step.WAIT if all(f in have for f in ours) else Step.INSTALL


def host_of(info: HostInfo) -> Host:
    return Host(name=info.name, dpid=info.dpid, underlay_ip=info.underlay_ip, underlay_mac=info.underlay_mac,
                pip_pool=info.pip_pool, underlay_prefix=info.underlay_prefix,
                underlay_gateway_mac=info.underlay_gateway_mac, uplink_ofport=info.uplink_ofport,
                pip_pool6=info.pip_pool6, underlay_ip6=info.underlay_ip6,
                underlay_prefix6=info.underlay_prefix6)


def mgmt_socket(ovsdb: str, bridge: str) -> str:
    """ovs-vswitchd keeps `<bridge>.mgmt` in its run dir, beside the db socket it is told
    about (`unix:<rundir>/db.sock`); with a remote OVSDB, the packaged run dir."""
    kind, _, path = ovsdb.partition(":")
    rundir = os.path.dirname(path) if kind == "unix" and path else DEFAULT_OVS_RUNDIR
    return os.path.join(rundir or ".", f"{bridge}.mgmt")


def install(uplink_ofport: int) -> list[Any]:
    return [render.flow_add(f) for f in bootstrap_flows(uplink_ofport)]


def remove() -> list[Any]:
    return [render.flow_delete_cookie(BOOTSTRAP_COOKIE, ALL_BITS)]


# -- the shell ------------------------------------------------------------------------------


class BridgeLink:
    """The agent's OpenFlow connection to its own bridge: a service connection, which OVS
    sends no asynchronous messages while its miss_send_len is 0 (the default channel's;
    the DNS link's asks for packet-ins: agent/dns_link.py)."""

    def __init__(self, path: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 channel: Channel | None = None) -> None:
        self.path = path
        self.reader = reader
        self.writer = writer
        self.channel = channel or Channel(miss_send_len=0)

    @classmethod
    async def open(cls, path: str, channel: Channel | None = None) -> BridgeLink:
        try:
            reader, writer = await asyncio.open_unix_connection(path)
        except OSError as e:
            raise SystemFailure(f"cannot reach ovs-vswitchd at {path}: {e.strerror or e}") from e
        link = cls(path, reader, writer, channel)
        try:
            await link._until(lambda event: isinstance(event, SwitchReady))
        except BaseException:
            link.close()
            raise
        return link

    async def _read(self) -> list[Event]:
        self.writer.write(self.channel.data_to_send())  # our requests, echo replies
        data = await self.reader.read(65536)
        if not data:
            raise SystemFailure(f"ovs-vswitchd closed {self.path}")
        return self.channel.receive_data(data)

    async def read_events(self) -> list[Event]:
        """The next events (after sending what is queued); SystemFailure once the bridge is gone."""
        return await self._read()

    def send(self, msg: Any) -> None:
        """Queue a message and write it out now."""
        self.channel.send(msg)
        self.writer.write(self.channel.data_to_send())

    async def _until(self, done: Callable[[Event], bool], xids: Iterable[int] = ()) -> Event:
        asked = set(xids)
        async with asyncio.timeout(REPLY_TIMEOUT):
            while True:
                for event in await self._read():
                    if isinstance(event, SwitchError) and event.xid in asked:
                        raise SystemFailure(f"bridge at {self.path}: {event.describe()}")
                    if done(event):
                        return event

    async def flows(self, cookie: int, mask: int) -> list[SeenFlow]:
        return [SeenFlow.from_stats(stats) for stats in await self.multipart(
            render.flow_stats_request(cookie, mask))]

    async def multipart(self, request: Any) -> list[Any]:
        """A multipart request's reply bodies, every part's (agent/metrics.py reads table stats)."""
        xid = self.channel.send(request)
        reply = await self._until(lambda event: isinstance(event, MultipartDone) and event.xid == xid, [xid])
        assert isinstance(reply, MultipartDone)
        return reply.body

    async def apply(self, msgs: list[Any]) -> None:
        """Send, then wait for a barrier: the switch refused none of them."""
        xids = [self.channel.send(msg) for msg in msgs]
        barrier = self.channel.send_barrier()
        await self._until(lambda event: isinstance(event, BarrierReply) and event.xid == barrier, xids)

    async def wait_closed(self) -> None:
        """Until ovs-vswitchd goes away (echo requests answered meanwhile)."""
        with contextlib.suppress(SystemFailure):
            while True:
                await self._read()

    def close(self) -> None:
        self.channel.close()
        self.writer.close()


async def converge(link: BridgeLink, host: Host, installed: asyncio.Event, poll: float = POLL,
                   warn_after: float = WARN_AFTER) -> None:
    """Look at the bridge and act (next_step) until only the controller's flows remain.
    `installed` is set once the host has a path, ours or the controller's."""
    loop = asyncio.get_running_loop()
    warn_at = loop.time() + warn_after
    while True:
        seen = await link.flows(BASE, ALL_BITS) + await link.flows(BOOTSTRAP_COOKIE, ALL_BITS)
        step = next_step(host, seen)
        if step is Step.INSTALL:
            await link.apply(install(host.uplink_ofport))
            log.info("bridge cut off: bootstrap flows uplink <-> LOCAL in place until a controller syncs it")
        elif step is Step.REMOVE:
            await link.apply(remove())
            log.info("the controller's flows carry the host: bootstrap flows removed")
        installed.set()
        if step in (Step.REMOVE, Step.DONE):
            return
        if loop.time() > warn_at:
            log.warning("no controller has synced the bridge in %.0f s: keeping the bootstrap flows",
                        warn_after)
            warn_at = float("inf")
        await asyncio.sleep(poll)  # a polling period, not synchronisation


async def keep(path: str, host: Host, installed: asyncio.Event, poll: float = POLL) -> None:
    """Forever: connect to the bridge, converge, hold the connection until ovs-vswitchd
    goes (a restart flushes every flow), then start over."""
    complained = False
    while True:
        try:
            link = await BridgeLink.open(path)
        except (DaoliError, TimeoutError) as e:
            if not complained:
                log.warning("%s; trying again", e)
                complained = True
            await asyncio.sleep(4 * poll)
            continue
        complained = False
        try:
            await converge(link, host, installed, poll)
            await link.wait_closed()
            log.warning("ovs-vswitchd closed %s: bootstrapping the bridge again once it is back", path)
        except (DaoliError, TimeoutError) as e:
            log.warning("bootstrap of the bridge at %s: %s; starting over", path, e)
            await asyncio.sleep(4 * poll)
        finally:
            link.close()


async def start(ovsdb: str, bridge: str, info: HostInfo,
                timeout: float = START_TIMEOUT) -> asyncio.Task[None]:
    """Give the host a path to its controllers (bootstrap flows, unless the controller's
    are there), then keep watching in a task (the agent lets asyncio.run end it)."""
    path = mgmt_socket(ovsdb, bridge)
    installed = asyncio.Event()
    task = asyncio.create_task(keep(path, host_of(info), installed))
    _KEEPERS.add(task)
    task.add_done_callback(_KEEPERS.discard)
    try:
        async with asyncio.timeout(timeout):
            await installed.wait()
    except TimeoutError:
        task.cancel()
        raise SystemFailure(f"cannot bootstrap bridge {bridge} through {path} within {timeout:.0f} s "
                            "(is ovs-vswitchd running?)") from None
    return task


async def register(service: AgentService, timeout: float = START_TIMEOUT, every: float = 0.5) -> None:
    """Register, trying again while no controller can be reached, within `timeout`: the
    kernel may still hold a failed neighbour entry for a controller from the attempts
    made while the bridge was cut off (ovs-vswitchd's own reconnects)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        try:
            await service.register()
            return
        except SystemFailure as e:
            if loop.time() + every > deadline:
                raise
            log.info("%s; trying again", e)
        await asyncio.sleep(every)  # a retry period, not synchronisation


async def plumb(path: str, uplink_ofport: int) -> None:
    """Install the bootstrap flows once and go (the lab's controller-less bridges)."""
    link = await BridgeLink.open(path)
    try:
        await link.apply(install(uplink_ofport))
    finally:
        link.close()


async def unplumb(path: str) -> None:
    """Delete the bootstrap flows (host init --undo, or its rollback)."""
    link = await BridgeLink.open(path)
    try:
        await link.apply(remove())
    finally:
        link.close()


async def bootstrap_flows_on(path: str) -> list[SeenFlow]:
    """The bootstrap flows a bridge holds (tests, the lab)."""
    link = await BridgeLink.open(path)
    try:
        return await link.flows(BOOTSTRAP_COOKIE, ALL_BITS)
    finally:
        link.close()

