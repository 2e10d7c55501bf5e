"""The `daolinet` command.  Sub-commands live in sibling modules; this one
wires them together and turns every DaoliError into one line on stderr."""

from __future__ import annotations

import sys

import typer

from daolinet.cli import daemons
from daolinet.cli import lab as lab_cli
from daolinet.cli import network as network_cli
from daolinet.errors import DaoliError

app = typer.Typer(
    name="daolinet",
    help="daolinet: hot-plug routes for containers on Open vSwitch.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(lab_cli.app, name="lab")
app.add_typer(network_cli.app, name="network")
app.command()(daemons.controller)
app.command()(daemons.agent)


def main() -> None:
    try:
        app()
    except DaoliError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    main()
