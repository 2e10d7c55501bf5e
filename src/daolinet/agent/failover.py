"""Which controller API the agent's client (agent/client.py) talks to, and
whether a failed request may go to the next one: decisions only, no I/O.

Every controller serves the same REST API over the same store, so the agent
knows them all (`--api` repeatable or comma-separated, `--api-file`).  It
sticks to the one that last answered; when that one fails it tries the others
in order, each at most once per request.

Retrying is safe when the request never reached a controller (the connection
failed), or when it is idempotent: GET, PUT, PATCH, DELETE, and POST /hosts
(registration is an upsert).  Any other POST that was sent but not answered
(a timeout, a dropped connection, a 503) may have been applied: it is not
retried here (the caller decides; create_endpoint looks the endpoint up).

The same list and order serve every other client of the API (lab/client.py: the
CLI's, the lab's), with a stricter rule: only a request no controller saw moves
on (`repeat_sent=False`).  A person (or a test) reads the answer and decides; the
agent runs unattended and must get its heartbeats through.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence

from daolinet.errors import InvalidInput

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "PATCH", "DELETE"})
IDEMPOTENT_POSTS = frozenset({"/hosts"})  # register_host: insert or update, same data changes nothing
MAX_ATTEMPTS = 8  # per request, even if the URL file keeps changing under us


class Failure(enum.Enum):
    UNSENT = "unsent"  # no connection: the controller never saw the request
    UNANSWERED = "unanswered"  # sent, no answer (timeout, dropped connection): maybe applied
    UNAVAILABLE = "unavailable"  # 503: the controller (its store) could not serve it: maybe applied


def idempotent(method: str, path: str) -> bool:
    method = method.upper()
    return method in IDEMPOTENT_METHODS or (method == "POST" and path.rstrip("/") in IDEMPOTENT_POSTS)


def may_retry(method: str, path: str, failure: Failure, *, repeat_sent: bool = True) -> bool:
    """May a request that failed this way go to another controller?  With
    `repeat_sent=False` only one that never reached a controller may."""
    return failure is Failure.UNSENT or (repeat_sent and idempotent(method, path))


def parse_urls(values: Iterable[str]) -> tuple[str, ...]:
    """`--api` values (each may hold several, comma-separated): checked, in order, once each."""
    urls: list[str] = []
    for value in values:
        for part in value.replace("\n", ",").split(","):
            url = part.strip().rstrip("/")
            if not url:
                continue
            if not url.startswith(("http://", "https://")):
                raise InvalidInput(f"invalid controller API URL {url!r}: it must start with http:// "
                                   "or https:// (use http://HOST:PORT)")
            if url not in urls:
                urls.append(url)
    return tuple(urls)


class ApiRing:
    """The controllers' API URLs and the one in use (sticky)."""

    def __init__(self, urls: Sequence[str]) -> None:
        if not urls:
            raise InvalidInput("no controller API URL: give --api (or --api-file)")
        self.urls = tuple(urls)
        self.current = self.urls[0]

    def use(self, url: str) -> None:
        """`url` answered: keep using it."""
        self.current = url

    def replace(self, urls: Sequence[str]) -> None:
        """A new list (the URL file changed); keep the one in use if it is still there."""
        if urls:
            self.urls = tuple(urls)
            if self.current not in self.urls:
                self.current = self.urls[0]

    def next_after(self, failed: str, tried: Iterable[str]) -> str | None:
        """The next URL after `failed` (round the ring) not tried yet, or None."""
        done = set(tried)
        start = self.urls.index(failed) + 1 if failed in self.urls else 0
        for k in range(len(self.urls)):
            url = self.urls[(start + k) % len(self.urls)]
            if url not in done:
                return url
        return None
