"""docs/deploy.md, followed step by step on simulated machines: one controller machine and
two container hosts, each its own network, mount and UTS namespace with private /etc,
/run, /var, /opt (daolinet.testing.machines), so every daemon runs with its production
default paths. The wheel is built and installed as an operator would; daemons start from
the units' own ExecStart lines (testing/units.py); Docker containers on the two hosts
talk, a containerd (`ctr run --cni`) container reaches a Docker one, and a host that
loses power comes back with its containers' connectivity and no operator action.

What differs from real machines: no systemd (units.py runs the unit's lines, honours
Type=notify, its user and credentials), Open vSwitch runs its userspace datapath (no
kernel module here: `datapath = "auto"` says so and falls back), and Debian's own
openvswitch-switch and docker.io services are started by their daemons' plain commands.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from daolinet.lab.docker import busybox_rootfs
from daolinet.testing.fixtures import need_root, new_lab_name
from daolinet.testing.labtools import wait_for
from daolinet.testing.machines import SHARE, UPLINK, Machine, Machines
from daolinet.testing.units import start

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
UNITS = ROOT / "contrib" / "systemd"
VERSION = "0.1.0"
PKI = "/root/daolinet-pki"
CTR = ["ctr", "--address", "/run/docker/containerd/containerd.sock", "--namespace", "default"]
POOLS = {"h1": "198.18.64.128/28", "h2": "198.18.64.144/28"}


@pytest.fixture(scope="module")
def wheelhouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The built wheel and what it needs (the machines reach no package index)."""
    out = tmp_path_factory.mktemp("wheels")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "-w", str(out), str(ROOT)], check=True,
                   capture_output=True)
    return out


@pytest.fixture
def machines(wheelhouse: Path) -> Iterator[Machines]:
    need_root()
    ms = Machines(new_lab_name())
    try:
        ms.create("ctl", "h1", "h2")
        subprocess.run(["cp", "-r", str(wheelhouse), f"{ms.share}/wheels"], check=True)
        Path(ms.share, "busybox.tar").write_bytes(busybox_rootfs())
        yield ms
    finally:
        ms.destroy()
    assert ms.leftovers() == []


# -- the guide's steps ------------------------------------------------------------------------


def install(m: Machine) -> None:
    """2. daolinet itself: a virtualenv per version, the command linked."""
    venv = f"/opt/daolinet-{VERSION}"
    m.sh(f"python3 -m venv {venv} && {venv}/bin/pip install -q --no-index --find-links {SHARE}/wheels "
         f"daolinet && ln -sfn {venv} /opt/daolinet && "
         "ln -sf /opt/daolinet/bin/daolinet /usr/local/bin/daolinet", timeout=300)


def identities(ctl: Machine) -> None:
    """3. One CA, a certificate per controller, host and operator, copied where they go."""
    ctl.run(["daolinet", "pki", "init", "--dir", PKI])
    ctl.run(["daolinet", "pki", "issue", "controller", "ctl", "--dir", PKI, "--san", ctl.ip])
    for name in ("h1", "h2"):
        ctl.run(["daolinet", "pki", "issue", "host", name, "--dir", PKI])
    ctl.run(["daolinet", "pki", "issue", "user", "admin", "--dir", PKI])
    ctl.sh(f"install -d -m 0700 /etc/daolinet/pki && install -m 0600 {PKI}/ca.crt /etc/daolinet/pki/ && "
           f"install -m 0600 {PKI}/controller-ctl.crt /etc/daolinet/pki/controller.crt && "
           f"install -m 0600 {PKI}/controller-ctl.key /etc/daolinet/pki/controller.key")
    for name in ("h1", "h2"):  # "scp" through the share
        ctl.sh(f"install -d -m 0700 {SHARE}/pki-{name} && "
               f"install -m 0600 {PKI}/ca.crt {SHARE}/pki-{name}/ && "
               f"install -m 0600 {PKI}/host-{name}.crt {SHARE}/pki-{name}/host.crt && "
               f"install -m 0600 {PKI}/host-{name}.key {SHARE}/pki-{name}/host.key")


def controller(ms: Machines, ctl: Machine) -> None:
    """4. controller.toml and the unit."""
    ctl.sh("cat > /etc/daolinet/controller.toml", input=(
        'of_listen = ["ssl:0.0.0.0:6653"]\n'
        f'api_listen = ["{ctl.ip}:8650"]\n'
        f'advertise = ["{ctl.ip}"]\n'))
    start(ctl, str(UNITS / "daolinet-controller.service"), ms.share)
    ctl.sh("mkdir -p /root/.config/daolinet && cat > /root/.config/daolinet/config.json", input=json.dumps(
        {"api": [f"https://{ctl.ip}:8650"], "ca": f"{PKI}/ca.crt", "cert": f"{PKI}/user-admin.crt",
         "key": f"{PKI}/user-admin.key"}))


def start_ovs(m: Machine) -> None:
    """What Debian's openvswitch-switch service does, with the userspace datapath."""
    m.sh("mkdir -p /etc/openvswitch /run/openvswitch /var/log/openvswitch && "
         "if [ ! -e /var/lib/daolinet-ovs-made ]; then rm -f /etc/openvswitch/conf.db && "
         "ovsdb-tool create /etc/openvswitch/conf.db /usr/share/openvswitch/vswitch.ovsschema && "
         "mkdir -p /var/lib && touch /var/lib/daolinet-ovs-made; fi && "
         "ovsdb-server /etc/openvswitch/conf.db --remote=punix:/run/openvswitch/db.sock --pidfile "
         "--detach --log-file && ovs-vsctl --no-wait init && "
         "ovs-vswitchd --disable-system --pidfile --detach --log-file")


def start_docker(ms: Machines, m: Machine) -> subprocess.Popen[str]:
    """What docker.service does; daemon.json as a host without Docker's own networking has it."""
    m.sh("mkdir -p /etc/docker && cat > /etc/docker/daemon.json", input=json.dumps({
        "bridge": "none", "iptables": False, "ip6tables": False, "ip-forward": False, "ip-masq": False,
        "userland-proxy": False, "cgroup-parent": ms.cgroup_parent(m.name),
        "exec-opts": ["native.cgroupdriver=cgroupfs"]}))
    proc = m.popen(["sh", "-c", "exec dockerd >>/var/log/dockerd.log 2>&1"])
    wait_for(lambda: m.run(["docker", "info"], check=False).returncode == 0, timeout=60,
             what=f"dockerd on {m.name}")
    return proc


def container_host(ms: Machines, m: Machine, ctl: Machine) -> None:
    """5. A container host: OVS, its certificate, host init, the agent unit, Docker, CNI."""
    start_ovs(m)
    m.sh(f"install -d -m 0700 /etc/daolinet/pki && install -m 0600 {SHARE}/pki-{m.name}/* /etc/daolinet/pki/")
    m.run(["daolinet", "host", "init", "--uplink", UPLINK, "--name", m.name, "--pip-pool", POOLS[m.name],
           "--controller", f"ssl:{ctl.ip}:6653", "--api", f"https://{ctl.ip}:8650"])
    start(m, str(UNITS / "daolinet-agent.service"), ms.share)
    start_docker(ms, m)
    m.run(["docker", "import", "--change", 'CMD ["sh"]', f"{SHARE}/busybox.tar", "busybox:latest"])
    m.run(["daolinet", "install-cni", "--network", "net1"])


def boot(ms: Machines, m: Machine) -> None:
    """Power on: the services in unit order (OVS, the agent, Docker)."""
    start_ovs(m)
    start(m, str(UNITS / "daolinet-agent.service"), ms.share)
    start_docker(ms, m)


def ip_of(m: Machine, container: str) -> str:
    out = m.run(["docker", "inspect", "-f", '{{(index .NetworkSettings.Networks "net1").IPAddress}}',
                 container]).stdout.strip()
    assert out, f"{container} on {m.name} has no address on net1"
    return out


def pings(m: Machine, container: str, ip: str) -> bool:
    return m.run(["docker", "exec", container, "ping", "-c1", "-W2", ip], check=False).returncode == 0


# -- the test ---------------------------------------------------------------------------------


def test_the_deployment_guide_on_three_machines(machines: Machines) -> None:
    ctl, h1, h2 = (machines.machines[n] for n in ("ctl", "h1", "h2"))
    with ThreadPoolExecutor() as pool:  # three machines, installed side by side
        list(pool.map(install, (ctl, h1, h2)))
    identities(ctl)
    controller(machines, ctl)
    for m in (h1, h2):
        container_host(machines, m, ctl)
    hosts = json.loads(ctl.run(["daolinet", "host", "ls", "--json"]).stdout)
    assert sorted(h["name"] for h in hosts) == ["h1", "h2"]

    # 7. First containers: a Docker network made on h1 is on h2 too.
    h1.run(["docker", "network", "create", "-d", "daolinet", "--ipam-driver", "daolinet",
            "--subnet", "10.5.0.0/24", "net1"])
    h1.run(["docker", "run", "-d", "--restart", "always", "--network", "net1", "--name", "web",
            "busybox", "sleep", "1d"])
    wait_for(lambda: "net1" in h2.run(["docker", "network", "ls"]).stdout, timeout=30,
             what="net1 on h2's dockerd")
    h2.run(["docker", "run", "-d", "--restart", "always", "--network", "net1", "--name", "db",
            "busybox", "sleep", "1d"])
    web, db = ip_of(h1, "web"), ip_of(h2, "db")
    assert pings(h2, "db", web) and pings(h1, "web", db)

    # A CNI container made by containerd on h1 reaches the Docker container on h2.
    h1.sh(f"docker save busybox:latest -o /tmp/busybox-image.tar && {' '.join(CTR)} images import "
          "/tmp/busybox-image.tar")
    cni = h1.run([*CTR, "run", "--cni", "--rm", "--cgroup", f"{machines.cgroup_parent('h1')}/cni1",
                  "docker.io/library/busybox:latest", "cni1", "ping", "-c1", "-W3", db], check=False)
    assert cni.returncode == 0, cni.stderr + cni.stdout

    # A power cut on h2; the services start again in unit order; its container is back on the
    # network (Docker's restart policy, the agent's plugin there before Docker asks).
    h2.power_off()
    assert h1.run(["docker", "exec", "web", "ping", "-c1", "-W1", db], check=False).returncode != 0
    boot(machines, h2)
    wait_for(lambda: h2.run(["docker", "inspect", "-f", "{{.State.Running}}", "db"]).stdout.strip() == "true",
             timeout=60, what="db running again on h2")
    db = ip_of(h2, "db")
    wait_for(lambda: pings(h1, "web", db), timeout=60, what="web (h1) reaching db (h2) after h2's reboot")
    assert pings(h2, "db", web)
    assert os.path.isdir(machines.share)
