"""The secure control plane on the real lab (issue 12's acceptance): OpenFlow over
mutual TLS bound to host identities, the API over HTTPS only, least-privilege host
credentials, and containers that cannot reach the infrastructure."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable

import httpx
import pytest

from daolinet.lab import cluster, credentials, daemons, plan
from daolinet.security.tls import TlsFiles, client_context
from daolinet.system import procs
from daolinet.testing.labtools import api, ping, route_flows, wait_for

pytestmark = pytest.mark.integration
LabFactory = Callable[..., cluster.Lab]


def rogue(lab: cluster.Lab, from_host: str, dpid: int, tls: TlsFiles | None, hold: float = 3.0,
          plain: bool = False) -> dict[str, object]:
    """A test-made OpenFlow client claiming `dpid`, from `from_host`'s namespace."""
    ctl = daemons.ControllerPaths(lab.name)
    argv = [sys.executable, "-m", "daolinet.testing.rogue_switch", f"--connect={ctl.ip}:{plan.OF_PORT}",
            f"--dpid={dpid}", f"--hold={hold}"]
    if not plain:
        argv.append(f"--ca={credentials.pki_dir(lab.name)}/ca.crt")
    if tls is not None and tls.cert:
        argv += [f"--cert={tls.cert}", f"--key={tls.key}"]
    out = subprocess.run(procs.in_netns(lab.host(from_host).netns, argv), capture_output=True, text=True,
                         timeout=hold + 30, check=True)
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def ip_of(lab: cluster.Lab, name: str) -> str:
    ip = lab.container(name).ip
    assert ip is not None
    return ip


def controller_log(lab: cluster.Lab) -> str:
    with open(daemons.ControllerPaths(lab.name).log) as f:
        return f.read()


def test_a_rogue_switch_with_another_hosts_certificate_is_refused(lab_factory: LabFactory) -> None:
    lab = lab_factory(hosts=2)
    api(lab, "POST", "/networks", json={"name": "n", "subnet": "10.9.0.0/24"})
    lab.add_container("a", host="h1", network="n")
    lab.add_container("b", host="h2", network="n")
    assert ping(lab, "a", ip_of(lab, "b")).returncode == 0
    assert route_flows(lab, "h1")
    # A valid host certificate, but h2's: claiming h1's datapath id is refused.
    got = rogue(lab, "h2", dpid=1, tls=credentials.host(lab.name, "h2"))
    assert got["handshake"] and got["features_requested"], got
    assert got["closed_after"] is not None and float(got["closed_after"]) < 2.5, got  # type: ignore[arg-type]
    assert "certificate of h2 is not valid for host h1" in controller_log(lab)
    # h1 keeps its session: its route is still there and new connections (PacketIns) still plug.
    assert route_flows(lab, "h1")
    assert 1 in api(lab, "GET", "/health")["synced"]
    lab.add_container("c", host="h1", network="n")
    assert ping(lab, "c", ip_of(lab, "b")).returncode == 0
    assert ping(lab, "a", ip_of(lab, "b")).returncode == 0


def test_a_client_without_a_certificate_never_completes_the_handshake(lab_factory: LabFactory) -> None:
    lab = lab_factory(hosts=1)
    got = rogue(lab, "h1", dpid=1, tls=TlsFiles(f"{credentials.pki_dir(lab.name)}/ca.crt"), hold=2)
    assert not got["features_requested"], got
    assert got.get("error") or got["closed_after"] is not None, got
    plain = rogue(lab, "h1", dpid=1, tls=None, hold=2, plain=True)  # plaintext to the TLS port
    assert not plain["features_requested"], plain
    assert 1 in api(lab, "GET", "/health")["synced"]


def test_a_genuine_reconnect_of_a_host_still_replaces_its_session(lab_factory: LabFactory) -> None:
    lab = lab_factory(hosts=2)
    api(lab, "POST", "/networks", json={"name": "n", "subnet": "10.9.1.0/24"})
    lab.add_container("a", host="h1", network="n")
    lab.add_container("b", host="h2", network="n")
    before = controller_log(lab).count("switch 0x1 connected")
    got = rogue(lab, "h2", dpid=1, tls=credentials.host(lab.name, "h1"), hold=1.5)
    assert got["handshake"] and got["features_requested"], got
    assert "not valid for host h1" not in controller_log(lab)
    # The right certificate replaced h1's channel; h1's own switch reconnects and takes it back.
    wait_for(lambda: controller_log(lab).count("switch 0x1 connected") >= before + 2, timeout=15,
             what="h1's switch reconnecting")
    lab.wait_synced([1, 2])
    assert ping(lab, "a", ip_of(lab, "b")).returncode == 0


def test_the_api_is_https_only_and_host_credentials_act_only_for_their_host(lab_factory: LabFactory) -> None:
    lab = lab_factory(hosts=2)
    ctl = daemons.ControllerPaths(lab.name)
    plain = httpx.Client(transport=httpx.HTTPTransport(uds=ctl.api_sock))
    with pytest.raises(httpx.HTTPError):
        plain.get(f"http://{ctl.ip}:{plan.API_PORT}/health")
    plain.close()
    with lab.api() as admin:
        assert admin.call("GET", "/health")
    h1 = credentials.host(lab.name, "h1")
    with httpx.Client(transport=httpx.HTTPTransport(uds=ctl.api_sock, verify=client_context(h1)),
                      base_url=ctl.api_url(True)) as http:
        assert http.get("/healthz").status_code == 200
        assert http.put("/hosts/h1/heartbeat").status_code == 200
        denied = http.put("/hosts/h2/heartbeat")
        assert denied.status_code == 403, denied.text
        assert "not valid for host h2" in denied.json()["error"]
        assert http.post("/endpoints", json={"name": "x", "network": "n", "host": "h2"}).status_code == 403
        assert http.post("/groups", json={"name": "g"}).status_code == 403
        assert http.post("/internal/switches/1/ofmsgs", content=b"").status_code == 403
    # A client that does not trust the lab's CA never talks to the API.
    with httpx.Client(transport=httpx.HTTPTransport(uds=ctl.api_sock),
                      base_url=ctl.api_url(True)) as untrusting, pytest.raises(httpx.ConnectError):
        untrusting.get("/healthz")


STREAM = [sys.executable, "-m", "daolinet.testing.stream"]


def probe(lab: cluster.Lab, src: str, ip: str, port: int, timeout: float = 1.5) -> bool:
    """A TCP connection from `src` to ip:port completes (a SYN-ACK came back)."""
    return lab.exec(src, [*STREAM, "probe", ip, str(port), "--timeout", str(timeout)],
                    check=False).returncode == 0


def etcd_endpoints(lab: cluster.Lab) -> list[tuple[str, int]]:
    url = str(lab._state.extra.get("store") or "")
    if not url.startswith("etcd://"):
        return []
    hosts = url[len("etcd://"):].split("/", 1)[0].split(",")
    return [(h.rpartition(":")[0], int(h.rpartition(":")[2])) for h in hosts]


@pytest.mark.parametrize("store", ["sqlite", "etcd"])
def test_containers_reach_no_infrastructure_but_port_mappings(lab_factory: LabFactory, store: str) -> None:
    lab = lab_factory(hosts=2, store=store)
    api(lab, "POST", "/networks", json={"name": "n", "subnet": "10.9.2.0/24"})
    api(lab, "POST", "/networks", json={"name": "ext", "subnet": "10.9.3.0/24", "external": True})
    lab.add_container("a", host="h1", network="n")
    lab.add_container("e", host="h1", network="ext")
    lab.add_container("web", host="h2", network="n")
    servers = [lab.popen(h, [*STREAM, "listen", "9999"], stdout=subprocess.PIPE) for h in ("h1", "h2")]
    servers.append(lab.popen("web", [*STREAM, "whoami", "80"], stdout=subprocess.PIPE))
    try:
        for s in servers:
            assert s.stdout is not None and "listening" in s.stdout.readline()
        api(lab, "POST", "/portmaps", json={"name": "http", "container": "web", "rule": "8080:80/tcp",
                                            "host": "h2"})
        h1, h2 = lab.host("h1").underlay_ip, lab.host("h2").underlay_ip
        ctl = daemons.ControllerPaths(lab.name).ip
        # What a host reaches over the underlay (so each target really answers)...
        targets = [(ctl, plan.API_PORT), (ctl, plan.OF_PORT), (h1, 9999), (h2, 9999), *etcd_endpoints(lab)]
        for ip, port in targets:
            assert probe(lab, "h2" if ip == h1 else "h1", ip, port), f"{ip}:{port} does not answer hosts"
        # ...no container does, on an ordinary network or an external one.
        for src in ("a", "e"):
            reached = [f"{ip}:{port}" for ip, port in targets if probe(lab, src, ip, port)]
            assert reached == [], f"container {src} reached infrastructure {reached}"
            assert probe(lab, src, h2, 8080, timeout=3), f"container {src} cannot use the port mapping"
        assert ping(lab, "a", ip_of(lab, "web")).returncode == 0  # containers still reach each other
    finally:
        for s in servers:
            s.kill()
            s.wait()
