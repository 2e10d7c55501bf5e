"""`daolinet lab ...`: the local multi-host cluster."""

from __future__ import annotations

import json
import os
import subprocess
import time
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from daolinet.cli.api import lab_name, lab_opens
from daolinet.errors import InvalidInput, NotFound, SystemFailure
from daolinet.lab import cluster, docker, docker_move

app = typer.Typer(help="A local multi-host cluster of network namespaces with real OVS.",
                  no_args_is_help=True)
container_app = typer.Typer(help="Containers (network namespaces) in the lab.", no_args_is_help=True)
app.add_typer(container_app, name="container")

LabName = Annotated[str | None, typer.Option(
    "--name", "-n", help="Lab name (default: $DAOLINET_LAB, else the only running lab).")]
NewLabName = Annotated[str | None, typer.Option("--name", "-n", help="Lab name (default: $DAOLINET_LAB, "
                                                                    "else lab).")]
console = Console()


@app.command()
def up(
    hosts: Annotated[int, typer.Option(help="Number of container hosts.")] = 3,
    racks: Annotated[int, typer.Option(help="L2 segments joined by a router.")] = 1,
    name: NewLabName = None,
    controller: Annotated[bool, typer.Option(help="Run daolinet (controller + agents) on it.")] = True,
    idle_timeout: Annotated[int, typer.Option(help="Seconds before an unused route idles out.")] = 30,
    controllers: Annotated[int, typer.Option(help="Controllers (more than one needs --store etcd).")] = 1,
    store: Annotated[str, typer.Option(help="sqlite (a file) or etcd (a 3-member cluster of the lab's).")] =
        "sqlite",
    host_ttl: Annotated[int, typer.Option(
        help="Seconds without a heartbeat before a host is marked down (agents beat every TTL/3).")] = 10,
    insecure: Annotated[bool, typer.Option(
        "--insecure", help="Plaintext OpenFlow and HTTP, no certificates (the old mode, for comparison).")] =
        False,
    mtu: Annotated[int, typer.Option(
        help="MTU of every underlay link (uplinks, fabric, router): containers get it too, e.g. 9000 "
             "for a jumbo underlay.")] = 1500,
    ipv6: Annotated[bool, typer.Option(
        help="An IPv6 underlay beside the IPv4 one (2001:2::/48): hosts get IPv6 PIP pools, so "
             "networks with --subnet6 are dual-stack.")] = True,
    with_docker: Annotated[bool, typer.Option(
        "--docker", help="Also a dockerd per host, with daolinet's network and IPAM plugins and a busybox "
                         "image (use it with: daolinet lab docker HOST -- ARGS).")] = False,
) -> None:
    """Bring up a lab: per host a namespace with its own ovsdb-server and ovs-vswitchd,
    plus daolinet's controller(s) and an agent per host."""
    if with_docker and not controller:
        raise InvalidInput("--docker needs daolinet running on the lab (drop --no-controller)")
    name = name or os.environ.get("DAOLINET_LAB", "").strip() or "lab"
    start = time.monotonic()
    lab = cluster.Lab.up(name, hosts=hosts, racks=racks, controller=controller,
                         idle_timeout=idle_timeout, controllers=controllers, store=store, host_ttl=host_ttl,
                         insecure=insecure, mtu=mtu, ipv6=ipv6)
    if with_docker:
        try:
            lab.start_dockerds()
        except BaseException:
            cluster.down(name)  # all or nothing, as `up` itself
            raise
    took = time.monotonic() - start
    extra = ", a dockerd each" if with_docker else ""
    console.print(f"lab [bold]{lab.name}[/] up: {hosts} hosts{extra}, {racks} rack(s) in {took:.2f}s")
    _print_lab(lab)


@app.command()
def down(name: LabName = None) -> None:
    """Remove everything the lab created (idempotent; works after a crash)."""
    if name is None and not os.environ.get("DAOLINET_LAB", "").strip() and not cluster.list_labs():
        console.print("no lab to remove")  # idempotent: nothing is there
        return
    name = lab_name(name, broken_too=True)
    found = cluster.down(name)
    console.print(f"lab {name} {'removed' if found else 'was not there'}")


@app.command("ls")
def ls(
    name: Annotated[str | None, typer.Option("--name", "-n", help="Only this lab.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """List labs, their hosts and containers."""
    labs = [cluster.Lab.open(name)] if name else [cluster.Lab.open(n) for n in cluster.list_labs()
                                                   if lab_opens(n)]
    if as_json:
        print(json.dumps([lab.describe() for lab in labs], indent=2))
        return
    if not labs:
        console.print("no labs")
    for lab in labs:
        _print_lab(lab)


def _print_lab(lab: cluster.Lab) -> None:
    d = lab.describe()
    table = Table(title=f"lab {lab.name}" + ("" if d["complete"] else " (incomplete)"))
    v6 = bool(d.get("ipv6"))
    for col in ("host", "underlay", "rack", "PIP pool", *(("underlay6", "PIP pool6") if v6 else ()),
                "containers"):
        table.add_column(col)
    for h in d["hosts"]:
        names = [c["name"] for c in d["containers"] if c["host"] == h["name"]]
        table.add_row(h["name"], h["underlay_ip"], str(h["rack"]), h["pip_pool"],
                      *((h["underlay_ip6"], h["pip_pool6"]) if v6 else ()), " ".join(names))
    console.print(table)


@app.command("exec", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def exec_(
    target: Annotated[str, typer.Argument(help="A container or host (h1, h2, ...).")],
    command: Annotated[list[str], typer.Argument(help="The command, after --.")],
    name: LabName = None,
) -> None:
    """Run a command inside a container's (or host's) network namespace."""
    argv = cluster.Lab.open(lab_name(name)).exec_argv(target, command)
    os.execvp(argv[0], argv)


@app.command("docker", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def docker_(
    host: Annotated[str, typer.Argument(help="The host whose dockerd to talk to (h1, h2, ...).")],
    args: Annotated[list[str], typer.Argument(help="The docker command's arguments, after --.")],
    name: LabName = None,
) -> None:
    """Run the docker client against HOST's dockerd (started by `lab up --docker`);
    its exit status is this command's."""
    lab = cluster.Lab.open(lab_name(name))
    url = lab.dockerd_url(host)
    if url is None:
        raise NotFound(f"host {host} of lab {lab.name} runs no dockerd (bring the lab up with --docker)")
    if not os.path.exists(docker.DOCKER):
        raise SystemFailure(f"no docker client at {docker.DOCKER} (install Debian's docker.io)")
    h = lab.host(host).plan
    done = subprocess.run(docker.client_argv(h, args), env=docker.client_env(h))  # stdin, stdout: the user's
    raise typer.Exit(done.returncode)


@container_app.command("add")
def container_add(
    container: Annotated[str, typer.Argument(help="Container name.")],
    host: Annotated[str, typer.Option(help="Host to attach to (h1, h2, ...).")],
    network: Annotated[str | None, typer.Option(help="daolinet network to join.")] = None,
    tenant: Annotated[str, typer.Option(help="Tenant owning the network.")] = "default",
    ip: Annotated[str | None, typer.Option(
        help="Logical IP (default: next free); without a controller, address/prefix.")] = None,
    name: LabName = None,
) -> None:
    """Create a container namespace and attach it through HOST's agent."""
    lab = cluster.Lab.open(lab_name(name))
    if lab.has_controller:
        c = lab.add_container(container, host=host, network=network, tenant=tenant, ip=ip)
        v6 = f", {c.address6} pip6 {c.pip6}" if c.address6 else ""
        console.print(f"container {c.name} on {c.host}: {c.address} pip {c.pip}{v6} mac {c.mac} "
                      f"(network {c.network}, tenant {c.tenant})")
    else:
        c = lab.add_container(container, host=host, address=ip)
        console.print(f"container {c.name} on {c.host}: port {c.port} (ofport {c.ofport})")


@container_app.command("move")
def container_move(
    container: Annotated[str, typer.Argument(help="Container name.")],
    host: Annotated[str, typer.Option(help="Host to move to (h1, h2, ...).")],
    name: LabName = None,
) -> None:
    """Move a running container to another host: same logical IP and MAC, new PIP;
    its processes and connections keep running.  A Docker container (of a host's
    dockerd) is re-created there instead, with the same IP, MAC and -p; its state
    is not carried over."""
    lab = cluster.Lab.open(lab_name(name))
    if container not in [c.name for c in lab.containers]:
        m = docker_move.move(lab, container, host)
        console.print(f"Docker container {m.name} re-created on {m.target} (was on {m.source}): "
                      f"{m.ip} mac {m.mac}, endpoint {m.endpoint}")
        return
    c = lab.move_container(container, host)
    console.print(f"container {c.name} now on {c.host}: {c.address} pip {c.pip}")


@container_app.command("rm")
def container_rm(
    container: Annotated[str, typer.Argument(help="Container name.")],
    name: LabName = None,
) -> None:
    """Remove a container: its processes, namespace and OVS port."""
    cluster.Lab.open(lab_name(name)).remove_container(container)
    console.print(f"container {container} removed")


@app.command()
def demo(
    name: Annotated[str, typer.Option("--name", "-n", help="Lab name.")] = "demo",
    as_json: Annotated[bool, typer.Option("--json", help="Print every check and what it measured as JSON "
                                          "on stdout (the running commentary goes to stderr).")] = False,
) -> None:
    """Bring up a lab, show it working, tear it down; fails if any check did not hold."""
    from daolinet.lab import demo as demo_mod

    report = demo_mod.run(name, Console(stderr=True) if as_json else console)
    if as_json:
        print(json.dumps(report.to_json(), indent=2))
    if not report.ok:
        failed = ", ".join(c.key for c in report.failed) or "no check ran"
        raise SystemFailure(f"demo: {len(report.failed)} check(s) failed: {failed}")
