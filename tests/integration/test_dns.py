"""Names on the real lab (issue 18): a container asks its gateway or the resolver address,
its own host's agent answers - for containers of its tenant it may reach, anywhere in the
cluster - and nobody else: another tenant's names, a denied pair's, and a revoked group's
answer NXDOMAIN; the question never leaves the host."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Callable

import pytest

from daolinet.lab import cluster
from daolinet.testing.labtools import api, serving, wait_for

pytestmark = pytest.mark.integration
LabFactory = Callable[..., cluster.Lab]
RESOLVER = "169.254.53.53"
ADDRESS_RE = re.compile(r"^Name:\s*(\S+)\s*\nAddress:\s*(\S+)", re.M)


def nslookup(lab: cluster.Lab, container: str, name: str,
             server: str = RESOLVER) -> subprocess.CompletedProcess[str]:
    return lab.exec(container, ["busybox", "nslookup", "-type=A", name, server], timeout=20)


def answers(lab: cluster.Lab, container: str, name: str, server: str = RESOLVER) -> list[str]:
    """The addresses `name` resolves to, asked from `container`; [] for NXDOMAIN (anything
    else fails the test)."""
    done = nslookup(lab, container, name, server)
    if "NXDOMAIN" in done.stdout + done.stderr:
        assert done.returncode != 0, done
        return []
    assert done.returncode == 0, done
    found = [address for _, address in ADDRESS_RE.findall(done.stdout)]
    assert found, done.stdout
    return found


def ip(lab: cluster.Lab, name: str) -> str:
    value = lab.container(name).ip
    assert value is not None
    return value


@pytest.fixture
def named(lab_factory: LabFactory) -> cluster.Lab:
    """Tenant default: web (h1, net1), client (h2, net1), loner (h2, net2, no group with net1).
    Tenant other: net1 with the same subnet, intruder (h2)."""
    lab = lab_factory(hosts=2)
    api(lab, "POST", "/networks", json={"name": "net1", "subnet": "10.1.0.0/24"})
    api(lab, "POST", "/networks", json={"name": "net2", "subnet": "10.2.0.0/24"})
    api(lab, "POST", "/tenants", json={"name": "other"})
    api(lab, "POST", "/networks", json={"name": "net1", "subnet": "10.1.0.0/24", "tenant": "other"})
    lab.add_container("web", host="h1", network="net1")
    lab.add_container("client", host="h2", network="net1")
    lab.add_container("loner", host="h2", network="net2")
    lab.add_container("intruder", host="h2", network="net1", tenant="other")
    return lab


def dns_packets(lab: cluster.Lab, host: str) -> int:
    """Packets the host's DNS flows handed to its agent."""
    dump = lab.host(host).ofctl("dump-flows", "table=5").splitlines()
    found = [f for f in dump if "tp_dst=53" in f and "controller(id=53)" in f]
    assert found, dump
    return sum(int(m.group(1)) for f in found for m in [re.search(r"n_packets=(\d+)", f)] if m)


def test_a_name_resolves_from_another_host_within_the_tenant_and_policy(named: cluster.Lab) -> None:
    lab = named
    web = ip(lab, "web")
    before = {h: dns_packets(lab, h) for h in ("h1", "h2")}
    # The agent's replica may still be loading just after start: poll with a deadline.
    wait_for(lambda: answers(lab, "client", "web") == [web], timeout=10, what="web resolving from h2")
    assert answers(lab, "client", "web.net1") == [web]
    assert answers(lab, "client", "WEB.net1.") == [web]  # case-insensitive, absolute
    assert answers(lab, "client", "web", server="10.1.0.1") == [web]  # the gateway answers too
    assert answers(lab, "client", "client") == [ip(lab, "client")]  # its own name
    # Answered on the asker's host: h2's DNS flows counted the questions (OVS pushes flow
    # counters every half second or so), h1's none.
    wait_for(lambda: dns_packets(lab, "h2") - before["h2"] >= 5, timeout=5, what="h2 counting the questions")
    assert dns_packets(lab, "h1") == before["h1"]

    assert answers(lab, "intruder", "web") == []  # another tenant
    assert answers(lab, "client", "nobody") == []
    assert answers(lab, "client", "web.net2") == []  # web is not on net2
    assert answers(lab, "loner", "web") == []  # net2 may not reach net1


def test_a_group_grants_a_name_and_its_removal_revokes_it_at_once(named: cluster.Lab) -> None:
    lab = named
    web = ip(lab, "web")
    wait_for(lambda: answers(lab, "client", "web") == [web], timeout=10, what="web resolving from h2")
    assert answers(lab, "loner", "web") == []
    api(lab, "POST", "/groups", json={"name": "app", "members": ["network:net1", "network:net2"]})
    wait_for(lambda: answers(lab, "loner", "web") == [web], timeout=2, what="the group granting the name")
    api(lab, "DELETE", "/groups/default/app")
    # Revoked at once: the replica follows the change within the push of the stream.
    wait_for(lambda: answers(lab, "loner", "web") == [], timeout=1, what="the name revoked")


def test_a_deny_rule_hides_the_name(named: cluster.Lab) -> None:
    lab = named
    web = ip(lab, "web")
    wait_for(lambda: answers(lab, "client", "web") == [web], timeout=10, what="web resolving from h2")
    api(lab, "POST", "/policy/disconnect", json={"a": "client", "b": "web"})
    wait_for(lambda: answers(lab, "client", "web") == [], timeout=1, what="the denied pair's name hidden")
    assert answers(lab, "web", "client") == []  # both ways


def test_aaaa_answers_on_a_dual_stack_network_over_ipv6_too(lab_factory: LabFactory) -> None:
    lab = lab_factory(hosts=2)
    api(lab, "POST", "/networks", json={"name": "net6", "subnet": "10.6.0.0/24", "subnet6": "fd00:6::/64"})
    lab.add_container("web6", host="h1", network="net6")
    lab.add_container("asker", host="h2", network="net6")
    web6 = lab.container("web6").ip6
    assert web6 is not None

    def aaaa(server: str) -> list[str]:
        done = lab.exec("asker", ["busybox", "nslookup", "-type=AAAA", "web6", server], timeout=20)
        return [a for _, a in ADDRESS_RE.findall(done.stdout)] if done.returncode == 0 else []

    wait_for(lambda: aaaa(RESOLVER) == [web6], timeout=10, what="AAAA over IPv4")
    assert aaaa("fd00:da01::53") == [web6]  # the IPv6 resolver address
    assert aaaa("fd00:6::1") == [web6]  # the network's IPv6 gateway


def test_other_names_go_to_the_hosts_resolver_and_single_labels_never_do(named: cluster.Lab) -> None:
    """The lab's agents forward to a resolver in the outside world (lab/daemons.py)."""
    lab = named
    argv = [sys.executable, "-m", "daolinet.testing.dns_server", "example.test", "198.19.255.80"]
    with serving(lab, "outside", argv) as server:
        wait_for(lambda: answers(lab, "client", "www.example.test") == ["198.19.255.80"], timeout=10,
                 what="a forwarded name answered")
        assert answers(lab, "client", "nothing.test") == []  # the upstream's own NXDOMAIN
        assert answers(lab, "client", "nobody") == []  # a single label: answered here, never forwarded
        server.kill()
        asked = server.communicate()[0].split()
    assert "www.example.test." in asked and "nothing.test." in asked
    assert not [name for name in asked if name.startswith("nobody")], asked
