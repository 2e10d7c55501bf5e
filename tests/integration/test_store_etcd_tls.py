"""etcd over TLS with client certificates (a real etcd-server, as testing/etcd.py starts it):
a client with the cluster's pair reads and writes; one without a certificate, with a
certificate from another CA, or trusting another CA is refused with one clear line and
writes nothing; plain HTTP gets no answer at all; unreadable files are named; the
mastership and `daolinet store migrate` take the client pair too."""

from __future__ import annotations

import asyncio
import http.client
import os
import secrets
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest

from daolinet.cli import main as cli_main
from daolinet.controller.mastership_etcd import EtcdMastership
from daolinet.errors import InvalidInput, SystemFailure
from daolinet.security import pki
from daolinet.security.tls import TlsFiles, client_context
from daolinet.store import EtcdStore, SqliteStore, open_store
from daolinet.store.etcd_kv import EtcdKV, Reader, parse_url
from daolinet.system import links, procs
from daolinet.testing.etcd import EtcdCluster
from daolinet.testing.etcd_fixtures import etcd_server
from daolinet.testing.populate import populate

pytestmark = pytest.mark.integration
__all__ = ["etcd_server"]  # a fixture, used by name


@pytest.fixture(scope="module")
def stranger(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    """A CA etcd has never heard of, and a client pair it signed."""
    d = str(tmp_path_factory.mktemp("stranger-pki"))
    pki.init_ca(d)
    pki.issue(d, "user", "etcd-client")
    return TlsFiles.of(d, "user", "etcd-client")


def new_prefix() -> str:
    return "s" + secrets.token_hex(6)


async def written(cluster: EtcdCluster, prefix: str) -> int:
    """How many keys there are under `prefix` (read with the cluster's own client pair)."""
    endpoints, key_prefix = parse_url(cluster.url(prefix))
    kv = EtcdKV(endpoints, "check", tls=cluster.client_tls)
    try:
        return len(await Reader(kv).prefix(key_prefix.encode(), keys_only=True))
    finally:
        await kv.close()


async def test_a_client_with_the_clusters_pair_reads_and_writes(etcd_server: EtcdCluster) -> None:
    prefix = new_prefix()
    async with open_store(etcd_server.url(prefix), etcd_tls=etcd_server.client_tls) as store:
        await store.create_tenant("t1")
        assert "t1" in [t.name for t in await store.list_tenants()]
    assert await written(etcd_server, prefix) > 0


@pytest.mark.parametrize("who", ["no TLS", "TLS without a certificate", "a certificate of another CA"])
async def test_etcd_refuses_a_client_without_a_certificate_of_its_ca(etcd_server: EtcdCluster,
                                                                       stranger: TlsFiles, who: str) -> None:
    assert etcd_server.client_tls is not None
    ca = etcd_server.client_tls.ca
    tls = {"no TLS": None, "TLS without a certificate": TlsFiles(ca),
           "a certificate of another CA": TlsFiles(ca, stranger.cert, stranger.key)}[who]
    expected = {"no TLS": "is etcd served over TLS",
                "TLS without a certificate": "etcd refused our client certificate",
                "a certificate of another CA": "etcd refused our client certificate"}[who]
    prefix = new_prefix()
    store = EtcdStore.open(etcd_server.url(prefix), tls=tls, timeout=2.0)
    try:
        with pytest.raises(SystemFailure) as refused:
            await store.create_tenant("intruder")
    finally:
        await store.close()
    message = str(refused.value)
    assert "no etcd member answers" in message and expected in message and "\n" not in message, message
    assert await written(etcd_server, prefix) == 0


async def test_a_client_trusting_another_ca_refuses_the_member(etcd_server: EtcdCluster,
                                                               stranger: TlsFiles) -> None:
    prefix = new_prefix()
    store = EtcdStore.open(etcd_server.url(prefix), tls=stranger, timeout=2.0)
    try:
        with pytest.raises(SystemFailure, match="not signed by the etcd CA given: check --etcd-ca"):
            await store.create_tenant("t1")
    finally:
        await store.close()
    assert await written(etcd_server, prefix) == 0


async def test_mastership_talks_tls_too(etcd_server: EtcdCluster) -> None:
    prefix = new_prefix()
    m = EtcdMastership(etcd_server.url(prefix), "c0", "https://c0", etcd_tls=etcd_server.client_tls)
    try:
        held = await m.round({1, 2})
        assert set(held) == {1, 2}
    finally:
        await m.close()
    bare = EtcdMastership(etcd_server.url(prefix), "c1", "https://c1")
    try:
        with pytest.raises(SystemFailure, match="is etcd served over TLS"):
            await bare.round({1, 2})
    finally:
        await bare.close()


def test_health_answers_only_https_with_a_client_certificate(etcd_server: EtcdCluster,
                                                             stranger: TlsFiles) -> None:
    member = etcd_server.members[0]
    status, body = etcd_server.get(member, "/health")
    assert status == 200 and b'"true"' in body
    with pytest.raises(http.client.RemoteDisconnected):  # plain HTTP: etcd hangs up, no answer
        etcd_server.get(member, "/health", scheme="http")
    assert etcd_server.client_tls is not None
    for context in (client_context(TlsFiles(etcd_server.client_tls.ca)),
                    client_context(TlsFiles(etcd_server.client_tls.ca, stranger.cert, stranger.key))):
        with pytest.raises((ssl.SSLError, ConnectionError, http.client.HTTPException)):
            etcd_server.get(member, "/health", context=context)


def test_unreadable_tls_files_are_named(etcd_server: EtcdCluster, tmp_path: Path) -> None:
    assert etcd_server.client_tls is not None
    missing = str(tmp_path / "nowhere.key")
    tls = TlsFiles(etcd_server.client_tls.ca, etcd_server.client_tls.cert, missing)
    with pytest.raises(InvalidInput, match=f"cannot read the etcd TLS key {missing}: No such file"):
        open_store(etcd_server.url("x"), etcd_tls=tls)
    with pytest.raises(InvalidInput, match=f"cannot read the etcd TLS key {missing}"):
        EtcdMastership(etcd_server.url("x"), "c0", etcd_tls=tls)


# -- a cluster inside a network namespace (how the lab runs it) -------------------------------------


@pytest.fixture
def netns() -> Iterator[str]:
    name = "dltest-etcd-" + secrets.token_hex(3)
    links.create_netns(name)
    try:
        links.link_up(name, "lo")
        yield name
    finally:
        links.remove_netns(name)


def test_a_cluster_runs_and_answers_inside_a_namespace(netns: str, tmp_path: Path) -> None:
    with EtcdCluster(tmp_path, size=3, netns=netns) as cluster:  # started: every member probed healthy
        inode = os.stat(f"{procs.NETNS_RUN_DIR}/{netns}").st_ino
        for member in cluster.members:
            assert member.proc is not None and os.stat(f"/proc/{member.proc.pid}/ns/net").st_ino == inode
        assert cluster.get(cluster.members[1], "/health")[0] == 200  # from inside, over HTTPS
        pids = [m.proc.pid for m in cluster.members if m.proc is not None]
    assert not any(procs.is_alive(p) for p in pids)
    assert list(tmp_path.iterdir()) == []


# -- `daolinet store migrate` into an etcd on TLS --------------------------------------------------


def test_store_migrate_into_etcd_takes_the_client_pair(etcd_server: EtcdCluster, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    async def fill() -> None:
        src = SqliteStore.open(str(tmp_path / "a.db"))
        await populate(src)
        await src.close()
    asyncio.run(fill())
    tls = etcd_server.client_tls
    assert tls is not None and tls.cert and tls.key
    src, dst = f"sqlite://{tmp_path}/a.db", etcd_server.url(new_prefix())
    assert cli_main.run(["store", "migrate", src, dst]) != 0  # no client pair: refused, one line
    err = capsys.readouterr().err
    assert "is etcd served over TLS" in err and err.count("\n") == 1, err
    assert asyncio.run(written(etcd_server, dst.rpartition("/")[2])) == 0
    code = cli_main.run(["store", "migrate", src, dst, f"--etcd-ca={tls.ca}", f"--etcd-cert={tls.cert}",
                         f"--etcd-key={tls.key}"])
    assert code == 0, capsys.readouterr().err
    assert "copied" in capsys.readouterr().out
    assert cli_main.run(["store", "migrate", src, dst, f"--etcd-ca={tls.ca}"]) != 0
    assert "needs --etcd-ca, --etcd-cert and --etcd-key" in capsys.readouterr().err
