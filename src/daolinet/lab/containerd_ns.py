"""Run containerd in a lab host's own mount namespace (started through
`unshare --mount --propagation private`, already in the host's network
namespace), then exec it: `python -m daolinet.lab.containerd_ns HOST_DIR DIR -- containerd ...`.
The lab's `ctr` joins this namespace (containerd.py), and so does every shim containerd starts.

Fixed paths that must not be the machine's, in this namespace only:
- /etc, /opt and /var/lib become overlays whose writes land under DIR/overlay (the
  machine's files stay readable, nothing is written to them), and on them
  /etc/cni/net.d and /opt/cni/bin are bound to DIR/cni/net.d and DIR/cni/bin: where
  `ctr run --cni` reads the network configuration and finds `daolinet-cni`.  libcni's
  result cache (/var/lib/cni) lands in the /var/lib overlay.
- /run is a tmpfs holding only HOST_DIR (the host's run dir, bound back: the agent's
  socket and DIR are in it), so the shims' sockets (/run/containerd/s) and runc's state
  (/run/containerd/runc) stay private.
Nothing is mounted outside this namespace, and it all goes away with its last process.
/sys/fs/cgroup is left as it is (containerd.py says where the containers' cgroups go).
"""

from __future__ import annotations

import os
import sys

from daolinet.lab.dockerd_ns import mount

OVERLAID = ("/etc", "/opt", "/var/lib")
CNI_DIRS = {"/etc/cni/net.d": "cni/net.d", "/opt/cni/bin": "cni/bin"}


def overlay(path: str, under: str) -> None:
    """Cover PATH with an overlay of itself whose writes go to UNDER/upper."""
    upper, work = os.path.join(under, "upper"), os.path.join(under, "work")
    os.makedirs(upper, exist_ok=True)
    os.makedirs(work, exist_ok=True)
    mount("-t", "overlay", "-o", f"lowerdir={path},upperdir={upper},workdir={work}", "overlay", path)


def private_paths(host_dir: str, ctr_dir: str) -> None:
    for path in OVERLAID:
        overlay(path, os.path.join(ctr_dir, "overlay", path.strip("/").replace("/", "-")))
    for target, source in CNI_DIRS.items():
        os.makedirs(target, exist_ok=True)  # in the overlay's upper dir
        mount("--bind", os.path.join(ctr_dir, source), target)
    real = os.open(host_dir, os.O_RDONLY | os.O_DIRECTORY)  # reachable after /run is covered
    mount("-t", "tmpfs", "-o", "mode=755", "tmpfs", "/run")
    os.makedirs(host_dir)
    mount("--bind", f"/proc/{os.getpid()}/fd/{real}", host_dir)
    os.close(real)


def main(argv: list[str]) -> None:
    host_dir, ctr_dir, sep, *containerd = argv
    if sep != "--" or not containerd or not host_dir.startswith("/run/") or not ctr_dir.startswith(host_dir):
        sys.exit("usage: python -m daolinet.lab.containerd_ns /run/HOST_DIR HOST_DIR/DIR -- containerd ...")
    private_paths(host_dir, ctr_dir)
    os.execv(containerd[0], containerd)


if __name__ == "__main__":
    main(sys.argv[1:])
