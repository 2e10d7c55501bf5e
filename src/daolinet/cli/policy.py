"""`daolinet policy ...`: pair rules between two containers, above every other rule."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from daolinet.cli.api import api_client
from daolinet.cli.output import JsonOpt, TenantFilterOpt, TenantOpt, emit_json, say, table

app = typer.Typer(help="Pair rules: connect or disconnect two containers, whatever else says.",
                  no_args_is_help=True)

A = Annotated[str, typer.Argument(help="A container.")]
B = Annotated[str, typer.Argument(help="Another container.")]
OptA = Annotated[str | None, typer.Argument(help="Only rules naming this container.")]
OptB = Annotated[str | None, typer.Argument(help="Only the rule between A and this container.")]


def _set(action: str, a: str, b: str, tenant: str, as_json: bool) -> None:
    with api_client() as api:
        r = api.call("POST", f"/policy/{action}", json={"a": a, "b": b, "tenant": tenant})
    if as_json:
        emit_json(r)
    else:
        say(f"rule {r['id']}: {r['action']} {r['a']} {r['b']} (tenant {r['tenant']})")


@app.command("connect")
def connect(a: A, b: B, tenant: TenantOpt = "default", as_json: JsonOpt = False) -> None:
    """Let A and B talk, whatever groups and L4 rules say."""
    _set("connect", a, b, tenant, as_json)


@app.command("disconnect")
def disconnect(a: A, b: B, tenant: TenantOpt = "default", as_json: JsonOpt = False) -> None:
    """Keep A and B apart, whatever groups and L4 rules say; their live routes are revoked."""
    _set("disconnect", a, b, tenant, as_json)


def _rows(rules: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [(r["id"], r["tenant"], r["action"], r["a"], r["b"]) for r in rules]


@app.command("show")
def show(a: OptA = None, b: OptB = None, tenant: TenantFilterOpt = None, as_json: JsonOpt = False) -> None:
    """List pair rules (those naming A, or between A and B)."""
    params = {k: v for k, v in (("tenant", tenant), ("a", a), ("b", b)) if v}
    with api_client() as api:
        rules = api.call("GET", "/policy", params=params)
    if as_json:
        emit_json(rules)
        return
    table(("id", "tenant", "action", "a", "b"), _rows(rules), empty="no pair rules")


@app.command("clear")
def clear(a: OptA = None, b: OptB = None, tenant: TenantOpt = "default", as_json: JsonOpt = False) -> None:
    """Delete pair rules: all of the tenant's, those naming A, or the one between A and B."""
    params = {k: v for k, v in (("tenant", tenant), ("a", a), ("b", b)) if v}
    with api_client() as api:
        gone = api.call("DELETE", "/policy", params=params)
    if as_json:
        emit_json(gone)
        return
    say(f"{len(gone)} pair rule(s) of tenant {tenant} cleared")
    if gone:
        table(("id", "tenant", "action", "a", "b"), _rows(gone))
