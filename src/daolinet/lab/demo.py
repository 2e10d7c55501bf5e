"""`make demo`: daolinet on a 3-host lab, end to end, then torn down (always).

Two tenants use the *same* subnet; containers on three hosts ping and talk
TCP across hosts and on one host, tenants stay apart, traceroute shows the
virtual routers, and the hot-plug flows appear on first packet and idle out.

Every claim the demo prints is a `Check` it measured (what it measured is kept
beside the verdict), collected into a `Report`: `daolinet lab demo --json`
prints it, the CLI exits non-zero when a check failed, and the integration test
asserts on the measured values rather than on the printed text.

Checks are robust to a loaded machine without proving less: a claim about the
*first* packet is still checked on that one packet (it may just take longer to
answer than on an idle machine); a claim that something is reachable is polled
with a deadline; a claim that something is dropped waits longer than a reply
could take and also reads the would-be receiver's packet counter.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console
from rich.table import Table

from daolinet.lab import cluster, plan
from daolinet.lab.probes import api, ping, route_flows, rtts, rx_packets, tcp_transfer

IDLE = 5
FIRST_WAIT = 10  # s a first packet's reply may take on a loaded machine (the route is plugged meanwhile)
DROP_WAIT = 3  # s without a reply before a packet counts as dropped
REACH_DEADLINE = 30  # s to poll a "reachable" claim
CONTAINERS = [  # name, host, tenant, ip
    ("red-a", "h1", "red", "10.1.0.10"), ("red-b", "h2", "red", "10.1.0.20"),
    ("red-c", "h3", "red", "10.1.0.30"), ("red-d", "h1", "red", "10.1.0.11"),
    ("blue-a", "h1", "blue", "10.1.0.10"), ("blue-b", "h2", "blue", "10.1.0.20"),
]
STREAM = [sys.executable, "-m", "daolinet.lab.stream"]


@dataclass(frozen=True)
class Check:
    """One claim of the demo: whether it held, and what was measured to decide it."""

    step: str
    key: str  # stable, for tests and --json readers
    claim: str  # what the console shows
    passed: bool
    measured: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {"step": self.step, "key": self.key, "claim": self.claim, "passed": self.passed,
                "measured": self.measured}


@dataclass
class Report:
    """Every check of one demo run, in order."""

    lab: str
    checks: list[Check] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def failed(self) -> list[Check]:
        return [c for c in self.checks if not c.passed]

    @property
    def ok(self) -> bool:
        return bool(self.checks) and not self.failed

    def check(self, key: str) -> Check:
        """The check named `key` (KeyError if the demo never got to it)."""
        for c in self.checks:
            if c.key == key:
                return c
        raise KeyError(f"the demo recorded no check {key!r}")

    def to_json(self) -> dict[str, Any]:
        return {"lab": self.lab, "ok": self.ok, "seconds": round(self.seconds, 1),
                "failed": [c.key for c in self.failed], "checks": [c.to_json() for c in self.checks]}


class Recorder:
    """What a step sees: record a check (and print it), or just say something."""

    def __init__(self, report: Report, console: Console) -> None:
        self.report, self.console, self.step = report, console, ""

    def check(self, key: str, claim: str, passed: bool, **measured: Any) -> bool:
        self.report.checks.append(Check(self.step, key, claim, bool(passed), measured))
        verdict = "[green]ok[/]" if passed else "[red]FAILED[/]"
        shown = ", ".join(f"{k}={v}" for k, v in measured.items() if not isinstance(v, list | dict))
        self.console.print(f"  {claim}: {verdict}  [dim]{shown}[/]")
        return bool(passed)

    def say(self, text: Any) -> None:
        self.console.print(text)


Step = tuple[str, Callable[[Any, Recorder], None]]


def run(name: str, console: Console, hosts: int = 3, steps: Sequence[Step] | None = None) -> Report:
    """Bring up lab `name`, run the steps on it, tear it down (always); the report."""
    cluster.down(name)  # a demo left over from an interrupted run
    console.rule("daolinet demo")
    start = time.monotonic()
    lab = cluster.Lab.up(name, hosts=hosts, idle_timeout=IDLE)
    console.print(f"[bold]lab up[/]: {hosts} hosts (each its own ovs-vswitchd), a controller, "
                  f"{hosts} agents in {time.monotonic() - start:.1f}s")
    try:
        report = run_steps(lab, name, console, STEPS if steps is None else steps)
    finally:
        cluster.down(name)
        console.print(f"[bold]lab down[/]: lab {name} removed")
    report.seconds = time.monotonic() - start
    verdict = "[green]all checks held[/]" if report.ok else f"[red]{len(report.failed)} check(s) FAILED[/]"
    console.print(f"[bold]demo[/]: {len(report.checks)} checks, {verdict}")
    return report


def run_steps(lab: Any, name: str, console: Console, steps: Sequence[Step]) -> Report:
    """Run every step on `lab`; a step that raises is a failed check, and the demo goes on."""
    report = Report(name)
    rec = Recorder(report, console)
    for step, fn in steps:
        rec.step = step
        console.print(f"[bold]{step}[/]")
        try:
            fn(lab, rec)
        except Exception as e:  # noqa: BLE001 - recorded as a failed check and shown, never swallowed
            rec.check(f"{step}-ran-through", f"{step} ran through", False, error=f"{type(e).__name__}: {e}")
    return report


# -- helpers -----------------------------------------------------------------


def first_packet(lab: cluster.Lab, src: str, ip: str) -> dict[str, Any]:
    """One packet, no retry: did *it* get an answer, and its RTT."""
    done = ping(lab, src, ip, count=1, wait=FIRST_WAIT)
    rtt = rtts(done.stdout).get(1)
    return {"answered": done.returncode == 0 and rtt is not None, "rtt_ms": rtt}


def dropped(lab: cluster.Lab, src: str, ip: str, receiver: str) -> dict[str, Any]:
    """Packets to `ip`: answered or not, and what `receiver` (who must not see them) received."""
    before = rx_packets(lab, receiver)
    done = ping(lab, src, ip, count=2, interval=0.2, wait=DROP_WAIT)
    return {"replies": len(rtts(done.stdout)), "receiver": receiver,
            "receiver_rx": rx_packets(lab, receiver) - before}


def poll(probe: Callable[[], Any], deadline: float = REACH_DEADLINE) -> tuple[Any, int]:
    """Call `probe` until it returns something truthy or the deadline passes: (last value, attempts)."""
    end, attempts = time.monotonic() + deadline, 0
    while True:
        attempts += 1
        value = probe()
        if value or time.monotonic() > end:
            return value, attempts
        time.sleep(0.2)


def iperf_rate(done: subprocess.CompletedProcess[str]) -> tuple[float | None, str | None]:
    """(Mbit/s received, None) from iperf3 -J output, or (None, iperf3's own error)."""
    try:
        report = json.loads(done.stdout)
    except ValueError:
        return None, (done.stderr or done.stdout).strip()[-200:] or f"iperf3 exited {done.returncode}"
    received = report.get("end", {}).get("sum_received", {}).get("bits_per_second")
    if done.returncode != 0 or received is None:
        return None, str(report.get("error") or f"iperf3 exited {done.returncode}")
    return float(received) / 1e6, None


# -- the steps -----------------------------------------------------------------


def _setup(lab: cluster.Lab, rec: Recorder) -> None:
    for tenant in ("red", "blue"):
        api(lab, "POST", "/tenants", json={"name": tenant})
        api(lab, "POST", "/networks", json={"name": "web", "subnet": "10.1.0.0/24", "tenant": tenant,
                                            "external": tenant == "red"})
    table = Table(title="two tenants, one subnet 10.1.0.0/24 each")
    for col in ("container", "tenant", "host", "logical IP", "PIP", "MAC"):
        table.add_column(col)
    placed = {}
    for cname, host, tenant, ip in CONTAINERS:
        c = lab.add_container(cname, host=host, network="web", tenant=tenant, ip=ip)
        table.add_row(cname, tenant, host, ip, str(c.pip), str(c.mac))
        placed[cname] = {"ip": c.ip, "pip": c.pip}
    rec.say(table)
    wanted = {cname: ip for cname, _, _, ip in CONTAINERS}
    rec.check("containers-attached", "every container attached with its logical IP and a PIP",
              all(placed[n]["ip"] == ip and placed[n]["pip"] for n, ip in wanted.items()), containers=placed)


def _talk(lab: cluster.Lab, rec: Recorder) -> None:
    first = first_packet(lab, "red-a", "10.1.0.20")
    rec.check("first-packet-cross-host", "red-a(h1) -> red-b(h2) first packet, cross-host",
              first["answered"], **first)
    same = first_packet(lab, "red-a", "10.1.0.11")
    rec.check("first-packet-same-host", "red-a(h1) -> red-d(h1) first packet, same host, one hop",
              same["answered"], **same)
    attempts: list[str] = []

    def transfer() -> float | None:
        rate, error = iperf_rate(tcp_transfer(lab, "red-a", "red-c", "10.1.0.30", seconds=1))
        if error:
            attempts.append(error)
        return rate

    rate, tries = poll(transfer)
    rec.check("tcp-cross-host", "red-a(h1) -> red-c(h3) TCP (iperf3, 1 s)", bool(rate),
              mbit_s=None if rate is None else round(rate), attempts=tries, errors=attempts)


def _isolation(lab: cluster.Lab, rec: Recorder) -> None:
    red_rx = rx_packets(lab, "red-b")
    blue = ping(lab, "blue-a", "10.1.0.20", count=3, wait=FIRST_WAIT)
    replies = len(rtts(blue.stdout))
    rec.check("same-ip-other-tenant", "blue-a -> 10.1.0.20 reaches blue-b", replies > 0, replies=replies)
    leaked = rx_packets(lab, "red-b") - red_rx
    rec.check("tenants-apart", "red-b (same IP, same host, other tenant) received nothing", leaked == 0,
              red_b_rx=leaked)
    other = dropped(lab, "blue-a", "10.1.0.30", "red-c")
    rec.check("other-tenant-dropped", "blue-a -> 10.1.0.30 (only red has it) is dropped",
              other["replies"] == 0 and other["receiver_rx"] == 0, **other)


def _traceroute(lab: cluster.Lab, rec: Recorder) -> None:
    want = ["10.1.0.1", lab.host("h3").underlay_ip, "10.1.0.30"]
    shown: list[str] = []

    def trace() -> bool:
        done = lab.exec("red-a", ["traceroute", "-n", "-q", "1", "-w", "2", "-m", "5", "10.1.0.30"])
        shown[:] = done.stdout.strip().splitlines()[1:]
        return [line.split()[1] for line in shown if len(line.split()) > 1] == want

    held, tries = poll(trace)
    rec.say("  traceroute -n red-a -> red-c (gateway, destination host, container):\n    "
            + "\n    ".join(shown))
    rec.check("traceroute-hops", "traceroute shows gateway, h3, red-c", held,
              hops=[line.split()[1] for line in shown if len(line.split()) > 1], expected=want,
              attempts=tries)


def _policy(lab: cluster.Lab, rec: Recorder) -> None:
    rec.say("  red gets a second network, db (10.2.0.0/24), with red-e on h2")
    api(lab, "POST", "/networks", json={"name": "db", "subnet": "10.2.0.0/24", "tenant": "red"})
    lab.add_container("red-e", host="h2", network="db", tenant="red", ip="10.2.0.10")
    before = dropped(lab, "red-a", "10.2.0.10", "red-e")
    rec.check("no-group-denied", "red-a -> red-e, different networks, no group: denied",
              before["replies"] == 0 and before["receiver_rx"] == 0, **before)
    api(lab, "POST", "/groups", json={"name": "app", "tenant": "red",
                                      "members": ["network:web", "network:db"]})
    granted = first_packet(lab, "red-a", "10.2.0.10")
    rec.check("group-allows", "group app = web + db: the next packet gets through", granted["answered"],
              **granted)
    api(lab, "POST", "/policy/disconnect", json={"tenant": "red", "a": "red-a", "b": "red-e"})
    cut = dropped(lab, "red-a", "10.2.0.10", "red-e")
    rec.check("disconnect-cuts", "policy disconnect red-a red-e: the next packets are dropped",
              cut["replies"] == 0 and cut["receiver_rx"] == 0, **cut)
    still = first_packet(lab, "red-b", "10.2.0.10")
    rec.check("others-unaffected", "red-b -> red-e still gets through", still["answered"], **still)
    api(lab, "DELETE", "/policy", params={"tenant": "red", "a": "red-a", "b": "red-e"})


def _outside(lab: cluster.Lab, rec: Recorder) -> None:
    server = lab.popen("outside", [*STREAM, "whoami", "8080"], stdout=subprocess.PIPE)
    web = lab.popen("red-c", [*STREAM, "whoami", "80"], stdout=subprocess.PIPE)
    try:
        up = [p.stdout is not None and "listening" in p.stdout.readline() for p in (server, web)]
        if not rec.check("servers-listening", "test servers listening (outside:8080, red-c:80)", all(up)):
            return
        fetch = [*STREAM, "fetch", str(plan.OUTSIDE_IP), "8080", "--timeout", str(FIRST_WAIT)]
        seen = lab.exec("red-a", fetch).stdout.strip()
        h1 = lab.host("h1").underlay_ip
        rec.check("external-snat", f"red-a (external network) fetches from {plan.OUTSIDE_IP}, "
                  "which sees h1's address", seen == h1, seen=seen, h1=h1)
        blue = lab.exec("blue-a", [*STREAM, "fetch", str(plan.OUTSIDE_IP), "8080",
                                   "--timeout", str(DROP_WAIT)])
        rec.check("not-external-blocked", "blue-a (network not external) cannot", blue.returncode != 0,
                  returncode=blue.returncode, answer=blue.stdout.strip())
        api(lab, "POST", "/portmaps", json={"name": "http", "tenant": "red", "container": "red-c",
                                            "rule": "8080:80/tcp", "host": "h1"})
        got, tries = poll(lambda: lab.exec("outside", [*STREAM, "fetch", lab.host("h1").underlay_ip, "8080"])
                          .stdout.strip())
        rec.check("portmap-serves", "portmap h1:8080 -> red-c:80 (on h3) serves the outside", bool(got),
                  answer=got, attempts=tries)
    finally:
        for p in (server, web):
            p.kill()
            p.wait()


def _flows(lab: cluster.Lab, rec: Recorder) -> None:
    talk = first_packet(lab, "red-a", "10.1.0.20")
    on_h1 = route_flows(lab, "h1")
    routes = api(lab, "GET", "/routes")
    names = ["<->".join(r["names"]) for r in routes]
    for line in on_h1[:4]:
        rec.say(f"  [dim]{line}[/]")
    rec.check("route-plugged", "red-a talks to red-b: its route's flows on h1 and in GET /routes",
              talk["answered"] and bool(on_h1) and any(set(r["names"]) == {"red-a", "red-b"} for r in routes),
              flows_on_h1=len(on_h1), live_routes=len(routes), routes=names)
    start = time.monotonic()
    left: dict[str, int] = {}

    def idle() -> bool:
        left.update(flows=sum(len(route_flows(lab, h.name)) for h in lab.hosts),
                    routes=len(api(lab, "GET", "/routes")))
        return not any(left.values())

    poll(idle, deadline=IDLE * 4)
    rec.check("idle-out", f"idle for the timeout ({IDLE}s): no route flows on any host, no live routes "
              "(an idle container costs no flows)", not any(left.values()),
              seconds=round(time.monotonic() - start, 1), flows_left=left["flows"],
              routes_left=left["routes"])
    again = first_packet(lab, "red-a", "10.1.0.20")
    rec.check("replug", "the next packet re-plugs the route", again["answered"], **again)


STEPS: tuple[Step, ...] = (
    ("setup", _setup), ("talk", _talk), ("isolation", _isolation), ("traceroute", _traceroute),
    ("policy", _policy), ("outside", _outside), ("flows", _flows),
)
