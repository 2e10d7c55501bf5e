"""`daolinet store ...`: operations on a store itself (no controller needed)."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

from daolinet.cli.output import say

app = typer.Typer(help="The store itself: migrate an installation from one store to another.",
                  no_args_is_help=True)


@app.command("migrate")
def migrate(
    src: Annotated[str, typer.Argument(help="Store URL to copy from, e.g. sqlite:///var/lib/daolinet/daolinet.db")],
    dst: Annotated[str, typer.Argument(help="Empty store URL to copy into, e.g. etcd://h1:2379,h2:2379")],
    etcd_ca: Annotated[str | None, typer.Option(help="CA of the etcd cluster (etcd over TLS).")] = None,
    etcd_cert: Annotated[str | None, typer.Option(help="Client certificate for etcd.")] = None,
    etcd_key: Annotated[str | None, typer.Option(help="Its key.")] = None,
) -> None:
    """Copy every object (ids, addresses, tokens) from SRC into the empty store DST."""
    from daolinet.security.settings import Security
    from daolinet.store import open_store
    from daolinet.store.migrate import migrate as copy

    # Only the etcd client pair: this command opens no channel of its own to secure.
    etcd_tls = Security.from_options(cert=None, key=None, ca=None, insecure=True, etcd_ca=etcd_ca,
                                     etcd_cert=etcd_cert, etcd_key=etcd_key).etcd

    async def run() -> int:
        async with open_store(src, etcd_tls=etcd_tls) as a, open_store(dst, etcd_tls=etcd_tls) as b:
            return await copy(a, b)
    n = asyncio.run(run())
    say(f"copied {n} objects from {src} to {dst}")
