"""Controller records: each controller puts its own when it starts (controller/record.py
makes it), both stores keep them, and every controller's View follows them through the
change feed, so every host's flows keep containers off those addresses (flows/infra.py).

A record names its controller by id and is replaced whole by the next start of the same
id; nothing deletes it (a stopped controller's address stays infrastructure).  This
module checks a record the same way for every backend."""

from __future__ import annotations

import dataclasses
import math

from daolinet.errors import InvalidInput
from daolinet.model.objects import ControllerRecord
from daolinet.store import ipam
from daolinet.store.checks import HOST_NAME_RE, check_int, check_name

MAX_ADDRESSES = 64  # per field: a record is one small value


def check_controller(c: ControllerRecord) -> ControllerRecord:
    """`c` with every field checked and every address in canonical form."""
    check_name("controller", c.id, HOST_NAME_RE)
    what = f"controller {c.id}"
    if isinstance(c.started, bool) or not isinstance(c.started, int | float) or not math.isfinite(c.started):
        raise InvalidInput(f"started {c.started!r} of {what} must be a number")
    return dataclasses.replace(
        c, api=_endpoints(c.api, f"api of {what}"), openflow=_endpoints(c.openflow, f"openflow of {what}"),
        etcd=_endpoints(c.etcd, f"etcd of {what}"),
        advertise=tuple(sorted({str(ipam.check_address(str(a), f"advertise of {what}")) for a in
                                _listed(c.advertise, f"advertise of {what}")})),
        started=float(c.started))


def _listed(values: object, what: str) -> tuple[object, ...]:
    if isinstance(values, str) or not isinstance(values, tuple | list) or len(values) > MAX_ADDRESSES:
        raise InvalidInput(f"{what} must be a list of at most {MAX_ADDRESSES} addresses")
    return tuple(values)


def _endpoints(values: object, what: str) -> tuple[str, ...]:
    """'IP:PORT' strings, canonical, sorted, without duplicates."""
    out = set()
    for value in _listed(values, what):
        ip, sep, port = value.rpartition(":") if isinstance(value, str) else ("", "", "")
        if not sep or not port.isdigit():
            raise InvalidInput(f"{what}: {value!r} must be IP:PORT")
        out.add(f"{ipam.check_address(ip, what)}:{check_int(f'port in {what}', int(port), 1, 65535)}")
    return tuple(sorted(out))
