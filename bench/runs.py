"""What every bench shares: running a measurement N times, retrying a round a tool
failed, summarising the runs as median (min–max), and writing the results JSON
with the commit it measured.

A figure in README or docs/benchmarks.md is the *median* of at least three runs with
min and max beside it, never the best run; a tool's failure (iperf3 reporting an
error, a ping that would not start) is that tool's own message and a retried round,
never a traceback.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

RESULTS = "bench/results"
TRIES = 3  # attempts per round before the bench gives up


class ToolFailed(Exception):
    """A measuring tool (iperf3, ping, a client script) failed: its own words."""


def commit(where: str | None = None) -> str:
    """`git rev-parse --short HEAD` of the tree holding the code, "-dirty" when a tracked
    file differs from it (results files don't count), or "unknown" outside git."""
    where = where or os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        head = subprocess.run(["git", "-C", where, "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", where, "status", "--porcelain", "--untracked-files=no", "--",
                                ".", f":!{RESULTS}"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("-dirty" if dirty.strip() else "")


def machine() -> dict[str, object]:
    return {"cpus": os.cpu_count(), "python": sys.version.split()[0], "platform": platform.platform()}


def spread(values: list[float]) -> dict[str, Any]:
    """Median, min, max (and the values) of one figure over the runs."""
    return {"median": statistics.median(values), "min": min(values), "max": max(values),
            "values": list(values)}


def show(s: dict[str, Any], digits: int = 3, unit: str = "") -> str:
    """`median (min–max)`, as every table prints a figure."""
    if len(s["values"]) == 1:
        return f"{s['median']:,.{digits}f}{unit} (single run)"
    return f"{s['median']:,.{digits}f}{unit} ({s['min']:,.{digits}f}–{s['max']:,.{digits}f})"


def _number(x: object) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool)


def combine(runs: list[Any]) -> tuple[Any, Any]:
    """(medians, spreads) of runs with the same shape: every number becomes its median
    (resp. its spread), dicts and equal-length lists of dicts are combined item by item,
    lists of numbers (raw samples) are concatenated, anything else is the first run's."""
    first = runs[0]
    if _number(first) and all(_number(r) for r in runs):
        s = spread(list(runs))
        median = s["median"]
        if all(isinstance(r, int) for r in runs) and float(median).is_integer():
            median = s["median"] = int(median)  # counts stay counts
        return (round(median, 6) if isinstance(median, float) else median), s
    if isinstance(first, dict) and all(isinstance(r, dict) for r in runs):
        medians: dict[str, Any] = {}
        spreads: dict[str, Any] = {}
        for key in first:
            if all(key in r for r in runs):
                medians[key], sp = combine([r[key] for r in runs])
                if sp is not None:
                    spreads[key] = sp
            else:
                medians[key] = first[key]
        return medians, spreads or None
    if isinstance(first, list) and all(isinstance(r, list) for r in runs):
        if all(all(_number(x) or isinstance(x, list) for x in r) for r in runs):
            return [x for r in runs for x in r], None  # raw samples of every run
        if all(len(r) == len(first) for r in runs):
            pairs = [combine([r[i] for r in runs]) for i in range(len(first))]
            return [m for m, _ in pairs], [s for _, s in pairs]
    return first, None


def repeat(once: Callable[[], Any], runs: int, what: str) -> dict[str, Any]:
    """Run `once` `runs` times; a round whose tool failed is reported and retried (up to
    TRIES times). {"median": ..., "spread": ..., "runs": [...]}: see `combine`."""
    done: list[Any] = []
    for i in range(runs):
        for attempt in range(1, TRIES + 1):
            try:
                done.append(once())
                break
            except ToolFailed as e:
                print(f"{what}: run {i + 1}/{runs}, attempt {attempt}/{TRIES}: {e}", file=sys.stderr,
                      flush=True)
        else:
            raise SystemExit(f"{what}: run {i + 1} failed {TRIES} times; last error above")
        print(f"{what}: run {i + 1}/{runs} done", file=sys.stderr, flush=True)
    median, spreads = combine(done)
    return {"median": median, "spread": spreads, "runs": done}


def runs_option(parser: Any, default: int = 3, *aliases: str) -> None:
    """`--runs N` (and its former names, `aliases`), at least 1."""

    def at_least_one(text: str) -> int:
        if int(text) < 1:
            raise ValueError(text)
        return int(text)

    at_least_one.__name__ = "count"  # argparse's "invalid count value" message
    parser.add_argument("--runs", *aliases, dest="runs", type=at_least_one, default=default,
                        help=f"measure this many times; every figure is the median, with min and max "
                        f"(default {default})")


def write(bench: str, record: dict[str, Any], started: float | None = None) -> str:
    """Write bench/results/<bench>-<UTC timestamp>.json with the commit measured; its path."""
    started = time.time() if started is None else started
    record = {"bench": bench, "when": started, "commit": commit(), "machine": machine(), **record}
    os.makedirs(RESULTS, exist_ok=True)
    path = time.strftime(f"{RESULTS}/{bench}-%Y%m%dT%H%M%S.json", time.gmtime(started))
    with open(path, "w") as f:
        json.dump(record, f, indent=1)
    print(f"written {path} (commit {record['commit']})")
    return path
