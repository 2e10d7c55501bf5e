"""The agent's client of the controllers' REST API (httpx).  Errors come back
as DaoliErrors carrying the controller's message.

The agent knows every controller's API; a request goes to the one in use and,
when that one cannot answer, to the next (agent/failover.py decides which and
whether).  With a URL file (`--api-file`) the list is read again whenever a
controller fails: a restarted controller may listen elsewhere.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import httpx

from daolinet.agent.failover import MAX_ATTEMPTS, ApiRing, Failure, may_retry, parse_urls
from daolinet.errors import (
    Conflict,
    DaoliError,
    Forbidden,
    InvalidInput,
    NotFound,
    SystemFailure,
    Unauthorized,
)
from daolinet.model.objects import DEFAULT_TENANT
from daolinet.security.tls import TlsFiles, client_context

log = logging.getLogger(__name__)
ERRORS: dict[int, type[DaoliError]] = {400: InvalidInput, 401: Unauthorized, 403: Forbidden,
                                       404: NotFound, 409: Conflict, 422: InvalidInput}
# The request never left: another controller may have it, whatever it is.
UNSENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.UnsupportedProtocol)
CONNECT_TIMEOUT = 2.0  # seconds: a controller that does not accept within this is skipped


class MaybeApplied(SystemFailure):
    """A request that is not safe to repeat failed after it was sent: it may have been applied."""


def raise_for(resp: httpx.Response) -> Any:
    if resp.status_code < 400:
        return resp.json()
    raise ERRORS.get(resp.status_code, SystemFailure)(_message(resp))


def _message(resp: httpx.Response) -> str:
    try:
        return str(resp.json().get("error") or resp.text)
    except (ValueError, AttributeError):
        return resp.text


def _failure(error: httpx.TransportError) -> tuple[Failure, str]:
    detail = str(error) or type(error).__name__
    if isinstance(error, UNSENT):
        return Failure.UNSENT, f"unreachable: {detail}"
    return Failure.UNANSWERED, f"no answer: {detail}"


def read_url_file(path: str) -> tuple[str, ...]:
    """Controller API URLs, one a line (# comments)."""
    try:
        with open(path) as f:
            lines = [line.split("#", 1)[0] for line in f]
    except OSError as e:
        raise InvalidInput(f"cannot read controller API URLs from {path}: {e.strerror}") from e
    return parse_urls(lines)


class ControllerClient:
    def __init__(self, base_url: str | Sequence[str], token: str | None = None, timeout: float = 10.0,
                 transport: Any = None, api_file: str | None = None, tls: TlsFiles | None = None) -> None:
        urls = parse_urls([base_url] if isinstance(base_url, str) else base_url)
        self.api_file = api_file
        self.ring = ApiRing(urls or (read_url_file(api_file) if api_file else ()))
        if api_file:
            self._reload()
        headers = {"Authorization": f"Bearer {token}"} if token else None
        # With TLS: the server verified against the installation's CA, the host certificate offered.
        verify: Any = client_context(tls) if tls is not None else True
        self.http = httpx.AsyncClient(timeout=httpx.Timeout(timeout, connect=min(timeout, CONNECT_TIMEOUT)),
                                      transport=transport, headers=headers, verify=verify)

    async def close(self) -> None:
        await self.http.aclose()

    async def call(self, method: str, path: str, *, timeout: float | None = None, **kwargs: Any) -> Any:
        """`method path` through the controller in use, or the next ones (agent/failover.py).
        `timeout`: seconds per attempt (default: the client's)."""
        tried: list[tuple[str, str]] = []
        url: str | None = self.ring.current
        while url is not None and len(tried) < MAX_ATTEMPTS:
            failure, why, resp = await self._attempt(url, method, path, timeout, kwargs)
            if resp is not None:
                self._settle(url, tried)
                return raise_for(resp)
            assert failure is not None
            tried.append((url, why))
            if not may_retry(method, path, failure):
                self._skip(url)
                raise MaybeApplied(f"controller API {url} failed {method} {path} after it was sent "
                                   f"({why}); it may have been applied, so it was not repeated")
            self._reload()
            url = self.ring.next_after(url, [tried_url for tried_url, _ in tried])
        raise SystemFailure(f"no controller API could answer {method} {path}: "
                            + "; ".join(f"{tried_url} {why}" for tried_url, why in tried))

    async def _attempt(self, url: str, method: str, path: str, timeout: float | None,
                       kwargs: dict[str, Any]) -> tuple[Failure | None, str, httpx.Response | None]:
        try:
            resp = await self.http.request(method, url + path, **kwargs,
                                           timeout=httpx.USE_CLIENT_DEFAULT if timeout is None else timeout)
        except httpx.TransportError as e:
            return (*_failure(e), None)
        except httpx.HTTPError as e:
            raise SystemFailure(f"controller API {url}: {e}") from e
        if resp.status_code == 503:
            return Failure.UNAVAILABLE, f"unavailable: {_message(resp)}", None
        return None, "", resp

    def _settle(self, url: str, tried: list[tuple[str, str]]) -> None:
        if url != self.ring.current:
            log.warning("controller API failed (%s): now using %s",
                        "; ".join(f"{tried_url} {why}" for tried_url, why in tried)
                        or f"{self.ring.current} replaced", url)
        self.ring.use(url)

    def _skip(self, url: str) -> None:
        """`url` failed a request we may not repeat: whatever comes next goes elsewhere."""
        self._reload()
        following = self.ring.next_after(url, [url])
        if following is not None:
            log.warning("controller API %s failed: now using %s", url, following)
            self.ring.use(following)

    def url_after(self, failed: str) -> str:
        """Where a long-lived stream goes after `failed` failed (agent/resolver_view.py): the
        next controller round the ring (the URL file read again), `failed` itself if alone.
        The one in use for requests stays as it is: a request finds its own way."""
        self._reload()
        return self.ring.next_after(failed, [failed]) or self.ring.current

    def _reload(self) -> None:
        if not self.api_file:
            return
        try:
            self.ring.replace(read_url_file(self.api_file))
        except InvalidInput as e:
            log.warning("%s; keeping %s", e, ", ".join(self.ring.urls))

    async def register_host(self, host: dict[str, Any]) -> dict[str, Any]:
        return dict(await self.call("POST", "/hosts", json=host))

    async def heartbeat(self, name: str, timeout: float | None = None) -> dict[str, Any]:
        return dict(await self.call("PUT", f"/hosts/{name}/heartbeat", timeout=timeout))

    async def create_endpoint(self, body: dict[str, Any]) -> dict[str, Any]:
        """POST /endpoints, made safe to repeat: after a failure that may have created
        the endpoint, look it up by name and create it only if it is not there."""
        try:
            return dict(await self.call("POST", "/endpoints", json=body))
        except MaybeApplied as e:
            log.warning("%s: looking for endpoint %s", e, body.get("name"))
        found = await self._created(body)
        if found is not None:
            return found
        try:
            return dict(await self.call("POST", "/endpoints", json=body))
        except Conflict:
            found = await self._created(body)  # the first attempt landed after the look-up
            if found is None:
                raise
            return found

    async def _created(self, body: dict[str, Any]) -> dict[str, Any] | None:
        """The endpoint `body` asked for, if it exists as asked (on this host, in that network)."""
        tenant = body.get("tenant") or DEFAULT_TENANT
        try:
            created = dict(await self.call("GET", f"/containers/{tenant}/{body['name']}"))
        except NotFound:
            return None
        wanted = {k: body[k] for k in ("host", "network", "ip") if body.get(k) is not None}
        return created if all(created.get(k) == v for k, v in wanted.items()) else None

    async def patch_endpoint(self, eid: int, **fields: Any) -> dict[str, Any]:
        return dict(await self.call("PATCH", f"/endpoints/{eid}", json=fields))

    async def delete_endpoint(self, eid: int) -> dict[str, Any]:
        return dict(await self.call("DELETE", f"/endpoints/{eid}"))

    async def endpoints_on(self, host: str) -> list[dict[str, Any]]:
        return list(await self.call("GET", "/endpoints", params={"host": host}))

    async def network(self, tenant: str, name: str) -> dict[str, Any]:
        return dict(await self.call("GET", f"/networks/{tenant}/{name}"))
