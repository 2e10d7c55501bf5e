"""NXT_CT_FLUSH (flows/conntrack.py), a Nicira message os-ken lacks: its bytes are those
ovs-ofctl ct-flush sends (captured once below, and again live when ovs-ofctl is here),
and a route's flush names exactly its connections on its client's host."""

from __future__ import annotations

import shutil
import socket
import struct
import subprocess
import threading
from pathlib import Path

import pytest

from daolinet.flows.conntrack import ct_flush, flush_route
from daolinet.ofp.codec import parser
from daolinet.pipeline import ROUTE_ICMP_ZONE, ROUTE_ZONE, route_zone
from daolinet.testing.factories import make_endpoint, make_host, make_network
from daolinet.testing.fakeswitch import decode_request

# ovs-ofctl -O OpenFlow13 ct-flush SW zone=5 ct_nw_src=10.0.0.1,ct_nw_dst=10.0.0.2,ct_nw_proto=6,ct_tp_dst=80
# (OVS 3.1.0; its xid was 2, ours are stamped when sent: 0 here)
OVS_TCP = bytes.fromhex(
    "04040060000000000000232000000020060000000000000000000040000000000000001400000000000000000000ffff0a000001"
    "000000000001001400000000000000000000ffff0a0000020000000000030008005000000002000800050000")


def without_xid(data: bytes) -> bytes:
    return data[:4] + bytes(4) + data[8:]


def test_a_tcp_flush_is_byte_for_byte_what_ovs_ofctl_sends() -> None:
    assert ct_flush(5, 6, "10.0.0.1", "10.0.0.2", 80).data == OVS_TCP


def test_the_message_is_a_nicira_experimenter_os_ken_can_read_back() -> None:
    msg = decode_request(ct_flush(5, 6, "10.0.0.1", "10.0.0.2", 80).data)
    assert isinstance(msg, parser.OFPExperimenter)
    assert (msg.experimenter, msg.exp_type) == (0x2320, 32)


def _capture(path: Path, got: list[bytes]) -> None:
    """A switch just good enough for ovs-ofctl: hello, then the barrier it ends with."""
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(path))
    server.listen(1)
    server.settimeout(10)
    conn, _ = server.accept()
    conn.settimeout(10)
    buf = b""
    with conn, server:
        while True:
            while len(buf) >= 8 and len(buf) >= struct.unpack("!H", buf[2:4])[0]:
                n = struct.unpack("!H", buf[2:4])[0]
                msg, buf = buf[:n], buf[n:]
                kind, xid = msg[1], msg[4:8]
                if kind == 0:  # hello
                    conn.sendall(b"\x04\x00\x00\x08" + xid)
                elif kind == 20:  # barrier request
                    conn.sendall(b"\x04\x15\x00\x08" + xid)
                    return
                else:
                    got.append(msg)
            data = conn.recv(65536)
            if not data:
                return
            buf += data


@pytest.mark.skipif(shutil.which("ovs-ofctl") is None, reason="needs ovs-ofctl")
@pytest.mark.parametrize(("args", "ours"), [
    (["zone=5", "ct_nw_src=10.0.0.1,ct_nw_dst=10.0.0.2,ct_nw_proto=6,ct_tp_dst=80"],
     ct_flush(5, 6, "10.0.0.1", "10.0.0.2", 80)),
    (["zone=4", "ct_nw_src=240.1.0.9,ct_nw_dst=240.2.0.7,ct_nw_proto=17,ct_tp_dst=53"],
     ct_flush(4, 17, "240.1.0.9", "240.2.0.7", 53)),
    (["zone=32773", "ct_nw_src=240.0.0.1,ct_nw_dst=240.0.0.2"], ct_flush(32773, 0, "240.0.0.1", "240.0.0.2")),
])
def test_live_ovs_ofctl_sends_the_same_bytes(tmp_path: Path, args: list[str], ours: object) -> None:
    path = tmp_path / "sw.sock"
    got: list[bytes] = []
    thread = threading.Thread(target=_capture, args=(path, got))
    thread.start()
    while not path.exists() and thread.is_alive():
        thread.join(0.01)
    subprocess.run(["ovs-ofctl", "-O", "OpenFlow13", "ct-flush", f"unix:{path}", *args],
                   check=True, timeout=10, capture_output=True)
    thread.join(10)
    assert [without_xid(m) for m in got] == [ours.data]  # type: ignore[attr-defined]


H1, H2 = make_host(1), make_host(2)
NET = make_network(1)
CLIENT, SERVER, NEIGHBOUR = (make_endpoint(1, H1, NET, 2, "c"), make_endpoint(2, H2, NET, 3, "s"),
                             make_endpoint(3, H1, NET, 4, "n"))


def test_a_cross_host_routes_flush_goes_to_its_clients_host_by_pip() -> None:
    dpid, msg = flush_route(CLIENT, SERVER, H1, H2, (6, 80))
    assert dpid == H1.dpid
    assert msg.data == ct_flush(ROUTE_ZONE, 6, CLIENT.pip, SERVER.pip, 80).data


def test_an_icmp_routes_flush_names_addresses_only_in_the_icmp_zone() -> None:
    _, msg = flush_route(CLIENT, SERVER, H1, H2, (1, 8))
    assert msg.data == ct_flush(ROUTE_ICMP_ZONE, 0, CLIENT.pip, SERVER.pip).data


def test_a_same_host_routes_flush_uses_the_clients_zone_and_logical_addresses() -> None:
    _, msg = flush_route(NEIGHBOUR, CLIENT, H1, H1, (17, 53))
    assert NEIGHBOUR.ofport is not None
    assert msg.data == ct_flush(route_zone(17, NEIGHBOUR.ofport), 17, NEIGHBOUR.ip, CLIENT.ip, 53).data
    assert route_zone(17, NEIGHBOUR.ofport) != route_zone(17, CLIENT.ofport)
