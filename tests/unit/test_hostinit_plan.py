"""The host init planner: a host's state in, ordered steps (each with its inverse) out."""

from __future__ import annotations

from dataclasses import replace

import pytest

from daolinet.errors import Conflict, InvalidInput, NotFound
from daolinet.system.hostinit_plan import (
    DONE,
    MISSING,
    Addr,
    HostState,
    Link,
    Route,
    Step,
    Wanted,
    check,
    json_text,
    plan_boot,
    plan_init,
    plan_undo,
    rollback,
    route_json,
    sysctl_text,
)

ADDR = Addr("198.18.0.2", 24)
DEFAULT = Route(dst="0.0.0.0/0", dev="eth0", gateway="198.18.0.1")
CONFIG = {"uplink": "eth0", "bridge": "daolinet", "datapath": "netdev", "ovsdb": "unix:/x"}
WANT = Wanted(uplink="eth0", bridge="daolinet", datapath_type="netdev", sysctl_path="/s",
              sysctl_text=sysctl_text(), config_path="/c", config=CONFIG, config_text="t",
              existing_config=None, state_path="/r")
FRESH = HostState(uplink=Link("eth0", kind="veth", addrs=(ADDR,), routes=(DEFAULT,)), bridge_link=None,
                  bridge_datapath=None, uplink_bridge=None, sysctls={"net.ipv4.conf.all.arp_ignore": "0"},
                  files={"/s": None, "/c": None, "/r": None})
RECORD = {"uplink": "eth0", "bridge": "daolinet", "addresses": [str(ADDR)], "routes": [route_json(DEFAULT)],
          "sysctls_before": {"net.ipv4.conf.all.arp_ignore": "0"}}
DONE_STATE = HostState(
    uplink=Link("eth0", kind="veth"),
    bridge_link=Link("daolinet", addrs=(ADDR,), routes=(DEFAULT.on("daolinet"),)),
    bridge_datapath="netdev", uplink_bridge="daolinet", bootstrap_flows=True,
    sysctls={"net.ipv4.conf.all.arp_ignore": "1"},
    files={"/s": sysctl_text(), "/c": "t", "/r": json_text(RECORD)}, record=RECORD)


def actions(steps: list[Step]) -> list[str]:
    return [s.action for s in steps]


def test_a_fresh_host_gets_bridge_port_flows_then_the_move_then_files() -> None:
    steps = plan_init(FRESH, WANT)
    assert actions(steps) == ["create_bridge", "add_port", "add_flows", "write_file", "add_addr",
                              "replace_route", "del_addr", "probe", "write_file", "set_sysctls", "write_file"]
    add, move, delete = steps[4:7]
    assert add.args == ("daolinet", ADDR) and delete.args == ("eth0", ADDR)
    assert move.args == (DEFAULT.on("daolinet"),) and move.undo and move.undo.args == (DEFAULT,)
    assert steps[7].args == ("198.18.0.1",)


def test_rollback_is_the_inverses_newest_first() -> None:
    steps = plan_init(FRESH, WANT)
    done = steps[:7]
    assert actions(rollback(done)) == ["add_addr", "replace_route", "del_addr", "remove_file", "del_flows",
                                       "del_port", "delete_bridge"]
    assert rollback(done)[0].args == ("eth0", ADDR)  # the address goes back on the uplink first


def test_an_initialised_host_needs_nothing_and_checks_all_done() -> None:
    want = replace(WANT, existing_config=CONFIG)
    assert plan_init(DONE_STATE, want) == []
    assert {i.status for i in check(DONE_STATE, want)} == {DONE}


def test_check_on_a_fresh_host_reports_what_is_missing() -> None:
    status = {i.name: i.status for i in check(FRESH, WANT)}
    assert status["bridge"] == status["addresses"] == status["routes"] == MISSING
    assert status["agent config"] == status["sysctls"] == MISSING


def test_a_probe_address_replaces_the_gateway() -> None:
    steps = plan_init(FRESH, replace(WANT, probe="198.18.0.9"))
    assert [s.args for s in steps if s.action == "probe"] == [("198.18.0.9",)]


@pytest.mark.parametrize(("state", "want", "error", "text"), [
    (replace(FRESH, uplink=None), WANT, NotFound, "no interface eth0"),
    (FRESH, replace(WANT, uplink="daolinet"), InvalidInput, "the bridge itself"),
    (replace(FRESH, uplink=Link("eth0")), WANT, InvalidInput, "no IPv4 address"),
    (replace(FRESH, uplink_bridge="br-ex"), WANT, Conflict, "OVS bridge br-ex"),
    (replace(FRESH, uplink=Link("eth0", master="br0", master_kind="bridge", addrs=(ADDR,))), WANT, Conflict,
     "Linux bridge br0"),
    (FRESH, replace(WANT, existing_config={"uplink": "eth9"}), Conflict, "--force"),
    (FRESH, replace(WANT, pip_pool="10.0.0.0/24"), InvalidInput, "not inside the uplink's subnet"),
    (FRESH, replace(WANT, pip_pool="198.18.0.1/24"), InvalidInput, "not an IPv4 network"),
])
def test_bad_input_is_refused_before_any_step(state: HostState, want: Wanted, error: type[Exception],
                                              text: str) -> None:
    with pytest.raises(error, match=text):
        plan_init(state, want)


def test_force_overwrites_a_different_config() -> None:
    steps = plan_init(FRESH, replace(WANT, existing_config={"uplink": "eth9"}, force=True))
    assert steps[-1].action == "write_file" and steps[-1].args[0] == "/c"


def test_undo_puts_back_what_the_record_says_then_removes_the_bridge() -> None:
    steps = plan_undo(DONE_STATE, WANT)
    assert actions(steps) == ["del_port", "add_addr", "replace_route", "del_addr", "probe", "delete_bridge",
                              "remove_file", "set_sysctls", "remove_file"]
    assert steps[1].args == ("eth0", ADDR) and steps[2].args == (DEFAULT,)
    assert steps[7].args == ({"net.ipv4.conf.all.arp_ignore": "0"},)
    assert "delete_bridge" not in actions(plan_undo(DONE_STATE, WANT, keep_bridge=True))


def test_undo_of_an_undone_host_is_empty_and_without_record_it_will_not_guess() -> None:
    gone = HostState(uplink=FRESH.uplink, bridge_link=None, bridge_datapath=None, uplink_bridge=None,
                     sysctls={"net.ipv4.conf.all.arp_ignore": "0"}, files={"/s": None, "/c": "t", "/r": None})
    assert plan_undo(gone, WANT) == []
    with pytest.raises(Conflict, match="refusing to guess"):
        plan_undo(replace(DONE_STATE, record=None), WANT)


# -- boot: after a reboot the bridge's interface is bare and its flows gone ------------------

REBOOTED = replace(DONE_STATE, bridge_link=Link("daolinet", up=False), bootstrap_flows=False,
                   sysctls={"net.ipv4.conf.all.arp_ignore": "0"})


def test_boot_without_a_record_does_nothing() -> None:
    assert plan_boot(replace(FRESH, record=None), WANT) == []


def test_boot_puts_the_recorded_addresses_and_routes_back_on_the_bridge() -> None:
    steps = plan_boot(REBOOTED, WANT)
    assert actions(steps) == ["add_flows", "bridge_up", "add_addr", "replace_route", "set_sysctls"]
    assert steps[2].args == ("daolinet", ADDR) and steps[3].args == (DEFAULT.on("daolinet"),)


def test_boot_moves_addresses_the_distribution_put_back_on_the_uplink() -> None:
    back = replace(REBOOTED, uplink=Link("eth0", kind="veth", addrs=(ADDR,), routes=(DEFAULT,)))
    steps = plan_boot(back, WANT)
    assert actions(steps) == ["add_flows", "bridge_up", "write_file", "add_addr", "replace_route", "del_addr",
                              "probe", "set_sysctls"]


def test_boot_on_an_intact_host_only_reasserts_the_interface() -> None:
    assert actions(plan_boot(DONE_STATE, WANT)) == ["bridge_up"]


def test_boot_refuses_when_the_recorded_uplink_is_gone() -> None:
    with pytest.raises(NotFound, match="recorded uplink eth0 is gone"):
        plan_boot(replace(REBOOTED, uplink=None), WANT)
