"""`daolinet store migrate SRC DST`: copy every object of one store into another,
empty one (e.g. a running SQLite installation into etcd).

The source is read in one snapshot; the destination receives the objects as
they are (ids, logical IPs, PIPs, MACs, tokens) in batches, each batch one
transaction, so a controller started on it later sees the same installation.
"""

from __future__ import annotations

from daolinet.errors import Conflict
from daolinet.model.view import Obj
from daolinet.store.base import Store

BATCH = 50  # objects per transaction (an etcd transaction holds a bounded number of operations)


async def migrate(src: Store, dst: Store, batch: int = BATCH) -> int:
    """Copy every object of `src` into the empty `dst`; returns how many."""
    _, objs = await src.snapshot()
    _, there = await dst.snapshot()
    if there:
        raise Conflict(f"the destination store is not empty ({len(there)} objects): "
                       "migrate only into a new store")
    for chunk in _chunks(objs, batch):
        await dst.import_objects(chunk)
    return len(objs)


def _chunks(objs: list[Obj], size: int) -> list[list[Obj]]:
    return [objs[i:i + size] for i in range(0, len(objs), size)]
