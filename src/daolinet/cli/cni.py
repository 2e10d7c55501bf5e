"""`daolinet install-cni`: the CNI plugin where runtimes look for it."""

from __future__ import annotations

from typing import Annotated

import typer

from daolinet.cli.output import say
from daolinet.cni import spec


def install_cni(
    bin_dir: Annotated[str, typer.Option(help="The runtime's CNI plugin directory.")] = "/opt/cni/bin",
    conf_dir: Annotated[str, typer.Option(help="The runtime's CNI network configuration directory.")] =
        "/etc/cni/net.d",
    network: Annotated[str, typer.Option(
        help="The daolinet network containers join (also the CNI network's name).")] = "daolinet",
    agent_socket: Annotated[str, typer.Option(help="This host's agent API socket.")] = spec.DEFAULT_SOCKET,
    force: Annotated[bool, typer.Option("--force", help="Replace files that differ.")] = False,
) -> None:
    """Install a launcher BIN_DIR/daolinet (runs this installation's daolinet-cni) and
    CONF_DIR/10-daolinet-NETWORK.conflist.  Idempotent; files that differ are refused
    unless --force."""
    from daolinet.cni import install

    files = install.plan(bin_dir, conf_dir, network, agent_socket, install.cni_binary())
    for path, what in install.apply(files, force):
        say(f"{what} {path}")
