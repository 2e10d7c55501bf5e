"""`daolinet pki ...`: the installation's CA and the certificates of controllers,
hosts and users (security/pki.py).  Works offline, on the files only."""

from __future__ import annotations

from typing import Annotated

import typer

from daolinet.cli.output import JsonOpt, emit_json, say
from daolinet.security import pki

app = typer.Typer(help="Certificates: one CA per installation; each controller, host and user gets a key "
                       "and a certificate naming its role and name.", no_args_is_help=True)

DirOpt = Annotated[str, typer.Option("--dir", help="The PKI directory (CA and issued pairs).")]
ForceOpt = Annotated[bool, typer.Option("--force", help="Replace existing files.")]


@app.command("init")
def init(directory: DirOpt = "/etc/daolinet/pki", force: ForceOpt = False, as_json: JsonOpt = False) -> None:
    """Make the installation's CA (ca.crt, ca.key; mode 600)."""
    pair = pki.init_ca(directory, force=force)
    if as_json:
        emit_json({"cert": pair.cert, "key": pair.key})
        return
    say(f"CA made: {pair.cert} (keep {pair.key} off the hosts)")


@app.command("issue")
def issue(
    role: Annotated[str, typer.Argument(help="controller, host or user.")],
    name: Annotated[str, typer.Argument(help="The holder's name: a controller id, a host name, a user.")],
    directory: DirOpt = "/etc/daolinet/pki",
    san: Annotated[list[str] | None, typer.Option(
        "--san", help="An IP address or DNS name the holder serves on (repeatable; controllers' APIs).")] =
        None,
    days: Annotated[int, typer.Option(help="Days the certificate is valid.")] = pki.LEAF_DAYS,
    force: ForceOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Issue a key and certificate for ROLE NAME, signed by the CA in --dir (mode 600)."""
    pki.check_name(role, name)
    pair = pki.issue(directory, role, name, sans=tuple(san or ()), days=days,  # type: ignore[arg-type]
                     force=force)
    if as_json:
        emit_json({"role": role, "name": name, "cert": pair.cert, "key": pair.key})
        return
    say(f"{role} {name}: {pair.cert}, {pair.key}")
