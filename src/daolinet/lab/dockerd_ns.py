"""Run dockerd in a lab host's own mount namespace (started through
`unshare --mount --propagation private`, already in the host's network
namespace), then exec it: `python -m daolinet.lab.dockerd_ns PLUGINS ETC -- dockerd ...`.

dockerd looks for plugin sockets in /run/docker/plugins, a fixed path that
must not be the machine's.  So, in this namespace only: a tmpfs over /run
with /run's directories bound back (the lab's run dirs among them) plus
/run/docker/plugins bound to the host's own plugin dir, where its agent
listens; and /etc/docker bound to a private dir (dockerd writes a key
there).  Nothing is mounted outside this namespace, and it all goes away
with dockerd.
"""

from __future__ import annotations

import os
import subprocess
import sys


def mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True)


def private_run(plugins: str) -> None:
    keep = os.open("/run", os.O_RDONLY | os.O_DIRECTORY)
    old = f"/proc/{os.getpid()}/fd/{keep}"
    mount("-t", "tmpfs", "-o", "mode=755", "tmpfs", "/run")
    for entry in sorted(os.listdir(old)):
        if entry != "docker" and os.path.isdir(os.path.join(old, entry)):
            os.mkdir(f"/run/{entry}")
            mount("--rbind", os.path.join(old, entry), f"/run/{entry}")
    os.close(keep)
    os.makedirs("/run/docker/plugins")
    mount("--bind", plugins, "/run/docker/plugins")


def main(argv: list[str]) -> None:
    plugins, etc, sep, *dockerd = argv
    if sep != "--" or not dockerd:
        sys.exit("usage: python -m daolinet.lab.dockerd_ns PLUGINS ETC -- dockerd ARGS...")
    private_run(plugins)
    if os.path.isdir("/etc/docker"):
        mount("--bind", etc, "/etc/docker")
    os.execv(dockerd[0], dockerd)


if __name__ == "__main__":
    main(sys.argv[1:])
