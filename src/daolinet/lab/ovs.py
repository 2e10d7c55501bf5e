"""One private Open vSwitch per simulated host: ovsdb-server and ovs-vswitchd
(userspace datapath, --disable-system) running inside the host's namespace,
with their own run dir, db socket, pid files and logs.  The system-wide OVS
is never touched: every path and socket lives under the host's run dir.

Both daemons `--detach` only once they are ready, so starting them is also
waiting for them: no sleeps.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from daolinet.errors import SystemFailure
from daolinet.system import procs

SCHEMA = "/usr/share/openvswitch/vswitch.ovsschema"


@dataclass(frozen=True)
class PrivateOvs:
    rundir: str
    netns: str

    @property
    def db_sock(self) -> str:
        return os.path.join(self.rundir, "db.sock")

    @property
    def db_endpoint(self) -> str:
        return f"unix:{self.db_sock}"

    def mgmt_sock(self, bridge: str) -> str:
        """ovs-vswitchd's per-bridge OpenFlow socket (ovs-ofctl talks to it)."""
        return os.path.join(self.rundir, f"{bridge}.mgmt")

    def pidfile(self, daemon: str) -> str:
        return os.path.join(self.rundir, f"{daemon}.pid")

    def ctl(self, daemon: str) -> str:
        return os.path.join(self.rundir, f"{daemon}.ctl")

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        for var in ("OVS_RUNDIR", "OVS_LOGDIR", "OVS_DBDIR", "OVS_SYSCONFDIR", "OVS_PKGDATADIR"):
            env.pop(var, None)
        env.update(OVS_RUNDIR=self.rundir, OVS_LOGDIR=self.rundir, OVS_DBDIR=self.rundir,
                   OVS_SYSCONFDIR=self.rundir)
        return env

    def start(self) -> dict[str, int]:
        """Start both daemons; return {'ovsdb-server': pid, 'ovs-vswitchd': pid}."""
        os.makedirs(self.rundir, exist_ok=True)
        db = os.path.join(self.rundir, "conf.db")
        if not os.path.exists(db):
            procs.run(["ovsdb-tool", "create", db, SCHEMA])
        self._daemon("ovsdb-server", [
            db, f"--remote=punix:{self.db_sock}",
        ])
        procs.run(["ovs-vsctl", f"--db={self.db_endpoint}", "--no-wait", "init"], env=self.env())
        self._daemon("ovs-vswitchd", [self.db_endpoint, "--disable-system"])
        pids = {}
        for daemon in ("ovsdb-server", "ovs-vswitchd"):
            pid = procs.read_pidfile(self.pidfile(daemon))
            if pid is None:
                raise SystemFailure(f"{daemon} in {self.netns} wrote no pid file")
            pids[daemon] = pid
        return pids

    def _daemon(self, daemon: str, args: list[str]) -> None:
        argv = [
            daemon, *args,
            f"--pidfile={self.pidfile(daemon)}",
            f"--unixctl={self.ctl(daemon)}",
            f"--log-file={os.path.join(self.rundir, daemon + '.log')}",
            "-vconsole:off", "--detach", "--no-chdir",
        ]
        procs.run(procs.in_netns(self.netns, argv), env=self.env(), timeout=30)

    def appctl(self, daemon: str, *args: str) -> str:
        return procs.run(["ovs-appctl", "-t", self.ctl(daemon), *args], env=self.env())

    def ofctl(self, bridge: str, *args: str) -> str:
        """ovs-ofctl against this host's bridge through its private socket."""
        return procs.run(
            ["ovs-ofctl", "-O", "OpenFlow13", args[0], f"unix:{self.mgmt_sock(bridge)}", *args[1:]],
            env=self.env(),
        )
