"""`daolinet host ...`: container hosts (they register themselves; admin token)."""

from __future__ import annotations

from typing import Annotated

import typer

from daolinet.cli.api import api_client
from daolinet.cli.output import JsonOpt, ago, details, emit_json, say, state, table
from daolinet.errors import InvalidInput
from daolinet.system import hostinit, hostinit_plan
from daolinet.system.ovsdb import Ovsdb

app = typer.Typer(help="Container hosts: each runs an agent and OVS, and registers itself.",
                  no_args_is_help=True)

NameArg = Annotated[str, typer.Argument(help="Host name.")]


@app.command("ls")
def ls(as_json: JsonOpt = False) -> None:
    """List hosts (admin token)."""
    with api_client() as api:
        hosts = api.call("GET", "/hosts")
        eps = api.call("GET", "/endpoints")
    if as_json:
        emit_json(hosts)
        return
    table(("name", "state", "dpid", "underlay", "PIP pool", "containers", "last seen"),
          ((h["name"], state(h.get("alive", True)), f"{h['dpid']:#x}",
            f"{h['underlay_ip']}/{h['underlay_prefix']}", h["pip_pool"],
            sum(1 for e in eps if e["host"] == h["name"]), ago(h.get("last_seen")))
           for h in hosts),
          empty="no hosts")


@app.command("show")
def show(name: NameArg, as_json: JsonOpt = False) -> None:
    """Show a host and the containers on it (admin token)."""
    with api_client() as api:
        h = api.call("GET", f"/hosts/{name}")
        eps = api.call("GET", "/endpoints", params={"host": name})
    out = {**h, "containers": [f"{e['tenant']}/{e['name']}" for e in eps]}
    if as_json:
        emit_json(out)
        return
    details([("state", state(h.get("alive", True))), ("dpid", f"{h['dpid']:#x}"),
             ("underlay", f"{h['underlay_ip']}/{h['underlay_prefix']}"),
             ("underlay MAC", h["underlay_mac"]), ("gateway MAC", h["underlay_gateway_mac"]),
             ("PIP pool", h["pip_pool"]), ("uplink ofport", h["uplink_ofport"]),
             ("last seen", ago(h.get("last_seen"))), ("containers", out["containers"])],
            title=f"host {h['name']}")


@app.command("rm")
def rm(name: NameArg, as_json: JsonOpt = False) -> None:
    """Forget a host (admin token; refused while it has containers; a live agent registers again)."""
    with api_client() as api:
        h = api.call("DELETE", f"/hosts/{name}")
    if as_json:
        emit_json(h)
    else:
        say(f"host {h['name']} removed")


@app.command("controllers")
def controllers(as_json: JsonOpt = False) -> None:
    """List the controllers that recorded themselves: addresses containers never reach (admin token)."""
    with api_client() as api:
        found = api.call("GET", "/controllers")
    if as_json:
        emit_json(found)
        return
    table(("id", "API", "OpenFlow", "advertised", "etcd", "started"),
          ((c["id"], ", ".join(c["api"]), ", ".join(c["openflow"]), ", ".join(c["advertise"]),
            ", ".join(c["etcd"]), ago(c.get("started"))) for c in found),
          empty="no controllers")


@app.command("init")
def init(
    uplink: Annotated[str | None, typer.Option(
        help="The underlay NIC: it joins the bridge, and its IPv4 addresses and routes move onto the "
             "bridge's own interface (needed except with --undo, which reads it from --state).")] = None,
    bridge: Annotated[str, typer.Option(help="OVS bridge to create.")] = "daolinet",
    datapath: Annotated[str, typer.Option(
        help="auto (kernel where the openvswitch module is loaded, else netdev), system or netdev.")] =
        "auto",
    ovsdb: Annotated[str, typer.Option(help="OVSDB endpoint.")] = hostinit.DEFAULT_OVSDB,
    ovs_rundir: Annotated[str | None, typer.Option(
        help="ovs-vswitchd's run directory, where BRIDGE.mgmt is (default: the OVSDB socket's).")] = None,
    netns: Annotated[str | None, typer.Option(
        help="Work inside this network namespace (a simulated machine) instead of this one.")] = None,
    pip_pool: Annotated[str | None, typer.Option(
        help="This host's PIP pool, for agent.toml (inside the uplink's subnet).")] = None,
    controller: Annotated[list[str] | None, typer.Option(
        help="A controller's OpenFlow target for agent.toml (repeatable).")] = None,
    api: Annotated[list[str] | None, typer.Option(
        help="A controller's REST API URL for agent.toml (repeatable).")] = None,
    name: Annotated[str | None, typer.Option(help="Host name for agent.toml (default: the agent's).")] =
        None,
    probe: Annotated[str | None, typer.Option(
        help="Address that must answer ping after the move (default: the default gateway).")] = None,
    config_out: Annotated[str, typer.Option(help="The agent's config file to write.")] =
        "/etc/daolinet/agent.toml",
    sysctl_file: Annotated[str, typer.Option(help="The sysctl file to write.")] =
        "/etc/sysctl.d/60-daolinet.conf",
    state: Annotated[str, typer.Option(help="Record of what moved, which --undo puts back.")] =
        "/var/lib/daolinet/host-init.json",
    force: Annotated[bool, typer.Option("--force", help="Overwrite a different agent config file.")] =
        False,
    check: Annotated[bool, typer.Option(
        "--check", help="Report each part (done, missing, differs) and change nothing; exit status 0 "
                   "only when all are done.")] =
        False,
    undo: Annotated[bool, typer.Option(
        "--undo", help="Put the uplink back as it was, remove the bridge and the sysctl file.")] = False,
    keep_bridge: Annotated[bool, typer.Option("--keep-bridge", help="With --undo: keep the bridge.")] =
        False,
    boot: Annotated[bool, typer.Option(
        "--boot", help="After a reboot (the agent unit runs it): restore what the record says init did "
                       "(bridge up, bootstrap flows, addresses and routes on the bridge); no record: "
                       "nothing to do.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Prepare this host for the agent: bridge, uplink, sysctls, agent.toml (idempotent; any failure
    is rolled back, so the host keeps its addresses and routes)."""
    if sum((check, undo, boot)) > 1:
        raise InvalidInput("--check, --undo and --boot exclude each other")
    if (undo or boot) and not uplink:
        record = hostinit.read_record(state) or {}
        uplink, bridge = str(record.get("uplink", "")), str(record.get("bridge", bridge))
        if boot and not uplink:
            say(f"nothing to do: no host init record at {state}")
            return
    if not uplink and not undo:
        raise InvalidInput("give the underlay NIC: --uplink IFACE")
    opts = hostinit.Options(
        uplink=uplink or "", bridge=bridge, netns=netns, ovsdb=ovsdb, ovs_rundir=ovs_rundir,
        datapath=datapath, sysctl_path=sysctl_file, config_path=config_out, state_path=state,
        pip_pool=pip_pool, controllers=tuple(controller or ()), api=tuple(api or ()), name=name,
        probe=probe, force=force)
    want = hostinit.wanted(opts)
    with Ovsdb(opts.ovsdb) as db:
        current = hostinit.read_state(opts, db)
        if check:
            _report(hostinit_plan.check(current, want), as_json)
            return
        if undo:
            steps = hostinit_plan.plan_undo(current, want, keep_bridge=keep_bridge)
        elif boot:
            steps = hostinit_plan.plan_boot(current, want)
        else:
            steps = hostinit_plan.plan_init(current, want)
        machine = hostinit.Machine(opts, db)
        hostinit.execute(machine, steps, on_step=lambda s: None if as_json else say(f"done: {s.what}"))
    if as_json:
        emit_json({"changed": [s.what for s in steps]})
    elif not steps:
        say("nothing to do: " + ("nothing of host init is left" if undo else "this host is initialised"))


def _report(items: list[hostinit_plan.Item], as_json: bool) -> None:
    if as_json:
        emit_json([{"step": i.name, "status": i.status, "detail": i.detail} for i in items])
    else:
        table(("step", "status", "detail"), ((i.name, i.status, i.detail) for i in items))
    if any(i.status != hostinit_plan.DONE for i in items):
        raise typer.Exit(1)
