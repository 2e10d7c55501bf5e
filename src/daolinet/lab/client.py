"""Synchronous HTTP to the lab's controller API and its agents' unix sockets."""

from __future__ import annotations

from typing import Any

import httpx

from daolinet.agent.client import raise_for
from daolinet.errors import SystemFailure
from daolinet.security.tls import TlsFiles, client_context


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

    def __enter__(self) -> LabClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.http.close()

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            resp = self.http.request(method, path, **kwargs)
        except httpx.HTTPError as e:
            raise SystemFailure(f"{self.where} unreachable: {e}") from e
        return raise_for(resp)
