"""The agent's client with several controllers (agent/failover.py, agent/client.py):
fakes behind httpx.MockTransport, one per controller URL."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from daolinet.agent.client import ControllerClient, MaybeApplied
from daolinet.agent.failover import ApiRing, Failure, idempotent, may_retry, parse_urls
from daolinet.errors import Conflict, InvalidInput, SystemFailure

A, B, C = "http://a:1", "http://b:2", "http://c:3"


class Fleet:
    """Controllers sharing one store of endpoints; each is `ok`, `dead` (refuses
    connections), `hung` (times out), `lossy` (applies, then the answer is lost) or `503`."""

    def __init__(self, **modes: str) -> None:
        self.modes = {A: "ok", B: "ok", C: "ok", **{f"http://{k}:{ord(k) - 96}": v for k, v in modes.items()}}
        self.seen: list[tuple[str, str, str]] = []  # (url, method, path)
        self.endpoints: dict[str, dict[str, Any]] = {}
        self.late: dict[str, Any] | None = None

    def handler(self, request: httpx.Request) -> httpx.Response:
        url = f"{request.url.scheme}://{request.url.host}:{request.url.port}"
        self.seen.append((url, request.method, request.url.path))
        mode = self.modes[url]
        if mode == "dead":
            raise httpx.ConnectError("[Errno 111] Connection refused", request=request)
        if mode == "hung":
            raise httpx.ReadTimeout("", request=request)
        if mode == "503":
            return httpx.Response(503, json={"error": "store unavailable: no quorum"})
        resp = self.serve(request)
        if mode == "lossy":
            raise httpx.RemoteProtocolError("Server disconnected without sending a response", request=request)
        return resp

    def serve(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if request.method == "POST" and path == "/endpoints":
            body = json.loads(request.content)
            if body["name"] in self.endpoints:
                return httpx.Response(409, json={"error": f"endpoint {body['name']} already exists"})
            self.endpoints[body["name"]] = {**body, "id": len(self.endpoints) + 1, "ip": "10.0.0.9"}
            return httpx.Response(201, json=self.endpoints[body["name"]])
        if request.method == "GET" and path.startswith("/containers/"):
            e = self.endpoints.get(path.rsplit("/", 1)[1])
            if self.late is not None and e is None:  # a hung controller applies it just after
                self.endpoints[self.late["name"]] = self.late
            return httpx.Response(200, json=e) if e else httpx.Response(404, json={"error": "not found"})
        return httpx.Response(200, json={"path": path})

    def client(self, urls: Any = (A, B, C), **kwargs: Any) -> ControllerClient:
        return ControllerClient(urls, token="t", transport=httpx.MockTransport(self.handler), **kwargs)

    def urls_seen(self) -> list[str]:
        return [u for u, _, _ in self.seen]


ENDPOINT = {"name": "x", "network": "n", "tenant": "default", "host": "h1", "ip": None, "mac": None,
            "labels": {}}


# -- decisions --------------------------------------------------------------------------------


def test_urls_are_repeatable_or_comma_separated_checked_and_unique() -> None:
    assert parse_urls([f"{A}, {B}/", B, f"{C},"]) == (A, B, C)
    assert parse_urls([A]) == (A,)
    with pytest.raises(InvalidInput, match="use http://HOST:PORT"):
        parse_urls(["a:1"])


@pytest.mark.parametrize(("method", "path", "safe"), [
    ("GET", "/endpoints", True), ("PUT", "/hosts/h1/heartbeat", True), ("PATCH", "/endpoints/3", True),
    ("DELETE", "/endpoints/3", True), ("POST", "/hosts", True), ("POST", "/endpoints", False),
    ("POST", "/networks", False), ("POST", "/endpoints/3/move", False), ("POST", "/portmaps", False)])
def test_what_may_be_repeated_after_it_was_sent(method: str, path: str, safe: bool) -> None:
    assert idempotent(method, path) is safe
    assert may_retry(method, path, Failure.UNANSWERED) is safe
    assert may_retry(method, path, Failure.UNAVAILABLE) is safe
    assert may_retry(method, path, Failure.UNSENT)  # it never reached a controller


def test_the_ring_goes_round_once_and_keeps_its_place_across_a_new_list() -> None:
    ring = ApiRing([A, B, C])
    assert ring.next_after(B, [B]) == C and ring.next_after(C, [B, C]) == A
    assert ring.next_after(A, [A, B, C]) is None
    ring.use(B)
    ring.replace([A, B, "http://d:4"])
    assert ring.current == B
    ring.replace([A])
    assert ring.current == A
    with pytest.raises(InvalidInput, match="no controller API URL"):
        ApiRing([])


# -- the client -------------------------------------------------------------------------------


async def test_a_dead_controller_is_skipped_and_the_next_one_is_kept() -> None:
    fleet = Fleet(a="dead")
    client = fleet.client()
    for _ in range(3):
        assert (await client.heartbeat("h1"))["path"] == "/hosts/h1/heartbeat"
    assert fleet.urls_seen() == [A, B, B, B]  # sticky: A is not tried again while B answers
    assert client.ring.current == B
    await client.close()


async def test_heartbeats_keep_flowing_as_controllers_die_one_after_another() -> None:
    fleet = Fleet()
    client = fleet.client()
    await client.heartbeat("h1")
    fleet.modes[A] = "dead"
    await client.heartbeat("h1")
    fleet.modes[B] = "hung"
    await client.heartbeat("h1")
    fleet.modes[A] = "ok"  # A restarted; C dies: round the ring
    fleet.modes[C] = "dead"
    await client.heartbeat("h1")
    assert fleet.urls_seen() == [A, A, B, B, C, C, A]
    await client.close()


async def test_a_503_sends_a_safe_request_to_the_next_controller() -> None:
    fleet = Fleet(a="503")
    client = fleet.client()
    assert await client.call("GET", "/endpoints") == {"path": "/endpoints"}
    assert fleet.urls_seen() == [A, B]
    await client.close()


async def test_when_no_controller_answers_the_error_is_one_line_naming_each() -> None:
    fleet = Fleet(a="dead", b="hung", c="503")
    client = fleet.client()
    with pytest.raises(SystemFailure) as err:
        await client.heartbeat("h1")
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith("no controller API could answer PUT /hosts/h1/heartbeat")
    assert f"{A} unreachable" in message and f"{B} no answer" in message
    assert f"{C} unavailable: store unavailable: no quorum" in message
    assert fleet.urls_seen() == [A, B, C]  # each once: bounded
    await client.close()


async def test_a_single_url_works_as_before() -> None:
    fleet = Fleet(a="dead")
    client = fleet.client(A)
    with pytest.raises(SystemFailure, match=f"{A} unreachable"):
        await client.call("GET", "/health")
    fleet.modes[A] = "ok"
    assert await client.call("GET", "/health") == {"path": "/health"}
    await client.close()


async def test_an_unsent_create_goes_to_the_next_controller() -> None:
    fleet = Fleet(a="dead")
    client = fleet.client()
    await client.call("POST", "/networks", json={"name": "n"})
    assert fleet.seen == [(A, "POST", "/networks"), (B, "POST", "/networks")]
    await client.close()


@pytest.mark.parametrize("mode", ["hung", "lossy", "503"])
async def test_a_create_that_was_sent_is_not_repeated(mode: str) -> None:
    fleet = Fleet(a=mode)
    client = fleet.client()
    with pytest.raises(MaybeApplied) as err:
        await client.call("POST", "/networks", json={"name": "n"})
    assert "may have been applied, so it was not repeated" in str(err.value) and "\n" not in str(err.value)
    assert fleet.seen == [(A, "POST", "/networks")]
    await client.close()


async def test_an_endpoint_created_whose_answer_was_lost_is_found_not_made_twice() -> None:
    fleet = Fleet(a="lossy")
    client = fleet.client()
    e = await client.create_endpoint(dict(ENDPOINT))
    assert e["id"] == 1 and len(fleet.endpoints) == 1
    assert fleet.seen == [(A, "POST", "/endpoints"), (B, "GET", "/containers/default/x")]
    await client.close()


async def test_an_endpoint_not_created_before_the_timeout_is_created_through_the_next() -> None:
    fleet = Fleet(a="hung")
    client = fleet.client()
    e = await client.create_endpoint(dict(ENDPOINT))
    assert e["id"] == 1 and len(fleet.endpoints) == 1
    assert fleet.seen == [(A, "POST", "/endpoints"), (B, "GET", "/containers/default/x"),
                          (B, "POST", "/endpoints")]  # after a failure we may not repeat, A is left
    await client.close()


async def test_an_endpoint_created_late_by_a_hung_controller_is_found_after_the_conflict() -> None:
    fleet = Fleet(a="hung")
    fleet.late = {**ENDPOINT, "id": 5, "ip": "10.0.0.5"}
    client = fleet.client()
    e = await client.create_endpoint(dict(ENDPOINT))
    assert e["id"] == 5 and len(fleet.endpoints) == 1
    assert [(u, m) for u, m, _ in fleet.seen] == [(A, "POST"), (B, "GET"), (B, "POST"), (B, "GET")]
    await client.close()


async def test_someone_elses_endpoint_of_that_name_is_a_conflict() -> None:
    fleet = Fleet(a="hung")
    fleet.endpoints["x"] = {**ENDPOINT, "host": "h2", "id": 7}
    client = fleet.client()
    with pytest.raises(Conflict):
        await client.create_endpoint(dict(ENDPOINT))
    await client.close()


async def test_a_url_file_is_read_again_when_a_controller_fails(tmp_path: Path) -> None:
    path = tmp_path / "api-urls"
    path.write_text(f"{A}\n")
    fleet = Fleet()
    client = fleet.client((), api_file=str(path))
    await client.heartbeat("h1")
    fleet.modes[A] = "dead"  # restarted elsewhere: the lab rewrote the file
    path.write_text(f"{B}  # controller 0, restarted\n")
    await client.heartbeat("h1")
    await client.heartbeat("h1")
    assert fleet.urls_seen() == [A, A, B, B]
    path.unlink()  # unreadable: keep what we know
    fleet.modes[B] = "dead"
    with pytest.raises(SystemFailure, match=f"{B} unreachable"):
        await client.heartbeat("h1")
    await client.close()


def test_an_agent_needs_some_api() -> None:
    from daolinet.agent.main import AgentConfig, check

    def cfg(**kw: Any) -> AgentConfig:
        return AgentConfig(name="h1", controllers=("unix:/x",), bridge="b", uplink="u", pip_pool="p",
                           token_file=kw.pop("token_file", "/t"), **kw)
    check(cfg(api=(f"{A},{B}",)))
    with pytest.raises(InvalidInput, match="no credential"):
        check(cfg(api=(A,), token_file=None))
    check(cfg(api=(), api_file="/somewhere"))
    for bad, match in (((), "no --api"), (("a:1",), "use http://HOST:PORT")):
        with pytest.raises(InvalidInput, match=match):
            check(cfg(api=bad))


