"""A switch that is not what it claims: a real TLS (or plain TCP) OpenFlow client
speaking for a datapath id, run inside a lab namespace by the integration tests
(`python -m daolinet.testing.rogue_switch ...`, under nsenter).

It completes the handshake as `FakeSwitch` does, answers whatever the controller
asks for `--hold` seconds, and prints one JSON line: whether the TLS handshake
completed, whether the controller asked for its features, and after how many
seconds (if at all) the controller closed the connection."""

from __future__ import annotations

import argparse
import json
import select
import socket
import ssl
import time
from typing import Any

from daolinet.ofp.codec import parser
from daolinet.security.tls import TlsFiles, client_context
from daolinet.testing.fakeswitch import FakeSwitch


def run(host: str, port: int, dpid: int, hold: float, tls: TlsFiles | None) -> dict[str, Any]:
    out: dict[str, Any] = {"handshake": False, "features_requested": False, "closed_after": None}
    raw = socket.create_connection((host, port), timeout=5)
    try:
        sock: socket.socket = raw
        if tls is not None:
            try:
                sock = client_context(tls).wrap_socket(raw, server_hostname=host)
            except (ssl.SSLError, OSError) as e:
                out["error"] = str(e)
                return out
        out["handshake"] = True
        _converse(sock, FakeSwitch(dpid), hold, out)
    finally:
        raw.close()
    return out


def _converse(sock: socket.socket, switch: FakeSwitch, hold: float, out: dict[str, Any]) -> None:
    start = time.monotonic()
    sock.setblocking(False)
    while (left := hold - (time.monotonic() - start)) > 0:
        data = switch.data_to_send()
        if data:
            sock.setblocking(True)
            sock.sendall(data)
            sock.setblocking(False)
        ready, _, _ = select.select([sock], [], [], min(left, 0.1))
        if not ready and not (isinstance(sock, ssl.SSLSocket) and sock.pending()):
            continue
        try:
            chunk = sock.recv(65536)
        except (ssl.SSLWantReadError, BlockingIOError):
            continue
        except (ssl.SSLError, OSError) as e:
            out["error"] = str(e)
            chunk = b""
        if not chunk:
            out["closed_after"] = round(time.monotonic() - start, 3)
            return
        switch.receive_data(chunk)
        out["features_requested"] |= bool(switch.of_type(parser.OFPFeaturesRequest))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--connect", required=True, help="HOST:PORT of the controller's OpenFlow listener")
    ap.add_argument("--dpid", type=int, required=True, help="the datapath id to claim")
    ap.add_argument("--hold", type=float, default=3.0, help="seconds to stay connected")
    ap.add_argument("--ca", help="CA certificate (TLS); without it: plain TCP")
    ap.add_argument("--cert", help="client certificate (none: offer no certificate)")
    ap.add_argument("--key")
    args = ap.parse_args()
    host, _, port = args.connect.rpartition(":")
    tls = TlsFiles(args.ca, args.cert, args.key) if args.ca else None
    print(json.dumps(run(host, int(port), args.dpid, args.hold, tls)), flush=True)


if __name__ == "__main__":
    main()
