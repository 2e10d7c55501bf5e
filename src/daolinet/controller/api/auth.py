"""Who a request acts as, and what it may do.  Every route but /healthz, /readyz
and the documents names one of the dependencies at the bottom.

Principals:
- admin: an admin token, or a *user* certificate (the operators' credential);
- tenant: a tenant token — sees and changes only its tenant's objects; others'
  objects do not exist for it (404, never their data);
- host H: H's certificate (mutual TLS), or with --insecure a host token bound to
  H — registers and heartbeats H, plugs endpoints on H, reads what plugging
  needs, and nothing else (docs/security.md);
- controller C: C's certificate — only /internal (FlowMod forwarding).

A request that sends a bearer token acts as the token, whatever certificate its
connection showed; one without a token acts as its certificate's holder.  So a
user with a tenant token acts as that tenant, and a wrong token is never
rescued by a certificate.  The peer certificate reaches the request through
`request.state` (controller/api/transport.py); only a verified TLS handshake
puts it there."""

from __future__ import annotations

import hashlib
import os
import secrets
import time
from dataclasses import dataclass
from typing import Annotated, Literal

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from daolinet.controller.api.transport import IDENTITY
from daolinet.errors import Forbidden, NotFound, Unauthorized
from daolinet.model import View
from daolinet.model.objects import Token
from daolinet.security.identity import Identity, Role
from daolinet.store.base import Store

Kind = Literal["admin", "tenant", "host", "controller"]
KIND_OF_ROLE: dict[Role, Kind] = {"user": "admin", "host": "host", "controller": "controller"}
# What a confined principal may do, for its refusals.
LIMITS = {"host": "a host credential only registers its host and plugs endpoints on it",
          "controller": "a controller credential only forwards FlowMods (/internal)"}


def hash_token(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def new_secret() -> str:
    return "dl_" + secrets.token_urlsafe(32)


@dataclass(frozen=True)
class Principal:
    name: str  # the token's name, or the certificate's
    tenant: str | None  # a tenant token's tenant; None: not confined to a tenant
    kind: Kind = "admin"
    host: str | None = None  # a host principal's host
    certificate: bool = False  # from a verified TLS certificate (else a token)

    @classmethod
    def of_token(cls, token: Token) -> Principal:
        if token.host is not None:
            return cls(token.name, None, "host", host=token.host)
        return cls(token.name, token.tenant, "admin" if token.tenant is None else "tenant")

    @classmethod
    def of_identity(cls, identity: Identity) -> Principal:
        kind = KIND_OF_ROLE[identity.role]
        return cls(identity.name, None, kind, host=identity.name if kind == "host" else None,
                   certificate=True)

    @property
    def admin(self) -> bool:
        return self.kind == "admin"

    @property
    def who(self) -> str:
        """The credential, as refusals name it."""
        if self.certificate:
            return f"TLS: certificate of {self.name}"
        return f"token {self.name}" + (f" of host {self.host}" if self.host else "")

    def require_admin(self) -> None:
        if not self.admin:
            raise Forbidden("this needs an admin token")

    def require_host(self, host: str) -> None:
        """Admins act for any host; a host credential only for its own host."""
        if self.kind != "host":
            self.require_admin()
        self.confine_to_host(host)

    def confine_to_host(self, host: str) -> None:
        """A host credential may touch only what is on its own host (others: no-op)."""
        if self.kind == "host" and host != self.host:
            raise Forbidden(f"{self.who} is not valid for host {host}")

    def host_filter(self, asked: str | None) -> str | None:
        """A listing's host filter: a host credential lists its own host's objects only."""
        if self.kind != "host":
            return asked
        if asked is not None:
            self.confine_to_host(asked)
        return self.host

    def see(self, tenant: str, message: str) -> None:
        """Objects of other tenants do not exist for a tenant token: `message`
        is what the caller says for an object that really does not exist."""
        if self.tenant is not None and tenant != self.tenant:
            raise NotFound(message)

    def tenant_filter(self, asked: str | None) -> str | None:
        if self.tenant is None:
            return asked
        if asked is not None and asked != self.tenant:
            raise NotFound(f"tenant {asked} not found")
        return self.tenant

    def refuse(self, request: Request) -> Forbidden:
        return Forbidden(f"{self.who} may not {request.method} {request.url.path}: {LIMITS[self.kind]}")


bearer = HTTPBearer(auto_error=False, description="An admin or tenant token (daolinet token create), "
                    "or a host token of an --insecure installation.  With TLS, a client certificate "
                    "of the installation's CA serves instead when no token is sent.")


def peer_of(request: Request) -> Identity | None:
    """The verified peer certificate's holder of this request's connection, if any."""
    found = getattr(request.state, IDENTITY, None)
    return found if isinstance(found, Identity) else None


async def principal(request: Request,
                    creds: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> Principal:
    secret = creds.credentials.strip() if creds is not None else ""
    if secret:
        view: View = request.app.state.ctrl.view
        token = view.tokens.get(hash_token(secret))
        if token is None:
            raise Unauthorized("invalid token")
        return Principal.of_token(token)
    identity = peer_of(request)
    if identity is not None:
        return Principal.of_identity(identity)
    hint = " or show a client certificate" if request.url.scheme == "https" else ""
    raise Unauthorized(f"missing token: send 'Authorization: Bearer TOKEN'{hint}")


Anyone = Annotated[Principal, Depends(principal)]


async def people(request: Request, caller: Anyone) -> Principal:
    """Admins and tenants: hosts and controllers are refused (the default for a route)."""
    if caller.kind in LIMITS:
        raise caller.refuse(request)
    return caller


async def agents(request: Request, caller: Anyone) -> Principal:
    """Admins, tenants and hosts (whose handlers confine them to their own host)."""
    if caller.kind == "controller":
        raise caller.refuse(request)
    return caller


async def peers(request: Request, caller: Anyone) -> Principal:
    """Controller-to-controller calls: with TLS, a controller certificate (whatever token
    comes with it); with --insecure, the admin token."""
    if not request.app.state.tls:
        caller.require_admin()
        return caller
    identity = peer_of(request)
    if identity is None:
        raise Forbidden(f"TLS: {request.url.path} needs a controller certificate")
    identity.require("controller")
    return Principal.of_identity(identity)


Auth = Annotated[Principal, Depends(people)]
AgentAuth = Annotated[Principal, Depends(agents)]
PeerAuth = Annotated[Principal, Depends(peers)]


async def ensure_admin_token(store: Store, path: str) -> str:
    """Read the admin token from `path` (making one if the file is missing) and
    make sure the store knows it.  The file is the operator's copy (mode 600)."""
    if os.path.exists(path):
        with open(path) as f:
            secret = f.read().strip()
    else:
        secret = new_secret()
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secret + "\n")
    if await store.find_token(hash_token(secret)) is None:
        names = {t.name for t in await store.list_tokens() if t.tenant is None}
        name = "admin" if "admin" not in names else f"admin-{int(time.time())}"
        await store.create_token(name, None, hash_token(secret), time.time())
    return secret
