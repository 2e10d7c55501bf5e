"""The installed package runs without its test dependencies: an operator's
`pip install daolinet` has no pytest, hypothesis or matplotlib."""

from __future__ import annotations

import subprocess
import sys

TEST_ONLY = ("pytest", "hypothesis", "matplotlib", "schemathesis", "_pytest")
ENTRY_POINTS = ("daolinet.cli.main", "daolinet.cni.shim", "daolinet.agent.main", "daolinet.controller.main")


def test_entry_points_import_without_test_dependencies() -> None:
    blocked = "; ".join(f"sys.modules[{m!r}] = None" for m in TEST_ONLY)
    code = f"import sys; {blocked}; " + "; ".join(f"import {m}" for m in ENTRY_POINTS)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
