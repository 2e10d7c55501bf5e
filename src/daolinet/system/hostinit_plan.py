"""`daolinet host init`, the decisions: a host's current state in, ordered steps out.

Pure: `system/hostinit.py` reads the state (netlink, OVSDB, files) into a `HostState`,
runs the steps this module returns, and on any failure runs the inverses of the
steps already made, newest first.  Every step carries its own inverse here, so the
rollback order is data a unit test can read, not a path through I/O code.

The uplink's addresses move in three phases that keep the host reachable: add them
to the bridge's LOCAL port, move the routes (`replace`: a route never disappears),
then delete them from the uplink.  Only then does the probe run; if it fails,
everything rolls back.  Bootstrap flows (cookie 0xD1AB, priority 1, the lab's and
the agent's) carry the host's own traffic LOCAL <-> uplink before any controller
does: a fail_mode=secure bridge without flows would forward nothing.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field, replace
from typing import Any

from daolinet.errors import Conflict, InvalidInput, NotFound
from daolinet.pipeline import BOOTSTRAP_COOKIE
from daolinet.pipeline import Priority as _Priority

BOOTSTRAP_PRIORITY = int(_Priority.BOOTSTRAP)

SYSCTLS = {"net.ipv4.conf.all.arp_ignore": "1"}  # docs/underlay.md
DATAPATHS = ("auto", "system", "netdev")

DONE, MISSING, DIFFERS = "done", "missing", "differs"


@dataclass(frozen=True)
class Addr:
    ip: str
    prefixlen: int

    def __str__(self) -> str:
        return f"{self.ip}/{self.prefixlen}"


@dataclass(frozen=True)
class Route:
    """An IPv4 route through one device, as netlink gives it (enough to put it back)."""
    dst: str  # CIDR, 0.0.0.0/0 for the default route
    dev: str
    gateway: str | None = None
    metric: int = 0
    proto: int = 3  # boot
    scope: int = 0
    type: int = 1  # unicast
    prefsrc: str | None = None
    table: int = 254
    onlink: bool = False

    def on(self, dev: str) -> Route:
        return replace(self, dev=dev)

    def key(self) -> tuple[str, str | None, int, int]:
        return (self.dst, self.gateway, self.metric, self.table)

    def __str__(self) -> str:
        via = f" via {self.gateway}" if self.gateway else ""
        return f"{self.dst}{via} dev {self.dev} metric {self.metric}"


@dataclass(frozen=True)
class Link:
    name: str
    kind: str = ""  # '' for a plain NIC, else IFLA_INFO_KIND (veth, bridge, openvswitch, ...)
    master: str | None = None  # a Linux master (bridge, bond, ovs-system)
    master_kind: str = ""
    up: bool = True
    mtu: int = 1500
    addrs: tuple[Addr, ...] = ()
    routes: tuple[Route, ...] = ()  # non-kernel main-table routes through this link


@dataclass(frozen=True)
class HostState:
    """What `hostinit.read_state` saw; None for things that do not exist."""
    uplink: Link | None
    bridge_link: Link | None  # the bridge's LOCAL interface
    bridge_datapath: str | None  # None: no such bridge in OVSDB
    uplink_bridge: str | None  # the OVS bridge that has a port named like the uplink
    bootstrap_flows: bool = False
    sysctls: dict[str, str] = field(default_factory=dict)  # current runtime values
    files: dict[str, str | None] = field(default_factory=dict)  # path -> content (None: absent)
    record: dict[str, Any] | None = None  # the state file, parsed


@dataclass(frozen=True)
class Wanted:
    uplink: str
    bridge: str
    datapath_type: str  # resolved: system or netdev
    sysctl_path: str
    sysctl_text: str
    config_path: str
    config: dict[str, Any]  # the agent.toml content
    config_text: str
    existing_config: dict[str, Any] | None  # the config file now, parsed (None: absent)
    state_path: str
    pip_pool: str | None = None
    probe: str | None = None
    force: bool = False


@dataclass(frozen=True)
class Step:
    """One change: `action` names a function of the I/O layer, `args` its arguments."""
    action: str
    args: tuple[Any, ...]
    what: str
    undo: Step | None = None


@dataclass(frozen=True)
class Item:
    """One line of `host init --check`."""
    name: str
    status: str
    detail: str


def sysctl_text(values: dict[str, str] = SYSCTLS) -> str:
    lines = [f"{k} = {v}" for k, v in sorted(values.items())]
    return "# Written by `daolinet host init` (docs/underlay.md); removed by `host init --undo`.\n" + \
        "\n".join(lines) + "\n"


# -- bad input ---------------------------------------------------------------

def validate(s: HostState, w: Wanted) -> None:
    """Refuse, before anything changes, what init must not touch."""
    if w.uplink == w.bridge:
        raise InvalidInput(f"--uplink {w.uplink} is the bridge itself: give the underlay NIC")
    if s.uplink is None:
        raise NotFound(f"no interface {w.uplink} on this host")
    if s.uplink_bridge not in (None, w.bridge):
        raise Conflict(f"{w.uplink} is already a port of OVS bridge {s.uplink_bridge}")
    if s.uplink.master and s.uplink.master_kind != "openvswitch":
        kind = "Linux bridge" if s.uplink.master_kind == "bridge" else s.uplink.master_kind or "device"
        raise Conflict(f"{w.uplink} is already a port of {kind} {s.uplink.master}")
    if s.uplink.kind in ("bridge", "openvswitch"):
        raise InvalidInput(f"{w.uplink} is a bridge, not an uplink NIC")
    if not s.uplink.addrs and not _moved(s, w):
        raise InvalidInput(f"{w.uplink} has no IPv4 address: nothing would reach this host over it")
    if w.pip_pool is not None:
        _check_pool(w.pip_pool, s.uplink.addrs or (s.bridge_link.addrs if s.bridge_link else ()))
    if (w.existing_config is not None and w.existing_config != w.config and not w.force):
        raise Conflict(f"{w.config_path} exists and differs: --force overwrites it")


def _check_pool(pool: str, addrs: tuple[Addr, ...]) -> None:
    try:
        net = ipaddress.IPv4Network(pool, strict=True)
    except ValueError as e:
        raise InvalidInput(f"--pip-pool {pool!r} is not an IPv4 network: {e}") from e
    subnets = [ipaddress.IPv4Network(str(a), strict=False) for a in addrs]
    if subnets and not any(net.subnet_of(s) for s in subnets):
        raise InvalidInput(f"--pip-pool {pool} is not inside the uplink's subnet "
                           f"{', '.join(map(str, subnets))}")


def _moved(s: HostState, w: Wanted) -> bool:
    """The uplink is our bridge's port and the bridge holds the host's addresses."""
    return s.uplink_bridge == w.bridge and bool(s.bridge_link and s.bridge_link.addrs)


# -- init --------------------------------------------------------------------

def plan_init(s: HostState, w: Wanted) -> list[Step]:
    """The steps that take this host from `s` to initialised; [] when it is."""
    validate(s, w)
    return _bridge_steps(s, w) + _move_steps(s, w) + _file_steps(s, w)


def _bridge_steps(s: HostState, w: Wanted) -> list[Step]:
    """The bridge, the uplink as its port, and the bootstrap flows."""
    assert s.uplink is not None
    steps: list[Step] = []
    if s.bridge_datapath is None:
        steps.append(Step("create_bridge", (w.bridge, w.datapath_type, s.uplink.mtu),
                          f"create bridge {w.bridge} ({w.datapath_type})",
                          Step("delete_bridge", (w.bridge,), f"delete bridge {w.bridge}")))
    elif s.bridge_datapath != w.datapath_type:
        steps.append(Step("set_datapath", (w.bridge, w.datapath_type),
                          f"bridge {w.bridge}: datapath {s.bridge_datapath} -> {w.datapath_type}",
                          Step("set_datapath", (w.bridge, s.bridge_datapath), "datapath back")))
    if s.uplink_bridge is None:
        steps.append(Step("add_port", (w.bridge, w.uplink), f"add {w.uplink} to {w.bridge}",
                          Step("del_port", (w.bridge, w.uplink), f"remove {w.uplink} from {w.bridge}")))
    if not s.bootstrap_flows or s.bridge_datapath is None:
        steps.append(Step("add_flows", (w.bridge, w.uplink), "bootstrap flows LOCAL <-> uplink",
                          Step("del_flows", (w.bridge,), "remove bootstrap flows")))
    return steps


# -- boot --------------------------------------------------------------------

def plan_boot(s: HostState, w: Wanted) -> list[Step]:
    """After a reboot (the agent unit's ExecStartPre): the host's network as init left it.

    ovs-vswitchd re-creates the bridge's interface without addresses and the bridge without
    flows; the uplink may have its addresses back (the distribution's network config) or
    none.  From the record: the bridge up, the bootstrap flows, and the addresses and routes
    on the bridge again (moved off the uplink if they came back there).  No record: init
    never ran here, so there is nothing to restore."""
    if s.record is None:
        return []
    if s.uplink is None:
        raise NotFound(f"the recorded uplink {w.uplink} is gone: cannot restore the host's network")
    steps = _bridge_steps(s, w)
    if s.bridge_datapath is not None:  # a re-made interface: up, MTU, (netdev) checksum offload off
        steps.append(Step("bridge_up", (w.bridge, s.uplink.mtu), f"bring {w.bridge} up"))
    if s.uplink.addrs:
        return steps + _move_steps(s, w) + _sysctl_steps(s)
    on_bridge = set(s.bridge_link.addrs) if s.bridge_link else set()
    br_routes = {r.key() for r in (s.bridge_link.routes if s.bridge_link else ())}
    addrs = [_addr(a) for a in s.record.get("addresses", [])]
    routes = [route_from_json(r).on(w.bridge) for r in s.record.get("routes", [])]
    steps += [Step("add_addr", (w.bridge, a), f"add {a} to {w.bridge}",
                   Step("del_addr", (w.bridge, a), f"remove {a} from {w.bridge}"))
              for a in addrs if a not in on_bridge]
    steps += [Step("replace_route", (r,), f"route {r.dst} onto {w.bridge}")
              for r in routes if r.key() not in br_routes]
    return steps + _sysctl_steps(s)


def _move_steps(s: HostState, w: Wanted) -> list[Step]:
    assert s.uplink is not None
    up, br = s.uplink, w.bridge
    if not up.addrs:
        return []
    on_bridge = set(s.bridge_link.addrs) if s.bridge_link else set()
    record = {"uplink": up.name, "bridge": br, "addresses": [str(a) for a in up.addrs],
              "routes": [route_json(r) for r in up.routes], "sysctls_before": dict(s.sysctls)}
    steps = [_write(w.state_path, json_text(record), s.files.get(w.state_path), "record what moves")]
    steps += [Step("add_addr", (br, a), f"add {a} to {br}",
                   Step("del_addr", (br, a), f"remove {a} from {br}"))
              for a in up.addrs if a not in on_bridge]
    steps += [Step("replace_route", (r.on(br),), f"route {r.dst} onto {br}",
                   Step("replace_route", (r,), f"route {r.dst} back onto {up.name}")) for r in up.routes]
    steps += [Step("del_addr", (up.name, a), f"remove {a} from {up.name}",
                   Step("add_addr", (up.name, a), f"put {a} back on {up.name}")) for a in up.addrs]
    target = w.probe or default_gateway(up.routes)
    if target:
        steps.append(Step("probe", (target,), f"reach {target} through {br}"))
    return steps


def _file_steps(s: HostState, w: Wanted) -> list[Step]:
    steps = []
    if s.files.get(w.sysctl_path) != w.sysctl_text:
        steps.append(_write(w.sysctl_path, w.sysctl_text, s.files.get(w.sysctl_path), "sysctl file"))
    steps += _sysctl_steps(s)
    if w.existing_config != w.config:
        steps.append(_write(w.config_path, w.config_text, s.files.get(w.config_path), "agent config"))
    return steps


def _sysctl_steps(s: HostState) -> list[Step]:
    wrong = {k: v for k, v in SYSCTLS.items() if s.sysctls.get(k) != v}
    if not wrong:
        return []
    before = {k: s.sysctls.get(k, "0") for k in wrong}
    return [Step("set_sysctls", (wrong,), "apply " + ", ".join(f"{k}={v}" for k, v in wrong.items()),
                 Step("set_sysctls", (before,), "sysctls back"))]


def _write(path: str, text: str, before: str | None, what: str) -> Step:
    undo = (Step("remove_file", (path,), f"remove {path}") if before is None
            else Step("write_file", (path, before), f"restore {path}"))
    return Step("write_file", (path, text), f"write {path} ({what})", undo)


def default_gateway(routes: tuple[Route, ...] | list[Route]) -> str | None:
    for r in sorted(routes, key=lambda r: r.metric):
        if r.dst == "0.0.0.0/0" and r.gateway:
            return r.gateway
    return None


def rollback(done: list[Step]) -> list[Step]:
    """The inverses of the steps made, newest first."""
    return [s.undo for s in reversed(done) if s.undo is not None]


# -- check -------------------------------------------------------------------

def check(s: HostState, w: Wanted) -> list[Item]:
    """Each part of init: done, missing or differs.  Changes nothing."""
    up_name = w.uplink
    br_dp = s.bridge_datapath
    items = [
        Item("bridge", MISSING if br_dp is None else DONE if br_dp == w.datapath_type else DIFFERS,
             f"{w.bridge} datapath {br_dp or '-'} (want {w.datapath_type})"),
        Item("uplink port", DONE if s.uplink_bridge == w.bridge else
             MISSING if s.uplink_bridge is None else DIFFERS,
             f"{up_name} on {s.uplink_bridge or 'no bridge'}"),
        Item("bootstrap flows", DONE if s.bootstrap_flows else MISSING,
             f"cookie {BOOTSTRAP_COOKIE:#x} priority {BOOTSTRAP_PRIORITY}"),
    ]
    up_addrs = s.uplink.addrs if s.uplink else ()
    br_addrs = s.bridge_link.addrs if s.bridge_link else ()
    items.append(Item("addresses", MISSING if up_addrs or not br_addrs else DONE,
                      f"{up_name}: {_fmt(up_addrs)}; {w.bridge}: {_fmt(br_addrs)}"))
    up_routes = s.uplink.routes if s.uplink else ()
    recorded = [route_from_json(r).on(w.bridge) for r in (s.record or {}).get("routes", [])]
    br_keys = {r.key() for r in (s.bridge_link.routes if s.bridge_link else ())}
    missing = [r for r in recorded if r.key() not in br_keys]
    items.append(Item("routes", MISSING if up_routes or missing else DONE,
                      f"{len(up_routes)} on {up_name}, {len(recorded) - len(missing)}/{len(recorded)} "
                      f"recorded on {w.bridge}"))
    items.append(Item("record", DONE if s.record else MISSING, w.state_path))
    sys_file = s.files.get(w.sysctl_path)
    sys_ok = all(s.sysctls.get(k) == v for k, v in SYSCTLS.items())
    items.append(Item("sysctls", DONE if sys_file == w.sysctl_text and sys_ok else
                      MISSING if sys_file is None else DIFFERS,
                      ", ".join(f"{k}={s.sysctls.get(k, '?')}" for k in SYSCTLS) + f" ({w.sysctl_path})"))
    cfg = w.existing_config
    items.append(Item("agent config", MISSING if cfg is None else DONE if cfg == w.config else DIFFERS,
                      w.config_path))
    return items


def _fmt(addrs: tuple[Addr, ...]) -> str:
    return ", ".join(map(str, addrs)) or "none"


# -- undo --------------------------------------------------------------------

def plan_undo(s: HostState, w: Wanted, keep_bridge: bool = False) -> list[Step]:
    """Steps back to the uplink as it was, from the record; [] when nothing is left."""
    rec = s.record or {}
    up, br = rec.get("uplink", w.uplink), rec.get("bridge", w.bridge)
    addrs = [_addr(a) for a in rec.get("addresses", [])]
    routes = [route_from_json(r) for r in rec.get("routes", [])]
    if not rec and s.bridge_link and s.bridge_link.addrs:
        raise Conflict(f"no record at {w.state_path} of what host init moved, and bridge {br} holds "
                       f"{_fmt(s.bridge_link.addrs)}: refusing to guess")
    if rec and s.uplink is None:
        raise NotFound(f"the recorded uplink {up} is gone: cannot put its addresses back")
    steps: list[Step] = []
    if s.uplink_bridge == br:
        steps.append(Step("del_port", (br, up), f"remove {up} from {br}",
                          Step("add_port", (br, up), f"put {up} back on {br}")))
    on_up = set(s.uplink.addrs) if s.uplink else set()
    on_br = set(s.bridge_link.addrs) if s.bridge_link else set()
    steps += [Step("add_addr", (up, a), f"put {a} back on {up}", Step("del_addr", (up, a), f"remove {a}"))
              for a in addrs if a not in on_up]
    up_keys = {r.key() for r in (s.uplink.routes if s.uplink else ())}
    steps += [Step("replace_route", (r,), f"route {r.dst} back onto {up}",
                   Step("replace_route", (r.on(br),), f"route {r.dst} onto {br}"))
              for r in routes if r.key() not in up_keys]
    steps += [Step("del_addr", (br, a), f"remove {a} from {br}",
                   Step("add_addr", (br, a), f"put {a} on {br}")) for a in addrs if a in on_br]
    target = w.probe or default_gateway(routes)
    if target and any(st.action in ("add_addr", "replace_route") for st in steps):
        steps.append(Step("probe", (target,), f"reach {target} through {up}"))
    if s.bridge_datapath is not None and not keep_bridge:
        steps.append(Step("delete_bridge", (br,), f"delete bridge {br}"))
    if s.files.get(w.sysctl_path) is not None:
        steps.append(Step("remove_file", (w.sysctl_path,), f"remove {w.sysctl_path}",
                          Step("write_file", (w.sysctl_path, s.files[w.sysctl_path]), "restore sysctl file")))
    before = {k: v for k, v in rec.get("sysctls_before", {}).items() if s.sysctls.get(k) != v}
    if before:
        now = {k: s.sysctls.get(k, "0") for k in before}
        steps.append(Step("set_sysctls", (before,), "sysctls as before init",
                          Step("set_sysctls", (now,), "sysctls back")))
    if s.record is not None:
        steps.append(Step("remove_file", (w.state_path,), f"remove {w.state_path}",
                          Step("write_file", (w.state_path, json_text(s.record)), "restore record")))
    return steps


# -- the record's encoding -----------------------------------------------------

def route_json(r: Route) -> dict[str, Any]:
    return {k: v for k, v in r.__dict__.items() if v is not None}


def route_from_json(d: dict[str, Any]) -> Route:
    known = set(Route.__dataclass_fields__)
    unknown = set(d) - known
    if unknown or "dst" not in d or "dev" not in d:
        raise InvalidInput(f"host init record: a route with unknown or missing keys: {sorted(unknown)}")
    return Route(**d)


def _addr(text: str) -> Addr:
    ip, _, plen = text.partition("/")
    return Addr(ip, int(plen))


def json_text(data: dict[str, Any]) -> str:
    import json
    return json.dumps(data, indent=2, sort_keys=True) + "\n"
