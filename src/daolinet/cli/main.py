"""The `daolinet` command.  Sub-commands live in sibling modules; this one
wires them together and turns every error into one line on stderr
("error: ..."), with exit status 1 (2 for a command line or daemon settings it cannot use)."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from importlib import metadata
from typing import Annotated

import typer

import daolinet
from daolinet.cli import cni as cni_cli
from daolinet.cli import (
    container,
    daemons,
    group,
    host,
    pki,
    policy,
    portmap,
    route,
    rule,
    store,
    tenant,
    token,
)
from daolinet.cli import lab as lab_cli
from daolinet.cli import network as network_cli
from daolinet.cli import trace as trace_cli
from daolinet.errors import BadConfig, DaoliError

try:  # recent typer carries its own copy of click
    from typer._click import exceptions as cx
except ImportError:  # pragma: no cover - older typer runs on click itself
    from click import exceptions as cx  # type: ignore[no-redef]

app = typer.Typer(
    name="daolinet",
    help="daolinet: hot-plug routes for containers on Open vSwitch.  The commands that talk to the "
         "controller find it through $DAOLINET_API and $DAOLINET_TOKEN, $DAOLINET_LAB, the config file "
         "($DAOLINET_CONFIG, default ~/.config/daolinet/config.json: {\"api\": URL, \"token\": TOKEN}) "
         "or the only running lab.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=True,  # --install-completion, --show-completion (bash, zsh, fish, powershell)
)


def version() -> str:
    """The installed package's version (the source tree's when not installed)."""
    try:
        return metadata.version("daolinet")
    except metadata.PackageNotFoundError:
        return daolinet.__version__


def _print_version(asked: bool) -> None:
    if asked:
        print(f"daolinet {version()}")
        raise typer.Exit()


@app.callback()
def _root(
    _version: Annotated[bool, typer.Option("--version", help="Print the version and exit.",
                                           callback=_print_version, is_eager=True)] = False,
) -> None:
    """daolinet: hot-plug routes for containers on Open vSwitch."""
app.add_typer(lab_cli.app, name="lab")
app.add_typer(tenant.app, name="tenant")
app.add_typer(network_cli.app, name="network")
app.add_typer(container.app, name="container")
app.add_typer(host.app, name="host")
app.add_typer(group.app, name="group")
app.add_typer(policy.app, name="policy")
app.add_typer(rule.app, name="rule")
app.add_typer(route.app, name="route")
app.add_typer(token.app, name="token")
app.add_typer(portmap.app, name="portmap")
app.add_typer(store.app, name="store")
app.add_typer(pki.app, name="pki")
app.command("trace")(trace_cli.trace)
app.command("install-cni")(cni_cli.install_cni)
app.command()(daemons.controller)
app.command()(daemons.agent)


def _fail(message: str, code: int = 1) -> int:
    line = " ".join(message.split()) or "failed"
    print(f"error: {line}", file=sys.stderr, flush=True)
    return code


def run(args: Sequence[str] | None = None) -> int:
    """Run the command line `args` (default: sys.argv[1:]); the exit status."""
    try:
        rv = app(args=list(sys.argv[1:] if args is None else args), prog_name="daolinet",
                 standalone_mode=False)
    except cx.NoArgsIsHelpError as e:  # `daolinet network`: its help
        print(e.ctx.get_help())
        return 0
    except cx.UsageError as e:
        hint = f" (see: {e.ctx.command_path} --help)" if e.ctx is not None else ""
        return _fail(e.format_message() + hint, e.exit_code)
    except cx.ClickException as e:
        return _fail(e.format_message(), e.exit_code)
    except typer.Abort:
        return _fail("aborted")
    except BadConfig as e:
        return _fail(str(e), 2)
    except DaoliError as e:
        return _fail(str(e) or type(e).__name__)
    except KeyboardInterrupt:
        return _fail("interrupted", 130)
    except Exception as e:  # a bug: still one line, unless asked for the traceback
        if os.environ.get("DAOLINET_DEBUG"):
            raise
        return _fail(f"internal error: {type(e).__name__}: {e} (DAOLINET_DEBUG=1 shows the traceback)")
    return rv if isinstance(rv, int) else 0


def main() -> None:
    sys.exit(run())


if __name__ == "__main__":
    main()
