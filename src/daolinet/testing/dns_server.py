"""`python -m daolinet.testing.dns_server ZONE ADDRESS`: a resolver for the lab's outside world
(tests only).  It answers A for ZONE and every name under it with ADDRESS, NXDOMAIN for the
rest, on UDP port 53 of every address; says "listening" once bound, then prints each name it
is asked, one a line, so a test can tell what reached it (the hosts' agents forward what is
not a container's name to it: docs/names.md)."""

from __future__ import annotations

import socket
import sys

import dns.message
import dns.name
import dns.rcode
import dns.rrset


def main(zone_text: str, address: str) -> None:
    zone = dns.name.from_text(zone_text)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("0.0.0.0", 53))
    print("listening", flush=True)
    while True:
        data, peer = sock.recvfrom(4096)
        try:
            query = dns.message.from_wire(data)
        except dns.exception.DNSException:
            continue
        question = query.question[0]
        print(question.name.to_text(), flush=True)
        reply = dns.message.make_response(query)
        if question.name.is_subdomain(zone):
            reply.answer.append(dns.rrset.from_text(question.name, 60, "IN", "A", address))
        else:
            reply.set_rcode(dns.rcode.NXDOMAIN)
        sock.sendto(reply.to_wire(), peer)


if __name__ == "__main__":
    main(*sys.argv[1:3])
