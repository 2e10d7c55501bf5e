"""What a lab has created, recorded on disk *before* it is created.

`lab down` reads this journal to remove everything, even after a crash or a
half-finished `up`.  The file is rewritten atomically (write, fsync, rename)
and guarded by an flock so concurrent CLI calls on one lab serialise.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

from daolinet.lab import plan


@dataclass
class LabState:
    name: str
    hosts: int = 0
    racks: int = 1
    complete: bool = False  # `up` finished
    netns: list[str] = field(default_factory=list)
    pids: dict[str, int] = field(default_factory=dict)  # role -> pid
    containers: dict[str, dict[str, Any]] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LabState:
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})


def state_path(lab: str) -> str:
    return os.path.join(plan.lab_dir(lab), "state.json")


def load(lab: str) -> LabState | None:
    try:
        with open(state_path(lab)) as f:
            return LabState.from_json(json.load(f))
    except FileNotFoundError:
        return None
    except (ValueError, TypeError):
        # A torn or foreign file: treat as empty so `down` still sweeps by name.
        return LabState(name=lab)


def save(state: LabState) -> None:
    path = state_path(state.name)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(asdict(state), f, indent=1, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


@contextlib.contextmanager
def locked(lab: str) -> Iterator[None]:
    """Exclusive lock on the lab's directory (which must exist)."""
    fd = os.open(os.path.join(plan.lab_dir(lab), ".lock"), os.O_CREAT | os.O_RDWR, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
