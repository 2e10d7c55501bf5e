"""`daolinet group ...`: groups, the business relationships that join networks."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from daolinet.cli.api import api_client
from daolinet.cli.output import JsonOpt, TenantFilterOpt, TenantOpt, details, emit_json, say, table

app = typer.Typer(help="Groups: members (network:NAME, container:NAME, label:KEY=VALUE) may talk "
                       "across networks.", no_args_is_help=True)

NameArg = Annotated[str, typer.Argument(help="Group name (unique per tenant).")]
MemberArg = Annotated[str, typer.Argument(help="network:NAME, container:NAME or label:KEY=VALUE.")]


def holds(members: list[str], e: dict[str, Any]) -> bool:
    keys = {f"network:{e['network']}", f"container:{e['name']}"}
    keys.update(f"label:{k}={v}" for k, v in e.get("labels", {}).items())
    return bool(keys & set(members))


@app.command("ls")
def ls(tenant: TenantFilterOpt = None, as_json: JsonOpt = False) -> None:
    """List groups."""
    with api_client() as api:
        groups = api.call("GET", "/groups", params={"tenant": tenant} if tenant else None)
    if as_json:
        emit_json(groups)
        return
    table(("tenant", "name", "members"), ((g["tenant"], g["name"], g["members"]) for g in groups),
          empty="no groups")


@app.command("show")
def show(name: NameArg, tenant: TenantOpt = "default", as_json: JsonOpt = False) -> None:
    """Show a group, the containers it holds now, and the L4 rules that use it."""
    with api_client() as api:
        g = api.call("GET", f"/groups/{tenant}/{name}")
        eps = api.call("GET", "/endpoints", params={"tenant": tenant})
        rules = api.call("GET", "/rules", params={"tenant": tenant})
    out = {**g, "containers": [e["name"] for e in eps if holds(g["members"], e)],
           "rules": [r["id"] for r in rules if name in (r["a"], r["b"])]}
    if as_json:
        emit_json(out)
        return
    details([("tenant", g["tenant"]), ("members", g["members"]), ("containers", out["containers"]),
             ("l4 rules", out["rules"])], title=f"group {g['name']}")


@app.command("create")
def create(
    name: NameArg,
    member: Annotated[list[str] | None, typer.Option(
        "--member", "-m", help="network:NAME, container:NAME or label:KEY=VALUE (repeatable).")] = None,
    tenant: TenantOpt = "default",
    as_json: JsonOpt = False,
) -> None:
    """Create a group."""
    with api_client() as api:
        g = api.call("POST", "/groups", json={"name": name, "tenant": tenant, "members": member or []})
    if as_json:
        emit_json(g)
    else:
        say(f"group {g['name']} of tenant {g['tenant']}: " + (", ".join(g["members"]) or "no members"))


@app.command("rm")
def rm(name: NameArg, tenant: TenantOpt = "default", as_json: JsonOpt = False) -> None:
    """Delete a group (refused while L4 rules use it)."""
    with api_client() as api:
        g = api.call("DELETE", f"/groups/{tenant}/{name}")
    if as_json:
        emit_json(g)
    else:
        say(f"group {g['name']} of tenant {g['tenant']} removed")


@app.command("add")
def add(name: NameArg, member: MemberArg, tenant: TenantOpt = "default", as_json: JsonOpt = False) -> None:
    """Add a member to a group."""
    with api_client() as api:
        g = api.call("POST", f"/groups/{tenant}/{name}/members", json={"member": member})
    if as_json:
        emit_json(g)
    else:
        say(f"group {g['name']}: " + (", ".join(g["members"]) or "no members"))


@app.command("remove")
def remove(name: NameArg, member: MemberArg, tenant: TenantOpt = "default", as_json: JsonOpt = False) -> None:
    """Remove a member from a group."""
    with api_client() as api:
        g = api.call("DELETE", f"/groups/{tenant}/{name}/members", params={"member": member})
    if as_json:
        emit_json(g)
    else:
        say(f"group {g['name']}: " + (", ".join(g["members"]) or "no members"))
