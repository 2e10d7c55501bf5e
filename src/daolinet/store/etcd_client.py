"""The etcd store's gRPC client, plain or over TLS: what `EtcdKV` connects with.

aetcd (our etcd library) only opens insecure gRPC channels: its `Client.connect()`
calls `insecure_channel` and offers no credentials.  `TlsClient` fills that gap:
the same client, stubs and watcher, over `grpc.aio.secure_channel` with the etcd
CA and our client pair (etcd run with `--client-cert-auth` wants one).

The files are read once, when the store is opened, so a missing or unreadable
file stops a controller at start-up with its path, not at the first call.
"""

from __future__ import annotations

from typing import Any

import aetcd
import grpc
from aetcd import rpc, watcher

from daolinet.errors import InvalidInput
from daolinet.security.tls import TlsFiles


def credentials(tls: TlsFiles) -> grpc.ChannelCredentials:
    """gRPC channel credentials from the etcd CA and (when given) our client pair."""
    key = _read("key", tls.key) if tls.key else None
    cert = _read("certificate", tls.cert) if tls.cert else None
    return grpc.ssl_channel_credentials(root_certificates=_read("CA certificate", tls.ca),
                                        private_key=key, certificate_chain=cert)


def _read(what: str, path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise InvalidInput(f"cannot read the etcd TLS {what} {path}: {e.strerror or e}") from None


# What gRPC says when TLS goes wrong, and what it means for whoever runs the controller.
_TLS_FAILURES = (
    ("CERTIFICATE_VERIFY_FAILED", "the etcd member's certificate is not signed by the etcd CA given: "
                                  "check --etcd-ca"),
    ("TSI_DATA_CORRUPTED", "etcd refused our client certificate: none given, or not signed by the CA "
                           "etcd trusts: check --etcd-cert, --etcd-key"),
    ("handshake", "the TLS handshake with etcd failed"),
)
_PLAIN_HINT = "is etcd served over TLS? give its CA and a client pair: --etcd-ca, --etcd-cert, --etcd-key"


def hint(detail: str, tls: bool) -> str:
    """ " (why)" for a connection failure that looks like TLS trouble, else ""."""
    for marker, why in _TLS_FAILURES:
        if tls and marker.lower() in detail.lower():
            return f" ({why})"
    if not tls and "socket closed" in detail.lower():
        return f" ({_PLAIN_HINT})"
    return ""


def target(host: str, port: int) -> str:
    """host:port for gRPC (an IPv6 address in brackets)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def make_client(host: str, port: int, creds: grpc.ChannelCredentials | None, *, timeout: float,
                options: dict[str, Any]) -> aetcd.Client:
    """A client of one etcd member: over TLS with `creds`, else plaintext (aetcd's own)."""
    if creds is None:
        return aetcd.Client(host, port, timeout=timeout, options=options)  # type: ignore[arg-type]
    return TlsClient(host, port, creds, timeout=timeout, options=options)


class TlsClient(aetcd.Client):  # type: ignore[misc]
    """An aetcd client over TLS.  Fills a gap in aetcd, whose `connect()` only opens
    insecure channels: this one opens a secure channel and sets up the same stubs and
    watcher.  (No etcd user/password authentication: the client certificate is ours.)"""

    def __init__(self, host: str, port: int, creds: grpc.ChannelCredentials, **kw: Any) -> None:
        super().__init__(host, port, **kw)
        self._credentials = creds

    async def connect(self) -> None:
        """Open the channel (gRPC connects lazily: a dead member fails the first call)."""
        if self._connected.is_set():
            return
        self.channel = rpc.secure_channel(target(self._host, self._port), self._credentials,
                                          options=list(self._options.items()))
        self.kvstub = rpc.KVStub(self.channel)
        self.clusterstub = rpc.ClusterStub(self.channel)
        self.leasestub = rpc.LeaseStub(self.channel)
        self.maintenancestub = rpc.MaintenanceStub(self.channel)
        self._watcher = watcher.Watcher(rpc.WatchStub(self.channel), timeout=self._timeout,
                                        metadata=self.metadata)
        self._connected.set()
