"""Controller records: checked and kept by the store, followed by the View (the
addresses containers may not reach), listed by the API to admins only."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from daolinet.controller.api import create_app
from daolinet.controller.api.auth import hash_token
from daolinet.controller.context import Config
from daolinet.controller.controller import Controller
from daolinet.controller.record import own_record
from daolinet.errors import InvalidInput
from daolinet.model import ControllerRecord, View
from daolinet.model.view import Change
from daolinet.store import SqliteStore
from daolinet.testing.factories import make_host

REC = ControllerRecord("c1", api=("198.18.0.200:8650",), openflow=("198.18.0.200:6653",),
                       advertise=("198.18.0.201",), etcd=("198.18.0.210:2379", "198.18.0.211:2379"))


@pytest.fixture
async def store() -> AsyncIterator[SqliteStore]:
    s = SqliteStore.open(":memory:")
    yield s
    await s.close()


async def test_a_record_is_kept_replaced_by_id_and_in_the_change_feed(store: SqliteStore) -> None:
    seen: list[Change] = []
    store.subscribe(seen.append)
    await store.record_controller(REC)
    moved = await store.record_controller(ControllerRecord("c1", api=("198.18.0.202:8650",)))
    assert await store.list_controllers() == [moved]
    _, objs = await store.snapshot()
    assert objs == [moved]
    view = View()
    for change in await store.changes_since(0):
        view.apply(change)
    assert view.controllers == {"c1": moved} and [c.obj for c in seen] == [REC, moved]


@pytest.mark.parametrize(("record", "words"), [
    (ControllerRecord("c 1"), "controller name"),
    (ControllerRecord("c1", api=("198.18.0.1",)), "IP:PORT"),
    (ControllerRecord("c1", etcd=("etcd1:2379",)), "not an IPv4 address"),
    (ControllerRecord("c1", openflow=("198.18.0.1:0",)), "between 1 and 65535"),
    (ControllerRecord("c1", advertise=("::1",)), "not an IPv4 address"),
])
async def test_bad_records_are_refused_and_change_nothing(store: SqliteStore, record: ControllerRecord,
                                                          words: str) -> None:
    with pytest.raises(InvalidInput, match=words):
        await store.record_controller(record)
    assert await store.list_controllers() == []


def test_the_view_knows_every_infrastructure_address_until_nobody_holds_it() -> None:
    view = View()
    h1 = make_host(1)
    view.load([h1, REC, ControllerRecord("c2", advertise=("198.18.0.1",))])  # c2 shares h1's address
    assert view.infra_ips() == {"198.18.0.1", "198.18.0.200", "198.18.0.201", "198.18.0.210",
                                "198.18.0.211"}
    assert view.host_at("198.18.0.1") == h1 and view.host_at("198.18.0.200") is None
    view.apply(Change(rev=2, obj=h1, deleted=True))
    assert view.is_infra_ip("198.18.0.1")  # c2 still advertises it
    view.apply(Change(rev=3, obj=ControllerRecord("c2"), deleted=True))
    assert not view.is_infra_ip("198.18.0.1") and view.host_at("198.18.0.1") is None


def test_a_controller_records_its_listeners_advertised_addresses_and_etcd_members() -> None:
    rec = own_record("c1", ["ssl:198.18.0.200:6653", "unix:/run/of.sock"],
                     ["0.0.0.0:8650", "198.18.0.200:8650", "unix:/run/api.sock", "127.0.0.1:8651"],
                     ["198.18.0.201"], "etcd://198.18.0.210:2379,198.18.0.211/site")
    assert (rec.api, rec.openflow, rec.advertise, rec.etcd) == (
        ("198.18.0.200:8650",), ("198.18.0.200:6653",), ("198.18.0.201",),
        ("198.18.0.210:2379", "198.18.0.211:2379"))
    wildcard = own_record("c2", ["ssl:0.0.0.0:6653"], ["0.0.0.0:8650"], [], "sqlite:///x.db")
    assert wildcard.addresses == frozenset()  # nothing to record but what --advertise says
    with pytest.raises(InvalidInput, match="--advertise"):
        own_record("c3", [], [], ["h1.example"], "sqlite:///x.db")


async def test_the_api_lists_records_to_admins_only(store: SqliteStore) -> None:
    await store.record_controller(REC)
    await store.create_tenant("red")
    await store.create_token("admin", None, hash_token("admin-secret"), 1.0)
    await store.create_token("red", "red", hash_token("red-secret"), 1.0)
    ctrl = Controller(store, Config())
    await ctrl.start()
    transport = httpx.ASGITransport(app=create_app(ctrl))
    async with httpx.AsyncClient(transport=transport, base_url="http://controller") as http:
        admin = await http.get("/controllers", headers={"Authorization": "Bearer admin-secret"})
        assert admin.status_code == 200 and admin.json() == [REC.to_json()]
        assert admin.json()[0]["etcd"] == ["198.18.0.210:2379", "198.18.0.211:2379"]
        tenant = await http.get("/controllers", headers={"Authorization": "Bearer red-secret"})
        assert tenant.status_code == 403, tenant.text
        assert (await http.get("/controllers")).status_code == 401
    await ctrl.stop()
