"""The controller's own record (model ControllerRecord), put in the store when it
starts: the addresses of its API and OpenFlow listeners, those it was told to
advertise, and the etcd members it uses.  Every controller's View follows the
records, and every host's flows keep containers off those addresses
(flows/infra.py).  A wildcard listener (0.0.0.0) names no address: that is
what --advertise is for."""

from __future__ import annotations

import ipaddress
import logging
import socket
import time
from collections.abc import Iterable

from daolinet.controller.ofserver import parse_target
from daolinet.errors import InvalidInput
from daolinet.model import ControllerRecord

log = logging.getLogger(__name__)


def own_record(id: str, of_listen: Iterable[str], api_listen: Iterable[str], advertise: Iterable[str],
               store_url: str) -> ControllerRecord:
    """What this controller records about itself (names resolved to IPv4 addresses now)."""
    api = [_listen(target.rpartition(":")[0].strip("[]"), target.rpartition(":")[2]) for target in api_listen
           if not target.startswith("unix:")]
    of = [_listen(host, str(port)) for kind, host, port in map(parse_target, of_listen) if kind != "unix"]
    etcd: list[str | None] = []
    if store_url.startswith("etcd://"):  # the etcd client loads only with an etcd store
        from daolinet.store.etcd_kv import parse_url

        etcd = [_listen(host, str(port)) for host, port in parse_url(store_url)[0]]
    record = ControllerRecord(id=id, api=_known(api), openflow=_known(of), etcd=_known(etcd),
                              advertise=tuple(sorted({_ipv4(addr) for addr in advertise})),
                              started=time.time())
    if not (record.api or record.openflow or record.advertise):
        log.warning("controller %s listens on wildcard addresses only and advertises none: containers "
                    "are kept off no address of it (give --advertise IP)", id)
    return record


def _ipv4(value: str) -> str:
    try:
        return str(ipaddress.IPv4Address(value))
    except ValueError:
        raise InvalidInput(f"invalid --advertise {value!r}: give an IPv4 address") from None


def _listen(host: str, port: str) -> str | None:
    """'IP:PORT' of a listener or a member, or None for a wildcard or an address
    containers cannot reach anyway (IPv6, loopback)."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        try:
            ip = ipaddress.ip_address(socket.getaddrinfo(host, None, socket.AF_INET)[0][4][0])
        except OSError:
            log.warning("cannot resolve %s: it is not recorded as infrastructure", host)
            return None
    if ip.version != 4 or ip.is_unspecified or ip.is_loopback:
        return None
    return f"{ip}:{port}"


def _known(values: Iterable[str | None]) -> tuple[str, ...]:
    return tuple(sorted({v for v in values if v is not None}))
