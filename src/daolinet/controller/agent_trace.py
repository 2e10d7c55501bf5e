"""The controller's side of per-host traces: ask the agents of a trace's hosts, in
parallel and within a deadline, for `ofproto/trace` of a probe packet and for the
route's flows (agent/trace.py serves both).

The controller calls `https://<host's underlay address>:<trace port>` with its own
controller certificate (mutual TLS), verifies the agent's certificate against the
CA and that it names the very host asked (not an address: hosts' certificates name
hosts).  A host that does not answer, or answers with an error, is reported in its
entry (`error`); the trace itself never fails for it.  `fan_out` takes the call as a
parameter, so tests drive it with fakes (tests/unit/test_agent_trace.py)."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from daolinet.api_common import AGENT_TRACE_PORT
from daolinet.errors import DaoliError, SystemFailure
from daolinet.model import Host
from daolinet.security.identity import identity_of
from daolinet.security.tls import TlsFiles, client_context

TIMEOUT = 3.0  # seconds for a host's agent to answer both questions
Call = Callable[[Host, str, str, dict[str, Any] | None], Awaitable[Any]]  # host, method, path, body


async def fan_out(targets: list[tuple[Host, dict[str, Any]]], cookie: int, call: Call,
                  timeout: float | None = None) -> dict[str, dict[str, Any]]:
    """{host name: its verdict, ofproto/trace output and route flows, or its error}."""
    timeout = TIMEOUT if timeout is None else timeout
    answers = await asyncio.gather(*(_one(host, probe, cookie, call, timeout) for host, probe in targets))
    return {host.name: answer for (host, _), answer in zip(targets, answers, strict=True)}


async def _one(host: Host, probe: dict[str, Any], cookie: int, call: Call, timeout: float) -> dict[str, Any]:
    out: dict[str, Any] = {"source": "agent", "verdict": None, "probe": None, "output": None,
                           "flows": [], "error": None}
    try:
        async with asyncio.timeout(timeout):
            traced, flows = await asyncio.gather(call(host, "POST", "/trace/ofproto", probe),
                                                 call(host, "GET", f"/trace/flows?cookie={cookie}", None))
    except TimeoutError:
        out["error"] = f"the agent of {host.name} did not answer within {timeout:g} s"
        return out
    except DaoliError as e:
        out["error"] = str(e)
        return out
    out.update(verdict=traced.get("verdict"), probe=traced.get("probe"), output=traced.get("output"),
               flows=list(flows.get("flows") or []))
    return out


class AgentCaller:
    """httpx to the agents' trace listeners, with the controller's certificate."""

    def __init__(self, tls: TlsFiles | None, port: int = AGENT_TRACE_PORT) -> None:
        self.port = port
        self.tls = tls
        self._client: httpx.AsyncClient | None = None

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            assert self.tls is not None
            ctx = client_context(self.tls)
            ctx.check_hostname = False  # hosts' certificates name hosts: checked after the handshake
            self._client = httpx.AsyncClient(verify=ctx, timeout=TIMEOUT)
        return self._client

    async def __call__(self, host: Host, method: str, path: str, body: dict[str, Any] | None) -> Any:
        if self.tls is None:
            raise SystemFailure("this controller runs --insecure: agents serve traces only over TLS")
        url = f"https://{host.underlay_ip}:{self.port}{path}"
        try:
            resp = await self._http().request(method, url, json=body)
        except httpx.HTTPError as e:
            raise SystemFailure(f"the agent of {host.name} at {url} is unreachable: "
                                f"{str(e) or type(e).__name__}") from None
        _check_peer(resp, host.name)
        if resp.status_code >= 400:
            try:
                said = resp.json().get("error") or resp.text
            except ValueError:
                said = resp.text
            raise SystemFailure(f"the agent of {host.name} answered {resp.status_code}: {said}")
        return resp.json()

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()


def _check_peer(resp: httpx.Response, host: str) -> None:
    stream = resp.extensions.get("network_stream")
    ssl_object = stream.get_extra_info("ssl_object") if stream is not None else None
    der = ssl_object.getpeercert(binary_form=True) if isinstance(ssl_object, ssl.SSLObject) else None
    if not der:
        raise SystemFailure(f"the agent of {host} showed no certificate")
    try:
        identity_of(der).require("host", host)
    except DaoliError as e:
        raise SystemFailure(f"the agent at {host}'s address: {e}") from None
