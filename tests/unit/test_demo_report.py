"""The demo's verdict comes from its checks: one step that fails (or raises)
makes the report fail and `daolinet lab demo` exit non-zero, while the other
steps still run.  No lab: the steps here are fakes."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from rich.console import Console

from daolinet.cli import main as cli_main
from daolinet.lab import cluster, demo


def passing(lab: Any, rec: demo.Recorder) -> None:
    rec.check("fine", "a claim that holds", True, rtt_ms=1.5)


def failing(lab: Any, rec: demo.Recorder) -> None:
    rec.check("broken", "a claim that does not hold", False, replies=0)


def raising(lab: Any, rec: demo.Recorder) -> None:
    raise RuntimeError("the lab fell over")


def quiet() -> Console:
    return Console(file=io.StringIO(), width=200)


def test_all_checks_holding_is_ok() -> None:
    report = demo.run_steps(object(), "x", quiet(), [("one", passing), ("two", passing)])
    assert report.ok and report.failed == []
    assert report.check("fine").measured == {"rtt_ms": 1.5}


def test_one_failing_check_fails_the_report_and_later_steps_still_run() -> None:
    report = demo.run_steps(object(), "x", quiet(), [("a", failing), ("b", raising), ("c", passing)])
    assert not report.ok
    assert [c.key for c in report.failed] == ["broken", "b-ran-through"]
    assert "RuntimeError: the lab fell over" in report.check("b-ran-through").measured["error"]
    assert report.check("fine").passed  # step c ran
    assert report.to_json()["failed"] == ["broken", "b-ran-through"]


def test_no_checks_at_all_is_not_ok() -> None:
    assert not demo.run_steps(object(), "x", quiet(), []).ok


@pytest.fixture
def fake_lab(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """`cluster.Lab.up` and `cluster.down` recorded, not run."""
    calls: list[str] = []
    monkeypatch.setattr(cluster.Lab, "up", classmethod(lambda cls, name, **kw: calls.append(f"up {name}")))
    monkeypatch.setattr(cluster, "down", lambda name: calls.append(f"down {name}") or True)
    return calls


def test_the_cli_exits_non_zero_when_a_step_fails(fake_lab: list[str], monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(demo, "STEPS", (("good", passing), ("bad", failing)))
    status = cli_main.run(["lab", "demo", "--name", "t", "--json"])
    out, err = capsys.readouterr()
    assert status != 0
    assert "demo: 1 check(s) failed: broken" in err
    report = json.loads(out)
    assert report["ok"] is False and report["failed"] == ["broken"]
    assert [c["passed"] for c in report["checks"]] == [True, False]
    assert fake_lab[-1] == "down t"  # torn down even so


def test_the_cli_exits_zero_when_every_check_holds(fake_lab: list[str], monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(demo, "STEPS", (("good", passing),))
    assert cli_main.run(["lab", "demo", "--name", "t", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["ok"] is True
