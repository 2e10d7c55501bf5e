"""The daemons' uvicorn server: answers with a current Date header, never wakes while idle
(uvicorn's own loop: ten times a second), and stops as soon as it is told to."""

from __future__ import annotations

import asyncio
import os
import socket
import tempfile
import time
from email.utils import parsedate_to_datetime

import httpx
import uvicorn

from daolinet.quiet_server import QuietServer


async def hello(scope: dict, receive: object, send: object) -> None:  # type: ignore[type-arg]
    assert scope["type"] == "http"
    await send({"type": "http.response.start", "status": 200, "headers": []})  # type: ignore[operator]
    await send({"type": "http.response.body", "body": b"hi"})  # type: ignore[operator]


class Counting(QuietServer):
    ticks = 0

    async def on_tick(self, counter: int) -> bool:
        self.ticks += 1
        return await super().on_tick(counter)


def test_serves_sleeps_while_idle_and_stops_at_once() -> None:
    async def scenario() -> None:
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "s.sock")
            server = Counting(uvicorn.Config(hello, uds=path, log_level="warning", lifespan="off",
                                             access_log=False, log_config=None))
            task = asyncio.create_task(server.serve())
            deadline = time.monotonic() + 10
            while not server.started:
                assert time.monotonic() < deadline and not task.done()
                await asyncio.sleep(0.01)
            async with httpx.AsyncClient(transport=httpx.AsyncHTTPTransport(uds=path)) as client:
                for _ in range(2):  # the date follows the clock, no tick needed
                    resp = await client.get("http://agent/")
                    assert resp.text == "hi"
                    assert abs(parsedate_to_datetime(resp.headers["date"]).timestamp() - time.time()) < 2
                    await asyncio.sleep(1.2)  # a second later: the measured interval
            assert server.ticks == 0  # uvicorn's own loop: 10 a second
            stopped = time.monotonic()
            server.should_exit = True
            await asyncio.wait_for(task, 5)
            assert time.monotonic() - stopped < 0.5  # no wait for the next tick

    asyncio.run(scenario())


async def test_connections_to_the_daemons_tcp_listeners_have_nagle_off() -> None:
    """A socket made with protocol 0 leaves Nagle on in asyncio: a response written as
    headers, then body, waited ~40 ms for the client's delayed ACK on every API call."""
    from daolinet import metrics_server
    from daolinet.controller.main import api_sockets

    seen: list[int] = []

    class Probe(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            sock = transport.get_extra_info("socket")
            seen.append(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            transport.close()

    loop = asyncio.get_running_loop()
    for sock in [*api_sockets(["127.0.0.1:0"]), metrics_server.bind("127.0.0.1:0")]:
        server = await loop.create_server(Probe, sock=sock)
        try:
            reader, writer = await asyncio.open_connection(*sock.getsockname()[:2])
            await reader.read()  # closed by the server once it looked
            writer.close()
        finally:
            server.close()
            await server.wait_closed()
    assert len(seen) == 2 and all(seen), seen
