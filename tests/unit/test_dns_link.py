"""A DNS question's packet-in -> the reply the agent sends (decide/dns_reply.py) and the
link around it (agent/dns_link.py) with a fake bridge: answers and NXDOMAIN out the
asker's port, SERVFAIL from a stale replica, nothing for a port without a container or a
frame that is no question, forwarding with the upstream's answer or SERVFAIL, and the
per-port rate limit."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import dns.message
import dns.rcode
import dns.rrset
import pytest
from os_ken.lib.packet import packet
from test_dnswire import frame, open_reply, parsed, question
from test_names import APP, NET1, VIEW, WEB

from daolinet.agent import dns_link
from daolinet.agent.dns_link import Buckets, DnsLink, upstreams_from
from daolinet.decide.dns_reply import Drop, Send, Upstream, reply_to
from daolinet.model import Endpoint, View
from daolinet.ofp.channel import PacketIn
from daolinet.pipeline import OFPP_CONTROLLER

NAME_Q = question("web.")


def rcode_of(data: bytes) -> tuple[dns.rcode.Rcode, list[str]]:
    wire = bytes(packet.Packet(data).protocols[-1])
    msg = dns.message.from_wire(wire)
    return msg.rcode(), [rd.address for rrset in msg.answer for rd in rrset]


def test_an_allowed_name_is_answered_with_its_address() -> None:
    reply = reply_to(VIEW, True, APP, frame(NAME_Q.to_wire(), dst=NET1.gateway))
    assert isinstance(reply, Send) and reply.outcome == "answer"
    assert open_reply(reply.frame, parsed(NAME_Q, dst=NET1.gateway)).message.rcode() == dns.rcode.NOERROR
    assert rcode_of(reply.frame) == (dns.rcode.NOERROR, [WEB.ip])


def test_a_name_of_nobody_is_nxdomain_and_a_stale_replica_servfail() -> None:
    reply = reply_to(VIEW, True, APP, frame(question("nobody.").to_wire()))
    assert isinstance(reply, Send) and reply.outcome == "nxdomain"
    assert rcode_of(reply.frame)[0] == dns.rcode.NXDOMAIN
    stale = reply_to(VIEW, False, APP, frame(NAME_Q.to_wire()))
    assert isinstance(stale, Send) and stale.outcome == "stale"
    assert rcode_of(stale.frame) == (dns.rcode.SERVFAIL, [])


def test_other_names_go_upstream_and_junk_or_unknown_ports_are_dropped() -> None:
    assert isinstance(reply_to(VIEW, True, APP, frame(question("example.org.").to_wire())), Upstream)
    assert isinstance(reply_to(VIEW, True, None, frame(NAME_Q.to_wire())), Drop)
    assert isinstance(reply_to(VIEW, True, APP, b"\x00" * 60), Drop)


@dataclass
class FakeLink:
    sent: list[Any] = field(default_factory=list)

    def send(self, msg: Any) -> None:
        self.sent.append(msg)


@dataclass
class FakeReplica:
    view: View
    fresh: bool = True

    def asker(self, ofport: int) -> Endpoint | None:
        return next((e for e in self.view.endpoints.values() if e.ofport == ofport and e.host == "h2"), None)


def packet_in(port: int, data: bytes) -> PacketIn:
    return PacketIn(0, port, 5, 1, 0, data)


def sent_frames(link: FakeLink) -> list[tuple[int, int, bytes]]:
    """(in_port, output port, frame) of each packet-out the link sent."""
    out = []
    for msg in link.sent:
        raw = msg.with_xid(1)
        in_port, actions_len = int.from_bytes(raw[12:16], "big"), int.from_bytes(raw[16:18], "big")
        port = int.from_bytes(raw[24 + 4:24 + 8], "big")
        out.append((in_port, port, raw[24 + actions_len:]))
    return out


def test_the_link_answers_out_the_askers_port() -> None:
    link, agent = FakeLink(), DnsLink("unused", FakeReplica(VIEW))
    assert APP.ofport is not None
    agent.handle(link, packet_in(APP.ofport, frame(NAME_Q.to_wire())))  # type: ignore[arg-type]
    [(in_port, port, data)] = sent_frames(link)
    assert (in_port, port) == (OFPP_CONTROLLER, APP.ofport)
    assert rcode_of(data) == (dns.rcode.NOERROR, [WEB.ip])
    agent.handle(link, packet_in(77, frame(NAME_Q.to_wire())))  # type: ignore[arg-type]
    assert len(link.sent) == 1 and agent.counts["answer"] == 1 and agent.counts["dropped"] == 1


def test_a_port_asking_too_fast_is_limited_then_refilled() -> None:
    now = [0.0]
    buckets = Buckets(rate=10, burst=3, clock=lambda: now[0])
    assert [buckets.take(5) for _ in range(4)] == [True, True, True, False]
    assert buckets.take(6)  # another port has its own bucket
    now[0] = 0.1  # one token back
    assert [buckets.take(5) for _ in range(2)] == [True, False]


def test_upstreams_never_include_our_own_resolver_addresses() -> None:
    assert upstreams_from(["169.254.53.53", "192.0.2.53", "fd00:da01::53"]) == ("192.0.2.53",)


@pytest.mark.parametrize("upstream_ok", [True, False], ids=["answered", "silent"])
def test_forwarded_names_get_the_upstreams_answer_or_servfail(monkeypatch: pytest.MonkeyPatch,
                                                              upstream_ok: bool) -> None:
    asked: list[tuple[str, str]] = []

    async def fake_udp(q: dns.message.Message, where: str, **_: Any) -> dns.message.Message:
        asked.append((where, q.question[0].name.to_text()))
        if not upstream_ok:
            raise dns.exception.Timeout
        r = dns.message.make_response(q)
        r.answer.append(dns.rrset.from_text(q.question[0].name, 60, "IN", "A", "192.0.2.80"))
        return r

    monkeypatch.setattr(dns_link.dns.asyncquery, "udp", fake_udp)
    link, agent = FakeLink(), DnsLink("unused", FakeReplica(VIEW), upstreams=("192.0.2.53",))
    assert APP.ofport is not None

    async def run() -> None:
        query = frame(question("example.org.").to_wire())
        agent.handle(link, packet_in(APP.ofport or 0, query))  # type: ignore[arg-type]
        await asyncio.gather(*agent._forwards)

    asyncio.run(run())
    assert asked == [("192.0.2.53", "example.org.")]
    [(_, port, data)] = sent_frames(link)
    assert port == APP.ofport
    if upstream_ok:
        assert rcode_of(data) == (dns.rcode.NOERROR, ["192.0.2.80"])
        assert agent.counts["forwarded"] == 1
    else:
        assert rcode_of(data) == (dns.rcode.SERVFAIL, [])
        assert agent.counts["upstream_failed"] == 1


def test_buckets_of_ports_gone_quiet_are_forgotten() -> None:
    now = [0.0]
    buckets = Buckets(rate=10, burst=3, clock=lambda: now[0])
    for port in range(4096):
        assert buckets.take(port)
    now[0] = 1.0  # every one refilled
    assert buckets.take(99999)
    assert len(buckets._tokens) == 1  # only the port that just asked
