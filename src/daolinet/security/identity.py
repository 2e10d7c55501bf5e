"""Who a certificate names.  Every daolinet certificate carries its holder's
role and name in its subject: O=daolinet, OU=ROLE, CN=NAME.  The CA's
signature (checked by the TLS handshake) vouches for both; this module only
reads them back, and never trusts a certificate it was not handed by a
verified handshake."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from daolinet.errors import Forbidden, InvalidInput

if TYPE_CHECKING:  # cryptography loads when a certificate is read or made, not with the daemon
    from cryptography import x509

Role = Literal["controller", "host", "user"]
ROLES: tuple[Role, ...] = ("controller", "host", "user")
ORG = "daolinet"


@dataclass(frozen=True)
class Identity:
    role: Role
    name: str

    def __str__(self) -> str:
        return f"{self.role} {self.name}"

    def require(self, role: Role, name: str | None = None) -> None:
        """Refuse (Forbidden, in the words the CLI prints) unless this is `role` [`name`]."""
        if self.role != role:
            what = f"host {name}" if role == "host" and name else f"a {role}"
            raise Forbidden(f"TLS: certificate of {self.name} ({self.role}) is not valid for {what}")
        if name is not None and self.name != name:
            raise Forbidden(f"TLS: certificate of {self.name} is not valid for {role} {name}")


def subject_for(role: Role, name: str) -> x509.Name:
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORG),
                      x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, role),
                      x509.NameAttribute(NameOID.COMMON_NAME, name)])


def identity_of(cert: x509.Certificate | bytes) -> Identity:
    """The holder of `cert` (a certificate or its DER bytes), or InvalidInput when
    the subject is not a daolinet role and name."""
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    if isinstance(cert, bytes):
        try:
            cert = x509.load_der_x509_certificate(cert)
        except ValueError as e:
            raise InvalidInput(f"unreadable certificate: {e}") from None
    subject = cert.subject

    def one(oid: x509.ObjectIdentifier) -> str:
        values = subject.get_attributes_for_oid(oid)
        return str(values[0].value) if len(values) == 1 else ""

    role, name = one(NameOID.ORGANIZATIONAL_UNIT_NAME), one(NameOID.COMMON_NAME)
    if one(NameOID.ORGANIZATION_NAME) != ORG or role not in ROLES or not name:
        raise InvalidInput(f"certificate {subject.rfc4514_string()!r} names no daolinet role and name")
    return Identity(role, name)  # type: ignore[arg-type]
