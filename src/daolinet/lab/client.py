"""Synchronous HTTP to the lab's controller API and its agents' unix sockets."""

from __future__ import annotations

from typing import Any

import httpx

from daolinet.agent.client import raise_for
from daolinet.errors import SystemFailure


class LabClient:
    def __init__(self, base_url: str = "http://agent", uds: str | None = None,
                 timeout: float = 30.0, token: str | None = None) -> None:
        transport = httpx.HTTPTransport(uds=uds) if uds else None
        headers = {"Authorization": f"Bearer {token}"} if token else None
        self.http = httpx.Client(base_url=base_url, timeout=timeout, transport=transport, headers=headers)
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
