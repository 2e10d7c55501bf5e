"""The only durable state: tenants, networks, hosts, endpoints and their change
feed, behind one interface (`Store`).  `open_store(url)` picks the backend."""

from __future__ import annotations

from daolinet.errors import InvalidInput
from daolinet.store.base import ChangesPruned, Store
from daolinet.store.sqlite import SqliteStore

__all__ = ["ChangesPruned", "SqliteStore", "Store", "open_store"]

SQLITE_MEMORY = "sqlite://:memory:"
SQLITE_FILE = "sqlite:///"  # followed by an absolute path without its leading "/"


def open_store(url: str) -> Store:
    """A store for `url`: "sqlite:///abs/path/file.db" or "sqlite://:memory:"."""
    if url == SQLITE_MEMORY:
        return SqliteStore.open(":memory:")
    if url.startswith(SQLITE_FILE) and len(url) > len(SQLITE_FILE):
        return SqliteStore.open(url[len(SQLITE_FILE) - 1:])
    # etcd://host:port[,host:port...] will go here: an EtcdStore built on aetcd.
    raise InvalidInput(f"unsupported store URL {url!r}: use sqlite:///absolute/path.db or {SQLITE_MEMORY}")
