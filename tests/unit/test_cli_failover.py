"""The CLI's client with several controllers (lab/client.py, cli/api.py): fakes
behind httpx.MockTransport, one per controller URL, each `ok`, `dead` (refuses
connections), `gone` (its unix socket is not there), `slow` (no connection within
the connect timeout), `hung` (took the request, never answered) or an HTTP status."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from daolinet.cli import api
from daolinet.errors import Conflict, InvalidInput, SystemFailure
from daolinet.lab.client import Endpoint, LabClient

A, B, C = "http://a:1", "http://b:2", "http://c:3"


class Fleet:
    def __init__(self, **modes: str) -> None:
        self.modes = {A: "ok", B: "ok", C: "ok", **{f"http://{k}:{ord(k) - 96}": v for k, v in modes.items()}}
        self.seen: list[tuple[str, str]] = []  # (url, method)

    def handler(self, request: httpx.Request) -> httpx.Response:
        url = f"{request.url.scheme}://{request.url.host}:{request.url.port}"
        mode = self.modes[url]
        if mode == "dead":
            raise httpx.ConnectError("[Errno 111] Connection refused", request=request)
        if mode == "gone":
            raise httpx.ConnectError("[Errno 2] No such file or directory", request=request)
        if mode == "slow":
            raise httpx.ConnectTimeout("timed out", request=request)
        self.seen.append((url, request.method))
        if mode == "hung":
            raise httpx.ReadTimeout("timed out", request=request)
        if mode.isdigit():
            return httpx.Response(int(mode), json={"error": f"{url} says {mode}"})
        return httpx.Response(200, json={"served_by": url})

    def client(self, urls: tuple[str, ...] = (A, B, C), start: str | None = None) -> LabClient:
        return LabClient([Endpoint(u) for u in urls], token="t", start=start,
                         transport=httpx.MockTransport(self.handler))


def test_one_that_cannot_connect_is_skipped_in_order_and_the_next_one_sticks() -> None:
    fleet = Fleet(a="dead", b="slow")
    with fleet.client() as c:
        assert c.call("GET", "/networks") == {"served_by": C}
        assert c.url == C
        assert c.call("POST", "/networks", json={}) == {"served_by": C}
    assert fleet.seen == [(C, "GET"), (C, "POST")]  # a and b never saw a request


def test_the_order_wraps_round_from_where_it_starts() -> None:
    fleet = Fleet(c="gone", a="dead")
    with fleet.client(start=C) as c:
        assert c.call("GET", "/hosts") == {"served_by": B}


@pytest.mark.parametrize("mode", ["400", "404", "409", "500", "503"])
def test_an_http_error_is_not_sent_to_another_controller(mode: str) -> None:
    fleet = Fleet(a=mode)
    with fleet.client() as c, pytest.raises(Exception, match=f"{A} says {mode}"):
        c.call("POST", "/networks", json={"name": "n"})
    assert fleet.seen == [(A, "POST")]


def test_a_request_sent_but_unanswered_is_not_repeated() -> None:
    fleet = Fleet(a="hung")
    with fleet.client() as c, pytest.raises(SystemFailure) as err:
        c.call("POST", "/networks", json={})
    assert fleet.seen == [(A, "POST")]
    assert str(err.value) == (f"{A} unreachable: timed out (POST /networks was sent and may have been "
                              "applied: it was not repeated elsewhere)")


def test_when_all_fail_one_line_names_every_url_tried() -> None:
    fleet = Fleet(a="dead", b="gone", c="slow")
    with fleet.client(start=B) as c, pytest.raises(SystemFailure) as err:
        c.call("GET", "/hosts")
    assert str(err.value) == (
        f"no controller API could answer GET /hosts; tried {B}: {B} unreachable: [Errno 2] No such file or "
        f"directory; {C}: {C} unreachable: timed out; {A}: {A} unreachable: [Errno 111] Connection refused")
    assert "\n" not in str(err.value)


def test_a_conflict_is_the_controllers_answer() -> None:
    with Fleet(a="dead", b="409").client() as c, pytest.raises(Conflict):
        c.call("POST", "/networks", json={})


# -- where the URLs come from, and the one remembered ------------------------------------


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    for k in ("DAOLINET_API", "DAOLINET_TOKEN", "DAOLINET_LAB", "DAOLINET_CA", "DAOLINET_CERT",
              "DAOLINET_KEY"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("DAOLINET_CONFIG", str(tmp_path / "config.json"))
    (tmp_path / "config.json").write_text("{}")
    return tmp_path


def test_daolinet_api_takes_several_urls(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DAOLINET_API", f" {A}, {B}/,{A}")
    assert api.target().urls == (A, B)
    monkeypatch.setenv("DAOLINET_API", f"{A},b:2")
    with pytest.raises(InvalidInput, match=r"'b:2': it must start with http:// .* \(from \$DAOLINET_API\)"):
        api.target()


def test_the_config_file_takes_a_url_or_a_list(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = env / "config.json"
    config.write_text(json.dumps({"api": [A, B], "token": "tok"}))
    t = api.target()
    assert t.urls == (A, B) and t.token == "tok"
    monkeypatch.setenv("DAOLINET_API", f"{B},{A}")  # the same controllers: the file's token goes with them
    assert api.target().token == "tok"
    monkeypatch.setenv("DAOLINET_API", f"{B},{C}")  # others: it does not
    assert api.target().token is None
    config.write_text(json.dumps({"api": []}))
    with pytest.raises(InvalidInput, match="api must be a URL or a non-empty list of URLs"):
        api.load_config()


def test_the_next_command_starts_with_the_one_that_answered(env: Path) -> None:
    fleet = Fleet(a="dead")
    t = api.Target(tuple(Endpoint(u) for u in (A, B, C)), "tok", "test", "test")
    with api.ApiClient(t, transport=httpx.MockTransport(fleet.handler)) as c:
        assert c.call("GET", "/hosts") == {"served_by": B}
    assert api.remembered((A, B, C)) == B
    assert json.loads((env / "cache" / "daolinet" / "api-last.json").read_text()) == {f"{A},{B},{C}": B}
    fleet.modes[A] = "ok"
    with api.ApiClient(t, transport=httpx.MockTransport(fleet.handler)) as c:
        assert c.url == B
        assert c.call("GET", "/hosts") == {"served_by": B}
    assert api.remembered((A, C)) is None  # another list: nothing remembered for it


def test_a_torn_memory_is_no_memory(env: Path) -> None:
    path = Path(api.last_used_path())
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    assert api.remembered((A, B)) is None
    api.remember((A, B), B)
    assert api.remembered((A, B)) == B
