"""route-setup: a cbench-like load generator against a real controller process.

N simulated OpenFlow 1.3 switches connect over TCP; each sends PacketIns for
fresh endpoint pairs (a on this switch -> b on another) and counts a route as
set up when the controller's PacketOut re-injecting that packet arrives.  The
switches answer handshakes, barriers and stats with precompiled bytes and read
only message headers, so the generator stays cheap; its own ceiling is
measured separately (the same loop against an instant echo of PacketOuts).

    .venv/bin/python bench/route_setup.py [--switches 2] [--endpoints 150] [--window 32]

Prints a table; writes bench/results/route_setup-<timestamp>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field

import httpx
from os_ken.lib.packet import ethernet, icmp, ipv4, packet

from daolinet.ofp.codec import DP, encode, ofp, parser
from daolinet.pipeline import GATEWAY_MAC

HEADER = struct.Struct("!BBHI")
OFPT = {"hello": 0, "echo_req": 2, "echo_rep": 3, "features_req": 5, "features_rep": 6,
        "packet_in": 10, "packet_out": 13, "mp_req": 18, "mp_rep": 19, "barrier_req": 20,
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
    """A switch's PACKET_IN (os-ken only parses these): fixed part, OXM match, pad, frame."""
    match = bytearray()
    parser.OFPMatch(in_port=in_port).serialize(match, 0)
    body = struct.pack("!IHBBQ", ofp.OFP_NO_BUFFER, len(data), ofp.OFPR_NO_MATCH, 10, 0)
    return frame(OFPT["packet_in"], xid, body + bytes(match) + b"\0\0" + data)


@dataclass
class Switch:
    dpid: int
    pending: dict[bytes, float] = field(default_factory=dict)  # (src, dst IP bytes) -> sent at
    latencies: list[float] = field(default_factory=list)
    done: asyncio.Event = field(default_factory=asyncio.Event)
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    flowmods: int = 0
    writer: asyncio.StreamWriter | None = None

    async def run(self, reader: asyncio.StreamReader) -> None:
        buf = b""
        while True:
            data = await reader.read(1 << 16)
            if not data:
                return
            buf += data
            while len(buf) >= 8:
                _, msg_type, length, xid = HEADER.unpack_from(buf)
                if len(buf) < length:
                    break
                msg, buf = buf[:length], buf[length:]
                self.on_message(msg_type, xid, msg)

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
        elif msg_type == 14:  # FLOW_MOD
            self.flowmods += 1
        elif msg_type == OFPT["packet_out"]:
            self.on_packet_out(msg)

    def on_packet_out(self, msg: bytes) -> None:
        actions_len = struct.unpack_from("!H", msg, 16)[0]
        data = msg[24 + actions_len:]
        key = data[26:34]  # IPv4 source and destination
        sent = self.pending.pop(key, None)
        if sent is not None:
            self.latencies.append(time.perf_counter() - sent)
            if not self.pending:
                self.done.set()


async def connect(port: int, sw: Switch) -> asyncio.Task[None]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    sw.writer = writer
    writer.write(frame(OFPT["hello"], 1))
    return asyncio.create_task(sw.run(reader))


def start_controller(tmp: str) -> tuple[subprocess.Popen[bytes], str, str, int]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    of_port = sock.getsockname()[1]
    sock.close()
    ready = os.path.join(tmp, "ready.json")
    with open(os.path.join(tmp, "controller.log"), "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "daolinet.cli.main", "controller", f"--store=sqlite://{tmp}/s.db",
             f"--of-listen=tcp:127.0.0.1:{of_port}", "--api-listen=127.0.0.1:0", f"--ready-file={ready}",
             f"--admin-token-file={tmp}/admin.token", "--idle-timeout=3600", "--log-level=warning"],
            stdout=subprocess.DEVNULL, stderr=log)
    deadline = time.monotonic() + 30
    while not os.path.exists(ready):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit("controller did not start; see its log")
        time.sleep(0.05)
    with open(ready) as f:
        info = json.load(f)
    with open(f"{tmp}/admin.token") as f:
        token = f.read().strip()
    return proc, info["api"], token, of_port


def start_profiler(pid: int, out: str) -> subprocess.Popen[bytes]:
    """py-spy attached to the controller, sampling until SIGINT."""
    fmt = "raw" if out.endswith(".txt") else "flamegraph"
    spy = os.path.join(os.path.dirname(sys.executable), "py-spy")
    return subprocess.Popen([spy, "record", "-p", str(pid), "-r", "500", "--format", fmt, "-o", out],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


class Heartbeats:
    """Keep the simulated hosts alive: what their agents would do (PUT /hosts/NAME/heartbeat;
    a 404 before the host is registered is fine)."""

    def __init__(self, api: str, token: str, hosts: list[str], every: float = 2.0) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(api, token, hosts, every), daemon=True)
        self._thread.start()

    def _run(self, api: str, token: str, hosts: list[str], every: float) -> None:
        with httpx.Client(base_url=api, headers={"Authorization": f"Bearer {token}"}, timeout=10) as c:
            while True:
                for h in hosts:
                    c.put(f"/hosts/{h}/heartbeat")
                if self._stop.wait(every):
                    return

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(15)


def populate(api: str, token: str, switches: int, per_switch: int) -> dict[int, list[dict[str, object]]]:
    """Hosts 1..N, a /16 network, per_switch plugged endpoints on each host."""
    client = httpx.Client(base_url=api, headers={"Authorization": f"Bearer {token}"}, timeout=30)
    client.post("/networks", json={"name": "bench", "subnet": "10.64.0.0/16"}).raise_for_status()
    out: dict[int, list[dict[str, object]]] = {}
    for d in range(1, switches + 1):
        client.post("/hosts", json={"name": f"h{d}", "dpid": d, "underlay_ip": f"198.18.0.{d}",
                                    "underlay_mac": f"02:18:00:00:00:{d:02x}",
                                    "pip_pool": f"198.18.{d}.0/24", "underlay_prefix": 18}
                    ).raise_for_status()
        out[d] = []
        for i in range(per_switch):
            e = client.post("/endpoints", json={"name": f"e{d}-{i}", "network": "bench",
                                                "host": f"h{d}"}).json()
            e = client.patch(f"/endpoints/{e['id']}", json={"port": f"p{i}", "ofport": i + 2}).json()
            out[d].append(e)
    return out


async def drive(port: int, endpoints: dict[int, list[dict[str, object]]], window: int,
                limit: int) -> dict[str, float]:
    sws = {d: Switch(d) for d in endpoints}
    tasks = [await connect(port, sw) for sw in sws.values()]
    await asyncio.wait_for(asyncio.gather(*(sw.ready.wait() for sw in sws.values())), 30)
    work: dict[int, list[bytes]] = {}
    dpids = sorted(sws)
    for d in dpids:
        peer = dpids[(dpids.index(d) + 1) % len(dpids)]
        msgs = []
        for a in endpoints[d]:
            for b in endpoints[peer]:
                data = icmp_frame(str(a["mac"]), str(a["ip"]), str(b["ip"]))
                msgs.append((data[26:34], packet_in_bytes(int(a["ofport"]), data, 7)))  # type: ignore[arg-type]
        work[d] = msgs[:limit]  # type: ignore[assignment]
    started = time.perf_counter()
    await asyncio.gather(*(_pump(sws[d], work[d], window) for d in dpids))  # type: ignore[arg-type]
    took = time.perf_counter() - started
    for t in tasks:
        t.cancel()
    lat = sorted(x for sw in sws.values() for x in sw.latencies)
    routes = len(lat)
    return {"routes": routes, "seconds": round(took, 3), "routes_per_s": round(routes / took, 1),
            "flowmods_per_s": round(sum(sw.flowmods for sw in sws.values()) / took, 1),
            "p50_ms": round(lat[len(lat) // 2] * 1e3, 3), "p99_ms": round(lat[int(len(lat) * 0.99)] * 1e3, 3),
            "p999_ms": round(lat[min(len(lat) - 1, int(len(lat) * 0.999))] * 1e3, 3)}


async def _pump(sw: Switch, msgs: list[tuple[bytes, bytes]], window: int) -> None:
    assert sw.writer is not None
    for key, msg in msgs:
        while len(sw.pending) >= window:
            sw.done.clear()
            await asyncio.wait_for(sw.done.wait(), 30)
        sw.pending[key] = time.perf_counter()
        sw.writer.write(msg)
        if len(sw.pending) >= window:
            await sw.writer.drain()
    while sw.pending:
        sw.done.clear()
        await asyncio.wait_for(sw.done.wait(), 30)


def generator_ceiling(n: int) -> float:
    """Messages/s the generator's own per-route work (frame a PacketIn, parse a
    PacketOut-sized reply) can sustain, without any controller."""
    sw = Switch(1)
    data = icmp_frame("02:00:00:00:00:01", "10.64.0.2", "10.64.1.2")
    msg = packet_in_bytes(2, data, 7)
    out = encode(parser.OFPPacketOut(DP, buffer_id=ofp.OFP_NO_BUFFER, in_port=2,
                                     actions=[parser.OFPActionOutput(ofp.OFPP_TABLE, 0)], data=data), 9)
    started = time.perf_counter()
    for _ in range(n):
        sw.pending[data[26:34]] = time.perf_counter()
        bytes(msg)
        sw.on_packet_out(out)
    return n / (time.perf_counter() - started)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--switches", type=int, default=2)
    ap.add_argument("--endpoints", type=int, default=60, help="per switch")
    ap.add_argument("--window", type=int, default=32, help="outstanding PacketIns per switch")
    ap.add_argument("--routes", type=int, default=3000, help="per switch, throughput mode")
    ap.add_argument("--profile", metavar="FILE", help="record the controller with py-spy into FILE "
                    "(.txt: collapsed stacks, else a flame graph SVG)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        proc, api, token, port = start_controller(tmp)
        spy = start_profiler(proc.pid, args.profile) if args.profile else None
        try:
            beats = Heartbeats(api, token, [f"h{d}" for d in range(1, args.switches + 1)])
            eps = populate(api, token, args.switches, args.endpoints)
            half = {d: e[: len(e) // 2] for d, e in eps.items()}
            rest = {d: e[len(e) // 2:] for d, e in eps.items()}
            latency = asyncio.run(drive(port, half, 1, 300))
            throughput = asyncio.run(drive(port, rest, args.window, args.routes))
        finally:
            if "beats" in locals():
                beats.stop()
            if spy is not None:
                spy.send_signal(signal.SIGINT)
                spy.wait(30)
            proc.terminate()
            proc.wait(10)
    ceiling = generator_ceiling(20000)
    result = {"bench": "route_setup", "when": time.time(), "switches": args.switches,
              "window": args.window, "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
              "latency_mode": latency, "throughput_mode": throughput,
              "generator_ceiling_routes_per_s": round(ceiling, 1)}
    print(f"{'mode':<11} {'routes':>7} {'routes/s':>9} {'FlowMods/s':>11} {'p50 ms':>8} {'p99 ms':>8} "
          f"{'p999 ms':>8}")
    for mode in ("latency_mode", "throughput_mode"):
        r = result[mode]
        assert isinstance(r, dict)
        print(f"{mode.split('_')[0]:<11} {r['routes']:>7} {r['routes_per_s']:>9} {r['flowmods_per_s']:>11} "
              f"{r['p50_ms']:>8} {r['p99_ms']:>8} {r['p999_ms']:>8}")
    print(f"generator ceiling: {ceiling:,.0f} routes/s (its own work per route, no controller)")
    os.makedirs("bench/results", exist_ok=True)
    path = time.strftime("bench/results/route_setup-%Y%m%dT%H%M%S.json")
    with open(path, "w") as f:
        json.dump(result, f, indent=2)
    print(f"written {path}")


if __name__ == "__main__":
    main()
