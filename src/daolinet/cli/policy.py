"""`daolinet policy ...`: pair rules between two containers, above every other rule; and
`policy log`, the denied first packets and revoked routes (controller/policy_log.py)."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterable
from typing import Annotated, Any

import httpx
import typer

from daolinet.agent.client import raise_for
from daolinet.cli.api import ApiClient, api_client
from daolinet.cli.output import JsonOpt, TenantFilterOpt, TenantOpt, emit_json, say, table

app = typer.Typer(help="Pair rules: connect or disconnect two containers, whatever else says; "
                       "the policy log.",
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


# -- policy log --------------------------------------------------------------------------------


def _end(end: dict[str, Any]) -> str:
    """A record's end: 'web1 (10.1.0.2)', or an address outside."""
    return f"{end['name']} ({end['ip']})" if end.get("name") else str(end.get("ip", "?"))


def _traffic(r: dict[str, Any]) -> str:
    proto = r.get("proto", "any")
    if proto == "icmp":
        return "icmp" if r.get("icmp_type") is None else f"icmp type {r['icmp_type']}"
    if r.get("dport") is not None:
        return f"{proto} {r['sport']}->{r['dport']}" if r.get("sport") else f"{proto}/{r['dport']}"
    return str(proto)


def line(r: dict[str, Any]) -> str:
    """One record as one line of text."""
    stamp = r["time"]
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(stamp)) + f".{int(stamp * 1000) % 1000:03d}"
    rule = r.get("rule")
    why = f"{rule}: {r['reason']}" if rule and not r["reason"].startswith(rule + " ") else r["reason"]
    more = f" (+{r['suppressed']} suppressed)" if r.get("suppressed") else ""
    return (f"{when} {r['tenant']} {r['decision']} {_end(r['src'])} -> {_end(r['dst'])} "
            f"{_traffic(r)}: {why}{more}")


def _print(records: Iterable[dict[str, Any]], as_json: bool) -> int:
    count = 0
    for r in records:
        print(json.dumps(r, separators=(",", ":")) if as_json else line(r), flush=True)
        count += 1
    return count


def _stream(api: ApiClient, params: dict[str, Any]) -> Iterable[dict[str, Any]]:
    """The API's record stream (GET /policy/log?follow=true): backlog, then as they happen."""
    api.call("GET", "/health")  # a live controller first (the client fails over); then stream from it
    with api.http.stream("GET", "/policy/log", params={**params, "follow": "true"},
                         timeout=httpx.Timeout(30.0, read=None)) as resp:
        if resp.status_code >= 400:
            resp.read()
            raise_for(resp)
        for text in resp.iter_lines():
            if text.strip():  # blank lines are the stream's keep-alives
                yield json.loads(text)


Container = Annotated[str | None, typer.Option("--container", "-c",
                                               help="Only records naming this container.")]


@app.command("log")
def log(
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing records as they happen.")] =
        False,
    container: Container = None,
    limit: Annotated[int, typer.Option(help="At most this many past records.", min=1, max=10_000)] = 100,
    tenant: TenantFilterOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object a line, and nothing else.")] =
        False,
) -> None:
    """Denied first packets and revoked routes: who, to whom, what, and the rule or reason.

    One line per record, oldest first; --follow keeps the stream open (Ctrl-C ends it)."""
    params = {k: v for k, v in (("container", container), ("tenant", tenant), ("limit", limit)) if v}
    with api_client() as api:
        if follow:
            with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C is how a follow ends
                _print(_stream(api, params), as_json)
            return
        records = api.call("GET", "/policy/log", params=params)
    if not _print(records, as_json) and not as_json:
        say("no policy log records")
