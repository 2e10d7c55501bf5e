"""SSL contexts for every daolinet channel, from the installation's CA and a
holder's key+certificate (pki.py).  TLS 1.2 at least; peers are verified
against the CA, never against the system's trust store, and never skipped.

Start-up checks the files first (`TlsFiles.check`): a missing or unreadable
file stops the daemon with its path and the reason, not a traceback."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from typing import Any

from daolinet.errors import InvalidInput
from daolinet.security.identity import Identity, Role, identity_of


@dataclass(frozen=True)
class TlsFiles:
    ca: str
    cert: str | None = None
    key: str | None = None

    @classmethod
    def of(cls, directory: str, role: Role, name: str) -> TlsFiles:
        """The CA and `role` `name`'s pair as `pki` lays them out in `directory`."""
        from daolinet.security import pki  # cryptography: not for a daemon given its files

        pair = pki.holder_pair(directory, role, name)
        return cls(pki.ca_pair(directory).cert, pair.cert, pair.key)

    def check(self, need_pair: bool = True) -> TlsFiles:
        if need_pair and (not self.cert or not self.key):
            raise InvalidInput("TLS needs a certificate and its key (--tls-cert, --tls-key)")
        for what, path in (("CA certificate", self.ca), ("certificate", self.cert), ("key", self.key)):
            if path is None:
                continue
            try:
                with open(path, "rb") as f:
                    f.read(1)
            except OSError as e:
                raise InvalidInput(f"cannot read the TLS {what} {path}: {e.strerror or e}") from None
        return self


def _load(ctx: ssl.SSLContext, files: TlsFiles) -> ssl.SSLContext:
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.load_verify_locations(cafile=files.ca)
        if files.cert and files.key:
            ctx.load_cert_chain(files.cert, files.key)
    except FileNotFoundError as e:
        raise InvalidInput(f"cannot read TLS file {e.filename}: {e.strerror}") from None
    except (ssl.SSLError, OSError) as e:
        raise InvalidInput(f"TLS files {files.cert or files.ca}, {files.key or ''}: {e}") from None
    return ctx


def server_context(files: TlsFiles, *, client_cert: str = "required") -> ssl.SSLContext:
    """A server's context: its pair; peers verified against the CA.  `client_cert`:
    "required" (mutual TLS) or "optional" (the REST API: tokens or certificates)."""
    ctx = _load(ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER), files.check())
    ctx.verify_mode = ssl.CERT_REQUIRED if client_cert == "required" else ssl.CERT_OPTIONAL
    return ctx


def client_context(files: TlsFiles) -> ssl.SSLContext:
    """A client's context: the server verified against the CA and its name; our pair
    (when there is one) offered to servers that ask."""
    ctx = _load(ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT), files.check(need_pair=False))
    ctx.check_hostname = True
    ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def peer_identity(ssl_object: Any) -> Identity | None:
    """Who is at the other end of a verified TLS connection (None: no certificate, or not TLS)."""
    if ssl_object is None:
        return None
    der = ssl_object.getpeercert(binary_form=True)
    if not der:
        return None
    try:
        return identity_of(der)
    except InvalidInput:
        return None
