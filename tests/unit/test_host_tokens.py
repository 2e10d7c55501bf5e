"""Host tokens (the agents' credential of an --insecure installation): a store made
before they existed is upgraded in place and keeps its tokens."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

from daolinet.store import SqliteStore


def sha(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


async def test_a_store_made_before_host_tokens_is_upgraded(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    async with SqliteStore.open(str(path)) as s:
        old = await s.create_token("admin", None, sha("admin"), 1.0)
    db = sqlite3.connect(path)
    db.execute("ALTER TABLE tokens DROP COLUMN host")  # as an older daolinet made it
    db.commit()
    db.close()
    async with SqliteStore.open(str(path)) as s:
        assert await s.find_token(sha("admin")) == old
        agent = await s.create_token("agent-h1", None, sha("h1"), 2.0, host="h1")
        assert await s.list_tokens() == [old, agent]
    async with SqliteStore.open(str(path)) as s:  # and it stays
        assert (await s.find_token(sha("h1"))) == agent
        assert agent.host == "h1" and old.host is None
