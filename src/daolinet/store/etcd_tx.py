"""One write of the etcd store: optimistic, serialised by the store revision.

A write reads everything it decides from at one etcd revision (`Reader`),
buffers its puts and deletes here, and commits them in one etcd transaction
that succeeds only if

  - `meta/rev` was not modified since that revision (no other write of this
    store committed in between: writes are serialisable, as in SQLite), and
  - every claim it creates is still absent (version 0): the per-address and
    per-name compare-and-swap that makes a double allocation impossible.

The same transaction bumps `meta/rev` by the number of Changes and appends
them to the log (one key per write), coalesces heartbeats and trims the log.
If a compare fails because `meta/rev` moved, the caller reads again and
retries; if a claim is taken while `meta/rev` did not move (a foreign writer),
the write is refused with Conflict, like a UNIQUE constraint.  When the reply
of a commit is lost, the same transaction is sent again (at most one of them
can apply) and the log entry, tagged with a random transaction id, tells
whether an earlier send applied.
"""

from __future__ import annotations

import json
import secrets
from typing import Any

from aetcd import transactions as T

from daolinet.errors import Conflict, SystemFailure
from daolinet.model.view import Change, Obj
from daolinet.store.etcd_keys import Keys, change_json, encode
from daolinet.store.etcd_kv import Ambiguous, EtcdKV, Reader
from daolinet.store.etcd_reads import EtcdReads


class EtcdTx(EtcdReads):
    """The writes of one attempt (`backend.Writes`); its reads see the store as it was when the
    attempt began."""

    def __init__(self, kv: EtcdKV, keys: Keys, reader: Reader, rev: int, rev_mod: int, *,
                 keep: int, prune_every: int) -> None:
        super().__init__(reader, keys)
        self.kv = kv
        self.rev = rev  # the store revision this attempt began at
        self._rev_mod = rev_mod  # etcd mod revision of meta/rev then (0: no write ever)
        self._keep = keep
        self._prune_every = prune_every
        self.changes: list[Change] = []
        self._puts: dict[bytes, bytes] = {}
        self._deletes: set[bytes] = set()
        self._ranges: list[tuple[bytes, bytes]] = []
        self._absent: set[bytes] = set()
        self._seqs: dict[str, int] = {}
        self._heartbeat_of: str | None = None
        self._txn_id = secrets.token_hex(8)

    @classmethod
    async def begin(cls, kv: EtcdKV, keys: Keys, *, keep: int, prune_every: int) -> EtcdTx:
        read = Reader(kv)
        found = await read.get_kv(keys.rev)  # fixes the revision every later read of this attempt sees
        rev, mod = (int(found[0]), found[1]) if found else (0, 0)
        return cls(kv, keys, read, rev, mod, keep=keep, prune_every=prune_every)

    # -- buffered writes --------------------------------------------------------------------

    def _set(self, key: bytes, value: bytes) -> None:
        self._deletes.discard(key)
        self._puts[key] = value

    def _delete(self, key: bytes) -> None:
        self._puts.pop(key, None)
        self._absent.discard(key)
        if not any(start <= key < end for start, end in self._ranges):
            self._deletes.add(key)

    def claim(self, key: bytes, owner: bytes) -> None:
        """Create claim `key` for `owner`; the commit fails if someone holds it already."""
        self._absent.add(key)
        self._set(key, owner)

    def put(self, obj: Obj, old: Obj | None = None) -> None:
        """Write `obj` (which replaces `old`, if given) and move its claims along."""
        self._set(self.keys.key_of(obj), encode(obj))
        had = {} if old is None else self.keys.claims_of(old)
        for key, owner in self.keys.claims_of(obj).items():
            if had.pop(key, None) != owner:
                self.claim(key, owner)
        for key in had:
            self._delete(key)

    def remove(self, obj: Obj) -> None:
        """Delete `obj` and its claims, and record its deletion."""
        for key in (self.keys.key_of(obj), *self.keys.claims_of(obj)):
            self._delete(key)
        self.record(obj, deleted=True)

    def delete_prefix(self, prefix: bytes) -> None:
        """Delete every key under `prefix` (one operation, whatever their number)."""
        end = prefix[:-1] + bytes([prefix[-1] + 1])
        self._ranges.append((prefix, end))
        self._deletes = {k for k in self._deletes if not prefix <= k < end}

    def drop_tenant_policy(self, tenant: str) -> None:
        """Tenant-scoped keys go by prefix: one operation each, whatever their number."""
        for kind in ("rule", "group", "claim/pair", "claim/l4", "claim/rule-name", "claim/token-name"):
            self.delete_prefix(self.keys.all(kind, tenant))

    def drop_pair_rules(self, tenant: str) -> None:
        self.delete_prefix(self.keys.all("rule", f"{tenant}/pair"))
        self.delete_prefix(self.keys.all("claim/pair", tenant))

    def record(self, obj: Obj, deleted: bool = False, heartbeat_of: str | None = None) -> None:
        """A Change with the next store revision."""
        if heartbeat_of is not None:
            self._heartbeat_of = heartbeat_of
        self.changes.append(Change(rev=self.rev + len(self.changes) + 1, obj=obj, deleted=deleted))

    async def next_id(self, kind: str) -> int:
        """The next never-used id of `kind` (AUTOINCREMENT)."""
        if kind not in self._seqs:
            self._seqs[kind] = int(await self.reader.get(self.keys.seq(kind)) or 0)
        self._seqs[kind] += 1
        self._set(self.keys.seq(kind), str(self._seqs[kind]).encode())
        return self._seqs[kind]

    async def raise_seq(self, kind: str, at_least: int) -> None:
        """Never hand out an id of `kind` up to `at_least` (imported objects hold them)."""
        if kind not in self._seqs:
            self._seqs[kind] = int(await self.reader.get(self.keys.seq(kind)) or 0)
        if at_least > self._seqs[kind]:
            self._seqs[kind] = at_least
            self._set(self.keys.seq(kind), str(at_least).encode())

    # -- commit ---------------------------------------------------------------------------------

    async def commit(self) -> bool:
        """True if committed; False if another write came first (read again and retry).

        A lost reply is settled by sending the very same transaction again: it compares the
        same mod revision of meta/rev, so at most one of the two can apply, and when the
        second finds the first applied, its failure branch reads our own log entry back."""
        last = self.rev + len(self.changes)
        success = await self._operations(last)
        absent = sorted(self._absent)
        compare = [T.Mod(self.keys.rev) == self._rev_mod, *(T.Version(k) == 0 for k in absent)]
        failure = [T.Get(self.keys.rev), T.Get(self.keys.log(last)), *(T.Get(k) for k in absent)]
        ok, replies = await self._send(compare, success, failure)
        if ok:
            return True
        if replies[1] and json.loads(replies[1][0][0]).get("txn") == self._txn_id:
            return True  # an earlier send of ours applied
        now = replies[0][0][1].mod_revision if replies[0] else 0
        if now != self._rev_mod:
            return False
        taken = [(key, reply[0][0]) for key, reply in zip(absent, replies[2:], strict=True) if reply]
        key, owner = taken[0] if taken else (b"?", b"?")
        raise Conflict(f"store {self.kv.name} refused the change: {key.decode()} is already claimed "
                       f"by {owner.decode()}")

    async def _send(self, compare: list[Any], success: list[Any],
                    failure: list[Any]) -> tuple[bool, list[Any]]:
        lost: Ambiguous | None = None
        for _ in range(len(self.kv.endpoints) + 1):
            try:
                return await self.kv.txn(compare, success, failure)
            except Ambiguous as e:  # moved to the next member already: send the same again
                lost = e
        raise SystemFailure(f"{lost}; the change may or may not have been applied") from lost

    async def _operations(self, last: int) -> list[Any]:
        ops: list[Any] = [T.Delete(start, range_end=end) for start, end in self._ranges]
        ops += [T.Delete(key) for key in sorted(self._deletes)]
        ops += [T.Put(key, value) for key, value in self._puts.items()]
        batch = {"txn": self._txn_id, "changes": [change_json(c.rev, c.obj, c.deleted) for c in self.changes]}
        ops += [T.Put(self.keys.rev, str(last).encode()),
                T.Put(self.keys.log(last), json.dumps(batch, sort_keys=True).encode())]
        cut = await self._prune_to(last)
        if self._heartbeat_of is not None:  # only the latest heartbeat of a host stays in the log
            mark = self.keys.heartbeat(self._heartbeat_of)
            previous = await self.reader.get(mark)
            if previous is not None and previous > self.keys.log(cut):
                ops.append(T.Delete(previous))
            ops.append(T.Put(mark, self.keys.log(last)))
        return ops + ([T.Delete(self.keys.log_prefix, range_end=self.keys.log(cut) + b"\0"),
                       T.Put(self.keys.pruned, str(cut).encode())] if cut else [])

    async def _prune_to(self, last: int) -> int:
        """The revision to trim the log to in this write (keeping the last `keep`), or 0."""
        if not any(c.rev % self._prune_every == 0 for c in self.changes):
            return 0
        cut = last - self._keep
        pruned = int(await self.reader.get(self.keys.pruned) or 0)
        return cut if cut > pruned else 0
