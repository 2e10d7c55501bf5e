"""What the controller's REST API and the agent's local API share: the mapping
from daolinet's exceptions to HTTP statuses, the one-line message a refused
request body gets, and the strict base every request body derives from.

It lives outside both daemons so the agent can serve its API without importing
the controller (tests/unit/test_layering.py keeps it so)."""

from __future__ import annotations

import asyncio

from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict
from uvicorn.protocols.http.h11_impl import H11Protocol

from daolinet.errors import Conflict, DaoliError, Forbidden, InvalidInput, NotFound, Unauthorized
from daolinet.security.tls import peer_identity

IDENTITY = "peer_identity"  # key in a TLS connection's request state: Identity | None
AGENT_TRACE_PORT = 8651  # agents' trace listener (agent/trace.py), called by controllers

STATUS: dict[type[DaoliError], int] = {
    InvalidInput: 400, Unauthorized: 401, Forbidden: 403, NotFound: 404, Conflict: 409,
}


def status_of(exc: DaoliError) -> int:
    """The HTTP status of a daolinet error: its nearest class in STATUS, else 503
    (a store or peer that cannot answer now)."""
    for cls in type(exc).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 503


def validation_message(exc: RequestValidationError) -> str:
    """One line naming every refused field, e.g. "port: Input should be a valid integer"."""
    parts = []
    for err in exc.errors():
        where = ".".join(str(x) for x in err.get("loc", ()) if x != "body")
        if err.get("type") == "json_invalid":
            return "malformed JSON body"
        parts.append(f"{where or 'body'}: {err.get('msg')}")
    return "; ".join(parts) or "invalid request"


class Strict(BaseModel):
    """A request body that refuses unknown keys and wrong types by name."""

    model_config = ConfigDict(extra="forbid", strict=True)  # no "5" -> 5, true -> 1, "yes" -> True


class PeerIdentityProtocol(H11Protocol):
    """uvicorn's h11 protocol, telling the app who is at the other end of each TLS connection.

    uvicorn hands every request of a connection a copy of the protocol's `app_state`
    as scope["state"] (FastAPI's `request.state`).  Once the TLS handshake is done —
    asyncio calls `connection_made` only then — this protocol gives its connection a
    state of its own holding the verified peer certificate's `Identity` (None: no
    certificate, or plain HTTP), so the app reads it without trusting anything the
    client wrote.  The controller's API (controller/api/auth.py) and the agent's trace
    listener (agent/trace.py) both use it."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        identity = peer_identity(transport.get_extra_info("ssl_object"))
        self.app_state = {**self.app_state, IDENTITY: identity}  # this connection's, not shared
        super().connection_made(transport)
