"""A live TCP stream while its receiving container moves to another host: the largest gap
between received bytes, and whether the sender's TCP fell back to a retransmission timeout.

Per run, a fresh 3-host lab: container a (h1) streams to b (h2) for `--seconds`; one second
in, b moves to h3 (`lab.move_container`).  The receiver notes every silence of 10 ms or more
and when it began: the move's gap is the longest that began while the move ran or up to 0.5 s
after (the whole stream's longest is reported too: its tail may lose segments under load and
recover by a timeout, move or not); the sender's namespace's TCP counters
(/proc/net/netstat, /proc/net/snmp) say what its TCP did meanwhile: RTOs (TCPTimeouts),
tail loss probes, retransmitted segments.

    .venv/bin/python bench/move_gap.py [--runs 3] [--compare OTHER/src]

With `--compare`, every run is a pair: one with the code under OTHER/src (say a worktree of
the commit before), one with this tree's, alternating, so both see the same machine; the
figures come as before / after and their ratio.  `--control` adds a stream with no move to
each run (what the machine's load alone does to the stream).  Each run is a subprocess with PYTHONPATH
set to the code it measures (the lab's daemons inherit it).

Prints a table and writes bench/results/move_gap-<timestamp>.json (with the commit).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from runs import ToolFailed, commit, repeat, runs_option, show, write

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WINDOW = 0.5  # s after the move returned in which a silence still counts as the move's
def once(seconds: float, move: bool = True) -> dict[str, Any]:
    """One stream and one move in a fresh lab (run in a subprocess: `--once`)."""
    from daolinet.lab import cluster
    from daolinet.testing.fixtures import new_lab_name
    from daolinet.testing.labtools import api, route_flows, wait_for

    def tcp_counters(lab: cluster.Lab, target: str) -> dict[str, int]:
        """As testing/labtools.tcp_counters (here too: the code measured may predate it)."""
        text = lab.exec(target, ["cat", "/proc/net/netstat", "/proc/net/snmp"], check=True).stdout
        lines = [line.split() for line in text.splitlines() if line.strip()]
        pairs = zip(lines[::2], lines[1::2], strict=False)
        return {head[0].rstrip(":") + name: int(value) for head, values in pairs
                for name, value in zip(head[1:], values[1:], strict=False) if value.lstrip("-").isdigit()}

    # This tree's receiver (a standalone script) whatever the code measured: it reports its gaps.
    stream = [sys.executable, os.path.join(HERE, "src", "daolinet", "lab", "stream.py")]
    name = new_lab_name()
    lab = cluster.Lab.up(name, hosts=3)
    try:
        api(lab, "POST", "/networks", json={"name": "n", "subnet": "10.5.0.0/24"})
        lab.add_container("a", host="h1", network="n")
        b = lab.add_container("b", host="h2", network="n")
        recv = lab.popen("b", [*stream, "recv", "5001", "--idle", "2"], stdout=subprocess.PIPE)
        assert recv.stdout is not None and "listening" in recv.stdout.readline()
        before = tcp_counters(lab, "a")
        send = lab.popen("a", [*stream, "send", str(b.ip), "5001", "--seconds", str(seconds)])
        try:
            wait_for(lambda: route_flows(lab, "h2"), what="the stream's route")
            time.sleep(1.0)  # a stream in full flow, not one starting (a measured delay, not a sync)
            t = time.monotonic()  # the receiver's clock too (CLOCK_MONOTONIC, every namespace)
            if move:
                lab.move_container("b", "h3")
            done = time.monotonic()
            move_ms = (done - t) * 1e3
            out, _ = recv.communicate(timeout=30)
            if send.wait(timeout=30) != 0:
                raise ToolFailed("the sender failed")
        finally:
            send.kill()
            recv.kill()
        after = tcp_counters(lab, "a")
        result = json.loads(out.strip().splitlines()[-1])
        delta = {k: after[k] - before.get(k, 0) for k in after}
        # The silences while the container moved (begun before WINDOW after it): the move's gap.
        during = [length for start, length in result["gaps"] if start + length > t and start <= done + WINDOW]
        return {"move_gap_ms": round(max(during, default=0.0) * 1e3, 3),
                "max_gap_ms": round(result["max_gap"] * 1e3, 3), "mbytes": round(result["bytes"] / 1e6, 1),
                "move_call_ms": round(move_ms, 1), "rto": delta.get("TcpExtTCPTimeouts", 0),
                "retrans_segs": delta.get("TcpRetransSegs", 0),
                "loss_probes": delta.get("TcpExtTCPLossProbes", 0),
                "sack_recovery": delta.get("TcpExtTCPSackRecovery", 0)}
    finally:
        cluster.down(name)


def subprocess_run(src: str, seconds: float, move: bool = True) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": src}
    argv = [sys.executable, os.path.abspath(__file__), "--once", "--seconds", str(seconds)]
    done = subprocess.run(argv + ([] if move else ["--no-move"]), capture_output=True, text=True, env=env,
                          timeout=180)
    if done.returncode != 0:
        raise ToolFailed(f"run with {src} failed: {done.stderr.strip()[-600:]}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    runs_option(parser)
    parser.add_argument("--seconds", type=float, default=4.0, help="length of the stream")
    parser.add_argument("--compare", metavar="SRC", help="also measure the code under SRC (before)")
    parser.add_argument("--control", action="store_true",
                        help="also a stream with no move (this tree's code): what the load alone causes")
    parser.add_argument("--once", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--no-move", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.once:
        print(json.dumps(once(args.seconds, not args.no_move)))
        return
    started = time.time()
    mine = os.path.join(HERE, "src")
    trees = {"before": args.compare, "after": mine} if args.compare else {"after": mine}
    if args.control:
        trees["no move"] = mine

    def pair() -> dict[str, Any]:
        return {label: subprocess_run(src, args.seconds, label != "no move") for label, src in trees.items()}

    done = repeat(pair, args.runs, "move_gap")
    head = " ".join(f"{label:>26}" for label in trees)
    print(f"{'':<22} {head}   (median (min–max) of {args.runs})")
    for key in ("move_gap_ms", "max_gap_ms", "rto", "retrans_segs", "loss_probes", "move_call_ms", "mbytes"):
        print(f"{key:<22} " + " ".join(f"{show(done['spread'][label][key], 1):>26}" for label in trees))
    record: dict[str, Any] = {"params": vars(args), "results": done["median"], "spread": done["spread"],
                              "runs": done["runs"]}
    if args.compare:
        record["before_commit"] = commit(os.path.dirname(os.path.abspath(args.compare)))
        gaps = [r["after"]["move_gap_ms"] / r["before"]["move_gap_ms"] for r in done["runs"]]
        record["gap_ratio_after_over_before"] = sorted(gaps)[len(gaps) // 2]
        print(f"gap after / before, median of the runs' ratios: {record['gap_ratio_after_over_before']:.3f}")
    write("move_gap", record, started)


if __name__ == "__main__":
    main()
