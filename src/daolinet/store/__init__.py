"""The only durable state: tenants, networks, hosts, endpoints and their change
feed, behind one interface (`Store`).  `open_store(url)` picks the backend."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from daolinet.errors import InvalidInput
from daolinet.store.checks import check_int
from daolinet.store.liveness import DEFAULT_HOST_TTL, MAX_HOST_TTL

if TYPE_CHECKING:
    from daolinet.security.tls import TlsFiles
    from daolinet.store.base import ChangesPruned, Store
    from daolinet.store.etcd import EtcdStore
    from daolinet.store.sqlite import SqliteStore

__all__ = ["ChangesPruned", "EtcdStore", "SqliteStore", "Store", "open_store"]

SQLITE_MEMORY = "sqlite://:memory:"
SQLITE_FILE = "sqlite:///"  # followed by an absolute path without its leading "/"
ETCD = "etcd://"  # followed by host:port[,host:port...][/prefix]


def open_store(url: str, host_ttl: int = DEFAULT_HOST_TTL, etcd_tls: TlsFiles | None = None) -> Store:
    """A store for `url`: "sqlite:///abs/path/file.db", "sqlite://:memory:" or
    "etcd://host:port[,host:port...][/prefix]" (which connects on first use).
    `host_ttl`: seconds a host stays alive after its last heartbeat; `etcd_tls`: the
    CA and client pair for etcd over TLS."""
    check_int("host TTL", host_ttl, 1, MAX_HOST_TTL)
    store = _open(url, etcd_tls)
    store.host_ttl = host_ttl
    return store


# The backends load when used: `daolinet.store.liveness` (what an agent needs) costs no
# etcd client, gRPC or SQLite.
_LAZY = {"ChangesPruned": "daolinet.store.base", "Store": "daolinet.store.base",
         "EtcdStore": "daolinet.store.etcd", "SqliteStore": "daolinet.store.sqlite"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _open(url: str, etcd_tls: TlsFiles | None = None) -> Store:
    if url == SQLITE_MEMORY or (url.startswith(SQLITE_FILE) and len(url) > len(SQLITE_FILE)):
        from daolinet.store.sqlite import SqliteStore

        return SqliteStore.open(":memory:" if url == SQLITE_MEMORY else url[len(SQLITE_FILE) - 1:])
    if url.startswith(ETCD):
        from daolinet.store.etcd import EtcdStore

        return EtcdStore.open(url, tls=etcd_tls)
    raise InvalidInput(f"unsupported store URL {url!r}: use sqlite:///absolute/path.db, {SQLITE_MEMORY} "
                       f"or {ETCD}host:port[,host:port...][/prefix]")
