"""Namespaces, veths, bridges, addresses and routes through pyroute2.

Every link is created *inside* a lab namespace (a veth's peer is placed
straight into its target namespace), so nothing ever appears in the root
namespace, not even for a moment.  netlink errors become SystemFailure here.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass

from pyroute2 import IPRoute, netns
from pyroute2 import config as pyroute2_config
from pyroute2.ethtool.ioctl import EthtoolError, IoctlEthtool
from pyroute2.netlink import NETLINK_ROUTE
from pyroute2.netlink.exceptions import NetlinkError

from daolinet.errors import SystemFailure
from daolinet.system import links6, nsthread, procs

# pyroute2 reaches another namespace through a forked child that it later
# stops with SIGTERM.  The child inherits asyncio's signal wakeup fd, so an
# inherited Python handler would report that SIGTERM to *our* event loop (and
# an agent would shut itself down).  Let the child die on SIGTERM by default.
pyroute2_config.disable_mp_signal = True


def _rtnl_socket() -> socket.socket:
    return socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, NETLINK_ROUTE)


@contextlib.contextmanager
def _ns(name: str | None) -> Iterator[IPRoute]:
    """A netlink socket in namespace `name` (a name in /run/netns or an absolute
    path such as /proc/PID/ns/net); None is this process's own namespace.  The
    socket is opened by a thread that entered the namespace (system/nsthread.py)."""
    try:
        sock = None if name is None else nsthread.run_in(name, _rtnl_socket)
        with (IPRoute() if sock is None else IPRoute(fileno=sock.detach())) as ns:
            yield ns
    except NetlinkError as e:
        raise SystemFailure(f"netlink error in namespace {name or 'of this process'}: {e}") from e
    except FileNotFoundError as e:
        raise SystemFailure(f"namespace {name} does not exist") from e


# No IPv6 in a new namespace: its router solicitations and DAD would only be noise on the bridges.
NO_IPV6 = ("net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1")


def create_netns(name: str) -> None:
    """A namespace in /run/netns with lo up and IPv6 off (one thread, no subprocess)."""
    if exists(name):
        raise SystemFailure(f"namespace {name} already exists")

    def inside() -> None:
        with IPRoute() as ns:
            ns.link("set", index=ns.link_lookup(ifname="lo")[0], state="up")
        nsthread.write_sysctls(*NO_IPV6)

    try:
        nsthread.create(name, inside)
    except (OSError, NetlinkError) as e:
        remove_netns(name)
        raise SystemFailure(f"cannot create namespace {name}: {e}") from e


def sysctl(ns_name: str, *settings: str) -> None:
    try:
        nsthread.run_in(ns_name, lambda: nsthread.write_sysctls(*settings))
    except OSError as e:
        raise SystemFailure(f"sysctl {' '.join(settings)} in namespace {ns_name}: {e}") from e


def remove_netns(name: str) -> None:
    with contextlib.suppress(FileNotFoundError, OSError):
        netns.remove(name)


def list_netns(prefix: str) -> list[str]:
    return sorted(n for n in netns.listnetns() if n.startswith(prefix))


def exists(name: str) -> bool:
    return os.path.exists(f"{procs.NETNS_RUN_DIR}/{name}")


def pids_in(names: list[str]) -> list[int]:
    """Every process whose network namespace is one of `names`."""
    found = netns.ns_pids()
    return [pid for name in names for pid in found.get(name, []) if pid != os.getpid()]


class LinkExists(SystemFailure):
    """The interface to create already exists (nothing was changed)."""


def _ns_fd_target(stack: contextlib.ExitStack, ns: str) -> int | str:
    """How netlink names namespace `ns` as a target: an open fd for a path, else its name."""
    return stack.enter_context(open(ns)).fileno() if ns.startswith("/") else ns


def add_veth(ns_a: str | None, if_a: str, ns_b: str, if_b: str, mtu: int = 1500, *,
             ipv6_a: bool = True) -> None:
    """A veth pair with one end in each namespace, both up.  The peer goes
    straight into ns_b (a name or an absolute path), never via ns_a."""
    add_veth_pair(ns_a, if_a, ns_b, if_b, mtu, ipv6_a=ipv6_a)
    setup_interface(ns_b, InterfaceSetup(if_b, mtu=mtu))


def add_veth_pair(ns_a: str | None, if_a: str, ns_b: str, if_b: str, mtu: int = 1500, *,
                  ipv6_a: bool = True) -> None:
    """A veth pair over one netlink socket: if_a up in ns_a, its peer if_b created
    straight in ns_b (never via ns_a) and left down for `setup_interface`.
    LinkExists: ns_a already has if_a.  Without `ipv6_a`, IPv6 is off on if_a before it
    comes up: a switch port (a container's, on its host's bridge) must not send the host's
    own router solicitations, neighbour discovery and MLD reports into its container."""
    with contextlib.ExitStack() as stack:
        target = _ns_fd_target(stack, ns_b)
        with _ns(ns_a) as a:
            if a.link_lookup(ifname=if_a):
                raise LinkExists(f"interface {if_a} already exists")
            a.link("add", ifname=if_a, kind="veth", mtu=mtu, peer={"ifname": if_b, "net_ns_fd": target})
            if not ipv6_a:
                _ipv6_off(ns_a, if_a)
            a.link("set", index=_index(a, if_a), state="up")


def _ipv6_off(ns_name: str | None, ifname: str) -> None:
    """IPv6 off on one interface (nothing to do where the kernel has no IPv6)."""
    path = f"/proc/sys/net/ipv6/conf/{ifname}/disable_ipv6"

    def write() -> None:
        with contextlib.suppress(FileNotFoundError), open(path, "w") as f:
            f.write("1")

    if ns_name is None:
        write()
    else:
        nsthread.run_in(ns_name, write)


@dataclass(frozen=True)
class Route:
    dst: str  # CIDR
    gateway: str
    onlink: bool = False  # the gateway is on the link whatever the routes say


@dataclass(frozen=True)
class InterfaceSetup:
    """An interface brought up with everything it needs, in one go (`setup_interface`)."""
    ifname: str
    mac: str | None = None
    mtu: int | None = None
    address: str | None = None  # CIDR
    prefix_route: bool = True  # False: the address's subnet gets no connected route
    routes: tuple[Route, ...] = ()  # through ifname (either family)
    address6: str | None = None  # CIDR: turns IPv6 on, quietly (system/links6.py); no DAD, no prefix route
    neighbours: tuple[tuple[str, str], ...] = ()  # permanent (ip, mac) entries on ifname
    tx_checksum_off: bool = False  # `ethtool -K ifname tx off`


def _configure(ns: IPRoute, setup: InterfaceSetup) -> None:
    idx = _index(ns, setup.ifname)
    kwargs: dict[str, object] = {"state": "up"}
    if setup.mac:
        kwargs["address"] = setup.mac
    if setup.mtu:
        kwargs["mtu"] = setup.mtu
    ns.link("set", index=idx, **kwargs)
    if setup.address:
        ip, plen = setup.address.split("/")
        flags = {} if setup.prefix_route else {"IFA_FLAGS": IFA_F_NOPREFIXROUTE}
        ns.addr("add", index=idx, address=ip, prefixlen=int(plen), **flags)
    if setup.address6:
        ip6, plen6 = setup.address6.split("/")
        ns.addr("add", index=idx, address=ip6, prefixlen=int(plen6), family=AF_INET6,
                IFA_FLAGS=IFA_F_NODAD | IFA_F_NOPREFIXROUTE)
    for r in setup.routes:
        onlink = {"flags": RTNH_F_ONLINK} if r.onlink else {}
        ns.route("add", dst=r.dst, gateway=r.gateway, oif=idx, **onlink)
    for ip, mac in setup.neighbours:
        ns.neigh("replace", dst=ip, lladdr=mac, ifindex=idx, state=NUD_PERMANENT)


def setup_interface(ns_name: str, setup: InterfaceSetup) -> None:
    """Configure an interface of namespace ns_name as `setup` says: one thread in the
    namespace, one netlink socket (and an ioctl for TX checksumming), no subprocess."""

    def inside() -> None:
        if setup.tx_checksum_off:
            _tx_checksum_off(setup.ifname)
        if setup.address6:
            links6.enable_in_this_namespace(setup.ifname)
        with IPRoute(fileno=_rtnl_socket().detach()) as ns:
            _configure(ns, setup)

    try:
        nsthread.run_in(ns_name, inside)
    except NetlinkError as e:
        raise SystemFailure(f"netlink error in namespace {ns_name} setting up {setup.ifname}: {e}") from e
    except FileNotFoundError as e:
        raise SystemFailure(f"namespace {ns_name} does not exist") from e
    except (OSError, EthtoolError) as e:  # the ioctl
        raise SystemFailure(f"cannot set up {setup.ifname} in {ns_name}: {e}") from e


def move_link(ns_from: str | None, ifname: str, ns_to: str) -> None:
    """Move an interface (e.g. a veth's host end) into another namespace, keeping it up."""
    with _ns(ns_from) as ns:
        ns.link("set", index=_index(ns, ifname), net_ns_fd=ns_to)
    with _ns(ns_to) as ns:
        ns.link("set", index=_index(ns, ifname), state="up")


def del_link(ns_name: str | None, ifname: str) -> bool:
    """Delete a link if it exists (a veth takes its peer with it)."""
    with _ns(ns_name) as ns:
        found = ns.link_lookup(ifname=ifname)
        if not found:
            return False
        ns.link("del", index=found[0])
        return True


def mac_of(ns_name: str | None, ifname: str) -> str:
    with _ns(ns_name) as ns:
        return str(ns.get_links(_index(ns, ifname))[0].get("IFLA_ADDRESS"))


def mtu_of(ns_name: str | None, ifname: str) -> int:
    with _ns(ns_name) as ns:
        return int(ns.get_links(_index(ns, ifname))[0].get("IFLA_MTU"))


def address_of(ns_name: str | None, ifname: str) -> tuple[str, int, str] | None:
    """(IPv4 address, prefix length, MAC) of an interface, or None without an address."""
    with _ns(ns_name) as ns:
        idx = _index(ns, ifname)
        mac = ns.get_links(idx)[0].get("IFLA_ADDRESS")
        for a in ns.get_addr(index=idx, family=2):
            return (a.get("IFA_ADDRESS"), int(a["prefixlen"]), mac)
    return None


AF_INET6 = 10
RT_SCOPE_UNIVERSE = 0
IFA_F_DEPRECATED = 0x20


def address6_of(ns_name: str | None, ifname: str) -> tuple[str, int] | None:
    """(global IPv6 address, prefix length) of an interface, or None without one (link-local
    and other scopes don't count; a deprecated address only when no other is there)."""
    with _ns(ns_name) as ns:
        found = [a for a in ns.get_addr(index=_index(ns, ifname), family=AF_INET6)
                 if a["scope"] == RT_SCOPE_UNIVERSE]
    found.sort(key=lambda a: bool(int(a.get("IFA_FLAGS") or a["flags"]) & IFA_F_DEPRECATED))
    return (str(ipaddress.IPv6Address(found[0].get("IFA_ADDRESS"))), int(found[0]["prefixlen"])) \
        if found else None


def add_bridge(ns_name: str, ifname: str, mtu: int | None = None) -> None:
    """A Linux bridge, up; with `mtu`, fixed at it (else it follows its smallest port).
    No multicast snooping: a fabric floods multicast (IPv6 neighbour solicitations for PIPs
    nobody reported listening to must still reach the host that answers them)."""
    with _ns(ns_name) as ns:
        ns.link("add", ifname=ifname, kind="bridge", br_stp_state=0, br_forward_delay=0,
                br_mcast_snooping=0)
        ns.link("set", index=_index(ns, ifname), state="up", **({"mtu": mtu} if mtu else {}))


def set_master(ns_name: str | None, ifname: str, master: str) -> None:
    with _ns(ns_name) as ns:
        ns.link("set", index=_index(ns, ifname), master=_index(ns, master))


IFA_F_NOPREFIXROUTE = 0x200  # an address without its subnet's connected route
IFA_F_NODAD = 0x02  # an IPv6 address usable at once (no duplicate address detection)
RTNH_F_ONLINK = 0x4  # a gateway reachable on the link whatever the routes say
NUD_PERMANENT = 0x80


def link_up(ns_name: str | None, ifname: str, *, address: str | None = None, mac: str | None = None,
            mtu: int | None = None, prefix_route: bool = True) -> None:
    """Bring a link up, optionally with a MAC, an MTU and an address (CIDR); without
    `prefix_route` the address's subnet gets no connected (on-link) route."""
    with _ns(ns_name) as ns:
        idx = _index(ns, ifname)
        kwargs: dict[str, object] = {"state": "up"}
        if mac:
            kwargs["address"] = mac
        if mtu:
            kwargs["mtu"] = mtu
        ns.link("set", index=idx, **kwargs)
        if address:
            ip, plen = address.split("/")
            flags = {} if prefix_route else {"IFA_FLAGS": IFA_F_NOPREFIXROUTE}
            ns.addr("add", index=idx, address=ip, prefixlen=int(plen), **flags)


def add_route(ns_name: str | None, dst: str, gateway: str, dev: str | None = None,
              onlink: bool = False) -> None:
    with _ns(ns_name) as ns:
        kwargs: dict[str, object] = {"dst": dst, "gateway": gateway}
        if dev:
            kwargs["oif"] = _index(ns, dev)
        if onlink:
            kwargs["flags"] = RTNH_F_ONLINK
        ns.route("add", **kwargs)


def set_neighbour(ns_name: str | None, ifname: str, ip: str, mac: str) -> None:
    """A permanent neighbour entry: ip is at mac on ifname, never ARPed for."""
    with _ns(ns_name) as ns:
        ns.neigh("replace", dst=ip, lladdr=mac, ifindex=_index(ns, ifname), state=NUD_PERMANENT)


def has_link(ns_name: str | None, ifname: str) -> bool:
    with _ns(ns_name) as ns:
        return bool(ns.link_lookup(ifname=ifname))


def link_names(ns_name: str) -> list[str]:
    with _ns(ns_name) as ns:
        return [link.get("IFLA_IFNAME") for link in ns.get_links()]


def enable_forwarding(ns_name: str) -> None:
    sysctl(ns_name, "net.ipv4.ip_forward=1")


def _tx_checksum_off(ifname: str) -> None:
    """`ethtool -K IFNAME tx off` (an ioctl) in this thread's namespace."""
    eth = IoctlEthtool(ifname)
    try:
        eth.set_offload_flag("tx-checksumming", 0)
    finally:
        eth.close()


def tx_offload_off(ns_name: str, ifname: str) -> None:
    """Userspace OVS + veth: TCP fails silently unless TX checksumming is off."""
    try:
        nsthread.run_in(ns_name, lambda: _tx_checksum_off(ifname))
    except (OSError, EthtoolError) as e:
        raise SystemFailure(f"cannot turn TX checksumming off on {ifname} in {ns_name}: {e}") from e


@dataclass(frozen=True)
class LinkInfo:
    kind: str  # IFLA_INFO_KIND: '' for a plain NIC, else veth, bridge, openvswitch, ...
    master: str | None  # a Linux master: bridge, bond, ovs-system
    master_kind: str
    up: bool
    mtu: int
    mac: str


def link_info(ns_name: str | None, ifname: str) -> LinkInfo | None:
    """What an interface is and what holds it; None: no such interface."""
    with _ns(ns_name) as ns:
        found = ns.link_lookup(ifname=ifname)
        if not found:
            return None
        link = ns.get_links(found[0])[0]
        master_idx = link.get("IFLA_MASTER")
        master = ns.get_links(master_idx)[0] if master_idx else None
        return LinkInfo(kind=_kind(link), master=master.get("IFLA_IFNAME") if master else None,
                        master_kind=_kind(master) if master else "", up=bool(link["flags"] & 1),
                        mtu=int(link.get("IFLA_MTU")), mac=str(link.get("IFLA_ADDRESS")))


def _kind(link: object) -> str:
    info = link.get("IFLA_LINKINFO")  # type: ignore[attr-defined]
    return str(info.get("IFLA_INFO_KIND") or "") if info else ""


def ipv4_addrs(ns_name: str | None, ifname: str) -> list[tuple[str, int]]:
    """Every IPv4 address of an interface, as (address, prefix length), primary first."""
    with _ns(ns_name) as ns:
        return [(a.get("IFA_ADDRESS"), int(a["prefixlen"]))
                for a in ns.get_addr(index=_index(ns, ifname), family=2)]


RTPROT_KERNEL = 2
RT_TABLE_MAIN = 254


def ipv4_routes(ns_name: str | None, ifname: str) -> list[dict[str, object]]:
    """The main table's IPv4 routes through an interface, except the kernel's own (the
    connected routes its addresses make): what must move with the addresses."""
    with _ns(ns_name) as ns:
        idx = _index(ns, ifname)
        found = []
        for r in ns.get_routes(family=2, table=RT_TABLE_MAIN):
            if r.get("RTA_OIF") != idx or r["proto"] == RTPROT_KERNEL:
                continue
            found.append({"dst": f"{r.get('RTA_DST') or '0.0.0.0'}/{r['dst_len']}",
                          "gateway": r.get("RTA_GATEWAY"), "metric": int(r.get("RTA_PRIORITY") or 0),
                          "proto": r["proto"], "scope": r["scope"], "type": r["type"],
                          "prefsrc": r.get("RTA_PREFSRC"), "table": RT_TABLE_MAIN,
                          "onlink": bool(r["flags"] & RTNH_F_ONLINK)})
        return found


def replace_route(ns_name: str | None, dev: str, dst: str, *, gateway: str | None = None, metric: int = 0,
                  proto: int = 3, scope: int = 0, type: int = 1, prefsrc: str | None = None,
                  table: int = RT_TABLE_MAIN, onlink: bool = False) -> None:
    """Add a route, or replace the one with the same destination and metric (it moves, never vanishes)."""
    with _ns(ns_name) as ns:
        kwargs: dict[str, object] = {"dst": dst, "oif": _index(ns, dev), "priority": metric, "proto": proto,
                                     "scope": scope, "type": type, "table": table}
        if gateway:
            kwargs["gateway"] = gateway
        if prefsrc:
            kwargs["prefsrc"] = prefsrc
        if onlink:
            kwargs["flags"] = RTNH_F_ONLINK
        ns.route("replace", **kwargs)


def add_addr(ns_name: str | None, ifname: str, ip: str, prefixlen: int) -> None:
    with _ns(ns_name) as ns:
        ns.addr("add", index=_index(ns, ifname), address=ip, prefixlen=prefixlen)


def add_addr6(ns_name: str | None, ifname: str, cidr: str) -> None:
    """An IPv6 address (with its prefix route), usable at once: no duplicate address detection."""
    ip, plen = cidr.split("/")
    with _ns(ns_name) as ns:
        ns.addr("add", index=_index(ns, ifname), address=ip, prefixlen=int(plen), family=AF_INET6,
                IFA_FLAGS=IFA_F_NODAD)


def del_addr(ns_name: str | None, ifname: str, ip: str, prefixlen: int) -> None:
    with _ns(ns_name) as ns:
        ns.addr("del", index=_index(ns, ifname), address=ip, prefixlen=prefixlen)


def read_sysctl(ns_name: str | None, key: str) -> str:
    argv = ["sysctl", "-n", key]
    return procs.run(argv if ns_name is None else procs.in_netns(ns_name, argv)).strip()


def _index(ns: IPRoute, ifname: str) -> int:
    found = ns.link_lookup(ifname=ifname)
    if not found:
        raise SystemFailure(f"no interface {ifname}")
    return int(found[0])
