"""decide/icmp6.py on anything: an answer only to what it answers (an echo request; an
underlay router's unreachable, packet too big or time exceeded), never an exception."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from os_ken.lib.packet import icmpv6
from test_route6 import A, B, frame6

from daolinet.decide import icmp6
from daolinet.pipeline import GATEWAY_MAC

PING = frame6(A.mac, GATEWAY_MAC, A.ip6, "fd00:1::1", proto=58)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=120), st.integers(0, 120))
def test_junk_and_truncated_frames_never_raise(junk: bytes, cut: int) -> None:
    for data in (junk, PING[:cut], PING[:14] + junk):
        icmp6.echo_reply(data, GATEWAY_MAC)
        icmp6.original_packet(data, A.ip6, B.ip6)
        icmp6.relay_error(data, A.ip6, A.mac, GATEWAY_MAC, lambda ip: ip)


def test_only_an_echo_request_is_answered_and_only_errors_are_relayed() -> None:
    assert icmp6.echo_reply(PING, GATEWAY_MAC) is not None
    reply = frame6(A.mac, GATEWAY_MAC, A.ip6, "fd00:1::1", proto=58,
                   message=icmpv6.icmpv6(icmpv6.ICMPV6_ECHO_REPLY, data=icmpv6.echo(1, 1, b"x")))
    assert icmp6.echo_reply(reply, GATEWAY_MAC) is None
    assert icmp6.relay_error(PING, A.ip6, A.mac, GATEWAY_MAC, lambda ip: ip) is None


def test_a_long_probe_is_embedded_up_to_the_minimum_mtu() -> None:
    big = frame6(A.mac, GATEWAY_MAC, A.ip6, B.ip6, proto=58, message=icmpv6.icmpv6(
        icmpv6.ICMPV6_ECHO_REQUEST, data=icmpv6.echo(1, 1, bytes(2000))))
    embedded = icmp6.original_packet(big, A.ip6, B.ip6)
    assert embedded is not None
    answer = icmp6.time_exceeded(embedded, "fd00:1::1", GATEWAY_MAC, A.ip6, A.mac)
    assert len(answer) - 14 == icmp6.MIN_MTU
