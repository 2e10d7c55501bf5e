"""Work inside another network namespace from a thread of this process.

setns(2) and unshare(CLONE_NEWNET) change only the calling thread's namespace:
a fresh thread switches itself, does the work (opens sockets, writes
/proc/sys/net), and ends; a socket stays in the namespace it was opened in,
so the caller may go on using it.  pyroute2's NetNS instead forks a child per
socket (about 10 ms, more in a large process); a thread costs well under one.
"""

from __future__ import annotations

import ctypes
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from pyroute2 import netns as pyroute2_netns

T = TypeVar("T")

CLONE_NEWNET = 0x40000000
NETNS_RUN_DIR = "/run/netns"
_libc = ctypes.CDLL(None, use_errno=True)


def path_of(netns: str) -> str:
    """A namespace's file: a name in /run/netns, or an absolute path as it is."""
    return netns if netns.startswith("/") else os.path.join(NETNS_RUN_DIR, netns)


def _check(result: int, what: str, netns: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what} {netns}: {os.strerror(err)}")


def _in_thread(body: Callable[[], T]) -> T:
    """body() in a fresh thread (ended after it: nothing else runs in its namespace)."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="netns") as pool:
        return pool.submit(body).result()


def run_in(netns: str, work: Callable[[], T]) -> T:
    """work() in a thread switched into `netns` (FileNotFoundError: no such namespace)."""
    path = path_of(netns)

    def body() -> T:
        fd = os.open(path, os.O_RDONLY)
        try:
            _check(_libc.setns(fd, CLONE_NEWNET), "cannot enter namespace", netns)
        finally:
            os.close(fd)
        return work()

    return _in_thread(body)


def create(name: str, then: Callable[[], T]) -> T:
    """A new namespace mounted at /run/netns/NAME (as `ip netns add`), and then()
    run inside it."""

    def body() -> T:
        _check(_libc.unshare(CLONE_NEWNET), "cannot make namespace", name)
        # pyroute2's attach: share /run/netns, bind this thread's namespace to its file.
        pyroute2_netns.attach(name, threading.get_native_id())
        return then()

    return _in_thread(body)


def write_sysctls(*settings: str) -> None:
    """`sysctl -w KEY=VALUE ...` of this thread's namespace (for net.* keys)."""
    for setting in settings:
        key, value = setting.split("=", 1)
        with open("/proc/sys/" + key.replace(".", "/"), "w") as f:
            f.write(value)
