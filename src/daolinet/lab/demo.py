"""`make demo`: bring up a lab, show it working, tear it down (always)."""

from __future__ import annotations

import time

from rich.console import Console

from daolinet.lab import cluster


def run(name: str, console: Console, hosts: int = 3) -> None:
    cluster.down(name)  # a demo left over from an interrupted run
    console.rule("daolinet demo")
    start = time.monotonic()
    lab = cluster.Lab.up(name, hosts=hosts)
    console.print(f"[bold]lab up[/]: {hosts} hosts, each its own ovs-vswitchd, "
                  f"in {time.monotonic() - start:.2f}s")
    try:
        _show(lab, console)
    finally:
        cluster.down(name)
        console.print(f"[bold]lab down[/]: lab {name} removed")


def _show(lab: cluster.Lab, console: Console) -> None:
    for h in lab.hosts:
        console.print(f"{h.name} ({h.underlay_ip}): " + h.ofctl("show").splitlines()[0])
    h1, *others = lab.hosts
    for h in others:
        done = lab.exec(h1.name, ["ping", "-c", "1", "-W", "2", h.underlay_ip])
        verdict = "[green]ok[/]" if done.returncode == 0 else "[red]FAILED[/]"
        console.print(f"underlay ping {h1.name} -> {h.name}: {verdict}")
