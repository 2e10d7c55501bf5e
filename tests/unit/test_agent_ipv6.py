"""The agent's IPv6 plumbing, without namespaces: what a dual-stack container's interface
gets (address, routes via gateway6, IPv6 turned on quietly), the host's IPv6 fields it
registers (read off the bridge, --pip-pool6 checked against them), and IPv4-only hosts and
containers exactly as before.  tests/integration/test_ipv6_plumbing.py does it for real."""

from __future__ import annotations

from typing import Any

import pytest

from daolinet.agent import main as agent_main
from daolinet.agent.plumbing import PlugSpec, container_side
from daolinet.agent.service import HostInfo, plug_spec
from daolinet.cli.daemons import agent as agent_command
from daolinet.daemon_settings import AgentSettings
from daolinet.errors import InvalidInput
from daolinet.pipeline import GATEWAY_MAC
from daolinet.system import links, links6

V4 = PlugSpec(eid=1, netns="c1", mac="02:00:00:00:00:02", ip="10.1.0.2", prefixlen=24, gateway="10.1.0.1")
DUAL = PlugSpec(eid=1, netns="c1", mac="02:00:00:00:00:02", ip="10.1.0.2", prefixlen=24, gateway="10.1.0.1",
                ip6="fd00:1::2", prefixlen6=64, gateway6="fd00:1::1")


def test_an_ipv4_container_is_plugged_as_before() -> None:
    setup = container_side(V4, userspace=True)
    assert setup.address6 is None
    assert setup.routes == (links.Route("10.1.0.0/24", "10.1.0.1", onlink=True),
                            links.Route("0.0.0.0/0", "10.1.0.1", onlink=True))


def test_a_dual_stack_container_gets_its_ip6_and_routes_via_gateway6() -> None:
    setup = container_side(DUAL, userspace=True)
    assert setup.address6 == "fd00:1::2/64" and setup.address == "10.1.0.2/24"
    assert setup.routes[2:] == (links.Route("fd00:1::/64", "fd00:1::1", onlink=True),
                                links.Route("::/0", "fd00:1::1", onlink=True))
    # gateway6 is learnt by neighbour discovery (the bridge answers): no permanent entry
    assert setup.neighbours == (("10.1.0.1", GATEWAY_MAC),)


def test_ipv6_is_turned_on_only_after_dad_ra_and_slaac_are_off() -> None:
    settings = links6.container_settings("eth0")
    on = [i for i, (path, _) in enumerate(settings) if path.endswith("disable_ipv6")]
    quiet = [i for i, (path, _) in enumerate(settings) if not path.endswith("disable_ipv6")]
    assert max(quiet) < min(on)
    assert {p for p, v in settings if v == "0"} == {
        f"net/ipv6/conf/{c}/{k}" for c in ("all", "default", "eth0")
        for k in ("accept_dad", "accept_ra", "autoconf", "disable_ipv6")}
    assert ("net/ipv6/conf/eth0.5/disable_ipv6", "0") in links6.container_settings("eth0.5")  # a path


def test_plug_spec_follows_the_endpoint() -> None:
    net = {"subnet": "10.1.0.0/24", "gateway": "10.1.0.1", "subnet6": "fd00:1::/64", "gateway6": "fd00:1::1"}
    endpoint = {"id": 1, "mac": "02:00:00:00:00:02", "ip": "10.1.0.2", "ip6": "fd00:1::2"}
    assert plug_spec(endpoint, net, "c1", "eth0", 1500) == DUAL
    # an endpoint without ip6 (the host has no pool6, or the network no subnet6) stays IPv4
    assert plug_spec({**endpoint, "ip6": ""}, net, "c1", "eth0", 1500) == V4
    del endpoint["ip6"]
    assert plug_spec(endpoint, {"subnet": "10.1.0.0/24", "gateway": "10.1.0.1"}, "c1", "eth0", 1500) == V4


def test_the_host_registers_ipv6_only_when_it_has_it() -> None:
    base = {"name": "h1", "dpid": 1, "underlay_ip": "198.18.0.1", "underlay_prefix": 18,
            "underlay_mac": "02:00:00:00:00:01", "pip_pool": "198.18.1.0/24", "uplink_ofport": 1}
    assert HostInfo(**base).to_json() == {**base, "underlay_gateway_mac": ""}
    v6 = {"underlay_ip6": "2001:2:0:1::1", "underlay_prefix6": 64, "pip_pool6": "2001:2:0:1:1::/112"}
    assert HostInfo(**base, **v6).to_json() == {**base, "underlay_gateway_mac": "", **v6}


def test_underlay6_reads_the_bridge_and_checks_the_pool() -> None:
    found = ("2001:2:0:1::1", 64)
    assert agent_main.underlay6("", None, "daolinet") == {}
    assert agent_main.underlay6("", found, "daolinet") == {"underlay_ip6": "2001:2:0:1::1",
                                                           "underlay_prefix6": 64}
    assert agent_main.underlay6("2001:2:0:1:0:1:0:0/112", found, "daolinet")["pip_pool6"] == \
        "2001:2:0:1:0:1::/112"  # canonical, as the store keeps it


@pytest.mark.parametrize(("pool6", "found", "words"), [
    ("2001:2:0:1:1::/112", None, ("--pip-pool6", "no global IPv6 address", "daolinet")),
    ("2001:2:0:2:1::/112", ("2001:2:0:1::1", 64), ("--pip-pool6", "not inside", "2001:2:0:1::/64")),
    ("2001:2::/56", ("2001:2:0:1::1", 64), ("not inside",)),
    ("2001:2:0:1::1/112", ("2001:2:0:1::1", 64), ("--pip-pool6", "host bits")),
])
def test_a_pool6_outside_the_ipv6_underlay_is_refused(pool6: str, found: tuple[str, int] | None,
                                                      words: tuple[str, ...]) -> None:
    with pytest.raises(InvalidInput) as e:
        agent_main.underlay6(pool6, found, "daolinet")
    assert all(w in str(e.value) for w in words), str(e.value)


def test_pip_pool6_is_a_setting_and_a_flag(monkeypatch: pytest.MonkeyPatch) -> None:
    assert AgentSettings.model_fields["pip_pool6"].default == ""
    seen: list[Any] = []

    async def fake_run(cfg: agent_main.AgentConfig) -> None:
        seen.append(cfg)

    monkeypatch.setattr(agent_main, "run", fake_run)
    agent_command(controller=["tcp:127.0.0.1:6653"], pip_pool="198.18.1.0/24", pip_pool6="2001:2:0:1:1::/112",
                  api=["http://127.0.0.1:1"], insecure=True, token_file="/nonexistent", name="h1")
    assert seen[0].pip_pool6 == "2001:2:0:1:1::/112"
    with pytest.raises(InvalidInput, match="--pip-pool6"):
        agent_main.check(agent_main.AgentConfig(
            name="h1", controllers=("tcp:127.0.0.1:6653",), api=("http://127.0.0.1:1",), bridge="daolinet",
            uplink="eth0", pip_pool="198.18.1.0/24", pip_pool6="nope", token_file="/x"))
