"""The `daolinet` command.  Sub-commands live in sibling modules; this one
wires them together and turns every error into one line on stderr
("error: ..."), with exit status 1 (2 for a command line or daemon settings it cannot use)."""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Iterator, Sequence
from importlib import metadata
from typing import Annotated, Any

import typer
import typer.main
from typer.core import TyperGroup

import daolinet
from daolinet.cli import daemons
from daolinet.errors import BadConfig, DaoliError

try:  # recent typer carries its own copy of click
    from typer._click import Command, Context
    from typer._click import exceptions as cx
except ImportError:  # pragma: no cover - older typer runs on click itself
    from click import Command, Context  # type: ignore[assignment]
    from click import exceptions as cx  # type: ignore[no-redef]

# Every sub-command but the daemons', imported when it runs (or --help lists it): a daemon
# (`daolinet agent` on every host) loads none of the client commands' libraries.
_GROUPS = ("lab", "tenant", "network", "container", "host", "group", "policy", "rule", "route", "token",
           "portmap", "store", "pki")
_COMMANDS = {"trace": "daolinet.cli.trace:trace", "install-cni": "daolinet.cli.cni:install_cni"}
LAZY = {**_COMMANDS, **{g: f"daolinet.cli.{g}:app" for g in _GROUPS}}


def _load(name: str) -> Command:
    module, attr = LAZY[name].split(":")
    found = getattr(importlib.import_module(module), attr)
    command: Command
    if isinstance(found, typer.Typer):  # a group of commands, as add_typer makes it
        command = typer.main.get_group(found)
    else:  # one command (a function)
        single = typer.Typer(add_completion=False)
        single.command(name)(found)
        command = typer.main.get_command(single)
    command.name = name
    return command


class _LazyCommands(dict[str, Command]):
    """The root's sub-commands: a lazy one is imported when looked up, all of them when listed."""

    def _load(self, name: object) -> None:
        if isinstance(name, str) and name in LAZY and not super().__contains__(name):
            self[name] = _load(name)

    def eager(self) -> list[str]:
        """The sub-commands registered as such (the daemons), in their order."""
        return [n for n in dict.__iter__(self) if n not in LAZY]

    def _load_all(self) -> None:
        for name in LAZY:
            self._load(name)

    def __getitem__(self, name: str) -> Command:
        self._load(name)
        return super().__getitem__(name)

    def get(self, name: str, default: Any = None) -> Any:
        self._load(name)
        return super().get(name, default)

    def __contains__(self, name: object) -> bool:
        return name in LAZY or super().__contains__(name)

    def __len__(self) -> int:
        return len(set(LAZY) | set(super().keys()))

    def __iter__(self) -> Iterator[str]:
        self._load_all()
        return super().__iter__()

    def keys(self) -> Any:
        self._load_all()
        return super().keys()

    def values(self) -> Any:
        self._load_all()
        return super().values()

    def items(self) -> Any:
        self._load_all()
        return super().items()


class _LazyGroup(TyperGroup):
    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        self.commands = _LazyCommands(self.commands)

    def list_commands(self, ctx: Context) -> list[str]:
        assert isinstance(self.commands, _LazyCommands)
        return [*_COMMANDS, *self.commands.eager(), *_GROUPS]  # as typer lists them: commands, then groups


app = typer.Typer(
    name="daolinet",
    cls=_LazyGroup,
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
