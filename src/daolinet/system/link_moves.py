"""A container's interface handed over to another, in its namespace: what a live move does
(lab/containers.py `move_container`) once the new interface is in.  Netlink through
system/links.py's namespace sessions."""

from __future__ import annotations

from typing import Any

from daolinet.system.links import NUD_PERMANENT, RT_TABLE_MAIN, RTNH_F_ONLINK, RTPROT_KERNEL, _index, _ns

NUD_REACHABLE = 0x02
NUD_STALE = 0x04


def take_over(ns_name: str, old_if: str, new_if: str) -> None:
    """`new_if` takes over `old_if`'s addresses (IPv4, and IPv6 other than link-local: the new
    interface has its own, and IPv6 on from the namespace's defaults), routes and known
    neighbours, in one netlink session (a container moving to a new interface: its sockets,
    bound to addresses, never notice).  The routes move before the addresses leave `old_if`."""
    with _ns(ns_name) as ns:
        old, new = _index(ns, old_if), _index(ns, new_if)
        for n in [*ns.get_neighbours(family=2, ifindex=old), *ns.get_neighbours(family=10, ifindex=old)]:
            mac, ip = n.get("NDA_LLADDR"), n.get("NDA_DST")
            if mac and ip and n["state"] & (NUD_PERMANENT | NUD_REACHABLE | NUD_STALE):
                ns.neigh("replace", dst=ip, lladdr=mac, ifindex=new, state=n["state"])
        addrs = [(a.get("IFA_ADDRESS"), int(a["prefixlen"])) for family in (2, 10)
                 for a in ns.get_addr(index=old, family=family) if family == 2 or a["scope"] == 0]
        for ip, plen in addrs:
            ns.addr("add", index=new, address=ip, prefixlen=plen)
        for family, default in ((2, "0.0.0.0"), (10, "::")):
            for r in ns.get_routes(family=family, table=RT_TABLE_MAIN):
                if r.get("RTA_OIF") == old and r["proto"] != RTPROT_KERNEL:
                    _move_route(ns, r, new, default)
        for ip, plen in addrs:
            ns.addr("del", index=old, address=ip, prefixlen=plen)


def _move_route(ns: Any, r: Any, new: int, default: str) -> None:
    kwargs: dict[str, object] = {"dst": f"{r.get('RTA_DST') or default}/{r['dst_len']}",
                                 "oif": new, "priority": int(r.get("RTA_PRIORITY") or 0),
                                 "proto": r["proto"], "scope": r["scope"], "type": r["type"],
                                 "table": RT_TABLE_MAIN, "flags": r["flags"] & RTNH_F_ONLINK}
    if r.get("RTA_GATEWAY"):
        kwargs["gateway"] = r.get("RTA_GATEWAY")
    ns.route("replace", **kwargs)


def rename_link(ns_name: str | None, ifname: str, to: str) -> None:
    """Rename an interface, up as it is (Linux 6.x renames a live link)."""
    with _ns(ns_name) as ns:
        ns.link("set", index=_index(ns, ifname), ifname=to)
