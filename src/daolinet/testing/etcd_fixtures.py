"""pytest fixtures for etcd (import them into a test module): kept apart from
`daolinet.lab.etcd_cluster`, which the lab uses and which must not need pytest."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from daolinet.lab.etcd_cluster import EtcdCluster, EtcdMissing, etcd_binary


def _need_etcd() -> None:
    try:
        etcd_binary()
    except EtcdMissing as e:
        pytest.skip(str(e))


@pytest.fixture(scope="module")
def etcd_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdCluster]:
    """One etcd member for a whole test module; tests isolate themselves by key prefix."""
    _need_etcd()
    with EtcdCluster(tmp_path_factory.mktemp("etcd"), size=1) as cluster:
        yield cluster


@pytest.fixture
def etcd_factory(tmp_path: Path) -> Iterator[Callable[[int], EtcdCluster]]:
    """Start clusters of a given size on demand; every one is stopped after the test."""
    _need_etcd()
    made: list[EtcdCluster] = []

    def make(size: int = 1) -> EtcdCluster:
        cluster = EtcdCluster(tmp_path, size=size)
        made.append(cluster)
        return cluster.start()

    yield make
    for cluster in made:
        cluster.stop()
    left = [m.proc.pid for c in made for m in c.members if m.proc is not None and m.proc.poll() is None]
    assert not left, f"etcd members still running: {left}"
