"""The daemons' uvicorn server: answers with a current Date header, never wakes while idle
(uvicorn's own loop: ten times a second), and stops as soon as it is told to."""

from __future__ import annotations

import asyncio
import os
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
