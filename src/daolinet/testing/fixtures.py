"""pytest fixtures (registered as a pytest11 plugin): a fresh lab per test,
torn down even when the test fails, and asserted to leave nothing behind."""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Iterator

import pytest

from daolinet.lab import cluster, plan
from daolinet.system import links, procs


def new_lab_name() -> str:
    return "t" + secrets.token_hex(4)


def lab_leftovers(name: str) -> list[str]:
    """Anything of lab NAME still on the machine, described for an assertion message."""
    found = [f"netns {n}" for n in links.list_netns(plan.netns_prefix(name))]
    found += [f"pid {p}" for p in procs.pids_mentioning(plan.lab_dir(name) + "/")]
    if os.path.exists(plan.lab_dir(name)):
        found.append(f"dir {plan.lab_dir(name)}")
    return found


def need_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("integration tests need root")


@pytest.fixture
def lab_factory() -> Iterator[Callable[..., cluster.Lab]]:
    """Build labs on demand; every one is torn down and checked afterwards."""
    need_root()
    made: list[str] = []

    def make(hosts: int = 2, racks: int = 1, **kwargs: object) -> cluster.Lab:
        name = new_lab_name()
        made.append(name)
        return cluster.Lab.up(name, hosts=hosts, racks=racks, **kwargs)  # type: ignore[arg-type]

    yield make
    for name in made:
        cluster.down(name)
    leftovers = [x for name in made for x in lab_leftovers(name)]
    assert not leftovers, f"lab teardown left {leftovers}"


@pytest.fixture
def lab2(lab_factory: Callable[..., cluster.Lab]) -> cluster.Lab:
    return lab_factory(hosts=2)
