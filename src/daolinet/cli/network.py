"""`daolinet network ...`: networks through the controller's REST API."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from daolinet.cli.api import api_client

app = typer.Typer(help="Networks: a tenant's subnet.", no_args_is_help=True)
console = Console()


@app.command("create")
def create(
    name: Annotated[str, typer.Argument(help="Network name (unique per tenant).")],
    subnet: Annotated[str, typer.Option(help="IPv4 subnet, e.g. 10.1.0.0/24.")],
    tenant: Annotated[str, typer.Option(help="Owning tenant.")] = "default",
    gateway: Annotated[str | None, typer.Option(help="Gateway address (default: first host).")] = None,
    isolated: Annotated[bool, typer.Option(help="Members may not talk to each other.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Create a network."""
    with api_client() as api:
        n = api.call("POST", "/networks", json={"name": name, "subnet": subnet, "tenant": tenant,
                                                "gateway": gateway, "isolated": isolated})
    if as_json:
        print(json.dumps(n))
    else:
        console.print(f"network {n['name']} ({n['subnet']}, gateway {n['gateway']}) of tenant {n['tenant']}")


@app.command("ls")
def ls(
    tenant: Annotated[str | None, typer.Option(help="Only this tenant's.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """List networks."""
    with api_client() as api:
        nets = api.call("GET", "/networks", params={"tenant": tenant} if tenant else None)
    if as_json:
        print(json.dumps(nets, indent=2))
        return
    table = Table()
    for col in ("tenant", "name", "subnet", "gateway", "isolated"):
        table.add_column(col)
    for n in nets:
        table.add_row(n["tenant"], n["name"], n["subnet"], n["gateway"], "yes" if n["isolated"] else "")
    console.print(table)


@app.command("rm")
def rm(
    name: Annotated[str, typer.Argument(help="Network name.")],
    tenant: Annotated[str, typer.Option(help="Owning tenant.")] = "default",
) -> None:
    """Delete a network (refused while containers use it)."""
    with api_client() as api:
        api.call("DELETE", f"/networks/{tenant}/{name}")
    console.print(f"network {name} of tenant {tenant} removed")
