"""Synchronous HTTP to controller APIs and the lab agents' unix sockets: the CLI's
client (cli/api.py) and the lab's (lab/controllers.py).

Given several controllers, a request goes to the one in use and, when it cannot
connect (refused, no such socket, no connection within CONNECT_TIMEOUT), to the
next: agent/failover.py keeps the order, the same as the agent's.  A request that
reached a controller is never sent to another, whatever came back (no change is
applied twice).  A TLS failure comes back as one line naming the server and the
CA it was checked against; when every controller failed, one line names each."""

from __future__ import annotations

import functools
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from daolinet.agent.client import CONNECT_TIMEOUT, UNSENT, raise_for
from daolinet.agent.failover import ApiRing, Failure, idempotent, may_retry
from daolinet.errors import DaoliError, SystemFailure
from daolinet.security.tls import TlsFiles, client_context


@dataclass(frozen=True)
class Endpoint:
    """One API: its URL and, when the caller cannot reach the URL's address (the root
    namespace has no address on a lab's underlay), a unix socket serving the same API."""

    url: str
    uds: str | None = None

    @property
    def where(self) -> str:
        return self.uds or self.url


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


@functools.cache
def default_verify() -> ssl.SSLContext:
    """httpx's verifying context for `verify=True`, made once: making it reads the CA
    bundle (~35 ms here), and the lab makes a client for every call to an agent."""
    return httpx.create_ssl_context()


class LabClient:
    """`base_url` (with `uds`), or several endpoints tried in turn from `start` (a URL
    among them that answered last time) on.  `transport` replaces the network (tests)."""

    def __init__(self, base_url: str | Sequence[Endpoint] = "http://agent", uds: str | None = None,
                 timeout: float = 30.0, token: str | None = None, tls: TlsFiles | None = None, *,
                 start: str | None = None, transport: httpx.BaseTransport | None = None) -> None:
        endpoints = [Endpoint(base_url, uds)] if isinstance(base_url, str) else list(base_url)
        self.endpoints = {e.url: e for e in endpoints}
        self.ring = ApiRing(list(self.endpoints))
        if start in self.endpoints:
            self.ring.use(start)
        # With TLS: the controller verified against the CA (also through a unix socket: the
        # URL names the server the certificate must match), our pair offered.
        self._verify: Any = client_context(tls) if tls is not None else default_verify()
        self._headers = {"Authorization": f"Bearer {token}"} if token else None
        self._timeout = httpx.Timeout(timeout, connect=min(timeout, CONNECT_TIMEOUT))
        self._transport = transport
        self._clients: dict[str, httpx.Client] = {}
        self.ca = tls.ca if tls is not None else None

    @property
    def url(self) -> str:
        """The API in use: the one that answered last."""
        return self.ring.current

    @property
    def where(self) -> str:
        return self.endpoints[self.url].where

    @property
    def http(self) -> httpx.Client:
        """The plain httpx client of the API in use (no failover)."""
        return self._client(self.url)

    def _client(self, url: str) -> httpx.Client:
        if url not in self._clients:
            uds = self.endpoints[url].uds
            transport = self._transport or \
                (httpx.HTTPTransport(uds=uds, verify=self._verify) if uds else None)
            self._clients[url] = httpx.Client(base_url=url, timeout=self._timeout, transport=transport,
                                              headers=self._headers, verify=self._verify)
        return self._clients[url]

    def __enter__(self) -> LabClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for c in self._clients.values():
            c.close()
        self._clients.clear()

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        tried: list[tuple[str, DaoliError]] = []
        url: str | None = self.url
        while url is not None:
            try:
                resp = self._client(url).request(method, path, **kwargs)
            except httpx.TransportError as e:
                failure = Failure.UNSENT if isinstance(e, UNSENT) else Failure.UNANSWERED
                if not may_retry(method, path, failure, repeat_sent=False):
                    raise self._unanswered(url, method, path, e) from e
                tried.append((url, self._unreachable(url, e)))
                url = self.ring.next_after(url, [u for u, _ in tried])
                continue
            except httpx.HTTPError as e:
                raise SystemFailure(f"{self.endpoints[url].where}: {e}") from e
            self.ring.use(url)
            return raise_for(resp)
        raise all_failed(method, path, tried)

    def _unreachable(self, url: str, e: httpx.HTTPError) -> DaoliError:
        return tls_failure(e, url, self.ca) or SystemFailure(f"{self.endpoints[url].where} unreachable: {e}")

    def _unanswered(self, url: str, method: str, path: str, e: httpx.HTTPError) -> DaoliError:
        maybe = "" if idempotent(method, path) else \
            f" ({method} {path} was sent and may have been applied: it was not repeated elsewhere)"
        return SystemFailure(f"{self.endpoints[url].where} unreachable: {e or type(e).__name__}{maybe}")


def all_failed(method: str, path: str, tried: Sequence[tuple[str, DaoliError]]) -> DaoliError:
    """One line: the only error as it was, or every API tried and why it failed."""
    if len(tried) == 1:
        return tried[0][1]
    return SystemFailure(f"no controller API could answer {method} {path}; tried "
                         + "; ".join(f"{url}: {e}" for url, e in tried))
