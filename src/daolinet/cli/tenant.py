"""`daolinet tenant ...`: tenants, the walls between customers."""

from __future__ import annotations

from typing import Annotated

import typer

from daolinet.cli.api import api_client
from daolinet.cli.output import JsonOpt, details, emit_json, say, table

app = typer.Typer(help="Tenants: isolated from each other absolutely.", no_args_is_help=True)

NameArg = Annotated[str, typer.Argument(help="Tenant name.")]


@app.command("ls")
def ls(as_json: JsonOpt = False) -> None:
    """List tenants (a tenant token sees only its own)."""
    with api_client() as api:
        tenants = api.call("GET", "/tenants")
        nets = api.call("GET", "/networks")
        eps = api.call("GET", "/endpoints")
    if as_json:
        emit_json(tenants)
        return

    def count(items: list[dict[str, str]], tenant: str) -> int:
        return sum(1 for i in items if i["tenant"] == tenant)

    table(("name", "networks", "containers"),
          ((t["name"], count(nets, t["name"]), count(eps, t["name"])) for t in tenants), empty="no tenants")


@app.command("show")
def show(name: NameArg, as_json: JsonOpt = False) -> None:
    """Show a tenant: its networks, containers and groups."""
    with api_client() as api:
        t = api.call("GET", f"/tenants/{name}")
        params = {"tenant": name}
        out = {**t,
               "networks": [n["name"] for n in api.call("GET", "/networks", params=params)],
               "containers": [e["name"] for e in api.call("GET", "/endpoints", params=params)],
               "groups": [g["name"] for g in api.call("GET", "/groups", params=params)]}
    if as_json:
        emit_json(out)
        return
    details([(k, out[k]) for k in ("networks", "containers", "groups")], title=f"tenant {name}")


@app.command("create")
def create(name: NameArg, as_json: JsonOpt = False) -> None:
    """Create a tenant (admin token)."""
    with api_client() as api:
        t = api.call("POST", "/tenants", json={"name": name})
    if as_json:
        emit_json(t)
    else:
        say(f"tenant {t['name']} created")


@app.command("rm")
def rm(name: NameArg, as_json: JsonOpt = False) -> None:
    """Delete a tenant (admin token; refused while it has networks)."""
    with api_client() as api:
        t = api.call("DELETE", f"/tenants/{name}")
    if as_json:
        emit_json(t)
    else:
        say(f"tenant {t['name']} removed")
