"""Synchronous HTTP to the lab's controller API and its agents' unix sockets (and the
CLI's client of any controller API: cli/api.py).  A TLS failure comes back as one line
naming the server and the CA it was checked against."""

from __future__ import annotations

import ssl
from typing import Any

import httpx

from daolinet.agent.client import raise_for
from daolinet.errors import SystemFailure
from daolinet.security.tls import TlsFiles, client_context


def tls_failure(e: BaseException, url: str, ca: str | None) -> SystemFailure | None:
    """`e` (an httpx error) as one line when TLS is what failed; None when it is not."""
    cause: BaseException | None = e
    while cause is not None and not isinstance(cause, ssl.SSLError):
        cause = cause.__cause__ or cause.__context__
    if cause is None:
        return None
    trust = f"CA {ca}" if ca else "the system's trust store"
    if isinstance(cause, ssl.SSLCertVerificationError):
        why = cause.verify_message or cause.reason or "certificate verify failed"
        return SystemFailure(f"TLS: cannot verify the controller at {url}: certificate verify failed: "
                             f"{why} ({trust})")
    reason = (cause.reason or str(cause)).lower().replace("_", " ")
    hint = " (is it served over plain HTTP? use http://)" if "wrong version number" in reason else ""
    return SystemFailure(f"TLS: handshake with {url} failed: {reason}{hint}")


class LabClient:
    def __init__(self, base_url: str = "http://agent", uds: str | None = None,
                 timeout: float = 30.0, token: str | None = None, tls: TlsFiles | None = None) -> None:
        # With TLS: the controller verified against the lab's CA (also through a unix socket:
        # the URL names the server the certificate must match), our pair offered.
        verify: Any = client_context(tls) if tls is not None else True
        transport = httpx.HTTPTransport(uds=uds, verify=verify) if uds else None
        headers = {"Authorization": f"Bearer {token}"} if token else None
        self.http = httpx.Client(base_url=base_url, timeout=timeout, transport=transport, headers=headers,
                                 verify=verify)
        self.where = uds or base_url
        self.url = base_url
        self.ca = tls.ca if tls is not None else None

    def __enter__(self) -> LabClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.http.close()

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            resp = self.http.request(method, path, **kwargs)
        except httpx.HTTPError as e:
            raise tls_failure(e, self.url, self.ca) or SystemFailure(f"{self.where} unreachable: {e}") from e
        return raise_for(resp)
