"""The store test suites' backends: every test that asks for `store` (or `open_new`)
runs once on SQLite (in memory) and once on a real etcd-server (one member per test
module, each store under a key prefix of its own; skipped where no etcd is installed).

Import `store`, `open_new`, `store_url`, their `backend`, `opener` and `etcd_server` into a
test module to use them."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from daolinet.security.tls import TlsFiles
from daolinet.store import SqliteStore, Store
from daolinet.store.etcd_tx import EtcdTx
from daolinet.store.sqlite_reads import SqliteTx
from daolinet.testing.etcd_fixtures import etcd_server

__all__ = ["backend", "etcd_server", "fail_recording", "open_new", "opener", "store", "store_url"]

BACKENDS = ["sqlite", pytest.param("etcd", marks=pytest.mark.integration)]
Opener = Callable[..., Store]


def new_prefix() -> str:
    return "t" + secrets.token_hex(6)


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def opener(backend: str, request: pytest.FixtureRequest) -> Opener:
    """Opens a new, empty store of `backend` (keyword arguments go to its `open`)."""
    if backend == "sqlite":
        return lambda **kw: SqliteStore.open(":memory:", **kw)
    cluster = request.getfixturevalue("etcd_server")
    return lambda **kw: cluster.open_store(new_prefix(), **kw)


@pytest.fixture
def store_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, TlsFiles | None]:
    """The URL (and etcd client TLS) of a new store of `backend` that outlives its connections:
    a SQLite file, or a key prefix of the test module's etcd-server."""
    if backend == "sqlite":
        return f"sqlite://{tmp_path}/store.db", None
    cluster = request.getfixturevalue("etcd_server")
    return cluster.url(new_prefix()), cluster.client_tls


@pytest.fixture
async def open_new(opener: Opener) -> AsyncIterator[Opener]:
    """`opener`, closing every store it opened after the test."""
    made: list[Store] = []

    def make(**kw: Any) -> Store:
        made.append(opener(**kw))
        return made[-1]
    yield make
    for s in made:
        await s.close()


@pytest.fixture
async def store(open_new: Opener) -> Store:
    return open_new()


def fail_recording(monkeypatch: pytest.MonkeyPatch, doomed: Callable[[object], bool]) -> None:
    """Make every backend's transaction fail (RuntimeError) when it records an object `doomed` picks."""
    for tx in (SqliteTx, EtcdTx):
        real = tx.record

        def record(self: Any, obj: Any, *a: Any, _real: Any = real, **kw: Any) -> None:
            if doomed(obj):
                raise RuntimeError("disk on fire")
            _real(self, obj, *a, **kw)
        monkeypatch.setattr(tx, "record", record)
