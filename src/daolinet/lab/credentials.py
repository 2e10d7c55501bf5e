"""The lab's identities, as an installation would have them: one CA under the lab's
run dir, a certificate per controller (naming its underlay address, where agents
and peers reach it), per host, for the lab's etcd client, and an admin user
certificate the CLI on this machine uses.  `lab up --insecure` makes none."""

from __future__ import annotations

import os

from daolinet.lab import plan
from daolinet.security import pki
from daolinet.security.identity import Role
from daolinet.security.tls import TlsFiles

ADMIN_USER = "admin"


def pki_dir(lab: str) -> str:
    return os.path.join(plan.lab_dir(lab), "pki")


def make_ca(lab: str) -> None:
    pki.init_ca(pki_dir(lab), force=True)
    pki.issue(pki_dir(lab), "user", ADMIN_USER, force=True)


def controller(lab: str, index: int) -> TlsFiles:
    """Controller `index`'s pair (made on first use: a restarted controller keeps it)."""
    files = TlsFiles.of(pki_dir(lab), "controller", f"c{index}")
    if not os.path.exists(files.cert or ""):
        pki.issue(pki_dir(lab), "controller", f"c{index}", sans=(str(plan.controller_ip(index)),))
    return files


def host(lab: str, name: str) -> TlsFiles:
    files = TlsFiles.of(pki_dir(lab), "host", name)
    if not os.path.exists(files.cert or ""):
        pki.issue(pki_dir(lab), "host", name)
    return files


def admin(lab: str) -> TlsFiles:
    return TlsFiles.of(pki_dir(lab), "user", ADMIN_USER)


def issue(lab: str, role: Role, name: str) -> TlsFiles:
    """Another holder's pair (tests: a second user, a rogue host)."""
    pki.issue(pki_dir(lab), role, name, force=True)
    return TlsFiles.of(pki_dir(lab), role, name)
