"""`daolinet rule ...`: L4 rules from one group to another."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from daolinet.cli.api import api_client
from daolinet.cli.output import JsonOpt, TenantFilterOpt, TenantOpt, details, emit_json, say, table

app = typer.Typer(help="L4 rules: what a group's clients may open to another group's servers; "
                       "for the pairs they cover, nothing else passes.", no_args_is_help=True)

IdArg = Annotated[int, typer.Argument(metavar="ID", help="Rule id (see: daolinet rule ls).")]


def describe(r: dict[str, Any]) -> str:
    what = f"{r['protocol']}/{r['ports']}" if r["ports"] else r["protocol"]
    return f"rule {r['id']}: allow {what} from group {r['a']} to group {r['b']} (tenant {r['tenant']})"


@app.command("create")
def create(
    from_group: Annotated[str, typer.Option("--from", help="Group of the clients.")],
    to_group: Annotated[str, typer.Option("--to", help="Group of the servers.")],
    proto: Annotated[str, typer.Option("--proto", help="tcp, udp or icmp.")],
    port: Annotated[str | None, typer.Option(
        help="Server port N or range N-M (tcp and udp only).")] = None,
    tenant: TenantOpt = "default",
    as_json: JsonOpt = False,
) -> None:
    """Allow PROTO (to PORT) from group --from to group --to."""
    with api_client() as api:
        r = api.call("POST", "/rules", json={"from_group": from_group, "to_group": to_group,
                                             "protocol": proto, "ports": port or "", "tenant": tenant})
    if as_json:
        emit_json(r)
    else:
        say(describe(r))


@app.command("ls")
def ls(tenant: TenantFilterOpt = None, as_json: JsonOpt = False) -> None:
    """List L4 rules."""
    with api_client() as api:
        rules = api.call("GET", "/rules", params={"tenant": tenant} if tenant else None)
    if as_json:
        emit_json(rules)
        return
    table(("id", "tenant", "from", "to", "proto", "ports"),
          ((r["id"], r["tenant"], r["a"], r["b"], r["protocol"], r["ports"]) for r in rules),
          empty="no l4 rules")


@app.command("show")
def show(rule_id: IdArg, tenant: TenantOpt = "default", as_json: JsonOpt = False) -> None:
    """Show one rule."""
    with api_client() as api:
        r = api.call("GET", f"/rules/{tenant}/{rule_id}")
    if as_json:
        emit_json(r)
        return
    details([("tenant", r["tenant"]), ("kind", r["kind"]), ("action", r["action"]), ("from", r["a"]),
             ("to", r["b"]), ("proto", r["protocol"]), ("ports", r["ports"])], title=f"rule {r['id']}")


@app.command("rm")
def rm(rule_id: IdArg, tenant: TenantOpt = "default", as_json: JsonOpt = False) -> None:
    """Delete a rule; routes it no longer allows are revoked."""
    with api_client() as api:
        r = api.call("DELETE", f"/rules/{tenant}/{rule_id}")
    if as_json:
        emit_json(r)
    else:
        say(f"rule {r['id']} of tenant {r['tenant']} removed")
