"""`daolinet token ...`: API tokens (admin token needed)."""

from __future__ import annotations

import time
from typing import Annotated, Any

import typer

from daolinet.cli.api import api_client
from daolinet.cli.output import JsonOpt, emit_json, say, table
from daolinet.errors import InvalidInput

app = typer.Typer(help="API tokens: an admin token manages everything, a tenant token only its tenant, "
                       "a host token only its host's registration and endpoints.",
                  no_args_is_help=True)


@app.command("create")
def create(
    name: Annotated[str, typer.Argument(help="Token name (unique per tenant).")],
    tenant: Annotated[str | None, typer.Option(
        "--tenant", "-t", help="Tenant the token is confined to (default: default).")] = None,
    admin: Annotated[bool, typer.Option("--admin", help="An admin token instead (sees every tenant).")] =
        False,
    host: Annotated[str | None, typer.Option(
        "--host", help="A host token instead, bound to host HOST: its agent's credential when the "
                       "API runs --insecure (with TLS, agents show their host certificate).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Issue a token.  Its secret is printed once, now: only its hash is stored."""
    given = [flag for flag, value in (("--tenant", tenant), ("--admin", admin), ("--host", host)) if value]
    if len(given) > 1:
        raise InvalidInput(f"give --tenant or --admin or --host, not {' and '.join(given)}")
    body = {"name": name, "tenant": None if admin or host else tenant or "default"}
    if host:
        body["host"] = host
    with api_client() as api:
        t = api.call("POST", "/tokens", json=body)
    if as_json:
        emit_json(t)
        return
    say(f"token {t['id']} {t['name']} ({whom(t)}); its secret, shown only this once:")
    print(t["token"])


def whom(t: dict[str, Any]) -> str:
    if t.get("host"):
        return f"host {t['host']}"
    return "admin" if t["tenant"] is None else f"tenant {t['tenant']}"


@app.command("ls")
def ls(as_json: JsonOpt = False) -> None:
    """List tokens (never their secrets)."""
    with api_client() as api:
        tokens = api.call("GET", "/tokens")
    if as_json:
        emit_json(tokens)
        return
    table(("id", "name", "tenant", "created"),
          ((t["id"], t["name"], t["tenant"] or f"({whom(t)})",
            time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t["created"]))) for t in tokens),
          empty="no tokens")


@app.command("rm")
def rm(token_id: Annotated[int, typer.Argument(metavar="ID", help="Token id (see: daolinet token ls).")],
       as_json: JsonOpt = False) -> None:
    """Revoke a token."""
    with api_client() as api:
        t = api.call("DELETE", f"/tokens/{token_id}")
    if as_json:
        emit_json(t)
    else:
        say(f"token {t['id']} {t['name']} revoked")
