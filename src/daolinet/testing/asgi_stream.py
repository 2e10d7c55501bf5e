"""An httpx transport that serves requests from an ASGI app in-process *and streams* the
response body as the app sends it (httpx's ASGITransport collects the whole body first,
so a never-ending stream such as `GET /hosts/{name}/view` would never return).

Closing the response tells the app the client went away (`http.disconnect`) and waits for
it to finish.  For unit tests: no socket, no server."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import httpx


class _Body(httpx.AsyncByteStream):
    def __init__(self, chunks: asyncio.Queue[bytes | None], app: asyncio.Task[None],
                 gone: asyncio.Event) -> None:
        self._chunks, self._app, self._gone = chunks, app, gone

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while (chunk := await self._chunks.get()) is not None:
            yield chunk

    async def aclose(self) -> None:
        self._gone.set()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await asyncio.wait_for(self._app, 5)


class _Exchange:
    """One request's run of the app: what it receives and what it sends."""

    def __init__(self, body: bytes) -> None:
        self.body: bytes | None = body  # None once the app has read it
        self.chunks: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.started: asyncio.Future[tuple[int, list[tuple[bytes, bytes]]]] = \
            asyncio.get_running_loop().create_future()
        self.gone = asyncio.Event()

    async def receive(self) -> dict[str, Any]:
        if self.body is not None:
            body, self.body = self.body, None
            return {"type": "http.request", "body": body, "more_body": False}
        await self.gone.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            self.started.set_result((message["status"], list(message.get("headers", []))))
        elif message["type"] == "http.response.body":
            if message.get("body"):
                self.chunks.put_nowait(message["body"])
            if not message.get("more_body", False):
                self.chunks.put_nowait(None)

    async def run(self, app: Any, scope: dict[str, Any]) -> None:
        try:
            await app(scope, self.receive, self.send)
        except BaseException as e:
            if not self.started.done():
                self.started.set_exception(e)
            raise
        finally:
            self.chunks.put_nowait(None)


class StreamingASGITransport(httpx.AsyncBaseTransport):
    def __init__(self, app: Any) -> None:
        self.app = app

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        exchange = _Exchange(await request.aread())
        app = asyncio.ensure_future(exchange.run(self.app, _scope(request)))
        status, headers = await exchange.started
        return httpx.Response(status, headers=headers, stream=_Body(exchange.chunks, app, exchange.gone),
                              request=request)


def _scope(request: httpx.Request) -> dict[str, Any]:
    url = request.url
    return {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": request.method,
            "scheme": url.scheme, "path": url.path, "raw_path": url.raw_path.split(b"?")[0],
            "query_string": url.query, "root_path": "",
            "headers": [(k.lower(), v) for k, v in request.headers.raw],
            "server": (url.host, url.port or (443 if url.scheme == "https" else 80)),
            "client": ("127.0.0.1", 40000), "extensions": {}}
