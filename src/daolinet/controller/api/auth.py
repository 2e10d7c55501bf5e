"""API tokens.  A token is a random secret; the store keeps only its sha256.
An admin token (tenant None) manages everything; a tenant token sees and
changes only its tenant's objects, and others' objects do not exist for it
(404, never their data)."""

from __future__ import annotations

import hashlib
import os
import secrets
import time
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from daolinet.errors import Forbidden, NotFound, Unauthorized
from daolinet.model import View
from daolinet.store.base import Store


def hash_token(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def new_secret() -> str:
    return "dl_" + secrets.token_urlsafe(32)


@dataclass(frozen=True)
class Principal:
    name: str
    tenant: str | None  # None: admin

    @property
    def admin(self) -> bool:
        return self.tenant is None

    def require_admin(self) -> None:
        if not self.admin:
            raise Forbidden("this needs an admin token")

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


def principal(request: Request) -> Principal:
    header = request.headers.get("authorization", "")
    scheme, _, secret = header.partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        raise Unauthorized("missing token: send 'Authorization: Bearer TOKEN'")
    view: View = request.app.state.ctrl.view
    token = view.tokens.get(hash_token(secret.strip()))
    if token is None:
        raise Unauthorized("invalid token")
    return Principal(token.name, token.tenant)


Auth = Annotated[Principal, Depends(principal)]


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
