"""OpenFlow identities (issue 12, item 2): a switch's datapath id belongs to the host
that registered it, and only that host's certificate may speak for it.

A real Controller (in-memory store) behind a real ofserver TLS listener on
127.0.0.1; fake switches connect over TLS with certificates from a CA made for
the test.  The decision itself (controller/admission.py) is tested directly too."""

from __future__ import annotations

import asyncio
import datetime
import logging
import shutil
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from os_ken.lib.packet import ethernet, icmp, ipv4, packet

from daolinet.controller import admission, ofserver
from daolinet.controller.admission import Refusal, admit
from daolinet.controller.context import Config
from daolinet.controller.controller import Controller
from daolinet.controller.switch import SwitchSession
from daolinet.model import Tenant
from daolinet.model.objects import DEFAULT_TENANT
from daolinet.ofp.codec import ofp
from daolinet.pipeline import GATEWAY_MAC, Table
from daolinet.security import pki
from daolinet.security.identity import Identity
from daolinet.security.tls import TlsFiles, client_context, server_context
from daolinet.store import open_store
from daolinet.testing.asynctools import until
from daolinet.testing.factories import make_host, topology
from daolinet.testing.fakeswitch import FakeSwitch

TIMEOUT = 10.0
H1, H2 = Identity("host", "h1"), Identity("host", "h2")
PORTS = [(1, "uplink", "02:18:00:00:00:01"), (2, "dl1", "02:00:00:00:00:01")]


# -- the decision ----------------------------------------------------------------------


@pytest.mark.parametrize(("peer", "bound", "live", "reason"), [
    (H1, "h1", None, None),  # its own host's dpid
    (H1, "h1", H1, None),  # a reconnect
    (H1, "h1", H2, None),  # the owner replaces a session that came first
    (H2, "h1", None, admission.WRONG_HOST),
    (H2, "h1", H1, admission.WRONG_HOST),
    (H2, None, None, None),  # nobody registered the dpid yet: first come
    (H2, None, H2, None),
    (H2, None, H1, admission.DPID_TAKEN),  # ... keeps it
    (Identity("user", "h1"), "h1", None, admission.WRONG_ROLE),
    (Identity("controller", "h1"), None, None, admission.WRONG_ROLE),
    (None, "h1", None, admission.NO_IDENTITY),
])
def test_admit_decides_by_the_host_bound_to_the_dpid(peer: Identity | None, bound: str | None,
                                                      live: Identity | None, reason: str | None) -> None:
    refusal = admit(peer, 0x1, bound, live)
    assert (refusal.reason if refusal else None) == reason
    if refusal is not None:
        assert refusal.reason in admission.REASONS and "(dpid 0x1)" in refusal.detail


def test_admit_names_the_holder_and_the_host() -> None:
    assert admit(H2, 0x1, "h1", None) == Refusal(
        admission.WRONG_HOST, "certificate of h2 is not valid for host h1 (dpid 0x1)")


def test_plaintext_sessions_are_admitted_as_before() -> None:
    assert admit(None, 0x1, "h1", H2, tls=False) is None


# -- a controller behind a TLS listener --------------------------------------------------


@dataclass
class Pki:
    dir: Path
    other: Path  # another installation's CA
    old: Path  # the same CA, with an expired h1 certificate

    def files(self, role: str, name: str) -> TlsFiles:
        return TlsFiles.of(str(self.dir), role, name)  # type: ignore[arg-type]

    def foreign(self, directory: Path, name: str = "h1") -> TlsFiles:
        """A host pair from `directory`, presented to a client that trusts our CA."""
        pair = pki.holder_pair(str(directory), "host", name)
        return TlsFiles(pki.ca_pair(str(self.dir)).cert, pair.cert, pair.key)


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    d = tmp_path_factory.mktemp("pki")
    pki.init_ca(str(d / "ca"))
    pki.issue(str(d / "ca"), "controller", "c1", sans=("127.0.0.1",))
    for role, name in (("host", "h1"), ("host", "h2"), ("host", "h3"), ("user", "u1"), ("controller", "c2")):
        pki.issue(str(d / "ca"), role, name)  # type: ignore[arg-type]
    pki.init_ca(str(d / "other"))
    pki.issue(str(d / "other"), "host", "h1")
    (d / "old").mkdir()
    for f in ("ca.crt", "ca.key"):
        shutil.copy(d / "ca" / f, d / "old" / f)
    past = datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=10)
    pki.issue(str(d / "old"), "host", "h1", days=1, now=past)
    return Pki(d / "ca", d / "other", d / "old")


@dataclass
class Client:
    """A FakeSwitch on a TLS connection to the controller."""

    fake: FakeSwitch
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    task: asyncio.Task[None] | None = None
    error: str = ""

    def __post_init__(self) -> None:
        port = self.writer.get_extra_info("sockname")[1]
        self.address = f"127.0.0.1:{port}"  # as the controller sees it

    async def pump(self) -> None:
        try:
            self.flush()
            while data := await self.reader.read(65536):
                self.fake.receive_data(data)
                self.flush()
        except (ssl.SSLError, ConnectionError) as e:
            self.error = str(e)

    def flush(self) -> None:
        if data := self.fake.data_to_send():
            self.writer.write(data)

    @property
    def closed(self) -> bool:
        """The controller ended the connection."""
        return self.task is not None and self.task.done()

    async def close(self) -> None:
        self.writer.close()
        if self.task is not None:
            await asyncio.wait_for(self.task, TIMEOUT)


@dataclass
class Rig:
    ctrl: Controller
    port: int
    certs: Pki
    clients: list[Client] = field(default_factory=list)

    async def connect(self, dpid: int, files: TlsFiles) -> Client:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port, ssl=client_context(files),
                                                      server_hostname="127.0.0.1")
        client = Client(FakeSwitch(dpid, PORTS), reader, writer)
        client.task = asyncio.create_task(client.pump())
        self.clients.append(client)
        return client

    async def attempt(self, files: TlsFiles) -> Client | None:
        """A connection the controller should refuse during the TLS handshake: None if
        the handshake failed on our side already, else the client, closed by then."""
        try:
            client = await self.connect(0x1, files)
        except (ssl.SSLError, ConnectionError):
            return None
        await until(lambda: client.closed, TIMEOUT, "the controller closing the connection")
        return client

    async def live(self, dpid: int) -> SwitchSession:
        """The session mastering `dpid`, once its flows are in place (if a host has it)."""
        def ready() -> bool:
            registered = dpid in self.ctrl.view.hosts_by_dpid
            return dpid in self.ctrl.ctx.sessions and (dpid in self.ctrl.ctx.synced or not registered)
        await until(ready, TIMEOUT, f"switch {dpid:#x} mastered")
        return self.ctrl.ctx.sessions[dpid]

    def refused(self, reason: str) -> float:
        value = self.ctrl.ctx.metrics.registry.get_sample_value("daolinet_openflow_refused_total",
                                                                {"reason": reason})
        return value or 0.0


@pytest.fixture
async def rig(certs: Pki) -> AsyncIterator[Rig]:
    store = open_store("sqlite://:memory:")
    top = topology([(0, 0), (1, 0)], hosts=2)  # a on h1 (dpid 1, ofport 2), b on h2 (dpid 2)
    await store.import_objects([Tenant(DEFAULT_TENANT), *top.hosts, *top.networks, *top.endpoints])
    ctrl = Controller(store, Config())
    await ctrl.start()
    tls = server_context(certs.files("controller", "c1"))
    server = await ofserver.listen("ssl:127.0.0.1:0", ctrl.on_session, tls, on_refused=ctrl.refused)
    rig = Rig(ctrl, server.sockets[0].getsockname()[1], certs)
    try:
        yield rig
    finally:
        server.close()
        for client in rig.clients:
            await client.close()
        await until(lambda: not ctrl.ctx.connected, TIMEOUT, "every session gone")
        await ctrl.stop()
        await store.close()


def first_packet(src_mac: str, src_ip: str, dst_ip: str) -> bytes:
    pkt = packet.Packet()
    pkt.add_protocol(ethernet.ethernet(dst=GATEWAY_MAC, src=src_mac, ethertype=0x0800))
    pkt.add_protocol(ipv4.ipv4(src=src_ip, dst=dst_ip, proto=1, ttl=64))
    pkt.add_protocol(icmp.icmp(type_=8, code=0, csum=0, data=icmp.echo(id_=1, seq=1, data=b"x" * 16)))
    pkt.serialize()
    return bytes(pkt.data)


async def route_flowmods(client: Client) -> None:
    """h1's container a pings b on h2: the route's FlowMods come to h1's switch."""
    top = topology([(0, 0), (1, 0)], hosts=2)
    a, b = top.endpoint("c1"), top.endpoint("c2")
    before = len(client.fake.flow_mods)
    assert a.ofport is not None
    client.fake.packet_in(a.ofport, first_packet(a.mac, a.ip, b.ip), table_id=Table.EGRESS,
                          reason=ofp.OFPR_NO_MATCH)
    client.flush()
    await until(lambda: any(m.command == ofp.OFPFC_ADD and m.table_id == Table.EGRESS
                            for m in client.fake.flow_mods[before:]), TIMEOUT, "h1's route FlowMods")


async def test_another_hosts_certificate_cannot_take_a_live_dpid(rig: Rig,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    h1 = await rig.connect(0x1, rig.certs.files("host", "h1"))
    await rig.connect(0x2, rig.certs.files("host", "h2"))
    session = await rig.live(0x1)
    await rig.live(0x2)
    assert session.identity == H1

    with caplog.at_level(logging.WARNING):
        rogue = await rig.connect(0x1, rig.certs.files("host", "h2"))
        await until(lambda: rogue.closed, TIMEOUT, "the rogue refused")
    assert rig.ctrl.ctx.sessions[0x1] is session and rig.ctrl.ctx.connected[0x1] is session
    assert not h1.closed and not rogue.fake.flow_mods
    assert (f"refused OpenFlow connection from {rogue.address}: "
            "certificate of h2 is not valid for host h1 (dpid 0x1)") in caplog.text
    assert rig.refused(admission.WRONG_HOST) == 1
    await route_flowmods(h1)  # h1 is still answered, on its own session


async def test_a_genuine_reconnect_replaces_the_old_session(rig: Rig) -> None:
    old_client = await rig.connect(0x1, rig.certs.files("host", "h1"))
    old = await rig.live(0x1)
    new_client = await rig.connect(0x1, rig.certs.files("host", "h1"))
    await until(lambda: rig.ctrl.ctx.sessions.get(0x1) not in (None, old), TIMEOUT, "the new session")
    await until(lambda: old_client.closed, TIMEOUT, "the old connection closed")
    assert not new_client.closed and rig.ctrl.ctx.sessions[0x1].identity == H1
    assert sum(rig.refused(r) for r in admission.REASONS) == 0


@pytest.mark.parametrize("who", [("user", "u1"), ("controller", "c2")])
async def test_only_host_certificates_speak_for_switches(rig: Rig, who: tuple[str, str],
                                                         caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        client = await rig.connect(0x1, rig.certs.files(*who))
        await until(lambda: client.closed, TIMEOUT, "the connection refused")
    assert 0x1 not in rig.ctrl.ctx.connected and not client.fake.flow_mods
    assert f"certificate of {who[1]} ({who[0]}) is not a host's (dpid 0x1)" in caplog.text
    assert rig.refused(admission.WRONG_ROLE) == 1


@pytest.mark.parametrize("case", ["no certificate", "another CA", "expired"])
async def test_bad_certificates_never_complete_the_handshake(rig: Rig, case: str,
                                                             caplog: pytest.LogCaptureFixture) -> None:
    files = {"no certificate": TlsFiles(pki.ca_pair(str(rig.certs.dir)).cert),
             "another CA": rig.certs.foreign(rig.certs.other),
             "expired": rig.certs.foreign(rig.certs.old)}[case]
    with caplog.at_level(logging.WARNING):
        client = await rig.attempt(files)
        await until(lambda: rig.refused(admission.HANDSHAKE) == 1, TIMEOUT, "the handshake refused")
    # Not one OpenFlow byte came through (the controller speaks first, HELLO), no session:
    assert client is None or not client.fake.got_hello
    assert not rig.ctrl.ctx.connected
    assert "refused OpenFlow connection from 127.0.0.1:" in caplog.text
    assert "TLS handshake failed" in caplog.text
    if case == "expired":
        assert "certificate has expired" in caplog.text


async def test_a_dpid_belongs_to_the_host_that_registers_it(rig: Rig,
                                                             caplog: pytest.LogCaptureFixture) -> None:
    early = await rig.connect(0x3, rig.certs.files("host", "h2"))  # nobody has registered dpid 3 yet
    await rig.live(0x3)
    with caplog.at_level(logging.WARNING):
        late = await rig.connect(0x3, rig.certs.files("host", "h3"))
        await until(lambda: late.closed, TIMEOUT, "the second claimant refused")
        assert rig.refused(admission.DPID_TAKEN) == 1 and not early.closed  # first come keeps it

        await rig.ctrl.store.register_host(make_host(3))  # h3's agent registers dpid 3
        await until(lambda: early.closed, TIMEOUT, "h2's session on h3's dpid closed")
    assert "certificate of h2 is not valid for host h3 (dpid 0x3)" in caplog.text
    assert 0x3 not in rig.ctrl.ctx.connected and 0x3 not in rig.ctrl.ctx.sessions

    await rig.connect(0x3, rig.certs.files("host", "h3"))
    assert (await rig.live(0x3)).identity == Identity("host", "h3")
