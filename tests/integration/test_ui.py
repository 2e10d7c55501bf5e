"""The live map (/ui) in a real browser: Debian's chromium driven headless by Playwright,
against a real lab.  The map shows every host and container; a ping between containers
on different hosts draws their edge within a second; the edge goes after the idle
timeout; the trace form names the rule that denies a pair; a tenant token sees only its
tenant.  Screenshots of these states are saved under build/test-artefacts/ui/ (or
$DAOLINET_ARTEFACTS).

The lab's API is TLS on a unix socket (the root namespace has no underlay address); the
test forwards a port of 127.0.0.1 to it, and the browser accepts the lab CA's
certificate without knowing the CA (ignore_https_errors) and signs in with a token."""

from __future__ import annotations

import contextlib
import os
import socket
import socketserver
import subprocess
import threading
import time
from collections.abc import Callable, Iterator

import pytest
from playwright.sync_api import Page, expect, sync_playwright

from daolinet.lab import cluster
from daolinet.testing.labtools import api, wait_for

pytestmark = pytest.mark.integration
LabFactory = Callable[..., cluster.Lab]
CHROMIUM = "/usr/bin/chromium"
IDLE = 3  # the lab's --idle-timeout, seconds
ARTEFACTS = os.environ.get("DAOLINET_ARTEFACTS", os.path.join("build", "test-artefacts", "ui"))


def _pipe(src: socket.socket, dst: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while data := src.recv(65536):
            dst.sendall(data)
    with contextlib.suppress(OSError):
        dst.shutdown(socket.SHUT_WR)


@contextlib.contextmanager
def forwarded(uds: str) -> Iterator[int]:
    """A port of 127.0.0.1 forwarded, byte for byte, to the API's unix socket."""

    class Handler(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            with socket.socket(socket.AF_UNIX) as up:
                up.connect(uds)
                back = threading.Thread(target=_pipe, args=(up, self.request), daemon=True)
                back.start()
                _pipe(self.request, up)
                back.join()

    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()


def shot(page: Page, name: str) -> None:
    os.makedirs(ARTEFACTS, exist_ok=True)
    page.screenshot(path=os.path.join(ARTEFACTS, f"{name}.png"), full_page=True)


def sign_in(page: Page, url: str, token: str) -> None:
    page.goto(url + "/ui")
    expect(page.locator("#login")).to_be_visible()  # no credential yet: the page asks
    page.fill("#token", token)
    page.click("#login button[type=submit]")
    expect(page.locator("#status")).to_have_text("live")


def edge(page: Page, a: str, b: str) -> str:
    return f'.edge[data-live="1"][data-names~="{a}"][data-names~="{b}"]'


@pytest.fixture
def lab(lab_factory: LabFactory) -> cluster.Lab:
    """h1: a, c; h2: b (tenant default, net1); tenant blue: x on h2 (net blue)."""
    lab = lab_factory(hosts=2, idle_timeout=IDLE)
    api(lab, "POST", "/networks", json={"name": "net1", "subnet": "10.1.0.0/24"})
    for name, host in (("a", "h1"), ("b", "h2"), ("c", "h1")):
        lab.add_container(name, host=host, network="net1")
    api(lab, "POST", "/tenants", json={"name": "blue"})
    api(lab, "POST", "/networks", json={"name": "bluenet", "subnet": "10.1.0.0/24", "tenant": "blue"})
    lab.add_container("x", host="h2", network="bluenet", tenant="blue")
    return lab


def test_live_map_hosts_edges_idle_trace_and_tenant(lab: cluster.Lab) -> None:
    blue = api(lab, "POST", "/tokens", json={"name": "blue-viewer", "tenant": "blue"})["token"]
    b_ip = lab.container("b").ip
    assert b_ip is not None
    with forwarded(lab.api_uds) as port, sync_playwright() as pw:
        url = f"https://127.0.0.1:{port}"
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        admin = browser.new_context(ignore_https_errors=True, viewport={"width": 1400, "height": 1000})
        page = admin.new_page()
        sign_in(page, url, lab.admin_token)

        # every host and container, with its addresses
        expect(page.locator(".host")).to_have_count(2)
        expect(page.locator(".ctr")).to_have_count(4)
        for name in ("a", "b", "c", "x"):
            expect(page.locator(f'.ctr[data-name="{name}"]')).to_contain_text(lab.container(name).ip or "?")
        expect(page.locator('.host[data-host="h1"] .ctr')).to_have_count(2)
        expect(page.locator(edge(page, "a", "b"))).to_have_count(0)
        shot(page, "1-hosts-and-containers")

        # a ping across hosts: its edge within a second of the first packet
        started = time.monotonic()
        pinger = lab.popen("a", ["ping", "-i", "0.2", b_ip], stdout=subprocess.DEVNULL)
        try:
            page.locator(edge(page, "a", "b")).wait_for(state="attached", timeout=5000)
            appeared = time.monotonic() - started
            assert appeared < 1.0, f"edge a-b appeared {appeared:.2f} s after the ping started"
            shot(page, "2-live-route")

            # the container's details: identity, its route with packets counted
            page.click('.ctr[data-name="a"]')
            details = page.locator("#detail-body")
            endpoint = next(e for e in api(lab, "GET", "/endpoints") if e["name"] == "a")
            for value in (endpoint["ip"], endpoint["pip"], endpoint["mac"], "h1"):
                expect(details).to_contain_text(value)

            def counted() -> bool:
                answers = details.get_attribute("data-answers")
                page.click('.ctr[data-name="a"]')  # details are read on click: click again, wait for them
                page.wait_for_function(f"$('detail-body').dataset.answers !== '{answers}'")
                cells = page.locator("#detail-routes tr").nth(1).locator("td")
                return cells.count() > 2 and cells.nth(0).inner_text() == "b" and \
                    cells.nth(2).inner_text() not in ("—", "0")
            wait_for(counted, what="the route's packet count in the details", timeout=10)
            shot(page, "3-container-details")
        finally:
            pinger.kill()
            pinger.wait()

        # idle: the edge goes after the idle timeout (not before), then fades out of the page
        stopped = time.monotonic()
        page.locator(edge(page, "a", "b")).wait_for(state="detached", timeout=(IDLE + 15) * 1000)
        gone = time.monotonic() - stopped
        assert gone >= IDLE - 1, f"edge went {gone:.1f} s after the last packet, before the idle timeout"
        expect(page.locator("#counts")).to_contain_text("0 live routes")
        page.locator('.edge[data-names~="a"][data-names~="b"]').wait_for(state="detached", timeout=5000)
        shot(page, "4-route-idled-out")

        # a deny rule: the trace form names it
        api(lab, "POST", "/groups", json={"name": "front", "members": ["container:a"]})
        api(lab, "POST", "/groups", json={"name": "back", "members": ["container:b"]})
        api(lab, "POST", "/rules", json={"from": "front", "to": "back", "protocol": "any", "action": "deny",
                                         "priority": 500, "name": "freeze"})
        page.fill("#t-src", "a")
        page.fill("#t-dst", "b")
        page.fill("#t-tenant", "default")
        page.click("#trace button[type=submit]")
        expect(page.locator("#trace-decision")).to_contain_text("DENIED")
        expect(page.locator("#trace-out")).to_contain_text("freeze")
        page.click('.ctr[data-name="a"]')
        expect(page.locator("#detail-rules")).to_contain_text("rule freeze")
        c_pinger = lab.popen("c", ["ping", "-i", "0.2", b_ip], stdout=subprocess.DEVNULL)  # c is not frozen
        try:
            page.locator(edge(page, "c", "b")).wait_for(state="attached", timeout=5000)
            shot(page, "5-trace-denied")  # the README's picture: a live route, a denied trace
        finally:
            c_pinger.kill()
            c_pinger.wait()
        page.fill("#t-src", "c")  # an allowed pair: the flows its route has on both hosts
        page.click("#trace button[type=submit]")
        expect(page.locator("#trace-decision")).to_contain_text("ALLOWED")
        expect(page.locator("pre.flows")).to_have_count(2)
        expect(page.locator('pre.flows[data-host="h1"]')).to_contain_text(b_ip)
        expect(page.locator('pre.flows[data-host="h2"]')).to_contain_text(b_ip)

        # a tenant token: its tenant only
        tenant = browser.new_context(ignore_https_errors=True, viewport={"width": 1400, "height": 1000})
        tpage = tenant.new_page()
        sign_in(tpage, url, blue)
        expect(tpage.locator(".ctr")).to_have_count(1)
        expect(tpage.locator(".ctr")).to_have_attribute("data-name", "x")
        expect(tpage.locator(".host")).to_have_count(1)  # h2 only: where its container lives
        expect(tpage.locator("#who")).to_contain_text("tenant blue")
        tpage.fill("#t-src", "a")
        tpage.fill("#t-dst", "b")
        tpage.fill("#t-tenant", "default")
        tpage.click("#trace button[type=submit]")
        expect(tpage.locator("#trace-error")).to_contain_text("not found")
        shot(tpage, "6-tenant-view")
        browser.close()
