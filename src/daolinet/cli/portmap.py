"""`daolinet portmap ...`: a host's underlay IP:port -> a container's port."""

from __future__ import annotations

from typing import Annotated

import typer

from daolinet.cli.api import api_client
from daolinet.cli.output import JsonOpt, TenantFilterOpt, TenantOpt, emit_json, say, table

app = typer.Typer(help="Port mappings: publish a container's port on a host's underlay address.",
                  no_args_is_help=True)
NameArg = Annotated[str, typer.Argument(help="Port mapping name (unique per tenant).")]


def _line(m: dict[str, object]) -> str:
    return (f"port mapping {m['name']}: {m['host']}:{m['host_port']}/{m['protocol']} -> "
            f"{m['container']}:{m['container_port']} (tenant {m['tenant']})")


@app.command("create")
def create(
    name: NameArg,
    container: Annotated[str, typer.Option(help="The container whose port is published.")],
    rule: Annotated[str, typer.Option(
        help="HOSTPORT:CONTAINERPORT, optionally /tcp or /udp, e.g. 8080:80/tcp.")],
    host: Annotated[str | None, typer.Option(
        help="Host whose address serves it (default: the container's).")] = None,
    tenant: TenantOpt = "default",
    as_json: JsonOpt = False,
) -> None:
    """Publish a container's port on a host's underlay address, wherever the container runs."""
    with api_client() as api:
        m = api.call("POST", "/portmaps", json={"name": name, "container": container, "rule": rule,
                                                "host": host, "tenant": tenant})
    if as_json:
        emit_json(m)
    else:
        say(_line(m))


@app.command("ls")
def ls(tenant: TenantFilterOpt = None, as_json: JsonOpt = False) -> None:
    """List port mappings."""
    with api_client() as api:
        found = api.call("GET", "/portmaps", params={"tenant": tenant} if tenant else None)
    if as_json:
        emit_json(found)
        return
    table(("tenant", "name", "host", "port", "container", "container port"),
          ((m["tenant"], m["name"], m["host"], f"{m['host_port']}/{m['protocol']}", m["container"],
            str(m["container_port"])) for m in found))


@app.command("show")
def show(name: NameArg, tenant: TenantOpt = "default", as_json: JsonOpt = False) -> None:
    """Show one port mapping."""
    with api_client() as api:
        m = api.call("GET", f"/portmaps/{tenant}/{name}")
    if as_json:
        emit_json(m)
    else:
        say(_line(m))


@app.command("rm")
def rm(name: NameArg, tenant: TenantOpt = "default", as_json: JsonOpt = False) -> None:
    """Delete a port mapping: its traffic stops at once."""
    with api_client() as api:
        m = api.call("DELETE", f"/portmaps/{tenant}/{name}")
    if as_json:
        emit_json(m)
    else:
        say(f"port mapping {name} of tenant {tenant} removed")
