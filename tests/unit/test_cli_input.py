"""Bad input to `daolinet lab` fails with one line and touches nothing.

These run the real console script; validation happens before anything is
created, so they need no root."""

import subprocess
import sys

import pytest


def daolinet(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "daolinet.cli.main", *args],
                          capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(("args", "message"), [
    (["lab", "up", "--hosts", "0", "--name", "zz"], "--hosts must be between 1 and"),
    (["lab", "up", "--hosts", "2", "--name", "Bad-Name!"], "invalid lab name"),
    (["lab", "up", "--hosts", "1", "--racks", "2", "--name", "zz"], "needs at least 2 hosts"),
    (["lab", "down", "--name", "../etc"], "invalid lab name"),
    (["lab", "ls", "--name", "nosuchlab"], "no lab named nosuchlab"),
])
def test_bad_lab_input_gets_one_line(args: list[str], message: str) -> None:
    done = daolinet(*args)
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert lines == [lines[0]] and lines[0].startswith("error: ") and message in lines[0], done.stderr
    assert "Traceback" not in done.stderr


def test_help_lists_the_lab_commands() -> None:
    done = daolinet("lab", "--help")
    assert done.returncode == 0
    for cmd in ("up", "down", "ls", "exec", "container"):
        assert cmd in done.stdout
