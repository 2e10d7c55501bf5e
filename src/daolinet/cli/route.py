"""`daolinet route ls`: the live hot-plug routes, with counters read from the switches."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from daolinet.cli.api import ApiClient, api_client
from daolinet.cli.output import JsonOpt, TenantFilterOpt, emit_json, scope, table
from daolinet.errors import NotFound

app = typer.Typer(help="Live hot-plug routes.", no_args_is_help=True)

COLUMNS = ("names", "switches", "scope", "flows", "packets", "bytes", "idle_s", "plugged")


def row(r: dict[str, Any]) -> tuple[Any, ...]:
    return (" <-> ".join(r["names"]), r["switches"], scope(r.get("scope")), r["flows"], r.get("packets"),
            r.get("bytes"), r.get("idle_s"), r["plugged"])


@app.command("ls")
def ls(
    host: Annotated[str | None, typer.Option(help="Only routes with flows on this host.")] = None,
    container: Annotated[str | None, typer.Option(help="Only routes of this container.")] = None,
    tenant: TenantFilterOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List live routes: names, switches, scope, flows, packets, bytes, idle seconds, times plugged."""
    params: dict[str, Any] = {k: v for k, v in (("host", host), ("container", container),
                                                ("tenant", tenant)) if v}
    with api_client() as api:
        routes = api.call("GET", "/routes", params={**params, "stats": "true"})
        if container and not routes:
            _known(api, container, tenant)
    if as_json:
        emit_json(routes)
        return
    table(COLUMNS, (row(r) for r in routes), empty="no live routes")


def _known(api: ApiClient, container: str, tenant: str | None) -> None:
    """No route of CONTAINER: say "not found" when the caller sees no container of that name."""
    seen = api.call("GET", "/endpoints", params={"tenant": tenant} if tenant else None)
    if not any(e["name"] == container for e in seen):
        where = f" in tenant {tenant}" if tenant else ""
        raise NotFound(f"container {container} not found{where}")
