"""IPv6 on in a container's namespace: the sysctls system/links.py writes, from the thread
that sets up the interface (`InterfaceSetup.address6`), before the address goes on.

Namespaces start with IPv6 off (links.NO_IPV6).  A dual-stack container gets it on with
no duplicate address detection (the store allocates addresses uniquely and the bridge drops
DAD probes anyway: DAD would only hold the address back for a second or more),
no router advertisements and no SLAAC (its addresses and routes come from daolinet only);
its link-local address stays (neighbour discovery needs it).  The settings are written to
/proc/sys by a thread inside the namespace, by path (an interface name may hold a dot).
"""

from __future__ import annotations

# Before disable_ipv6=0, so not even the link-local address goes through DAD or sends an RS.
QUIET = (("accept_dad", "0"), ("accept_ra", "0"), ("autoconf", "0"))


def container_settings(ifname: str) -> list[tuple[str, str]]:
    """(path under /proc/sys, value) that turn IPv6 on for `ifname` and its namespace, quietly."""
    confs = ("all", "default", ifname)
    quiet = [(f"net/ipv6/conf/{c}/{k}", v) for c in confs for k, v in QUIET]
    return quiet + [(f"net/ipv6/conf/{c}/disable_ipv6", "0") for c in confs]


def enable_in_this_namespace(ifname: str) -> None:
    """Write `container_settings(ifname)` in this thread's namespace (call from nsthread)."""
    for path, value in container_settings(ifname):
        with open(f"/proc/sys/{path}", "w") as f:
            f.write(value)


def underlay_sysctls(forwarding: bool = False) -> tuple[str, ...]:
    """`sysctl` settings (links.sysctl) that turn IPv6 on in an underlay namespace (a lab's host
    or router), quietly as above, before its interfaces are made (they inherit `default`);
    with `forwarding`, a router (which never sends router advertisements by itself)."""
    quiet = tuple(f"net.ipv6.conf.{c}.{k}={v}" for c in ("all", "default") for k, v in QUIET)
    on = ("net.ipv6.conf.all.disable_ipv6=0", "net.ipv6.conf.default.disable_ipv6=0")
    return quiet + on + (("net.ipv6.conf.all.forwarding=1",) if forwarding else ())
