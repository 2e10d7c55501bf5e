"""What a daemon was told about its channels' security, checked once at start-up.

Secure is the default: a daemon needs its certificate, key and the CA, and
plaintext exists only behind an explicit `--insecure` (logged as a warning)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from daolinet.errors import InvalidInput
from daolinet.security.tls import TlsFiles

log = logging.getLogger(__name__)
PLAIN_TARGETS = ("tcp", "unix")


@dataclass(frozen=True)
class Security:
    tls: TlsFiles | None  # this daemon's pair and the CA; None only when insecure
    insecure: bool = False
    etcd: TlsFiles | None = None  # client pair for etcd (controllers with an etcd store)

    @classmethod
    def from_options(cls, *, cert: str | None, key: str | None, ca: str | None, insecure: bool,
                     etcd_ca: str | None = None, etcd_cert: str | None = None,
                     etcd_key: str | None = None) -> Security:
        tls = None
        if cert or key or ca or not insecure:
            if not (cert and key and ca):
                given = (("--tls-cert", cert), ("--tls-key", key), ("--tls-ca", ca))
                missing = [flag for flag, value in given if not value]
                raise InvalidInput(f"TLS needs {', '.join(missing)} (or --insecure for plaintext, "
                                   "only for trials)")
            tls = TlsFiles(ca, cert, key).check()
        etcd = None
        if etcd_ca or etcd_cert or etcd_key:
            if not (etcd_ca and etcd_cert and etcd_key):
                raise InvalidInput("etcd over TLS needs --etcd-ca, --etcd-cert and --etcd-key")
            etcd = TlsFiles(etcd_ca, etcd_cert, etcd_key).check()
        return cls(tls=tls, insecure=insecure, etcd=etcd)

    def check_targets(self, targets: list[str] | tuple[str, ...], what: str) -> None:
        """Plain OpenFlow targets (tcp:, unix:) only with --insecure; ssl: needs TLS files."""
        for target in targets:
            kind = target.partition(":")[0]
            if kind in PLAIN_TARGETS and not self.insecure:
                raise InvalidInput(f"{what} {target!r} is plaintext: use ssl:HOST:PORT, or add --insecure")
            if kind == "ssl" and self.tls is None:
                raise InvalidInput(f"{what} {target!r} needs --tls-cert, --tls-key and --tls-ca")

    def warn(self, daemon: str) -> None:
        if self.insecure:
            log.warning("%s runs with --insecure: plaintext channels, no certificates checked; "
                        "only for trials", daemon)
