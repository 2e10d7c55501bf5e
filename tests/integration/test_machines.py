"""Simulated machines (daolinet.testing.machines) behave as separate servers: their
own hostname, /etc, /run and processes, an uplink with the address on it, and
nothing left on this machine afterwards."""

from __future__ import annotations

import pytest

from daolinet.testing.fixtures import need_root, new_lab_name
from daolinet.testing.machines import UPLINK, Machines

pytestmark = pytest.mark.integration


def test_machines_are_separate_and_leave_nothing() -> None:
    need_root()
    ms = Machines(new_lab_name())
    try:
        a, b = ms.create("ma", "mb")
        assert a.run(["hostname"]).stdout.strip() == "ma"
        assert b.run(["ping", "-c1", "-W2", b.ip]).returncode == 0
        assert a.run(["ping", "-c1", "-W2", b.ip]).returncode == 0
        a.sh("mkdir -p /etc/daolinet && echo a > /etc/daolinet/agent.toml && touch /run/only-a")
        assert a.read("/etc/daolinet/agent.toml") == "a\n"
        assert b.run(["test", "-e", "/etc/daolinet/agent.toml"], check=False).returncode != 0
        assert b.run(["test", "-e", "/run/only-a"], check=False).returncode != 0
        assert f"inet {a.ip}/" in a.run(["ip", "-4", "addr", "show", UPLINK]).stdout
        sleeper = a.popen(["sleep", "600"])
        a.sh("setsid sleep 600 >/dev/null 2>&1 < /dev/null &")  # daemonised: not our child
        assert len(a.pids()) == 2 and b.pids() == []
        a.power_off()
        assert a.pids() == [] and sleeper.wait(timeout=5) != 0
    finally:
        ms.destroy()
    assert ms.leftovers() == []
