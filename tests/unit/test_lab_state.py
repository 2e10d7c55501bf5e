"""The lab journal survives round trips and torn files."""

import pytest

from daolinet.lab import plan, state


@pytest.fixture
def run_root(tmp_path, monkeypatch):  # type: ignore[no-untyped-def]
    monkeypatch.setattr(plan, "RUN_ROOT", str(tmp_path))
    (tmp_path / "x").mkdir()
    return tmp_path


def test_round_trip(run_root) -> None:  # type: ignore[no-untyped-def]
    st = state.LabState(name="x", hosts=2, netns=["dl-x-h1"], pids={"h1/ovs-vswitchd": 42})
    state.save(st)
    assert state.load("x") == st


def test_missing_journal_is_none(run_root) -> None:  # type: ignore[no-untyped-def]
    assert state.load("y") is None


def test_torn_journal_still_names_the_lab(run_root) -> None:  # type: ignore[no-untyped-def]
    (run_root / "x" / "state.json").write_text('{"name": "x", "netns": [')
    st = state.load("x")
    assert st is not None and st.name == "x" and st.netns == []
