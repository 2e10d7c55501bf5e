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
    return _pair(lab, "controller", f"c{index}", (str(plan.controller_ip(index)),))


def host(lab: str, name: str) -> TlsFiles:
    return _pair(lab, "host", name)


def admin(lab: str) -> TlsFiles:
    return TlsFiles.of(pki_dir(lab), "user", ADMIN_USER)


def _pair(lab: str, role: Role, name: str, sans: tuple[str, ...] = ()) -> TlsFiles:
    """`role` `name`'s pair in the lab's PKI, issued the first time it is asked for."""
    files = TlsFiles.of(pki_dir(lab), role, name)
    if not os.path.exists(files.cert or ""):
        pki.issue(pki_dir(lab), role, name, sans=sans)
    return files
