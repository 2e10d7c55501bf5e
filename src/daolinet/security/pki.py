"""A small PKI: one CA per installation, and key+certificate pairs that name a
role and a name (identity.py).  All crypto is `cryptography`'s; keys are EC
P-256.  Every file is written 0600 and never overwritten unless asked (`force`).

    D/ca.crt  D/ca.key                the CA (`pki init --dir D`)
    D/ROLE-NAME.crt  D/ROLE-NAME.key  one holder (`pki issue ROLE NAME --dir D`)
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import re
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from daolinet.errors import Conflict, InvalidInput, NotFound, SystemFailure
from daolinet.security.identity import ORG, ROLES, Role, subject_for

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
CA_DAYS = 3650
LEAF_DAYS = 825
BACKDATE = datetime.timedelta(minutes=5)  # clocks of the machines differ a little
# What each role may be: servers (controllers' OpenFlow and API) also call their peers.
USAGES = {"controller": [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH],
          "host": [ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.SERVER_AUTH],
          "user": [ExtendedKeyUsageOID.CLIENT_AUTH]}


@dataclass(frozen=True)
class Pair:
    cert: str
    key: str


def ca_pair(directory: str) -> Pair:
    return Pair(os.path.join(directory, "ca.crt"), os.path.join(directory, "ca.key"))


def holder_pair(directory: str, role: Role, name: str) -> Pair:
    base = os.path.join(directory, f"{role}-{name}")
    return Pair(base + ".crt", base + ".key")


def check_name(role: str, name: str) -> None:
    if role not in ROLES:
        raise InvalidInput(f"role {role!r} must be one of {', '.join(ROLES)}")
    if not NAME_RE.match(name):
        raise InvalidInput(f"invalid name {name!r}: use 1-63 letters, digits, '.', '_' or '-'")


def init_ca(directory: str, *, force: bool = False, now: datetime.datetime | None = None) -> Pair:
    """Make the installation's CA in `directory`."""
    pair = ca_pair(directory)
    _refuse_overwrite(pair, force)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORG),
                      x509.NameAttribute(NameOID.COMMON_NAME, f"{ORG} CA")])
    start = (now or _now()) - BACKDATE
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start).not_valid_after(start + datetime.timedelta(days=CA_DAYS))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False,
                                         key_encipherment=False, data_encipherment=False, key_agreement=False,
                                         key_cert_sign=True, crl_sign=True, encipher_only=False,
                                         decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256()))
    _write(pair, cert, key, directory)
    return pair


def issue(directory: str, role: Role, name: str, *, sans: tuple[str, ...] = (), force: bool = False,
          days: int = LEAF_DAYS, now: datetime.datetime | None = None) -> Pair:
    """A key and certificate for `role` `name`, signed by the CA in `directory`.
    `sans`: IP addresses or DNS names a server answers on (the name is always one)."""
    check_name(role, name)
    if days < 1:
        raise InvalidInput(f"--days must be at least 1, not {days}")
    ca_cert, ca_key = load_ca(directory)
    pair = holder_pair(directory, role, name)
    _refuse_overwrite(pair, force)
    key = ec.generate_private_key(ec.SECP256R1())
    start = (now or _now()) - BACKDATE
    cert = (x509.CertificateBuilder().subject_name(subject_for(role, name)).issuer_name(ca_cert.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(start).not_valid_after(start + datetime.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage(USAGES[role]), critical=False)
            .add_extension(x509.SubjectAlternativeName(_alt_names(name, sans)), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    _write(pair, cert, key, directory)
    return pair


def load_ca(directory: str) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    pair = ca_pair(directory)
    if not os.path.exists(pair.cert) or not os.path.exists(pair.key):
        raise NotFound(f"no CA in {directory}: run `daolinet pki init --dir {directory}` first")
    try:
        with open(pair.cert, "rb") as f:
            cert = x509.load_pem_x509_certificate(f.read())
        with open(pair.key, "rb") as f:
            key = serialization.load_pem_private_key(f.read(), password=None)
    except OSError as e:
        raise SystemFailure(f"cannot read the CA in {directory}: {e.strerror or e}") from None
    except ValueError as e:
        raise InvalidInput(f"the CA in {directory} is not a PEM certificate and key: {e}") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise InvalidInput(f"the CA key {pair.key} is not an EC key made by `daolinet pki init`")
    return cert, key


def _alt_names(name: str, sans: tuple[str, ...]) -> list[x509.GeneralName]:
    out: list[x509.GeneralName] = []
    for value in (name, *sans):
        try:
            out.append(x509.IPAddress(ipaddress.ip_address(value)))
        except ValueError:
            if not NAME_RE.match(value):
                raise InvalidInput(f"invalid --san {value!r}: an IP address or a DNS name") from None
            out.append(x509.DNSName(value))
    return list(dict.fromkeys(out))


def _refuse_overwrite(pair: Pair, force: bool) -> None:
    existing = [p for p in (pair.cert, pair.key) if os.path.exists(p)]
    if existing and not force:
        raise Conflict(f"{existing[0]} exists: add --force to replace it")


def _write(pair: Pair, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey, directory: str) -> None:
    os.makedirs(directory, mode=0o700, exist_ok=True)
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    for path, data in ((pair.key, key_pem), (pair.cert, cert.public_bytes(serialization.Encoding.PEM))):
        tmp = path + ".tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)
