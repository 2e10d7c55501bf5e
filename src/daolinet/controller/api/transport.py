"""The API's HTTP protocol: uvicorn's h11 protocol, telling the app who is at the
other end of each TLS connection.

uvicorn hands every request of a connection a copy of the protocol's `app_state`
as scope["state"] (FastAPI's `request.state`).  Once the TLS handshake is done —
asyncio calls `connection_made` only then — this protocol gives its connection a
state of its own holding the verified peer certificate's `Identity` (None: no
certificate, or plain HTTP), so auth.py reads it without trusting anything the
client wrote.  h11, because that is uvicorn's protocol here (httptools is not
installed); `api_config` names this class explicitly, so it is the one used."""

from __future__ import annotations

from daolinet.api_common import IDENTITY, PeerIdentityProtocol  # shared with the agent's trace listener

__all__ = ["IDENTITY", "PeerIdentityProtocol"]
