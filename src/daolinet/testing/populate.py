"""A store with one of everything (and some deletions), for tests of whole-store operations."""

from __future__ import annotations

from daolinet.model.objects import ControllerRecord, Host
from daolinet.store.base import Store


def host(n: int) -> Host:
    return Host(name=f"h{n}", dpid=n, underlay_ip=f"198.18.0.{n}", underlay_mac=f"02:00:00:00:00:{n:02x}",
                pip_pool=f"198.18.{n}.0/24")


async def populate(store: Store) -> None:
    """Tenants, networks, hosts, endpoints (some plugged, one deleted: ids with gaps), groups,
    pair and L4 rules, tokens, a port mapping and a controller's record."""
    await store.create_tenant("red")
    await store.create_network("default", "web", "10.1.0.0/24")
    await store.create_network("default", "db", "10.2.0.0/24", isolated=True)
    await store.create_network("red", "web", "10.1.0.0/24", external=True)
    for n in (1, 2):
        await store.register_host(host(n))
    eps = [await store.create_endpoint("default", "web", f"w{i}", f"h{1 + i % 2}", labels={"app": "w"})
           for i in range(4)]
    await store.create_endpoint("default", "db", "d0", "h1", ip="10.2.0.9")
    await store.create_endpoint("red", "web", "r0", "h2", mac="02:aa:00:00:00:01")
    await store.update_endpoint(eps[0].id, port="dl1", ofport=5)
    await store.delete_endpoint(eps[1].id)
    await store.create_group("default", "app", ["network:web", "network:db"])
    await store.create_group("default", "fronts", ["label:app=w"])
    await store.set_pair_rule("default", "w0", "d0", "disconnect")
    await store.create_l4_rule("default", "fronts", "app", "tcp", "80-90")
    await store.create_l4_rule("default", "fronts", "cidr:198.19.0.0/16", "icmp", icmp_type=8, action="deny",
                               priority=700, name="no-ping")
    await store.create_token("ops", "red", "a" * 64, 1.5)
    await store.create_portmap("default", "http", "w0", "tcp", 8080, 80)
    await store.record_controller(ControllerRecord(
        "c1", api=("198.18.0.200:8650",), openflow=("198.18.0.200:6653",), advertise=("198.18.0.201",),
        etcd=("198.18.0.210:2379",), started=2.5))
