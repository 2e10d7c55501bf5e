"""`daolinet host init`, the I/O: read a host's state, run the planned steps, roll back.

`hostinit_plan` decides; this module reads (netlink through `links`, OVSDB through
`Ovsdb`, the agent's bootstrap flows over OpenFlow, sysctl, files) and acts.  Whatever fails
midway, the steps already made are undone newest first, so the host keeps (or gets
back) the addresses and routes it had: it never stays unreachable.

The bootstrap flows are the agent's own (`agent/bootstrap.py`, through the bridge's
OpenFlow management socket); the agent removes them once a controller's flows carry
the host.

Test hook: DAOLINET_HOSTINIT_FAIL_AT=k makes step k (1-based) fail before it runs.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import time
import tomllib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import tomli_w

from daolinet.agent import bootstrap
from daolinet.errors import DaoliError, InvalidInput, SystemFailure
from daolinet.system import datapath, links, procs
from daolinet.system.hostinit_plan import (
    SYSCTLS,
    Addr,
    HostState,
    Link,
    Route,
    Step,
    Wanted,
    rollback,
    sysctl_text,
)
from daolinet.system.ovsdb import BridgeConfig, Ovsdb

DEFAULT_OVSDB = "unix:/var/run/openvswitch/db.sock"
DEFAULT_RUNDIR = "/var/run/openvswitch"
FAIL_AT_ENV = "DAOLINET_HOSTINIT_FAIL_AT"
PROBE_TIMEOUT = 8.0


@dataclass(frozen=True)
class Options:
    uplink: str
    bridge: str = "daolinet"
    netns: str | None = None
    ovsdb: str = DEFAULT_OVSDB
    ovs_rundir: str | None = None  # where BRIDGE.mgmt is; default: the OVSDB socket's directory
    datapath: str = "auto"
    sysctl_path: str = "/etc/sysctl.d/60-daolinet.conf"
    config_path: str = "/etc/daolinet/agent.toml"
    state_path: str = "/var/lib/daolinet/host-init.json"
    pip_pool: str | None = None
    controllers: tuple[str, ...] = ()
    api: tuple[str, ...] = ()
    name: str | None = None
    probe: str | None = None
    force: bool = False

    @property
    def rundir(self) -> str:
        if self.ovs_rundir:
            return self.ovs_rundir
        if self.ovsdb.startswith("unix:"):
            return os.path.dirname(self.ovsdb[len("unix:"):])
        return DEFAULT_RUNDIR


def resolve_datapath(choice: str) -> str:
    """The agent's own choice (system/datapath.py): the kernel datapath where the module is
    loaded or loadable (then loaded), else netdev with a warning."""
    return datapath.resolve(choice).datapath


def agent_config(o: Options) -> dict[str, Any]:
    """agent.toml: keys named as the agent's long options, '-' -> '_'; unset ones left out."""
    cfg: dict[str, Any] = {"uplink": o.uplink, "bridge": o.bridge, "datapath": o.datapath, "ovsdb": o.ovsdb}
    if o.pip_pool:
        cfg["pip_pool"] = o.pip_pool
    if o.controllers:
        cfg["controller"] = list(o.controllers)
    if o.api:
        cfg["api"] = list(o.api)
    if o.name:
        cfg["name"] = o.name
    return cfg


# -- reading -------------------------------------------------------------------

def read_file(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read()
    except FileNotFoundError:
        return None
    except OSError as e:
        raise SystemFailure(f"cannot read {path}: {e.strerror}") from e


def wanted(o: Options) -> Wanted:
    cfg = agent_config(o)
    existing_text = read_file(o.config_path)
    existing: dict[str, Any] | None = None
    if existing_text is not None:
        try:
            existing = tomllib.loads(existing_text)
        except tomllib.TOMLDecodeError:
            existing = {"<unreadable TOML>": True}
    return Wanted(uplink=o.uplink, bridge=o.bridge, datapath_type=resolve_datapath(o.datapath),
                  sysctl_path=o.sysctl_path, sysctl_text=sysctl_text(), config_path=o.config_path,
                  config=cfg, config_text=tomli_w.dumps(cfg), existing_config=existing,
                  state_path=o.state_path, pip_pool=o.pip_pool, probe=o.probe, force=o.force)


def _link(netns: str | None, name: str) -> Link | None:
    info = links.link_info(netns, name)
    if info is None:
        return None
    addrs = tuple(Addr(ip, plen) for ip, plen in links.ipv4_addrs(netns, name))
    routes = tuple(Route(dev=name, **r) for r in links.ipv4_routes(netns, name))  # type: ignore[arg-type]
    return Link(name=name, kind=info.kind, master=info.master, master_kind=info.master_kind, up=info.up,
                mtu=info.mtu, addrs=addrs, routes=routes)


def read_record(path: str) -> dict[str, Any] | None:
    """The state file: what init moved (None: init never ran, or was undone)."""
    text = read_file(path)
    try:
        record = json.loads(text) if text is not None else None
    except ValueError as e:
        raise InvalidInput(f"{path} is not the JSON host init wrote: {e}") from e
    if record is not None and not isinstance(record, dict):
        raise InvalidInput(f"{path} is not the JSON host init wrote")
    return record


def read_state(o: Options, db: Ovsdb) -> HostState:
    datapath = db.bridge_datapath(o.bridge)
    record = read_record(o.state_path)
    return HostState(
        uplink=_link(o.netns, o.uplink) if o.uplink else None,
        bridge_link=_link(o.netns, o.bridge),
        bridge_datapath=datapath,
        uplink_bridge=db.port_bridge(o.uplink) if o.uplink else None,
        bootstrap_flows=datapath is not None and has_bootstrap_flows(o),
        sysctls={k: links.read_sysctl(o.netns, k) for k in SYSCTLS},
        files={p: read_file(p) for p in (o.sysctl_path, o.config_path, o.state_path)},
        record=record,
    )


def _mgmt(o: Options) -> str:
    return os.path.join(o.rundir, o.bridge + ".mgmt")


def has_bootstrap_flows(o: Options) -> bool:
    return len(asyncio.run(bootstrap.bootstrap_flows_on(_mgmt(o)))) >= 2


# -- acting --------------------------------------------------------------------

class Machine:
    """The actions a Step may name, on one host (a netns or this one)."""

    def __init__(self, o: Options, db: Ovsdb) -> None:
        self.o, self.db, self.ns = o, db, o.netns

    def create_bridge(self, bridge: str, datapath_type: str, mtu: int) -> None:
        self.db.ensure_bridge(BridgeConfig(name=bridge, datapath_type=datapath_type))
        self.bridge_up(bridge, mtu)

    def bridge_up(self, bridge: str, mtu: int) -> None:
        datapath_type = self.db.bridge_datapath(bridge)
        deadline = time.monotonic() + 10
        while not links.has_link(self.ns, bridge):
            if time.monotonic() > deadline:
                raise SystemFailure(f"ovs-vswitchd made no interface {bridge}")
            time.sleep(0.05)
        links.link_up(self.ns, bridge, mtu=mtu)
        if datapath_type == "netdev":  # userspace datapath: TCP needs TX checksumming off on the tap
            _run(self.ns, ["ethtool", "-K", bridge, "tx", "off"])

    def delete_bridge(self, bridge: str) -> None:
        self.db.del_bridge(bridge)

    def set_datapath(self, bridge: str, datapath_type: str) -> None:
        self.db.set_datapath_type(bridge, datapath_type)

    def add_port(self, bridge: str, port: str) -> None:
        self.db.add_port(bridge, port)

    def del_port(self, bridge: str, port: str) -> None:
        self.db.del_port(port, bridge)

    def add_flows(self, bridge: str, uplink: str) -> None:
        asyncio.run(bootstrap.plumb(_mgmt(self.o), self.db.ofport(uplink)))

    def del_flows(self, bridge: str) -> None:
        asyncio.run(bootstrap.unplumb(_mgmt(self.o)))

    def add_addr(self, dev: str, a: Addr) -> None:
        links.add_addr(self.ns, dev, a.ip, a.prefixlen)

    def del_addr(self, dev: str, a: Addr) -> None:
        links.del_addr(self.ns, dev, a.ip, a.prefixlen)

    def replace_route(self, r: Route) -> None:
        links.replace_route(self.ns, r.dev, r.dst, gateway=r.gateway, metric=r.metric, proto=r.proto,
                            scope=r.scope, type=r.type, prefsrc=r.prefsrc, table=r.table, onlink=r.onlink)

    def probe(self, target: str) -> None:
        deadline = time.monotonic() + PROBE_TIMEOUT
        while True:  # each ping waits up to a second for its reply: the loop paces itself
            done = subprocess.run(_argv(self.ns, ["ping", "-c", "1", "-W", "1", "-n", target]),
                                  capture_output=True, check=False)
            if done.returncode == 0:
                return
            if time.monotonic() > deadline:
                raise SystemFailure(f"cannot reach {target} after the move (give another with --probe)")

    def write_file(self, path: str, text: str) -> None:
        os.makedirs(os.path.dirname(path) or ".", mode=0o755, exist_ok=True)
        tmp = f"{path}.tmp{os.getpid()}"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            with os.fdopen(fd, "w") as f:
                f.write(text)
            os.replace(tmp, path)
        except OSError as e:
            raise SystemFailure(f"cannot write {path}: {e.strerror}") from e

    def remove_file(self, path: str) -> None:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        except OSError as e:
            raise SystemFailure(f"cannot remove {path}: {e.strerror}") from e

    def set_sysctls(self, values: dict[str, str]) -> None:
        _run(self.ns, ["sysctl", "-q", "-w", *(f"{k}={v}" for k, v in values.items())])


def _argv(netns: str | None, argv: Sequence[str]) -> list[str]:
    return list(argv) if netns is None else procs.in_netns(netns, argv)


def _run(netns: str | None, argv: Sequence[str]) -> str:
    return procs.run(_argv(netns, argv))


def execute(machine: Machine, steps: list[Step], on_step: Callable[[Step], None] = lambda s: None) -> None:
    """Run the steps in order; if one fails, undo the ones made (newest first) and raise."""
    fail_at = int(os.environ.get(FAIL_AT_ENV) or 0)
    done: list[Step] = []
    for n, step in enumerate(steps, 1):
        try:
            if n == fail_at:
                raise SystemFailure(f"injected failure ({FAIL_AT_ENV}={n})")
            getattr(machine, step.action)(*step.args)
        except BaseException as e:
            problems = _undo(machine, done)
            note = f"; rollback problems: {'; '.join(problems)}" if problems else ""
            reason = str(e) if isinstance(e, DaoliError) else f"{type(e).__name__}: {e}"
            raise SystemFailure(f"{step.what} failed: {reason}; undid {len(done)} step(s){note}") from e
        done.append(step)
        on_step(step)


def _undo(machine: Machine, done: list[Step]) -> list[str]:
    problems = []
    for step in rollback(done):
        try:
            getattr(machine, step.action)(*step.args)
        except Exception as e:  # noqa: BLE001 -- keep undoing the rest: each inverse stands alone
            problems.append(f"{step.what}: {e}")
    return problems
