"""Run dockerd in a lab host's own mount namespace (started through
`unshare --mount --propagation private`, already in the host's network
namespace), then exec it: `python -m daolinet.lab.dockerd_ns DIR -- dockerd ...`.

dockerd looks for plugin sockets in /run/docker/plugins, a fixed path that
must not be the machine's.  So, in this namespace only: a tmpfs over /run
holding just DIR (the host's docker dir, bound back from the real /run) and
/run/docker/plugins (bound to DIR/plugins, where the host's agent listens);
and /etc/docker bound to DIR/etc.  Nothing else of /run is visible (other
labs' namespaces are not pinned by this one), nothing is mounted outside
this namespace, and it all goes away with dockerd.  /sys/fs/cgroup is left as it
is, v1, hybrid or unified v2 (dockerd's cgroupfs driver finds its way in each; see
docker.py for where its cgroups go).
"""

from __future__ import annotations

import os
import subprocess
import sys


def mount(*args: str) -> None:
    subprocess.run(["mount", "--no-canonicalize", *args], check=True)


def private_run(docker_dir: str) -> None:
    real = os.open(docker_dir, os.O_RDONLY | os.O_DIRECTORY)  # reachable after /run is covered
    mount("-t", "tmpfs", "-o", "mode=755", "tmpfs", "/run")
    if docker_dir.startswith("/run/"):
        os.makedirs(docker_dir)
        mount("--bind", f"/proc/{os.getpid()}/fd/{real}", docker_dir)
    os.close(real)
    os.makedirs("/run/docker/plugins")
    mount("--bind", os.path.join(docker_dir, "plugins"), "/run/docker/plugins")


def main(argv: list[str]) -> None:
    docker_dir, sep, *dockerd = argv
    if sep != "--" or not dockerd:
        sys.exit("usage: python -m daolinet.lab.dockerd_ns DOCKER_DIR -- dockerd ARGS...")
    private_run(docker_dir)
    if os.path.isdir("/etc/docker"):
        mount("--bind", os.path.join(docker_dir, "etc"), "/etc/docker")
    os.execv(dockerd[0], dockerd)


if __name__ == "__main__":
    main(sys.argv[1:])
