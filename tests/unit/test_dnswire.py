"""decide/dnswire.py on the wire: query frames built with dnspython + os-ken, replies
read back with os-ken (every checksum recomputed here, independently) and dnspython
(id, flags, question, records, TTL, rcode), over IPv4 and IPv6, with and without EDNS."""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass

import dns.edns
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import dns.tsigkeyring
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from os_ken.lib.packet import ethernet, ipv4, ipv6, packet, tcp, udp, vlan
from test_icmp import inet_checksum

from daolinet.decide.dnswire import (
    EDNS_PAYLOAD,
    Malformed,
    Query,
    Refuse,
    answer_frame,
    error_frame,
    forwarded_frame,
    nxdomain_frame,
    parse_query,
    query_payload,
)
from daolinet.pipeline import GATEWAY_MAC

ASKER_MAC, ASKER4, ASKER6, GATEWAY4 = "02:00:00:00:00:01", "10.1.0.11", "fd00:1::11", "10.1.0.1"
RESOLVER4, RESOLVER6 = "169.254.53.53", "fd00:da01::53"
PORT = 40123


def question(name: str = "web.net1.", rdtype: str = "A", edns: int | None = None, payload: int = 1232,
             id_: int = 0x4242, rd: bool = True) -> dns.message.Message:
    return dns.message.make_query(name, rdtype, use_edns=edns, payload=None if edns is None else payload,
                                  id=id_, flags=dns.flags.RD if rd else 0)


def frame(dns_bytes: bytes, version: int = 4, dst: str = "", sport: int = PORT, dport: int = 53) -> bytes:
    pkt = packet.Packet()
    if version == 4:
        pkt.add_protocol(ethernet.ethernet(dst=GATEWAY_MAC, src=ASKER_MAC, ethertype=0x0800))
        pkt.add_protocol(ipv4.ipv4(src=ASKER4, dst=dst or GATEWAY4, proto=17, ttl=64))
    else:
        pkt.add_protocol(ethernet.ethernet(dst=GATEWAY_MAC, src=ASKER_MAC, ethertype=0x86DD))
        pkt.add_protocol(ipv6.ipv6(src=ASKER6, dst=dst or RESOLVER6, nxt=17, hop_limit=64))
    pkt.add_protocol(udp.udp(src_port=sport, dst_port=dport))
    pkt.add_protocol(dns_bytes)
    pkt.serialize()
    return bytes(pkt.data)


def parsed(msg: dns.message.Message, version: int = 4, dst: str = "") -> Query:
    query = parse_query(frame(msg.to_wire(), version, dst))
    assert isinstance(query, Query), query
    return query


@dataclass
class Reply:
    ip: ipv4.ipv4 | ipv6.ipv6
    udp: udp.udp
    wire: bytes
    message: dns.message.Message


def open_reply(data: bytes, query: Query) -> Reply:
    """Read a reply frame back, asserting its framing and every checksum."""
    protocols = packet.Packet(data).protocols
    eth, ip, dgram = protocols[0], protocols[1], protocols[2]
    assert (eth.src, eth.dst) == (GATEWAY_MAC, ASKER_MAC)
    assert (ip.src, ip.dst) == (query.ip_dst, query.ip_src)
    assert (dgram.src_port, dgram.dst_port) == (53, PORT)
    if query.version == 4:
        assert (eth.ethertype, ip.ttl, ip.proto) == (0x0800, 64, 17)
        header = data[14:34]
        assert inet_checksum(header) == 0, "IPv4 header checksum"
        segment = data[34:14 + ip.total_length]
        pseudo = (ipaddress.IPv4Address(ip.src).packed + ipaddress.IPv4Address(ip.dst).packed
                  + struct.pack("!BBH", 0, 17, len(segment)))
    else:
        assert (eth.ethertype, ip.hop_limit, ip.nxt) == (0x86DD, 64, 17)
        segment = data[54:54 + ip.payload_length]
        pseudo = (ipaddress.IPv6Address(ip.src).packed + ipaddress.IPv6Address(ip.dst).packed
                  + struct.pack("!IxxxB", len(segment), 17))
    assert dgram.total_length == len(segment)
    assert dgram.csum != 0, "the UDP checksum is always set"
    assert inet_checksum(pseudo + segment) == 0, "UDP checksum"
    wire = segment[8:]
    return Reply(ip, dgram, wire, dns.message.from_wire(wire))


def addresses_of(msg: dns.message.Message) -> list[str]:
    """The addresses answered, sorted (an RRset is a set: dnspython keeps no order)."""
    return sorted((rd.address for rrset in msg.answer for rd in rrset), key=ipaddress.ip_address)


# --- reading queries


@pytest.mark.parametrize(("version", "dst"),
                         [(4, GATEWAY4), (4, RESOLVER4), (6, RESOLVER6), (6, "fd00:1::1")])
def test_a_query_is_read_with_its_framing(version: int, dst: str) -> None:
    query = parsed(question("Web.Net1.", "AAAA", id_=777), version, dst)
    assert (query.eth_src, query.eth_dst, query.version) == (ASKER_MAC, GATEWAY_MAC, version)
    assert (query.ip_src, query.ip_dst, query.udp_src) == (ASKER4 if version == 4 else ASKER6, dst, PORT)
    assert (query.id, query.qname, query.qtype) == (777, "Web.Net1.", 28)
    assert not query.edns and query.limit == 512


@pytest.mark.parametrize(("payload", "limit"), [(4096, 1232), (1232, 1232), (800, 800), (100, 512)])
def test_the_edns_payload_sets_the_limit(payload: int, limit: int) -> None:
    query = parsed(question(edns=0, payload=payload))
    assert query.edns and query.limit == limit


def _with_opcode(opcode: dns.opcode.Opcode) -> bytes:
    msg = question()
    msg.set_opcode(opcode)
    return bytes(msg.to_wire())


def _two_questions() -> bytes:
    msg = question()
    msg.question.append(dns.rrset.RRset(dns.name.from_text("db.net1."), dns.rdataclass.IN, dns.rdatatype.A))
    return bytes(msg.to_wire())


def _no_question() -> bytes:
    msg = question()
    msg.question = []
    return bytes(msg.to_wire())


def _chaos() -> bytes:
    return bytes(dns.message.make_query("version.bind.", "TXT", "CH", id=0x4242).to_wire())


@pytest.mark.parametrize(("wire", "rcode"), [
    (_with_opcode(dns.opcode.NOTIFY), dns.rcode.NOTIMP),
    (_with_opcode(dns.opcode.STATUS), dns.rcode.NOTIMP),
    (_two_questions(), dns.rcode.FORMERR),
    (_no_question(), dns.rcode.FORMERR),
    (_chaos(), dns.rcode.REFUSED),
    (question(rdtype="AXFR").to_wire(), dns.rcode.REFUSED),
    (question(rdtype="IXFR").to_wire(), dns.rcode.REFUSED),
    (question(edns=1).to_wire(), dns.rcode.BADVERS),
], ids=["notify", "status", "two-questions", "no-question", "chaos", "axfr", "ixfr", "edns1"])
def test_queries_we_do_not_resolve_are_refused_with_an_answer(wire: bytes, rcode: dns.rcode.Rcode) -> None:
    got = parse_query(frame(wire))
    assert isinstance(got, Refuse) and got.rcode == rcode, got
    reply = open_reply(error_frame(got.query, got.rcode), got.query)
    assert reply.message.id == 0x4242 and reply.message.rcode() == rcode
    assert reply.message.flags & dns.flags.QR and not reply.message.flags & dns.flags.AA


def test_any_is_resolved_not_refused() -> None:
    assert isinstance(parse_query(frame(question(rdtype="ANY").to_wire())), Query)


def _response() -> bytes:
    return bytes(dns.message.make_response(question()).to_wire())


def _signed() -> bytes:
    msg = question()
    msg.use_tsig(dns.tsigkeyring.from_text({"key.": "c2VjcmV0c2VjcmV0c2VjcmV0"}), "key.")
    return bytes(msg.to_wire())


def _tagged() -> bytes:
    pkt = packet.Packet()
    pkt.add_protocol(ethernet.ethernet(dst=GATEWAY_MAC, src=ASKER_MAC, ethertype=0x8100))
    pkt.add_protocol(vlan.vlan(vid=5, ethertype=0x0800))
    pkt.add_protocol(ipv4.ipv4(src=ASKER4, dst=GATEWAY4, proto=17))
    pkt.add_protocol(udp.udp(src_port=PORT, dst_port=53))
    pkt.add_protocol(question().to_wire())
    pkt.serialize()
    return bytes(pkt.data)


def _tcp() -> bytes:
    pkt = packet.Packet()
    pkt.add_protocol(ethernet.ethernet(dst=GATEWAY_MAC, src=ASKER_MAC, ethertype=0x0800))
    pkt.add_protocol(ipv4.ipv4(src=ASKER4, dst=GATEWAY4, proto=6))
    pkt.add_protocol(tcp.tcp(src_port=PORT, dst_port=53))
    pkt.add_protocol(question().to_wire())
    pkt.serialize()
    return bytes(pkt.data)


def _fragment() -> bytes:
    data = bytearray(frame(question().to_wire()))
    data[20] |= 0x20  # IPv4 "more fragments" (the header checksum is not checked on input)
    return bytes(data)


WIRE = bytes(question().to_wire())


@pytest.mark.parametrize("data", [
    frame(_response()), frame(_signed()), frame(b"\x12\x34not dns at all"), frame(b""),
    frame(WIRE, dport=54), frame(WIRE, sport=0), frame(WIRE)[:-3], frame(WIRE, 6)[:-1],
    _tagged(), _tcp(), _fragment(), b"", b"\x00" * 13,
], ids=["response", "tsig", "junk", "empty", "port-54", "port-0", "cut-v4", "cut-v6", "vlan", "tcp",
        "fragment", "nothing", "short"])
def test_what_is_not_a_query_we_can_answer_is_dropped(data: bytes) -> None:
    assert isinstance(parse_query(data), Malformed)


# --- answers


@pytest.mark.parametrize("rd", [True, False])
@pytest.mark.parametrize("version", [4, 6])
def test_an_answer_carries_the_records_flags_and_question_as_asked(version: int, rd: bool) -> None:
    query = parsed(question("wEb.NET1.", "A", id_=0xBEEF, rd=rd), version)
    reply = open_reply(answer_frame(query, ("10.1.0.12", "10.1.0.13"), 0), query)
    msg = reply.message
    assert msg.id == 0xBEEF and msg.rcode() == dns.rcode.NOERROR
    wanted = dns.flags.QR | dns.flags.AA | dns.flags.RA
    assert msg.flags & wanted == wanted
    assert bool(msg.flags & dns.flags.RD) == rd and not msg.flags & dns.flags.TC
    assert [(q.name.to_text(), q.rdtype) for q in msg.question] == [("wEb.NET1.", dns.rdatatype.A)]
    assert addresses_of(msg) == ["10.1.0.12", "10.1.0.13"]
    assert [(r.name.to_text(), r.ttl, r.rdtype) for r in msg.answer] == [("wEb.NET1.", 0, dns.rdatatype.A)]
    assert msg.edns == -1, "no EDNS asked, none given"


def test_aaaa_answers_with_the_ttl_given() -> None:
    query = parsed(question(rdtype="AAAA", edns=0, payload=4096), 6)
    msg = open_reply(answer_frame(query, ["fd00:1::12"], 30), query).message
    assert addresses_of(msg) == ["fd00:1::12"] and msg.answer[0].ttl == 30
    assert msg.edns == 0 and msg.payload == EDNS_PAYLOAD


@pytest.mark.parametrize("rdtype", ["A", "AAAA", "MX", "ANY"])
def test_no_addresses_is_nodata(rdtype: str) -> None:
    query = parsed(question(rdtype=rdtype))
    msg = open_reply(answer_frame(query, (), 0), query).message
    assert msg.rcode() == dns.rcode.NOERROR and msg.answer == [] and msg.flags & dns.flags.AA


@pytest.mark.parametrize(("rdtype", "addresses"), [("A", ["fd00:1::12"]), ("AAAA", ["10.1.0.12"]),
                                                   ("MX", ["10.1.0.12"]), ("A", ["web"])])
def test_addresses_that_do_not_answer_the_type_are_a_programming_error(rdtype: str,
                                                                       addresses: list[str]) -> None:
    with pytest.raises(ValueError, match=r"do not answer|does not appear"):
        answer_frame(parsed(question(rdtype=rdtype)), addresses, 0)


def test_nxdomain_is_authoritative_and_errors_are_not() -> None:
    query = parsed(question("nobody.", id_=9), 6)
    nx = open_reply(nxdomain_frame(query), query).message
    assert nx.rcode() == dns.rcode.NXDOMAIN and nx.flags & dns.flags.AA and nx.id == 9
    assert nx.question[0].name.to_text() == "nobody." and nx.answer == []
    fail = open_reply(error_frame(query, dns.rcode.SERVFAIL), query).message
    assert fail.rcode() == dns.rcode.SERVFAIL and not fail.flags & dns.flags.AA


def _many(n: int) -> list[str]:
    return [f"10.1.{i // 250}.{i % 250 + 1}" for i in range(n)]


@pytest.mark.parametrize(("edns", "payload", "count", "limit", "truncated"), [
    (None, 0, 25, 512, False), (None, 0, 40, 512, True),
    (0, 4096, 70, 1232, False), (0, 4096, 100, 1232, True),
    (0, 700, 40, 700, False), (0, 700, 60, 700, True),
])
def test_answers_too_big_for_the_asker_are_truncated(edns: int | None, payload: int, count: int,
                                                      limit: int, truncated: bool) -> None:
    query = parsed(question(edns=edns, payload=payload or 1232))
    reply = open_reply(answer_frame(query, _many(count), 0), query)
    assert len(reply.wire) <= limit
    assert bool(reply.message.flags & dns.flags.TC) == truncated
    if truncated:
        assert len(addresses_of(reply.message)) < count
    else:
        assert addresses_of(reply.message) == _many(count)


@pytest.mark.parametrize("version", [4, 6])
def test_a_checksum_that_sums_to_zero_is_sent_as_all_ones(version: int) -> None:
    """Only the DNS id changes between the two replies, so the first one's checksum, taken
    as the id, makes the second one's sum come to zero (RFC 768: sent as 0xFFFF)."""
    first = parsed(question(id_=0), version)
    checksum = open_reply(answer_frame(first, (), 0), first).udp.csum
    second = parsed(question(id_=checksum), version)
    reply = open_reply(answer_frame(second, (), 0), second)  # checks the sum
    assert reply.udp.csum == 0xFFFF


# --- forwarding


def upstream_answer(payload: bytes, count: int, edns: bool = True) -> dns.message.Message:
    asked = dns.message.from_wire(payload)
    reply = dns.message.make_response(asked)
    if not edns:
        reply.use_edns(False)
    name = asked.question[0].name
    reply.answer.append(dns.rrset.from_text_list(name, 300, "IN", "A", _many(count)))
    return reply


def test_the_upstream_query_is_fresh_not_the_askers_bytes() -> None:
    asked = question("www.Example.ORG.", "AAAA", edns=0, payload=4096, id_=1)
    asked.use_edns(0, dns.flags.DO, 4096, options=[dns.edns.CookieOption(b"c" * 8, b"")])
    asked.flags |= dns.flags.CD
    query = parsed(asked)
    sent = dns.message.from_wire(query_payload(query, 0xA5A5))
    assert sent.id == 0xA5A5 and sent.flags & dns.flags.RD and sent.flags & dns.flags.CD
    assert [(q.name.to_text(), q.rdtype) for q in sent.question] == [("www.Example.ORG.", 28)]
    assert sent.edns == 0 and sent.payload == EDNS_PAYLOAD and sent.options == ()
    assert sent.ednsflags & dns.flags.DO


@pytest.mark.parametrize("version", [4, 6])
def test_an_upstream_answer_goes_to_the_asker_with_its_id(version: int) -> None:
    query = parsed(question("www.example.org.", edns=0, id_=0x1111), version)
    upstream = upstream_answer(query_payload(query, 0x2222), 3)
    data = forwarded_frame(query, upstream.to_wire(), 0x2222)
    assert data is not None
    msg = open_reply(data, query).message
    assert msg.id == 0x1111 and msg.rcode() == dns.rcode.NOERROR and msg.flags & dns.flags.RA
    assert addresses_of(msg) == _many(3) and msg.answer[0].ttl == 300
    assert msg.question[0].name.to_text() == "www.example.org." and msg.edns == 0


def test_a_big_upstream_answer_is_truncated_for_an_asker_without_edns() -> None:
    query = parsed(question("www.example.org."))
    upstream = upstream_answer(query_payload(query, 7), 60)
    assert len(upstream.to_wire()) > 512
    data = forwarded_frame(query, upstream.to_wire(), 7)
    assert data is not None
    reply = open_reply(data, query)
    assert len(reply.wire) <= 512 and reply.message.flags & dns.flags.TC and reply.message.edns == -1


def test_an_extended_rcode_the_asker_cannot_see_becomes_servfail() -> None:
    query = parsed(question("www.example.org."))
    upstream = dns.message.make_response(dns.message.from_wire(query_payload(query, 7)))
    upstream.set_rcode(dns.rcode.BADCOOKIE)
    data = forwarded_frame(query, upstream.to_wire(), 7)
    assert data is not None
    assert open_reply(data, query).message.rcode() == dns.rcode.SERVFAIL


def test_an_upstream_error_without_question_gets_the_askers_question() -> None:
    query = parsed(question("WWW.example.org."))
    upstream = dns.message.make_response(dns.message.from_wire(query_payload(query, 7)))
    upstream.set_rcode(dns.rcode.REFUSED)
    upstream.question = []
    data = forwarded_frame(query, upstream.to_wire(), 7)
    assert data is not None
    msg = open_reply(data, query).message
    assert msg.rcode() == dns.rcode.REFUSED and msg.question[0].name.to_text() == "WWW.example.org."


def test_upstream_replies_to_something_else_are_dropped() -> None:
    query = parsed(question("www.example.org."))
    good = upstream_answer(query_payload(query, 7), 1)
    other = upstream_answer(query_payload(parsed(question("evil.example.org.")), 7), 1)
    not_reply = dns.message.from_wire(query_payload(query, 7))
    assert forwarded_frame(query, good.to_wire(), 8) is None, "another id"
    assert forwarded_frame(query, other.to_wire(), 7) is None, "another question"
    assert forwarded_frame(query, not_reply.to_wire(), 7) is None, "a query, not a reply"
    assert forwarded_frame(query, b"\x00\x07junk", 7) is None
    assert forwarded_frame(query, good.to_wire(), 7) is not None


# --- robustness


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes_never_raise(data: bytes) -> None:
    assert isinstance(parse_query(data), Query | Refuse | Malformed)


SEEDS = [frame(question(rdtype=t, edns=e).to_wire(), v)
         for t in ("A", "AAAA") for e in (None, 0) for v in (4, 6)]


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(data) - 1))
        match draw(st.sampled_from(["set", "cut", "insert"])):
            case "set":
                data[at] = draw(st.integers(0, 255))
            case "cut":
                del data[at:]
            case _:
                data.insert(at, draw(st.integers(0, 255)))
        if not data:
            break
    return bytes(data)


@settings(max_examples=1000, deadline=None)
@given(mutated())
def test_mutated_queries_never_raise_and_what_parses_can_be_answered(data: bytes) -> None:
    got = parse_query(data)
    if isinstance(got, Refuse):
        parse_query(error_frame(got.query, got.rcode))
    elif isinstance(got, Query):
        assert isinstance(parse_query(nxdomain_frame(got)), Malformed), "a reply is never a query"
        answer_frame(got, (), 0)
        forwarded_frame(got, bytes(data[42:]), got.id)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_random_upstream_replies_never_raise(data: bytes) -> None:
    query = parsed(question(edns=0))
    assert forwarded_frame(query, data, query.id) is None
