"""What every CLI command shares: the --json and --tenant options, and the
three ways of printing: JSON (and nothing else) on stdout, tables for lists,
key/value views for one object.  User data never goes through rich markup."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from daolinet.decide.policy import PROTO_NAMES

console = Console()

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON on stdout, and nothing else.")]
TenantOpt = Annotated[str, typer.Option(
    "--tenant", "-t", envvar="DAOLINET_TENANT", help="Tenant the object belongs to.")]
TenantFilterOpt = Annotated[str | None, typer.Option(
    "--tenant", "-t", envvar="DAOLINET_TENANT",
    help="Only this tenant's (default: every tenant the token sees).")]


def emit_json(data: Any) -> None:
    print(json.dumps(data, indent=2))


def say(message: str) -> None:
    """One line for a human, printed as is (no markup, no wrapping)."""
    console.print(Text(message), soft_wrap=True)


def fmt(value: Any) -> str:
    """A cell: None is '-', booleans yes/no, lists joined, dicts as k=v."""
    if value is None or value == "":
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in value.items()) or "-"
    if isinstance(value, list | tuple):
        return ", ".join(fmt(v) for v in value) or "-"
    return str(value)


def table(columns: Sequence[str], rows: Iterable[Sequence[Any]], *, empty: str = "none",
          title: str | None = None) -> None:
    rows = list(rows)
    if not rows:
        say(f"{title}: {empty}" if title else empty)
        return
    t = Table(title=Text(title) if title else None, title_justify="left")
    for col in columns:
        t.add_column(col)
    for row in rows:
        t.add_row(*(Text(fmt(v)) for v in row))
    console.print(t)


def details(pairs: Sequence[tuple[str, Any]], *, title: str | None = None) -> None:
    """One object as aligned 'key  value' lines."""
    if title:
        say(title)
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    for key, value in pairs:
        grid.add_row(Text(key), Text(fmt(value)))
    console.print(grid)


def ago(timestamp: float | None) -> str:
    if not timestamp:
        return "-"
    secs = max(0.0, time.time() - timestamp)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if secs >= size:
            return f"{secs / size:.0f}{unit} ago"
    return f"{secs:.0f}s ago"


def scope(value: Sequence[int] | None) -> str:
    """A route's L4 scope [proto, port] as 'tcp/80'; None: any traffic."""
    if not value:
        return "any"
    proto, port = value
    name = PROTO_NAMES.get(proto, str(proto))
    return f"{name}/{port}" if port else name


def state(alive: bool) -> str:
    """A host's or a container's liveness (API field `alive`), for a table."""
    return "up" if alive else "down"
