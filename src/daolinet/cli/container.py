"""`daolinet container ...`: containers' endpoints, addressed by name within a tenant."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from daolinet.cli.api import ApiClient, api_client
from daolinet.cli.output import JsonOpt, TenantFilterOpt, TenantOpt, details, emit_json, say, state, table
from daolinet.errors import InvalidInput

app = typer.Typer(help="Containers: an endpoint (logical IP, PIP, MAC) on a network and a host.",
                  no_args_is_help=True)

NameArg = Annotated[str, typer.Argument(help="Container name (unique per tenant).")]


FindTenantOpt = Annotated[str | None, typer.Option(
    "--tenant", "-t", envvar="DAOLINET_TENANT",
    help="Tenant the container belongs to (default: the only tenant the token sees with that name).")]


def tenant_of(name: str, visible: list[dict[str, Any]]) -> str:
    """Which tenant NAME means when none was given: default where it has one, else the only
    tenant among the containers the caller sees (an admin: every tenant's) that has it."""
    tenants = sorted({e["tenant"] for e in visible if e["name"] == name})
    if "default" in tenants or not tenants:
        return "default"  # not found: the API says so, in its words
    if len(tenants) > 1:
        raise InvalidInput(f"container {name} is in tenants {', '.join(tenants)}: give --tenant")
    return tenants[0]


def find(api: ApiClient, tenant: str | None, name: str) -> dict[str, Any]:
    """A container's endpoint with its network's subnet and gateway (`tenant` None: tenant_of)."""
    if tenant is None:
        tenant = tenant_of(name, api.call("GET", "/endpoints"))
    found: dict[str, Any] = api.call("GET", f"/containers/{tenant}/{name}")
    return found


def parse_labels(labels: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in labels:
        key, eq, value = item.partition("=")
        if not eq or not key:
            raise InvalidInput(f"label {item!r} must be KEY=VALUE")
        out[key] = value
    return out


V6_FIELDS = (("IPv6", "ip6"), ("PIPv6", "pip6"), ("gateway6", "gateway6"), ("subnet6", "subnet6"))


def _v6(e: dict[str, Any]) -> list[tuple[str, Any]]:
    """A dual-stack container's IPv6 lines (none for an IPv4-only one)."""
    return [(label, e[key]) for label, key in V6_FIELDS if e.get(key)]


def _plugged(e: dict[str, Any]) -> str:
    return f"{e['port']} (ofport {e['ofport']})" if e.get("ofport") else "not plugged"


@app.command("ls")
def ls(
    host: Annotated[str | None, typer.Option(help="Only those on this host.")] = None,
    network: Annotated[str | None, typer.Option(help="Only those on this network.")] = None,
    tenant: TenantFilterOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List containers."""
    params = {k: v for k, v in (("tenant", tenant), ("host", host), ("network", network)) if v}
    with api_client() as api:
        eps = api.call("GET", "/endpoints", params=params)
    if as_json:
        emit_json(eps)
        return
    table(("tenant", "name", "network", "IP", "host", "state", "PIP", "MAC", "port"),
          ((e["tenant"], e["name"], e["network"], e["ip"], e["host"], state(e.get("alive", True)), e["pip"],
            e["mac"], _plugged(e)) for e in eps), empty="no containers")


@app.command("show")
def show(name: NameArg, tenant: FindTenantOpt = None, as_json: JsonOpt = False) -> None:
    """Show everything about a container's endpoint."""
    with api_client() as api:
        e = find(api, tenant, name)
    if as_json:
        emit_json(e)
        return
    details([("id", e["id"]), ("tenant", e["tenant"]), ("network", e["network"]), ("IP", e["ip"]),
             ("PIP", e["pip"]), ("MAC", e["mac"]), ("host", e["host"]),
             ("state", state(e.get("alive", True))), ("port", _plugged(e)),
             ("subnet", e["subnet"]), ("gateway", e["gateway"]), *_v6(e), ("labels", e["labels"]),
             *([("aliases", ", ".join(e["aliases"]))] if e.get("aliases") else [])],
            title=f"container {e['name']}")


@app.command("shownet")
def shownet(name: NameArg, tenant: FindTenantOpt = None, as_json: JsonOpt = False) -> None:
    """Show a container's network identity: logical IP, PIP, MAC, host, gateway, subnet."""
    with api_client() as api:
        e = find(api, tenant, name)
    out = {k: e[k] for k in ("name", "tenant", "network", "ip", "pip", "mac", "host", "gateway", "subnet")}
    out |= {key: e[key] for _, key in V6_FIELDS if e.get(key)}
    if as_json:
        emit_json(out)
        return
    details([("IP", e["ip"]), ("PIP", e["pip"]), ("MAC", e["mac"]), ("host", e["host"]),
             ("gateway", e["gateway"]), ("subnet", e["subnet"]), *_v6(e), ("network", e["network"])],
            title=f"container {e['name']} (tenant {e['tenant']})")


@app.command("create")
def create(
    name: NameArg,
    network: Annotated[str, typer.Option(help="Network to join.")],
    host: Annotated[str, typer.Option(help="Host the container runs on.")],
    ip: Annotated[str | None, typer.Option(help="Logical IP (default: the next free one).")] = None,
    mac: Annotated[str | None, typer.Option(help="MAC (default: derived from the endpoint id).")] = None,
    label: Annotated[list[str] | None, typer.Option(
        "--label", "-l", help="KEY=VALUE label, for label: group members (repeatable).")] = None,
    alias: Annotated[list[str] | None, typer.Option(
        "--alias", help="Another DNS name of the container in its tenant (repeatable).")] = None,
    tenant: TenantOpt = "default",
    as_json: JsonOpt = False,
) -> None:
    """Reserve a container's endpoint (IP, PIP, MAC); the host's agent plugs it."""
    body: dict[str, Any] = {"name": name, "network": network, "host": host, "tenant": tenant,
                            "labels": parse_labels(label or [])}
    if ip is not None:
        body["ip"] = ip
    if mac is not None:
        body["mac"] = mac
    if alias:
        body["aliases"] = alias
    with api_client() as api:
        e = api.call("POST", "/endpoints", json=body)
    if as_json:
        emit_json(e)
    else:
        say(f"container {e['name']} on {e['host']}: {e['ip']} pip {e['pip']} mac {e['mac']} "
            f"(network {e['network']}, tenant {e['tenant']})")


@app.command("move")
def move(
    name: NameArg,
    host: Annotated[str, typer.Option(help="The host to move to.")],
    tenant: FindTenantOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Move a container's endpoint to another host: same logical IP and MAC, a new PIP;
    every route naming the old PIP is revoked.  (In the lab, `daolinet lab container
    move` also carries the running container's interface over.)"""
    with api_client() as api:
        e = find(api, tenant, name)
        if e.get("labels", {}).get("daolinet.driver") == "docker":
            raise InvalidInput(f"container {name} is a Docker container's endpoint: moving it alone would "
                               "cut the container off; Docker containers are re-created on the target "
                               "host (in the lab: daolinet lab container move DOCKERNAME --host H)")
        moved = api.call("POST", f"/endpoints/{e['id']}/move", json={"host": host})
    if as_json:
        emit_json(moved)
    else:
        say(f"container {name} now on {moved['host']}: {moved['ip']} pip {moved['pip']}")


@app.command("rm")
def rm(name: NameArg, tenant: FindTenantOpt = None, as_json: JsonOpt = False) -> None:
    """Release a container's endpoint; its routes are revoked."""
    with api_client() as api:
        e = find(api, tenant, name)
        gone = api.call("DELETE", f"/endpoints/{e['id']}")
    if as_json:
        emit_json(gone)
    else:
        say(f"container {name} of tenant {e['tenant']} removed")
