"""`make demo` is the newcomer's first command: it must run through, every
check in it holding, and leave nothing behind."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from daolinet.errors import SystemFailure
from daolinet.lab import demo
from daolinet.testing.fixtures import lab_leftovers, need_root, new_lab_name

pytestmark = pytest.mark.integration


def test_the_demo_runs_through_and_cleans_up() -> None:
    need_root()
    name = new_lab_name()
    out = io.StringIO()
    try:
        demo.run(name, Console(file=out, width=200))
    except SystemFailure as e:
        pytest.fail(f"{e}; the demo printed:\n{out.getvalue()}")
    finally:
        assert lab_leftovers(name) == []
    text = out.getvalue()
    assert "FAILED" not in text, text
    for words in ("first packet, cross-host", "traceroute", "group app", "portmap", "costs no flows"):
        assert words in text, text
