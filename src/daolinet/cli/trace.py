"""`daolinet trace SRC DST`: may SRC reach DST, why, and with which flows; and
what OVS itself does with SRC's first packet on each of the two hosts: the
controller asks their agents (ofproto/trace, the route's flows).  The CLI runs
no OVS tool: it works wherever the API is reachable."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from daolinet.cli.api import api_client
from daolinet.cli.output import JsonOpt, TenantOpt, emit_json, say, table
from daolinet.cli.route import COLUMNS, row

KEEP = ("Final flow:", "Datapath actions:")


def trace(
    src: Annotated[str, typer.Argument(help="Source container.")],
    dst: Annotated[str, typer.Argument(help="Destination container.")],
    proto: Annotated[str | None, typer.Option("--proto", help="tcp, udp or icmp (default: any).")] = None,
    port: Annotated[int | None, typer.Option(help="Destination port (tcp, udp).", min=0, max=65535)] =
        None,
    ipv6: Annotated[bool, typer.Option("--ipv6", help="Trace the IPv6 route (both need IPv6).")] = False,
    tenant: TenantOpt = "default",
    as_json: JsonOpt = False,
) -> None:
    """Why SRC may or may not reach DST, the flows a route would plug, the live routes.

    Also what each host's bridge does with SRC's first packet (ofproto/trace, run by
    the hosts' agents for the controller)."""
    body: dict[str, Any] = {"src": src, "dst": dst, "tenant": tenant}
    if proto is not None:
        body["protocol"] = proto
    if port is not None:
        body["port"] = port
    if ipv6:
        body["ipv6"] = True
    with api_client() as api:
        out = api.call("POST", "/trace", json=body)
    if as_json:
        emit_json(out)
        return
    what = f" ({proto}{'/' + str(port) if port else ''})" if proto else ""
    what += " over IPv6" if ipv6 else ""
    rule, reason = out.get("rule"), out["reason"]
    named = f" ({rule})" if rule and not reason.startswith(rule + " ") else ""  # as `policy log` names it
    say(f"{src} -> {dst}{what}: {'allowed' if out['allowed'] else 'denied'}: {reason}{named}")
    if out["flows"]:
        say("flows a route plugs:")
        for host, flows in out["flows"].items():
            say(f"  host {host}:")
            for flow in flows:
                say(f"    {flow}")
    table(COLUMNS, (row(r) for r in out["live"]), title="live routes", empty="none")
    print_hosts(out.get("hosts") or {})


def print_hosts(hosts: dict[str, Any]) -> None:
    """Each host's verdict, as its agent traced it (or why there is none)."""
    if not hosts:
        say("on the hosts: no trace (a container is not plugged on a live host)")
        return
    say("on the hosts (ofproto/trace by each host's agent):")
    for host, got in hosts.items():
        if got.get("error"):
            say(f"  host {host}: no answer: {got['error']}")
            continue
        say(f"  host {host}: {got['verdict']}")
        say(f"    probe: {got['probe']}")
        lines = [ln.strip() for ln in (got.get("output") or "").splitlines() if ln.strip().startswith(KEEP)]
        for line in lines:
            say(f"    {line}")
        for flow in got.get("flows") or []:
            say(f"    route flow: {flow}")
