"""A counting TCP stream for the demo, tests and benchmarks, run inside lab containers:

    python -m daolinet.lab.stream recv PORT [--idle S]   # prints a JSON summary
    python -m daolinet.lab.stream send IP PORT [--seconds S]
    python -m daolinet.lab.stream listen PORT...       # accepts and closes, until killed
    python -m daolinet.lab.stream probe IP PORT [--timeout S]  # exit 0 if it connects
    python -m daolinet.lab.stream whoami PORT          # answers each peer with its address
    python -m daolinet.lab.stream fetch IP PORT        # prints what the server says

The receiver notes CLOCK_MONOTONIC (shared by every namespace of the machine)
at every arrival, so a test can tell when data stopped, and the largest gap.
It exits after `--idle` seconds without data, printing
{"bytes", "first", "last", "max_gap", "gaps"} ("gaps": [start, length] of every silence of
LONG_GAP or more, the first MAX_GAPS of them), after {"listening"}.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import socket
import sys
import time

CHUNK = 16384
LONG_GAP = 0.01  # s
MAX_GAPS = 1000


def recv(port: int, idle: float) -> dict[str, object]:
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("0.0.0.0", port))
    server.listen(1)
    print(json.dumps({"listening": port}), flush=True)
    conn, _ = server.accept()
    conn.settimeout(idle)
    total, first, last, max_gap = 0, 0.0, 0.0, 0.0
    gaps: list[tuple[float, float]] = []
    while True:
        try:
            data = conn.recv(CHUNK)
        except (TimeoutError, OSError):
            break
        if not data:
            break
        now = time.monotonic()
        if total:
            max_gap = max(max_gap, now - last)
            if now - last >= LONG_GAP and len(gaps) < MAX_GAPS:
                gaps.append((last, now - last))
        else:
            first = now
        total += len(data)
        last = now
    return {"bytes": total, "first": first, "last": last, "max_gap": max_gap, "gaps": gaps}


def send(ip: str, port: int, seconds: float) -> None:
    conn = socket.create_connection((ip, port), timeout=5)
    conn.settimeout(1)
    payload = b"x" * CHUNK
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            conn.sendall(payload)
        except (TimeoutError, OSError):
            time.sleep(0.01)  # the path is cut: keep the socket, the test decides
    conn.close()


def listen(ports: list[int]) -> None:
    """Accept (and close) connections on every port, until killed."""
    import selectors

    sel = selectors.DefaultSelector()
    for port in ports:
        server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("0.0.0.0", port))
        server.listen(16)
        sel.register(server, selectors.EVENT_READ)
    print(json.dumps({"listening": ports}), flush=True)
    while True:
        for key, _ in sel.select():
            conn, _ = key.fileobj.accept()  # type: ignore[union-attr]
            conn.close()


def whoami(port: int) -> None:
    """Answer every connection with the address it came from, until killed: over IPv4 and
    IPv6 where the namespace has IPv6 (an IPv4 client still reads as its IPv4 address)."""
    try:
        server = socket.create_server(("", port), family=socket.AF_INET6, backlog=16, dualstack_ipv6=True)
    except (OSError, ValueError):  # no IPv6 here
        server = socket.create_server(("0.0.0.0", port), backlog=16)
    print(json.dumps({"listening": port}), flush=True)
    while True:
        conn, peer = server.accept()
        addr = ipaddress.ip_address(peer[0])
        mapped = getattr(addr, "ipv4_mapped", None)
        conn.sendall(f"{mapped or addr}\n".encode())
        conn.close()


def fetch(ip: str, port: int, timeout: float) -> str:
    with socket.create_connection((ip, port), timeout=timeout) as conn:
        return conn.recv(1024).decode().strip()


def probe(ip: str, port: int, timeout: float) -> bool:
    try:
        socket.create_connection((ip, port), timeout=timeout).close()
    except OSError:
        return False
    return True


def main() -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("recv")
    r.add_argument("port", type=int)
    r.add_argument("--idle", type=float, default=3.0)
    s = sub.add_parser("send")
    s.add_argument("ip")
    s.add_argument("port", type=int)
    s.add_argument("--seconds", type=float, default=5.0)
    ls = sub.add_parser("listen")
    ls.add_argument("ports", type=int, nargs="+")
    w = sub.add_parser("whoami")
    w.add_argument("port", type=int)
    f = sub.add_parser("fetch")
    f.add_argument("ip")
    f.add_argument("port", type=int)
    f.add_argument("--timeout", type=float, default=2.0)
    p = sub.add_parser("probe")
    p.add_argument("ip")
    p.add_argument("port", type=int)
    p.add_argument("--timeout", type=float, default=1.0)
    args = parser.parse_args()
    if args.cmd == "recv":
        print(json.dumps(recv(args.port, args.idle)), flush=True)
    elif args.cmd == "send":
        send(args.ip, args.port, args.seconds)
    elif args.cmd == "listen":
        listen(args.ports)
    elif args.cmd == "whoami":
        whoami(args.port)
    elif args.cmd == "fetch":
        try:
            print(fetch(args.ip, args.port, args.timeout))
        except OSError as e:
            sys.exit(f"fetch failed: {e}")
    else:
        sys.exit(0 if probe(args.ip, args.port, args.timeout) else 1)


if __name__ == "__main__":
    main()
