"""`daolinet install-cni`: make daolinet's CNI plugin findable by runtimes.

Runtimes look for a plugin by its `type` in their bin dir (/opt/cni/bin) and for networks
in their conf dir (/etc/cni/net.d), never inside our virtualenv.  So we write two files:
a launcher `BIN_DIR/daolinet` that execs this installation's `daolinet-cni` by absolute
path, and `CONF_DIR/10-daolinet-NETWORK.conflist` naming it.  `plan` decides (pure),
`apply` writes: every file is checked before any is written, and each is replaced
atomically, so a refused or failed install changes nothing half-way.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import sys
import tempfile
from dataclasses import dataclass

from daolinet.errors import Conflict, InvalidInput

PLUGIN_TYPE = "daolinet"  # the launcher's name: the conflist's plugin "type"
CONF_VERSION = "1.0.0"  # what Debian 12's containerd (libcni 1.1) reads; the plugin speaks 1.1.0 too
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


@dataclass(frozen=True)
class File:
    path: str
    content: str
    mode: int


def cni_binary() -> str:
    """This installation's `daolinet-cni`: beside the interpreter, as pip installs scripts."""
    path = os.path.join(os.path.dirname(os.path.abspath(sys.executable)), "daolinet-cni")
    if not os.access(path, os.X_OK):
        raise InvalidInput(f"{path} is missing: install-cni runs from the installation that has daolinet-cni")
    return path


def launcher(binary: str) -> str:
    return ("#!/bin/sh\n"
            "# daolinet's CNI plugin, written by `daolinet install-cni`: runs the installation's shim.\n"
            f"exec {shlex.quote(binary)} \"$@\"\n")


def conflist(network: str, agent_socket: str) -> str:
    """The network list: one plugin, the launcher; the CNI network's name is daolinet's network."""
    plugin = {"type": PLUGIN_TYPE, "agentSocket": agent_socket}
    return json.dumps({"cniVersion": CONF_VERSION, "name": network, "plugins": [plugin]}, indent=2) + "\n"


def plan(bin_dir: str, conf_dir: str, network: str, agent_socket: str, binary: str) -> list[File]:
    if not _NAME_RE.match(network):
        raise InvalidInput(f"--network {network!r}: letters, digits, '_', '.', '-' only")
    if not os.path.isabs(agent_socket):
        raise InvalidInput(f"--agent-socket {agent_socket!r} must be an absolute path")
    return [File(os.path.join(bin_dir, PLUGIN_TYPE), launcher(binary), 0o755),
            File(os.path.join(conf_dir, f"10-daolinet-{network}.conflist"), conflist(network, agent_socket),
                 0o644)]


def state(f: File) -> str:
    """'new', 'unchanged' or 'different' (content or mode)."""
    try:
        with open(f.path) as fh:
            same = fh.read() == f.content and (os.stat(f.path).st_mode & 0o7777) == f.mode
    except FileNotFoundError:
        return "new"
    except (OSError, UnicodeDecodeError):
        return "different"
    return "unchanged" if same else "different"


def apply(files: list[File], force: bool = False) -> list[tuple[str, str]]:
    """Write `files`; [(path, 'installed' | 'unchanged' | 'replaced')].  A different file is
    refused (nothing written) unless `force`."""
    states = [state(f) for f in files]
    if not force:
        for f, st in zip(files, states, strict=True):
            if st == "different":
                raise Conflict(f"{f.path} exists with other content: add --force to replace it")
    done = []
    for f, st in zip(files, states, strict=True):
        if st != "unchanged":
            _write(f)
        done.append((f.path, {"new": "installed", "unchanged": "unchanged", "different": "replaced"}[st]))
    return done


def _write(f: File) -> None:
    directory = os.path.dirname(f.path)
    os.makedirs(directory, mode=0o755, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(f.path)}.")
    try:
        with os.fdopen(fd, "w") as out:
            out.write(f.content)
            out.flush()
            os.fchmod(out.fileno(), f.mode)
            os.fsync(out.fileno())
        os.replace(tmp, f.path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
