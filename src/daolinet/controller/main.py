"""`daolinet controller`: the process.  One asyncio loop runs the OpenFlow
listener(s) and the REST API; SIGTERM/SIGINT stop both cleanly.

`--ready-file` receives {"api": URL, "of": [targets], "pid": PID} once both
are listening: a launcher waits on it instead of sleeping, and learns the
API port when it asked for port 0.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import socket

import uvicorn

from daolinet.controller import ofserver
from daolinet.controller.api import create_app
from daolinet.controller.api.auth import ensure_admin_token
from daolinet.controller.app import Controller
from daolinet.controller.context import Config
from daolinet.errors import InvalidInput
from daolinet.store import open_store

log = logging.getLogger("daolinet.controller")


def parse_listen(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit() or int(port) > 65535:
        raise InvalidInput(f"invalid --api-listen {value!r}: use HOST:PORT")
    return host, int(port)


async def serve(store_url: str, of_listen: list[str], api_listen: str, config: Config,
                ready_file: str | None = None, admin_token_file: str | None = None) -> None:
    host, port = parse_listen(api_listen)
    for target in of_listen:
        ofserver.parse_target(target)
    store = open_store(store_url)
    if admin_token_file is None:
        admin_token_file = default_token_file(store_url)
    await ensure_admin_token(store, admin_token_file)
    ctrl = Controller(store, config)
    await ctrl.start()
    of_servers = [await ofserver.listen(t, ctrl.on_session) for t in of_listen]
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    api_url = f"http://{host}:{sock.getsockname()[1]}"
    server = uvicorn.Server(uvicorn.Config(create_app(ctrl), log_level="warning", lifespan="off",
                                           access_log=False))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    api_task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started and not api_task.done():
        await asyncio.sleep(0.01)  # uvicorn offers no readiness event; poll its flag
    if ready_file:
        _write_ready(ready_file, {"api": api_url, "of": of_listen, "pid": os.getpid(),
                                  "admin_token_file": admin_token_file})
    log.info("controller ready: api %s, openflow %s", api_url, ", ".join(of_listen))
    await stop.wait()
    server.should_exit = True
    for s in of_servers:
        s.close()
    await api_task
    await store.close()


def default_token_file(store_url: str) -> str:
    """Beside an SQLite store; else /etc/daolinet/admin.token."""
    if store_url.startswith("sqlite:///"):
        return os.path.join(os.path.dirname(store_url[len("sqlite://"):]), "admin.token")
    return "/etc/daolinet/admin.token"


def _write_ready(path: str, data: dict[str, object]) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(data, f)
    os.replace(tmp, path)
