"""`store migrate`: every object arrives as it was; a non-empty destination is refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from daolinet.errors import Conflict
from daolinet.store import SqliteStore, Store
from daolinet.store.migrate import migrate
from daolinet.testing.populate import populate


async def assert_same(src: Store, dst: Store) -> None:
    (_, a), (_, b) = await src.snapshot(), await dst.snapshot()
    assert len(a) == len(b) > 10
    for x, y in zip(a, b, strict=True):
        assert type(x) is type(y) and vars(x) == vars(y), (x, y)  # field by field


async def test_migrate_copies_every_object_field_by_field(tmp_path: Path) -> None:
    src, dst = SqliteStore.open(str(tmp_path / "a.db")), SqliteStore.open(str(tmp_path / "b.db"))
    await populate(src)
    n = await migrate(src, dst, batch=4)
    await assert_same(src, dst)
    assert n == len((await src.snapshot())[1])
    # the copy goes on allocating without reusing anything
    net = await dst.create_network("default", "new", "10.9.0.0/24")
    assert net.id > max(x.id for x in await src.list_networks())
    e = await dst.create_endpoint("default", "web", "w9", "h1")
    assert e.ip not in {x.ip for x in await src.list_endpoints(network="web")}
    await src.close()
    await dst.close()


async def test_migrate_refuses_a_non_empty_destination(tmp_path: Path) -> None:
    src, dst = SqliteStore.open(str(tmp_path / "a.db")), SqliteStore.open(str(tmp_path / "b.db"))
    await populate(src)
    await dst.create_tenant("x")
    with pytest.raises(Conflict, match="not empty"):
        await migrate(src, dst)
    await src.close()
    await dst.close()


def test_the_cli_migrates_between_store_urls(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import asyncio

    from daolinet.cli.main import run

    a, b = tmp_path / "a.db", tmp_path / "b.db"

    async def fill() -> None:
        async with SqliteStore.open(str(a)) as src:
            await populate(src)
    asyncio.run(fill())
    assert run(["store", "migrate", f"sqlite://{a}", f"sqlite://{b}"]) == 0
    assert "copied" in capsys.readouterr().out
    assert run(["store", "migrate", f"sqlite://{a}", f"sqlite://{b}"]) != 0  # not empty now
    assert "not empty" in capsys.readouterr().err
