"""bench/runs.py, what every bench shares: figures are the median with min and max
over runs, a round a tool failed in is retried with the tool's own words (never a
traceback), and the results record the commit they measured."""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCH = os.path.join(os.path.dirname(__file__), "..", "..", "bench")


def load(name: str) -> ModuleType:
    sys.path.insert(0, BENCH)
    try:
        if name in sys.modules:  # the benches import each other by plain name (bench/ on sys.path)
            return sys.modules[name]
        spec = importlib.util.spec_from_file_location(name, os.path.join(BENCH, f"{name}.py"))
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(BENCH)


runs = load("runs")


def test_numbers_become_median_with_min_and_max_and_samples_are_pooled() -> None:
    one = {"case": {"gbps": 1.0, "samples_ms": [1, 2], "lab": "x"}, "rows": [{"k": 40, "n": 3}]}
    two = {"case": {"gbps": 3.0, "samples_ms": [3], "lab": "y"}, "rows": [{"k": 40, "n": 5}]}
    three = {"case": {"gbps": 2.0, "samples_ms": [], "lab": "z"}, "rows": [{"k": 40, "n": 4}]}
    median, spread = runs.combine([one, two, three])
    assert median == {"case": {"gbps": 2.0, "samples_ms": [1, 2, 3], "lab": "x"},
                      "rows": [{"k": 40, "n": 4}]}
    assert spread["case"]["gbps"] == {"median": 2.0, "min": 1.0, "max": 3.0, "values": [1.0, 3.0, 2.0]}
    assert spread["rows"][0]["n"]["min"] == 3.0 and "samples_ms" not in spread["case"]
    assert runs.show(spread["case"]["gbps"], 1) == "2.0 (1.0–3.0)"
    assert runs.show(runs.spread([5.0]), 1) == "5.0 (single run)"


def test_a_round_the_tool_failed_is_reported_and_retried(capsys: pytest.CaptureFixture[str]) -> None:
    answers = iter([runs.ToolFailed("iperf3: the server is busy running a test. try again later"),
                    {"x": 1.0}, {"x": 3.0}])

    def once() -> dict[str, float]:
        a = next(answers)
        if isinstance(a, Exception):
            raise a
        return a

    done = runs.repeat(once, 2, "demo-bench")
    assert done["median"] == {"x": 2.0} and len(done["runs"]) == 2
    assert "attempt 1/3: iperf3: the server is busy" in capsys.readouterr().err


def test_a_tool_that_keeps_failing_ends_the_bench_with_one_line() -> None:
    def once() -> None:
        raise runs.ToolFailed("iperf3: unable to connect to server")

    with pytest.raises(SystemExit, match="failed 3 times"):
        runs.repeat(once, 1, "demo-bench")


def test_iperf3_reporting_an_error_is_its_error_not_a_key_error() -> None:
    dataplane = load("dataplane")
    error = {"start": {}, "end": {}, "error": "unable to receive results: Bad file descriptor"}
    with pytest.raises(runs.ToolFailed, match="iperf3: unable to receive results"):
        dataplane.iperf_gbps(json.dumps(error))
    with pytest.raises(runs.ToolFailed, match="no JSON"):
        dataplane.iperf_gbps("iperf3: error - unable to connect")
    ok = {"end": {"sum_received": {"bits_per_second": 2.5e9}}}
    assert dataplane.iperf_gbps(json.dumps(ok)) == 2.5


def test_the_commit_is_named_and_marked_dirty_when_the_tree_differs(tmp_path: Path) -> None:
    mark = runs.commit()
    assert mark == "unknown" or mark.split("-")[0].isalnum()
    assert runs.commit(str(tmp_path)) == "unknown"  # not a git tree
