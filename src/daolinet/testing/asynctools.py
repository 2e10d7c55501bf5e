"""Asyncio helpers for tests: polling with a deadline, and a FakeSwitch on a stream."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from daolinet.testing.fakeswitch import FakeSwitch


async def until(cond: Callable[[], Any], timeout: float = 15.0, what: str = "condition") -> float:
    """Poll cond() until it is true, failing the test after `timeout` s; the seconds it took."""
    start = time.monotonic()
    while not cond():
        assert time.monotonic() - start < timeout, f"{what} not met within {timeout} s"
        await asyncio.sleep(0.01)
    return time.monotonic() - start


async def switch_end(fake: FakeSwitch, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Run a FakeSwitch on one end of a stream until the controller's end closes."""
    writer.write(fake.data_to_send())
    while data := await reader.read(65536):
        fake.receive_data(data)
        writer.write(fake.data_to_send())
