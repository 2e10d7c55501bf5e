"""`daolinet rule ...`: l4 rules between groups, and between a group and addresses
outside daolinet (cidr:NETWORK), allowing or denying, by priority."""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any
from urllib.parse import quote

import typer

from daolinet.cli.api import api_client
from daolinet.cli.output import JsonOpt, TenantFilterOpt, TenantOpt, details, emit_json, say, table
from daolinet.decide.policy import describe_rule
from daolinet.model.objects import DEFAULT_RULE_PRIORITY, RULE_PRIORITY_MAX, Rule

app = typer.Typer(
    help="L4 rules: what may go from a group (or cidr:NETWORK, addresses outside daolinet) to "
         "another.  Rules are evaluated first-match: higher --priority first, at equal priority "
         "deny before allow, then the older rule (see: daolinet rule ls).  For the pairs a group's "
         "allow rules cover, nothing else passes; pairs no rule covers keep the defaults.",
    no_args_is_help=True)

RefArg = Annotated[str, typer.Argument(metavar="RULE", help="Rule id or name (see: daolinet rule ls).")]
SIDE = "A group of the tenant, or cidr:NETWORK, IPv4 or IPv6 (e.g. cidr:198.19.0.0/16, cidr:2001:db8::/32)"


def rule_of(r: dict[str, Any]) -> Rule:
    """The API's JSON of a rule as a Rule (extra keys such as `order` left out)."""
    return Rule(**{f.name: r[f.name] for f in dataclasses.fields(Rule) if f.name in r})


def path(tenant: str, ref: str) -> str:
    return f"/rules/{quote(tenant, safe='')}/{quote(ref, safe='')}"


def ref_of(r: dict[str, Any]) -> str:
    return f"{r['name']} ({r['id']})" if r.get("name") else str(r["id"])


def describe(r: dict[str, Any]) -> str:
    return (f"rule {ref_of(r)}: {r['action']} {describe_rule(rule_of(r))} from {r['a']} to {r['b']} "
            f"at priority {r['priority']} (tenant {r['tenant']})")


@app.command("create")
def create(
    from_: Annotated[str, typer.Option("--from", help=f"{SIDE}: where packets come from (the clients).")],
    to: Annotated[str, typer.Option("--to", help=f"{SIDE}: where they go (the servers).")],
    proto: Annotated[str, typer.Option("--proto", help="tcp, udp, icmp or any.")] = "any",
    port: Annotated[str | None, typer.Option(
        help="Server port N or range N-M, 1-65535 (tcp and udp only; default: any port).")] = None,
    icmp_type: Annotated[int | None, typer.Option(
        "--icmp-type", help="ICMP type 0-255, e.g. 8 for echo requests (icmp only; default: any).")] = None,
    action: Annotated[str, typer.Option(help="allow or deny.")] = "allow",
    priority: Annotated[int, typer.Option(
        help=f"0-{RULE_PRIORITY_MAX}; higher is evaluated first.")] = DEFAULT_RULE_PRIORITY,
    name: Annotated[str, typer.Option(help="A name, unique in the tenant (not all digits).")] = "",
    tenant: TenantOpt = "default",
    as_json: JsonOpt = False,
) -> None:
    """Allow or deny PROTO (to PORT, or of ICMP type) from --from to --to.

    Overlapping and contradictory rules are accepted: the evaluation order settles them."""
    body: dict[str, Any] = {"from": from_, "to": to, "protocol": proto, "ports": port or "",
                            "action": action, "priority": priority, "name": name, "tenant": tenant}
    if icmp_type is not None:
        body["icmp_type"] = icmp_type
    with api_client() as api:
        r = api.call("POST", "/rules", json=body)
    if as_json:
        emit_json(r)
    else:
        say(describe(r))


@app.command("ls")
def ls(tenant: TenantFilterOpt = None, as_json: JsonOpt = False) -> None:
    """List l4 rules in evaluation order (per tenant): the first that matches a packet decides."""
    with api_client() as api:
        rules = api.call("GET", "/rules", params={"tenant": tenant} if tenant else None)
    if as_json:
        emit_json(rules)
        return
    table(("tenant", "order", "rule", "priority", "action", "from", "to", "what"),
          ((r["tenant"], r["order"], ref_of(r), r["priority"], r["action"], r["a"], r["b"],
            describe_rule(rule_of(r))) for r in rules),
          empty="no l4 rules")


@app.command("show")
def show(ref: RefArg, tenant: TenantOpt = "default", as_json: JsonOpt = False) -> None:
    """Show one rule, by id or name."""
    with api_client() as api:
        r = api.call("GET", path(tenant, ref))
    if as_json:
        emit_json(r)
        return
    details([("tenant", r["tenant"]), ("name", r.get("name")), ("kind", r["kind"]), ("action", r["action"]),
             ("priority", r.get("priority")), ("from", r["a"]), ("to", r["b"]),
             ("what", describe_rule(rule_of(r)) if r["kind"] == "l4" else "everything")],
            title=f"rule {r['id']}")


@app.command("rm")
def rm(ref: RefArg, tenant: TenantOpt = "default", as_json: JsonOpt = False) -> None:
    """Delete a rule, by id or name; what it no longer allows is revoked before this returns."""
    with api_client() as api:
        r = api.call("DELETE", path(tenant, ref))
    if as_json:
        emit_json(r)
    else:
        say(f"rule {ref_of(r)} of tenant {r['tenant']} removed")
