"""`daolinet host ...`: container hosts (they register themselves; admin token)."""

from __future__ import annotations

from typing import Annotated

import typer

from daolinet.cli.api import api_client
from daolinet.cli.output import JsonOpt, ago, details, emit_json, say, state, table

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
