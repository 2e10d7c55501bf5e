"""`daolinet trace SRC DST`: may SRC reach DST, why, and with which flows;
on a lab, also what OVS itself does with SRC's first packet (ofproto/trace)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from daolinet.cli.api import api_client, lab_of
from daolinet.cli.output import JsonOpt, TenantOpt, emit_json, say, table
from daolinet.cli.route import COLUMNS, row
from daolinet.errors import DaoliError
from daolinet.lab import cluster
from daolinet.lab.plan import BRIDGE

KEEP = ("Final flow:", "Datapath actions:")


def ofproto_trace(lab: cluster.Lab | None, probes: dict[str, str]) -> dict[str, Any]:
    """Run ovs-appctl ofproto/trace for each host's probe flow on the lab."""
    if lab is None:
        return {"lab": None, "hosts": {},
                "note": "the live trace (ovs-appctl ofproto/trace) needs a lab running this controller: "
                        "set DAOLINET_LAB or start one with: daolinet lab up"}
    hosts: dict[str, Any] = {}
    for host, flow in probes.items():
        try:
            text = lab.host(host).ovs.appctl("ovs-vswitchd", "ofproto/trace", BRIDGE, flow)
            hosts[host] = {"probe": flow, "output": text, "error": None}
        except DaoliError as e:
            hosts[host] = {"probe": flow, "output": None, "error": str(e)}
    return {"lab": lab.name, "hosts": hosts, "note": None}


def trace(
    src: Annotated[str, typer.Argument(help="Source container.")],
    dst: Annotated[str, typer.Argument(help="Destination container.")],
    proto: Annotated[str | None, typer.Option("--proto", help="tcp, udp or icmp (default: any).")] = None,
    port: Annotated[int | None, typer.Option(help="Destination port (tcp, udp).", min=0, max=65535)] =
        None,
    tenant: TenantOpt = "default",
    as_json: JsonOpt = False,
) -> None:
    """Why SRC may or may not reach DST, the flows a route would plug, the live routes.

    On a lab running this controller, also what OVS does with SRC's first packet
    (ovs-appctl ofproto/trace on SRC's host)."""
    body: dict[str, Any] = {"src": src, "dst": dst, "tenant": tenant}
    if proto is not None:
        body["protocol"] = proto
    if port is not None:
        body["port"] = port
    with api_client() as api:
        out = api.call("POST", "/trace", json=body)
        probes: dict[str, str] = out.get("probe") or {}
        live = ofproto_trace(lab_of(api.target), probes) if probes else None
    out["ofproto_trace"] = live
    if as_json:
        emit_json(out)
        return
    what = f" ({proto}{'/' + str(port) if port else ''})" if proto else ""
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
    if live is not None:
        _print_live(live)


def _print_live(live: dict[str, Any]) -> None:
    if live["note"]:
        say(live["note"])
        return
    say(f"ovs-appctl ofproto/trace on lab {live['lab']}:")
    for host, got in live["hosts"].items():
        say(f"  host {host}: {got['probe']}")
        if got["error"]:
            say(f"    failed: {got['error']}")
            continue
        lines = [ln.strip() for ln in got["output"].splitlines() if ln.strip().startswith(KEEP)]
        for line in lines or ["(no Final flow or Datapath actions line in its output)"]:
            say(f"    {line}")
