"""Which OVS datapath a host's bridge uses: the kernel's (`system`) or OVS's own
userspace one (`netdev`).

The kernel datapath forwards in the kernel at line rate; the userspace datapath
polls every port from one thread of ovs-vswitchd and forwards a fraction of that
(0.4 Gbit/s on the lab's machine), but needs no kernel module.  `auto` takes the
kernel datapath whenever the `openvswitch` module is loaded or can be loaded.

`choose` is the decision (pure, tested on its own); `probe` and `resolve` beside it
look at this machine and load the module when the decision asks for it.
"""

from __future__ import annotations

import logging
import os
import subprocess
from dataclasses import dataclass

from daolinet.errors import InvalidInput, SystemFailure

log = logging.getLogger(__name__)

CHOICES = ("auto", "system", "netdev")
SYSTEM = "system"
NETDEV = "netdev"
MODULE = "openvswitch"
SYS_MODULE = f"/sys/module/{MODULE}"


@dataclass(frozen=True)
class Decision:
    datapath: str  # "system" or "netdev": the bridge's datapath_type
    load_module: bool = False  # modprobe openvswitch before using it
    warning: str | None = None  # one line for the log: why auto fell back to netdev

    @property
    def userspace(self) -> bool:
        """The userspace datapath: veths need TX checksum offload off (OVS's netdev
        datapath neither computes nor offloads checksums a veth left undone)."""
        return self.datapath == NETDEV


def choose(choice: str, loaded: bool, loadable: bool) -> Decision:
    """The datapath for `--datapath CHOICE`, given whether the kernel module is loaded
    and whether the running kernel has it to load.  `system` without the module is
    refused rather than silently slow."""
    if choice not in CHOICES:
        raise InvalidInput(f"invalid datapath {choice!r}: use auto, system or netdev")
    if choice == NETDEV:
        return Decision(NETDEV)
    if loaded or loadable:
        return Decision(SYSTEM, load_module=not loaded)
    if choice == SYSTEM:
        raise InvalidInput(f"--datapath system: the {MODULE} kernel module is neither loaded nor "
                           "among this kernel's modules (install it, or use --datapath netdev)")
    return Decision(NETDEV, warning=f"no {MODULE} kernel module (neither loaded nor among this "
                                    "kernel's modules): using the userspace datapath (netdev), "
                                    "which forwards far slower")


def module_loaded(sys_module: str = SYS_MODULE) -> bool:
    return os.path.isdir(sys_module)


def module_loadable(modules_dir: str | None = None) -> bool:
    """The running kernel lists openvswitch among its loadable or built-in modules."""
    base = modules_dir or os.path.join("/lib/modules", os.uname().release)
    for index in ("modules.dep", "modules.builtin"):
        try:
            with open(os.path.join(base, index)) as f:
                if any(_names_module(line) for line in f):
                    return True
        except OSError:
            continue
    return False


def _names_module(line: str) -> bool:
    path = line.split(":", 1)[0].strip()
    return os.path.basename(path).split(".", 1)[0] == MODULE and ".ko" in path


def load_module() -> None:
    try:
        subprocess.run(["modprobe", MODULE], check=True, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError) as e:
        detail = getattr(e, "stderr", None) or str(e)
        raise SystemFailure(f"modprobe {MODULE} failed: {detail.strip()}") from e


def resolve(choice: str) -> Decision:
    """Decide for this machine, loading the module if that is the decision.  A failed
    load refuses `system` and makes `auto` fall back to netdev, with its warning."""
    decision = choose(choice, module_loaded(), module_loadable())
    if decision.load_module:
        try:
            load_module()
        except SystemFailure as e:
            if choice == SYSTEM:
                raise SystemFailure(f"--datapath system: {e}") from e
            decision = Decision(NETDEV, warning=f"{e}: using the userspace datapath (netdev), "
                                                "which forwards far slower")
    if decision.warning:
        log.warning("%s", decision.warning)
    return decision
