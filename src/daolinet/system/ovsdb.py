"""OVSDB access through ovsdbapp: the only module that writes a host's Open_vSwitch DB.

ovsdbapp keeps one connection per Backend *class*; a process that talks to
several ovsdb-servers (the lab, tests) needs one class per endpoint, which
`connect` creates.  Every transaction checks errors and waits until
ovs-vswitchd has applied it (ovsdbapp's next_cfg/cur_cfg handshake).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

from daolinet.errors import NotFound, SystemFailure
from daolinet.security.tls import TlsFiles

# python-ovs probes for eventlet at import time, and merely importing eventlet
# (installed as an os-ken dependency) hooks fork() to warn on every subprocess.
# daolinet never uses eventlet: make the probe see it as absent.
sys.modules.setdefault("eventlet", None)  # type: ignore[arg-type]

from ovsdbapp.backend.ovs_idl import connection as ovs_connection  # noqa: E402
from ovsdbapp.backend.ovs_idl import idlutils  # noqa: E402
from ovsdbapp.schema.open_vswitch import impl_idl  # noqa: E402

DEFAULT_TIMEOUT = 20
# PacketIns per second a bridge sends a controller, and the credit it may save up.  A
# host opening a thousand new connections a second is far beyond a container host's
# normal; the controller plugs about eight times that per core (docs/benchmarks.md).
PACKET_IN_RATE = 1000
PACKET_IN_BURST = 250


@dataclass(frozen=True)
class BridgeConfig:
    name: str
    datapath_type: str = "netdev"  # "system" (the kernel's) or "netdev" (userspace): system/datapath.py
    fail_mode: str = "secure"
    protocols: tuple[str, ...] = ("OpenFlow13",)
    controllers: tuple[str, ...] = ()
    datapath_id: int | None = None
    tls: TlsFiles | None = None  # the host's pair and the CA: ssl: controller targets need them
    mtu: int | None = None  # the LOCAL interface's MTU (None: OVS's, the smallest of the other ports')


class Ovsdb:
    """A connection to one ovsdb-server (e.g. 'unix:/run/.../db.sock')."""

    def __init__(self, endpoint: str, timeout: int = DEFAULT_TIMEOUT) -> None:
        self.endpoint = endpoint
        backend = type("OvsdbIdl", (impl_idl.OvsdbIdl,), {"_ovsdb_connection": None})
        try:
            idl = ovs_connection.OvsdbIdl.from_server(endpoint, "Open_vSwitch")
            self._conn = ovs_connection.Connection(idl=idl, timeout=timeout)
            self.api = backend(self._conn)
        except Exception as e:  # ovsdbapp raises bare Exceptions on connect
            raise SystemFailure(f"cannot connect to OVSDB at {endpoint}: {e}") from e

    def close(self) -> None:
        self._conn.stop()

    def __enter__(self) -> Ovsdb:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _execute(self, *commands: Any) -> None:
        try:
            with self.api.transaction(check_error=True) as txn:
                for c in commands:
                    txn.add(c)
        except Exception as e:
            raise SystemFailure(f"OVSDB transaction on {self.endpoint} failed: {e}") from e

    def ensure_bridge(self, cfg: BridgeConfig) -> None:
        """Create or converge the bridge; idempotent."""
        other: dict[str, str] = {"disable-in-band": "true"}
        if cfg.datapath_id is not None:
            other["datapath-id"] = f"{cfg.datapath_id:016x}"
        self._execute(
            self.api.add_br(cfg.name, may_exist=True, datapath_type=cfg.datapath_type),
            self.api.db_set(
                "Bridge", cfg.name,
                ("fail_mode", cfg.fail_mode),
                ("protocols", list(cfg.protocols)),
                ("other_config", other),
            ),
        )
        if cfg.mtu is not None:
            self.set_mtu(cfg.name, cfg.mtu)
        if cfg.tls is not None:
            self.set_ssl(cfg.tls)
        self.set_controllers(cfg.name, cfg.controllers)

    def set_mtu(self, interface: str, mtu: int) -> None:
        """Pin an interface's MTU (`mtu_request`).  Without it OVS gives a bridge's LOCAL
        interface the smallest MTU of the bridge's other ports, so one small port would
        shrink the host's own MTU on the underlay; a veth keeps the MTU it was made with."""
        self._execute(self.api.db_set("Interface", interface, ("mtu_request", mtu)))

    def set_ssl(self, tls: TlsFiles) -> None:
        """The switch's side of OpenFlow over TLS: its host key and certificate, and the CA
        that every controller's certificate must chain to (the `SSL` table)."""
        files = {"private_key": tls.key, "certificate": tls.cert, "ca_cert": tls.ca}
        current = self.api.db_get("Open_vSwitch", ".", "ssl").execute(check_error=True)
        if current:
            uuid = current[0] if isinstance(current, list) else current
            self._execute(self.api.db_set("SSL", uuid, *files.items(), ("bootstrap_ca_cert", False)))
            return
        # An SSL row nobody references is collected at commit: make and reference it at once.
        row = self.api.db_create("SSL", **files, bootstrap_ca_cert=False)
        self._execute(row, self.api.db_set("Open_vSwitch", ".", ("ssl", row)))

    def set_controllers(self, bridge: str, targets: tuple[str, ...] | list[str],
                        max_backoff_ms: int = 1000) -> None:
        """Point the bridge at its controllers; reconnect within a second of a
        controller's return (OVS's default backoff grows to 8 s); and cap the
        PacketIns the bridge sends each controller (a container scanning
        addresses must not flood the controller: beyond the cap OVS queues a
        little, then drops, and the scanner's own first packets wait)."""
        self._execute(self.api.set_controller(bridge, list(targets)))
        for target in targets:
            self._execute(self.api.db_set("Controller", self._controller_uuid(target),
                                          ("max_backoff", max_backoff_ms),
                                          ("controller_rate_limit", PACKET_IN_RATE),
                                          ("controller_burst_limit", PACKET_IN_BURST)))

    def _controller_uuid(self, target: str) -> Any:
        rows = self.api.db_find("Controller", ("target", "=", target), columns=["_uuid"]).execute(
            check_error=True)
        if not rows:
            raise NotFound(f"no Controller row for {target}")
        return rows[0]["_uuid"]

    def add_port(self, bridge: str, port: str, external_ids: dict[str, str] | None = None) -> int:
        """Add (or keep) a port and return its ofport.  A new port and its external_ids
        are one transaction, which returns once ovs-vswitchd has given the interface
        its ofport (ovsdbapp waits for it); the ofport is then read from the local
        replica.  (Every executed command, reads too, is a transaction that waits
        for ovs-vswitchd: a read through the replica saves a round trip.)"""
        attrs: dict[str, Any] = {"external_ids": external_ids} if external_ids else {}
        if self._cached("Port", port) is None:
            self._execute(self.api.add_port(bridge, port, may_exist=False, **attrs))
        else:
            self._execute(self.api.add_port(bridge, port, may_exist=True),
                          *([self.api.db_set("Interface", port, *attrs.items())] if attrs else []))
        row = self._cached("Interface", port)
        ofport = _ofport_value(getattr(row, "ofport", None))
        return ofport if ofport is not None else self.ofport(port)

    def _cached(self, table: str, name: str) -> Any:
        """The row named `name` in the IDL's replica (no transaction), or None.  The
        replica's thread may change a table meanwhile: then look again."""
        for _ in range(5):
            try:
                return idlutils.row_by_value(self.api.idl, table, "name", name, None)
            except RuntimeError:  # "dictionary changed size during iteration"
                continue
        return None

    def del_port(self, port: str, bridge: str | None = None) -> None:
        self._execute(self.api.del_port(port, bridge=bridge, if_exists=True))

    def ofport(self, port: str) -> int:
        rows = self.api.db_find("Interface", ("name", "=", port), columns=["ofport"]).execute(
            check_error=True
        )
        ofport = _ofport_value(rows[0]["ofport"]) if rows else None
        if ofport is None:
            raise NotFound(f"interface {port} has no OpenFlow port")
        return ofport

    def list_ports(self, bridge: str) -> list[str]:
        return list(self.api.list_ports(bridge).execute(check_error=True))

    def interfaces(self, columns: list[str]) -> list[dict[str, Any]]:
        return list(self.api.db_list("Interface", columns=columns).execute(check_error=True))

    def bridge_datapath(self, bridge: str) -> str | None:
        """The bridge's datapath_type ('' reads as system, OVS's default), or None: no such bridge."""
        if not self.api.br_exists(bridge).execute(check_error=True):
            return None
        value = self.api.db_get("Bridge", bridge, "datapath_type").execute(check_error=True)
        return str(value or "system")

    def set_datapath_type(self, bridge: str, datapath_type: str) -> None:
        self._execute(self.api.db_set("Bridge", bridge, ("datapath_type", datapath_type)))

    def del_bridge(self, bridge: str) -> None:
        self._execute(self.api.del_br(bridge, if_exists=True))

    def port_bridge(self, port: str) -> str | None:
        """The bridge that has a port named `port`, if any."""
        for bridge in self.api.list_br().execute(check_error=True):
            if port in self.list_ports(bridge):
                return str(bridge)
        return None

    def datapath_id(self, bridge: str) -> int:
        value = self.api.db_get("Bridge", bridge, "datapath_id").execute(check_error=True)
        return int(value, 16)


def _ofport_value(value: Any) -> int | None:
    """An Interface's ofport column ([] or [-1] before or on failure) as an int, or None."""
    value = value[0] if isinstance(value, list) and value else value
    if not value or value == -1:
        return None
    return int(value)
