"""`daolinet network ...`: networks through the controller's REST API."""

from __future__ import annotations

from typing import Annotated

import typer

from daolinet.cli.api import api_client
from daolinet.cli.output import JsonOpt, TenantFilterOpt, TenantOpt, details, emit_json, say, table

app = typer.Typer(help="Networks: a tenant's subnet.", no_args_is_help=True)

NameArg = Annotated[str, typer.Argument(help="Network name (unique per tenant).")]


@app.command("create")
def create(
    name: NameArg,
    subnet: Annotated[str, typer.Option(help="IPv4 subnet, e.g. 10.1.0.0/24.")],
    tenant: TenantOpt = "default",
    gateway: Annotated[str | None, typer.Option(help="Gateway address (default: first host).")] = None,
    isolated: Annotated[bool, typer.Option(help="Members may not talk to each other.")] = False,
    external: Annotated[bool, typer.Option(
        help="Members reach addresses outside every network, source-NATed by their host.")] = False,
    subnet6: Annotated[str | None, typer.Option(
        help="IPv6 subnet too (dual-stack), e.g. fd00:1::/64.")] = None,
    gateway6: Annotated[str | None, typer.Option(
        help="IPv6 gateway address (default: ::1 of the subnet6).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Create a network."""
    body = {"name": name, "subnet": subnet, "tenant": tenant, "gateway": gateway, "isolated": isolated,
            "external": external}
    if subnet6 is not None or gateway6 is not None:  # IPv4-only requests stay as they were
        body |= {"subnet6": subnet6, "gateway6": gateway6}
    with api_client() as api:
        n = api.call("POST", "/networks", json=body)
    if as_json:
        emit_json(n)
    else:
        v6 = f"; {n['subnet6']}, gateway {n['gateway6']}" if n.get("subnet6") else ""
        say(f"network {n['name']} ({n['subnet']}, gateway {n['gateway']}{v6}) of tenant {n['tenant']}"
            + (", isolated" if n["isolated"] else "") + (", external" if n.get("external") else ""))


@app.command("ls")
def ls(tenant: TenantFilterOpt = None, as_json: JsonOpt = False) -> None:
    """List networks."""
    with api_client() as api:
        nets = api.call("GET", "/networks", params={"tenant": tenant} if tenant else None)
    if as_json:
        emit_json(nets)
        return
    v6 = any(n.get("subnet6") for n in nets)  # IPv6 columns only when some network has IPv6
    table(("tenant", "name", "subnet", "gateway", *(("subnet6", "gateway6") if v6 else ()), "isolated"),
          ((n["tenant"], n["name"], n["subnet"], n["gateway"],
            *((n.get("subnet6"), n.get("gateway6")) if v6 else ()), "yes" if n["isolated"] else "")
           for n in nets), empty="no networks")


@app.command("show")
def show(name: NameArg, tenant: TenantOpt = "default", as_json: JsonOpt = False) -> None:
    """Show a network and the containers on it."""
    with api_client() as api:
        n = api.call("GET", f"/networks/{tenant}/{name}")
        users = api.call("GET", "/endpoints", params={"tenant": tenant, "network": name})
    out = {**n, "containers": [e["name"] for e in users]}
    if as_json:
        emit_json(out)
        return
    v6 = [("subnet6", n["subnet6"]), ("gateway6", n["gateway6"])] if n.get("subnet6") else []
    details([("tenant", n["tenant"]), ("subnet", n["subnet"]), ("gateway", n["gateway"]), *v6,
             ("isolated", n["isolated"]), ("containers", out["containers"])],
            title=f"network {n['name']}")


@app.command("rm")
def rm(name: NameArg, tenant: TenantOpt = "default", as_json: JsonOpt = False) -> None:
    """Delete a network (refused while containers use it)."""
    with api_client() as api:
        n = api.call("DELETE", f"/networks/{tenant}/{name}")
    if as_json:
        emit_json(n)
    else:
        say(f"network {name} of tenant {tenant} removed")
