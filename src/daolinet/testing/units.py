"""Start a daemon on a simulated machine the way systemd would from its unit file
(`contrib/systemd/*.service`): the unit's own ExecStart line, as its User, with its
State/Runtime directories made, and `Type=notify` honoured: started means READY=1
arrived on $NOTIFY_SOCKET, not "the process exists".

Only what daolinet's units use is understood; anything else in [Service] that would
change how the process runs is refused, so a unit cannot quietly drift from what the
deployment test proves.
"""

from __future__ import annotations

import configparser
import os
import shlex
import socket
import subprocess
import time
from dataclasses import dataclass

from daolinet.errors import SystemFailure
from daolinet.testing.machines import SHARE, Machine

# [Service] keys that only sandbox or supervise the process: the test runs it without them.
IGNORED = {"Type", "Restart", "RestartSec", "NoNewPrivileges", "ProtectSystem", "ProtectHome", "PrivateTmp",
           "PrivateDevices", "ProtectKernelTunables", "ProtectKernelModules", "ProtectControlGroups",
           "ProtectKernelLogs", "ProtectClock", "ProtectHostname", "RestrictSUIDSGID", "RestrictRealtime",
           "RestrictNamespaces", "LockPersonality", "MemoryDenyWriteExecute", "SystemCallArchitectures",
           "SystemCallFilter", "RestrictAddressFamilies", "CapabilityBoundingSet", "AmbientCapabilities",
           "ReadWritePaths", "ReadOnlyPaths", "TimeoutStartSec", "TimeoutStopSec", "KillMode", "LimitNOFILE",
           "NotifyAccess", "WatchdogSec", "UMask", "DevicePolicy", "ProtectProc", "ProcSubset",
           "PrivateUsers", "RemoveIPC", "KeyringMode", "ExecReload", "SyslogIdentifier",
           "StateDirectoryMode", "RuntimeDirectoryMode", "ConfigurationDirectory",
           "ConfigurationDirectoryMode", "LogsDirectory", "CacheDirectory", "RuntimeDirectoryPreserve"}
HANDLED = {"ExecStart", "User", "Group", "DynamicUser", "StateDirectory", "RuntimeDirectory",
           "Environment", "ExecStartPre", "LoadCredential"}


@dataclass(frozen=True)
class Unit:
    name: str
    exec_start: list[str]
    exec_start_pre: list[list[str]]
    user: str | None
    state_dirs: list[str]
    runtime_dirs: list[str]
    environment: dict[str, str]
    notify: bool
    credentials: dict[str, str]  # LoadCredential=NAME:PATH

    @property
    def credentials_dir(self) -> str:
        return f"/run/credentials/{self.name}"

    @classmethod
    def read(cls, path: str) -> Unit:
        parser = configparser.ConfigParser(strict=False, interpolation=None)
        parser.optionxform = str  # type: ignore[assignment,method-assign]
        with open(path) as f:  # LoadCredential= repeats: keep every line, not the last
            creds = dict(line.strip().split("=", 1)[1].split(":", 1) for line in f
                         if line.startswith("LoadCredential="))
        parser.read(path)
        svc = parser["Service"]
        unknown = set(svc) - IGNORED - HANDLED
        if unknown:
            raise SystemFailure(f"{path}: [Service] {', '.join(sorted(unknown))}: not understood by "
                                "the deployment test (teach testing/units.py)")
        env = dict(item.split("=", 1) for item in shlex.split(svc.get("Environment", "")))
        user = svc.get("User") or ("daolinet" if svc.get("DynamicUser") == "yes" else None)
        return cls(name=os.path.basename(path), exec_start=_command(svc["ExecStart"]),
                   exec_start_pre=[_command(c) for c in svc.get("ExecStartPre", "").splitlines() if c],
                   user=user, state_dirs=svc.get("StateDirectory", "").split(),
                   runtime_dirs=svc.get("RuntimeDirectory", "").split(), environment=env,
                   notify=svc.get("Type") == "notify", credentials=creds)


def _command(line: str) -> list[str]:
    return shlex.split(line.lstrip("-@+!:"))


class Started:
    def __init__(self, unit: Unit, proc: subprocess.Popen[str], log: str) -> None:
        self.unit, self.proc, self.log = unit, proc, log


def start(machine: Machine, unit_path: str, share_dir: str, timeout: float = 60) -> Started:
    """Run the unit's ExecStart on MACHINE and wait for READY=1 (Type=notify)."""
    unit = Unit.read(unit_path)
    if unit.user:
        machine.sh(f"id -u {unit.user} >/dev/null 2>&1 || useradd --system --no-create-home "
                   f"--shell /usr/sbin/nologin {unit.user}")
    for d in [f"/var/lib/{d}" for d in unit.state_dirs] + [f"/run/{d}" for d in unit.runtime_dirs]:
        machine.run(["install", "-d", "-m", "0750", *(["-o", unit.user] if unit.user else []), d])
    if unit.credentials:  # a directory only the service's user can read, as systemd's %d
        d, owner = unit.credentials_dir, (["-o", unit.user] if unit.user else [])
        machine.run(["install", "-d", "-m", "0500", *owner, d])
        for cred, src in unit.credentials.items():
            machine.run(["install", "-m", "0400", *owner, src, f"{d}/{cred}"])
    for pre in unit.exec_start_pre:
        machine.run(pre)
    sock_name = f"notify-{machine.name}-{unit.name}.sock"
    host_path = os.path.join(share_dir, sock_name)
    if os.path.exists(host_path):
        os.unlink(host_path)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(host_path)
    os.chmod(host_path, 0o777)  # a unit's own user must be able to send
    log = f"/var/log/{unit.name}.log"
    argv = [a.replace("%d", unit.credentials_dir) for a in unit.exec_start]
    if unit.user:
        argv = ["setpriv", f"--reuid={unit.user}", f"--regid={unit.user}", "--init-groups", "--", *argv]
    env = {**unit.environment, "NOTIFY_SOCKET": f"{SHARE}/{sock_name}"}
    proc = machine.popen(["sh", "-c", f'exec "$@" >>{log} 2>&1', "sh", *argv], env=env)
    try:
        if unit.notify:
            _wait_ready(listener, proc, machine, unit, log, timeout)
    finally:
        listener.close()
        os.unlink(host_path)
    return Started(unit, proc, log)


def _wait_ready(listener: socket.socket, proc: subprocess.Popen[str], machine: Machine, unit: Unit,
                log: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemFailure(f"{machine.name}: {unit.name} exited {proc.returncode} before READY=1:\n"
                                f"{machine.read(log)[-3000:]}")
        listener.settimeout(0.2)
        try:
            message = listener.recv(4096).decode()
        except TimeoutError:
            continue
        if "READY=1" in message.split("\n"):
            return
    raise SystemFailure(f"{machine.name}: {unit.name} sent no READY=1 within {timeout:.0f}s:\n"
                        f"{machine.read(log)[-3000:]}")
