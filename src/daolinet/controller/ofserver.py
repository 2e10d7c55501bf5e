"""The OpenFlow listener: TLS (`ssl:HOST:PORT`, mutual: every switch shows its
host certificate), or, with --insecure only, TCP (`tcp:HOST:PORT`) or a unix
socket (`unix:PATH`).  Each connection becomes a SwitchSession.

The TLS handshake is run here, on the accepted TCP stream, so a peer whose
handshake fails (no certificate, an expired one, another CA's) is refused
with a log line naming it and why, instead of vanishing without a word."""

from __future__ import annotations

import asyncio
import logging
import os
import ssl
from collections.abc import Awaitable, Callable

from daolinet.controller.admission import Refusal, handshake_failed
from daolinet.controller.switch import SwitchSession, peer_address
from daolinet.errors import InvalidInput

log = logging.getLogger(__name__)
OnSession = Callable[[SwitchSession], Awaitable[None]]
OnRefused = Callable[[str, Refusal], None]  # (peer address, why)
HANDSHAKE_TIMEOUT = 10.0


def log_refusal(peer: str, refusal: Refusal) -> None:
    log.warning("refused OpenFlow connection from %s: %s", peer, refusal.detail)


def parse_target(target: str) -> tuple[str, str, int]:
    """'ssl:HOST:PORT' | 'tcp:HOST:PORT' | 'unix:PATH' -> (kind, host_or_path, port)."""
    kind, _, rest = target.partition(":")
    if kind == "unix" and rest:
        return ("unix", rest, 0)
    if kind in ("tcp", "ssl"):
        host, _, port = rest.rpartition(":")
        if host and port.isdigit() and int(port) < 65536:
            return (kind, host.strip("[]"), int(port))
    raise InvalidInput(f"invalid OpenFlow listen target {target!r}: "
                       "use ssl:HOST:PORT, tcp:HOST:PORT or unix:PATH")


async def listen(target: str, on_session: OnSession, tls: ssl.SSLContext | None = None,
                 on_refused: OnRefused = log_refusal) -> asyncio.AbstractServer:
    """Serve `target`; an ssl: target needs `tls`, a server context that requires client
    certificates.  A failed TLS handshake goes to `on_refused`."""
    kind, where, port = parse_target(target)
    if kind == "ssl" and tls is None:
        raise InvalidInput(f"OpenFlow target {target} needs TLS files")
    secure = tls if kind == "ssl" else None

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if secure is not None:
            try:
                await writer.start_tls(secure, ssl_handshake_timeout=HANDSHAKE_TIMEOUT)
            except (OSError, TimeoutError) as e:  # ssl.SSLError is an OSError
                on_refused(peer_address(writer.get_extra_info("peername")), handshake_failed(e))
                writer.close()
                return
        await on_session(SwitchSession(reader, writer))

    if kind == "unix":
        if os.path.exists(where):
            os.unlink(where)  # a stale socket of a previous run
        os.makedirs(os.path.dirname(where) or ".", exist_ok=True)
        return await asyncio.start_unix_server(accept, path=where)
    return await asyncio.start_server(accept, host=where, port=port)
