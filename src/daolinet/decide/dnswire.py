"""A container's DNS query frame in, the reply frame out (issue 18, "Names").

Pure, no socket: the agent's DNS link (agent/dns_link.py) receives the whole
Ethernet frame of a PacketIn, asks `parse_query`, hands the question to
`decide.names.resolve`, and sends back as a PacketOut to the asker's port what
`answer_frame`, `nxdomain_frame`, `error_frame` or `forwarded_frame` build.  Ethernet, IP
and UDP go through os-ken's packet library, the DNS message through dnspython; nothing is
parsed by hand.

What `parse_query` returns, and what the caller does with it:

- `Query`: a standard query (opcode QUERY, QR=0, one question, class IN, EDNS version 0 or
  none, not a zone transfer or other meta type except ANY): resolve it.
- `Refuse`: a DNS query we will not resolve, answered at once with `error_frame(r.query,
  r.rcode)`: another opcode -> NOTIMP; zero or several questions -> FORMERR; a class other
  than IN, or a meta type (AXFR, IXFR, OPT, TSIG, ...) -> REFUSED; EDNS version > 0 -> BADVERS.
- `Malformed`: dropped, never answered: not Ethernet + IPv4/IPv6 + UDP to port 53 (a VLAN
  tag, IPv6 extension headers, IPv4 fragments, a truncated datagram), a payload dnspython
  cannot read (no id to trust), a TSIG-signed message (we hold no key), or a *response*
  (answering those would let two resolvers bounce a packet forever).

The incoming UDP checksum is not checked: a container's veth with TX offload hands the
datapath partial checksums, and the frame came over the anti-spoofed port anyway.

The reply comes *from the address that was asked* (the gateway, or 169.254.53.53 /
fd00:da01::53) and from the MAC the query was sent to (the gateway MAC, the only one a
container knows): stub resolvers (glibc, musl) use connected sockets and drop an answer
from any other address.  IPv4 TTL / IPv6 hop limit 64; the UDP checksum is always set (IPv6
forbids none) with a computed zero sent as 0xFFFF (RFC 768).

DNS flags: id and question echoed exactly as asked (case included: resolvers that use
0x20 randomisation compare it), QR=1, RD copied, RA=1 (we forward what is not ours).
AA=1 on answers and NXDOMAIN about the tenant's names - we are their authority - and not on
errors.  The TTL is the caller's (`names.TTL`, 0).

Size: a reply fits what the asker takes - 512 bytes without EDNS, else its EDNS payload
capped at 1232 (no IP fragmentation on any link of 1280 or more) - rendered by dnspython
with `prefer_truncation`, which drops what does not fit and sets TC when the cut falls
before the additional section.  A truncated answer makes the asker retry over TCP, which
we do not serve (issue 18: UDP only), so names with huge answers stay out of reach.

Forwarding: `query_payload` is *not* the asker's bytes but a fresh query for the same
question with an id the caller picks (random, per upstream socket: the asker's id is
predictable and collides between containers), RD and CD copied, EDNS 0 with payload 1232,
the asker's DO bit and no EDNS options (its cookie and padding belong to its own
conversation; a client subnet option would leak it upstream).  `forwarded_frame` takes the
upstream reply only if dnspython's `is_response` says it answers that query, gives it the
asker's id and question back, sets EDNS as the asker used it (an extended rcode the asker
cannot see becomes SERVFAIL), and truncates as above; anything else -> None (drop it).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

import dns.exception
import dns.flags
import dns.message
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
from os_ken.lib.packet import ethernet, ipv4, ipv6, packet, udp

DNS_PORT = 53
HOP_LIMIT = 64  # IPv4 TTL and IPv6 hop limit of every reply
PLAIN_SIZE = 512  # the most a resolver without EDNS takes (RFC 1035)
EDNS_PAYLOAD = 1232  # what we take and give with EDNS (DNS flag day 2020)
ETH_IP, ETH_IP6, IP_UDP = 0x0800, 0x86DD, 17
_FAMILY = {int(dns.rdatatype.A): 4, int(dns.rdatatype.AAAA): 6}  # the IP version each type answers


@dataclass(frozen=True)
class Query:
    """A DNS query from a container, with the framing its reply needs."""

    eth_src: str  # the asker's MAC
    eth_dst: str  # the MAC it was sent to: the gateway MAC
    version: int  # 4 or 6
    ip_src: str  # the asker
    ip_dst: str  # the address asked: a gateway or a resolver address
    udp_src: int  # the asker's port
    message: dns.message.Message

    @property
    def id(self) -> int:
        return int(self.message.id)

    @property
    def qname(self) -> str:
        """The name as asked, in text form with the trailing dot ("" without a question)."""
        return self.message.question[0].name.to_text() if self.message.question else ""

    @property
    def qtype(self) -> int:
        return int(self.message.question[0].rdtype) if self.message.question else 0

    @property
    def edns(self) -> bool:
        return bool(self.message.edns >= 0)

    @property
    def limit(self) -> int:
        """The largest reply the asker takes, in bytes of DNS message."""
        if not self.edns:
            return PLAIN_SIZE
        return max(PLAIN_SIZE, min(int(self.message.payload), EDNS_PAYLOAD))


@dataclass(frozen=True)
class Refuse:
    """A query answered only with `error_frame(query, rcode)`; `reason` is for logs."""

    query: Query
    rcode: dns.rcode.Rcode
    reason: str


@dataclass(frozen=True)
class Malformed:
    """A frame not answered at all."""

    reason: str


def parse_query(frame: bytes) -> Query | Refuse | Malformed:
    """Read a container's DNS query frame; never raises."""
    carried = _datagram(frame)
    if isinstance(carried, Malformed):
        return carried
    framing, wire = carried
    try:
        message = dns.message.from_wire(wire)
    except (dns.exception.DNSException, ValueError) as exc:
        return Malformed(f"not a DNS message: {exc!r}")
    if message.flags & dns.flags.QR:
        return Malformed("a DNS response, not a query")
    query = Query(*framing, message=message)
    problem = _problem(message)
    return query if problem is None else Refuse(query, *problem)


def answer_frame(query: Query, addresses: tuple[str, ...] | list[str], ttl: int) -> bytes:
    """NOERROR with one A or AAAA record per address (none: NODATA).  Raises ValueError
    for addresses of the wrong family, or any for a type other than A/AAAA."""
    response = _response(query, dns.rcode.NOERROR, authoritative=True)
    if addresses:
        question = query.message.question[0]
        family = _FAMILY.get(int(question.rdtype))
        if family is None or any(ipaddress.ip_address(a).version != family for a in addresses):
            raise ValueError(f"addresses {list(addresses)} do not answer type "
                             f"{dns.rdatatype.to_text(question.rdtype)}")
        response.answer.append(dns.rrset.from_text_list(question.name, ttl, dns.rdataclass.IN,
                                                        question.rdtype, [str(a) for a in addresses]))
    return _frame(query, response)


def nxdomain_frame(query: Query) -> bytes:
    """NXDOMAIN, authoritative: the name is none of the tenant's the asker may reach."""
    return _frame(query, _response(query, dns.rcode.NXDOMAIN, authoritative=True))


def error_frame(query: Query, rcode: dns.rcode.Rcode) -> bytes:
    """An answer without records: SERVFAIL when the resolver's view is stale or upstream
    fails, and the `Refuse` rcodes."""
    return _frame(query, _response(query, rcode, authoritative=False))


def upstream_query(query: Query, upstream_id: int) -> dns.message.Message:
    """The query to send upstream for `query` (see the module docstring)."""
    question = query.message.question[0]
    dnssec = bool(query.edns and query.message.ednsflags & dns.flags.DO)
    return dns.message.make_query(question.name, question.rdtype, question.rdclass, use_edns=0,
                                  want_dnssec=dnssec, payload=EDNS_PAYLOAD, id=upstream_id,
                                  flags=dns.flags.RD | (query.message.flags & dns.flags.CD))


def query_payload(query: Query, upstream_id: int) -> bytes:
    """The UDP payload to send to an upstream resolver."""
    return bytes(upstream_query(query, upstream_id).to_wire())


def forwarded_frame(query: Query, upstream_reply: bytes, upstream_id: int) -> bytes | None:
    """The upstream resolver's reply as a frame to the asker, or None if it does not answer
    `query_payload(query, upstream_id)` (or cannot be read); never raises."""
    try:
        reply = dns.message.from_wire(upstream_reply)
        if not upstream_query(query, upstream_id).is_response(reply):
            return None
        rcode = reply.rcode()
        reply.id = query.id
        reply.question = list(query.message.question)
        reply.flags |= dns.flags.RA
        if query.edns:
            dnssec = reply.ednsflags & dns.flags.DO if reply.edns >= 0 else 0
            reply.use_edns(0, dnssec, EDNS_PAYLOAD, options=[])
        else:
            reply.use_edns(False)
            rcode = rcode if rcode <= 0xF else dns.rcode.SERVFAIL
        reply.set_rcode(rcode)
        return _frame(query, reply)
    except (dns.exception.DNSException, ValueError):
        return None


def _problem(message: dns.message.Message) -> tuple[dns.rcode.Rcode, str] | None:
    """Why a query (QR=0) is refused, or None for a standard query we resolve."""
    if message.opcode() != dns.opcode.QUERY:
        return dns.rcode.NOTIMP, f"opcode {dns.opcode.to_text(message.opcode())}"
    if message.edns > 0:
        return dns.rcode.BADVERS, f"EDNS version {message.edns}"
    if len(message.question) != 1:
        return dns.rcode.FORMERR, f"{len(message.question)} questions"
    question = message.question[0]
    if question.rdclass != dns.rdataclass.IN:
        return dns.rcode.REFUSED, f"class {dns.rdataclass.to_text(question.rdclass)}"
    if dns.rdatatype.is_metatype(question.rdtype) and question.rdtype != dns.rdatatype.ANY:
        return dns.rcode.REFUSED, f"type {dns.rdatatype.to_text(question.rdtype)}"
    return None


_Framing = tuple[str, str, int, str, str, int]


def _datagram(frame: bytes) -> tuple[_Framing, bytes] | Malformed:
    """The framing of an untagged Ethernet/IPv4|IPv6/UDP datagram to port 53, and its payload."""
    try:
        protocols = packet.Packet(frame).protocols
    except Exception:  # noqa: BLE001 -- os-ken's parser may raise anything on a bad frame
        return Malformed("not a frame os-ken can read")
    if len(protocols) < 3 or not isinstance(protocols[0], ethernet.ethernet):
        return Malformed("not Ethernet + IP + UDP")
    eth, ip, datagram = protocols[0], protocols[1], protocols[2]
    if isinstance(ip, ipv4.ipv4):
        if ip.header_length < 5 or ip.offset or ip.flags & 1 or ip.proto != IP_UDP:
            return Malformed("an IPv4 fragment, or not UDP")
    elif not isinstance(ip, ipv6.ipv6) or ip.nxt != IP_UDP:
        return Malformed("not IPv4 or IPv6 with UDP right after the header")
    if not isinstance(datagram, udp.udp) or datagram.dst_port != DNS_PORT or datagram.src_port == 0:
        return Malformed("not UDP to port 53 from a port we can answer")
    payload = protocols[3] if len(protocols) == 4 and isinstance(protocols[3], bytes) else b""
    if len(protocols) > 4 or datagram.total_length < 8 or len(payload) != datagram.total_length - 8:
        return Malformed("a truncated UDP datagram")
    framing = (str(eth.src), str(eth.dst), int(ip.version), str(ip.src), str(ip.dst),
               int(datagram.src_port))
    return framing, bytes(payload)


def _response(query: Query, rcode: dns.rcode.Rcode, authoritative: bool) -> dns.message.Message:
    response = dns.message.make_response(query.message, recursion_available=True,
                                         our_payload=EDNS_PAYLOAD, pad=0)
    if authoritative:
        response.flags |= dns.flags.AA
    response.set_rcode(rcode)
    return response


def _frame(query: Query, message: dns.message.Message) -> bytes:
    """`message` rendered to fit the asker, from the address it asked back to it."""
    payload = message.to_wire(max_size=query.limit, prefer_truncation=True)
    ip: ipv4.ipv4 | ipv6.ipv6
    if query.version == 4:
        ip = ipv4.ipv4(src=query.ip_dst, dst=query.ip_src, proto=IP_UDP, ttl=HOP_LIMIT)
    else:
        ip = ipv6.ipv6(src=query.ip_dst, dst=query.ip_src, nxt=IP_UDP, hop_limit=HOP_LIMIT)
    datagram = udp.udp(src_port=DNS_PORT, dst_port=query.udp_src)  # os-ken sums it (csum 0)
    pkt = packet.Packet()
    pkt.add_protocol(ethernet.ethernet(dst=query.eth_src, src=query.eth_dst,
                                       ethertype=ETH_IP if query.version == 4 else ETH_IP6))
    pkt.add_protocol(ip)
    pkt.add_protocol(datagram)
    pkt.add_protocol(payload)
    pkt.serialize()
    data = bytearray(pkt.data)
    if datagram.csum == 0:  # a computed zero is sent as all ones: zero means "no checksum"
        at = 14 + len(ip) + 6
        data[at:at + 2] = b"\xff\xff"
    return bytes(data)
