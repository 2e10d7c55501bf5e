"""Simulated OpenFlow 1.3 switches and a controller process, for the benchmarks.

A `Switch` answers the controller's handshake, barriers, echoes and stats with
precompiled bytes and reads only message headers, so a load generator built on
it stays far above the controller it measures (route_setup.py shows its ceiling).
It counts a route as set up when the controller's PacketOut re-injecting the
packet arrives, matched by the packet's IPv4 source and destination.

The controller runs `--insecure` with a tcp: listener, or, given a run's PKI
(`make_pki`), with an ssl: listener and its own pair; each switch then connects
over TLS with the certificate of the host registered with its dpid.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import ssl
import struct
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from os_ken.lib.packet import ethernet, icmp, ipv4, packet

from daolinet.ofp.codec import ofp, parser
from daolinet.pipeline import GATEWAY_MAC
from daolinet.security import pki
from daolinet.security.tls import TlsFiles, client_context

HEADER = struct.Struct("!BBHI")
OFPT = {"hello": 0, "echo_req": 2, "echo_rep": 3, "features_req": 5, "features_rep": 6,
        "packet_in": 10, "packet_out": 13, "flow_mod": 14, "mp_req": 18, "mp_rep": 19, "barrier_req": 20,
        "barrier_rep": 21}


def frame(msg_type: int, xid: int, body: bytes = b"") -> bytes:
    return HEADER.pack(4, msg_type, 8 + len(body), xid) + body


def features(dpid: int, xid: int) -> bytes:
    return frame(OFPT["features_rep"], xid, struct.pack("!QIBB2xII", dpid, 0, 254, 0, 0, 0))


def empty_multipart(req: bytes, xid: int) -> bytes:
    mp_type = struct.unpack_from("!H", req, 8)[0]
    return frame(OFPT["mp_rep"], xid, struct.pack("!HH4x", mp_type, 0))


def icmp_frame(src_mac: str, src_ip: str, dst_ip: str) -> bytes:
    pkt = packet.Packet()
    pkt.add_protocol(ethernet.ethernet(dst=GATEWAY_MAC, src=src_mac, ethertype=0x0800))
    pkt.add_protocol(ipv4.ipv4(src=src_ip, dst=dst_ip, proto=1, ttl=64))
    pkt.add_protocol(icmp.icmp(type_=8, code=0, csum=0, data=icmp.echo(id_=1, seq=1, data=b"x" * 16)))
    pkt.serialize()
    return bytes(pkt.data)


def packet_in_bytes(in_port: int, data: bytes, xid: int) -> bytes:
    """A switch's PACKET_IN: fixed part, OXM match, pad, frame."""
    match = bytearray()
    parser.OFPMatch(in_port=in_port).serialize(match, 0)
    body = struct.pack("!IHBBQ", ofp.OFP_NO_BUFFER, len(data), ofp.OFPR_NO_MATCH, 10, 0)
    return frame(OFPT["packet_in"], xid, body + bytes(match) + b"\0\0" + data)


OWNERS: dict[bytes, Switch] = {}  # outstanding packet (IP pair) -> the switch that sent its PacketIn


class Pending(dict[bytes, float]):
    """A switch's outstanding PacketIns, (src, dst IP bytes) -> sent at.  The PacketOut
    answering one may arrive on another switch (the controller hands a cross-host
    route's first packet to the destination switch), so every entry is also filed
    in OWNERS, which any switch consults."""

    def __init__(self, owner: Switch) -> None:
        super().__init__()
        self.owner = owner

    def __setitem__(self, key: bytes, sent: float) -> None:
        super().__setitem__(key, sent)
        OWNERS[key] = self.owner


@dataclass
class Switch:
    dpid: int
    pending: Pending = field(init=False)
    latencies: list[float] = field(default_factory=list)
    done: asyncio.Event = field(default_factory=asyncio.Event)
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    flowmods: int = 0
    writer: asyncio.StreamWriter | None = None
    on_flow_mod: Callable[[bytes], None] | None = None

    def __post_init__(self) -> None:
        self.pending = Pending(self)

    async def run(self, reader: asyncio.StreamReader) -> None:
        buf = b""
        while True:
            data = await reader.read(1 << 16)
            if not data:
                return
            buf += data
            at = 0
            while len(buf) - at >= 8:
                _, msg_type, length, xid = HEADER.unpack_from(buf, at)
                if len(buf) - at < length:
                    break
                self.on_message(msg_type, xid, buf[at:at + length])
                at += length
            buf = buf[at:]

    def on_message(self, msg_type: int, xid: int, msg: bytes) -> None:
        assert self.writer is not None
        if msg_type == OFPT["hello"]:
            return
        if msg_type == OFPT["features_req"]:
            self.writer.write(features(self.dpid, xid))
        elif msg_type == OFPT["mp_req"]:
            self.writer.write(empty_multipart(msg, xid))
        elif msg_type == OFPT["barrier_req"]:
            self.writer.write(frame(OFPT["barrier_rep"], xid))
            self.ready.set()  # the controller confirmed its sync: it will now serve us
        elif msg_type == OFPT["echo_req"]:
            self.writer.write(frame(OFPT["echo_rep"], xid, msg[8:]))
        elif msg_type == OFPT["flow_mod"]:
            self.flowmods += 1
            if self.on_flow_mod is not None:
                self.on_flow_mod(msg)
        elif msg_type == OFPT["packet_out"]:
            self.on_packet_out(msg)

    def on_packet_out(self, msg: bytes) -> None:
        """A PacketOut carrying one of the run's packets ends its route set-up, on whichever
        switch it arrives (re-injected at the source, or delivered at the destination)."""
        actions_len = struct.unpack_from("!H", msg, 16)[0]
        data = msg[24 + actions_len:]
        key = data[26:34]  # IPv4 source and destination
        owner = OWNERS.pop(key, None)
        sent = owner.pending.pop(key, None) if owner is not None else None
        if owner is not None and sent is not None:
            owner.latencies.append(time.perf_counter() - sent)
            if not owner.pending:
                owner.done.set()


async def connect(port: int, sw: Switch, tls: ssl.SSLContext | None = None) -> asyncio.Task[None]:
    """Connect `sw` (over TLS with `tls`, a host's client context) and start answering."""
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", port, ssl=tls, server_hostname="127.0.0.1" if tls is not None else None)
    sw.writer = writer
    writer.write(frame(OFPT["hello"], 1))
    return asyncio.create_task(sw.run(reader))


CONTROLLER = "bench"  # the controller's certificate name in a run's PKI


def make_pki(directory: str, hosts: Iterable[str]) -> str:
    """A CA for one run in `directory`, the controller's pair (valid for 127.0.0.1)
    and a host pair per name in `hosts`; returns `directory`."""
    pki.init_ca(directory)
    pki.issue(directory, "controller", CONTROLLER, sans=("127.0.0.1",))
    for name in hosts:
        pki.issue(directory, "host", name)
    return directory


def host_tls(pki_dir: str, host: str) -> ssl.SSLContext:
    """The client context a switch of host `host` connects with (its host certificate)."""
    return client_context(TlsFiles.of(pki_dir, "host", host))


def security_args(pki_dir: str | None) -> tuple[str, list[str]]:
    """The OpenFlow listener's scheme and the controller's security options."""
    if pki_dir is None:
        return "tcp", ["--insecure"]
    files = TlsFiles.of(pki_dir, "controller", CONTROLLER)
    return "ssl", [f"--tls-cert={files.cert}", f"--tls-key={files.key}", f"--tls-ca={files.ca}"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Controller:
    proc: subprocess.Popen[bytes]
    api: str
    token: str
    of_port: int
    started_in: float  # seconds from exec to ready


def start_controller(tmp: str, store: str, *extra: str, timeout: float = 300,
                     pki_dir: str | None = None) -> Controller:
    """A real controller process (sqlite store at `store`), OpenFlow on a free TCP port
    (TLS with the pair in `pki_dir` (make_pki), else --insecure); hosts never lapse
    (no agents heartbeat here).  Its log: tmp/controller.log."""
    from daolinet.store.liveness import MAX_HOST_TTL

    of_port = free_port()
    scheme, security = security_args(pki_dir)
    ready = os.path.join(tmp, "ready.json")
    if os.path.exists(ready):
        os.unlink(ready)
    started = time.monotonic()
    with open(os.path.join(tmp, "controller.log"), "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "daolinet.cli.main", "controller", f"--store=sqlite://{store}",
             f"--of-listen={scheme}:127.0.0.1:{of_port}", "--api-listen=127.0.0.1:0",
             f"--ready-file={ready}", f"--admin-token-file={tmp}/admin.token", "--idle-timeout=3600",
             "--log-level=warning", "--config=", f"--host-ttl={MAX_HOST_TTL}", *security, *extra],
            stdout=subprocess.DEVNULL, stderr=log)
    while not os.path.exists(ready):
        if proc.poll() is not None or time.monotonic() - started > timeout:
            proc.kill()
            proc.wait()
            raise SystemExit(f"controller did not start; see {tmp}/controller.log")
        time.sleep(0.02)
    took = time.monotonic() - started
    with open(ready) as f:
        info = json.load(f)
    with open(f"{tmp}/admin.token") as f:
        token = f.read().strip()
    return Controller(proc, info["api"], token, of_port, took)


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def start_profiler(pid: int, out: str) -> subprocess.Popen[bytes]:
    """py-spy attached to a process, sampling until SIGINT (.txt: collapsed stacks, else SVG)."""
    fmt = "raw" if out.endswith(".txt") else "flamegraph"
    spy = os.path.join(os.path.dirname(sys.executable), "py-spy")
    return subprocess.Popen([spy, "record", "-p", str(pid), "-r", "500", "--format", fmt, "-o", out],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def cpu_s(pid: int) -> float:
    """User + system CPU seconds process `pid` has used, all its threads (10 ms ticks)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine() -> dict[str, object]:
    import platform

    return {"cpus": os.cpu_count(), "platform": platform.platform(),
            "load_avg": [round(x, 2) for x in os.getloadavg()]}


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p * len(ordered)))]


def stats_ms(lat: list[float]) -> dict[str, float]:
    return {"n": len(lat), "p50_ms": round(pct(lat, 0.5) * 1e3, 3), "p99_ms": round(pct(lat, 0.99) * 1e3, 3),
            "p999_ms": round(pct(lat, 0.999) * 1e3, 3)}
