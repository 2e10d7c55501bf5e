"""The PKI: certificates name role and name, files are 0600, nothing is overwritten
unless forced, and TLS between two holders authenticates both ends."""

from __future__ import annotations

import datetime
import os
import socket
import ssl
import stat
import threading

import pytest
from cryptography import x509

from daolinet.cli.main import run
from daolinet.errors import Conflict, InvalidInput, NotFound
from daolinet.security import pki, tls
from daolinet.security.identity import Identity, identity_of


@pytest.fixture
def ca(tmp_path):
    d = str(tmp_path / "pki")
    pki.init_ca(d)
    return d


def _cert(path):
    with open(path, "rb") as f:
        return x509.load_pem_x509_certificate(f.read())


def test_issue_names_role_and_name_and_files_are_private(ca):
    pair = pki.issue(ca, "host", "h1")
    assert identity_of(_cert(pair.cert)) == Identity("host", "h1")
    for path in (pair.cert, pair.key, pki.ca_pair(ca).key):
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_refuses_overwrite_without_force(ca):
    first = pki.issue(ca, "user", "alice")
    with open(first.cert, "rb") as f:
        before = f.read()
    with pytest.raises(Conflict, match="--force"):
        pki.issue(ca, "user", "alice")
    with pytest.raises(Conflict):
        pki.init_ca(ca)
    with open(first.cert, "rb") as f:
        assert f.read() == before
    pki.issue(ca, "user", "alice", force=True)
    with open(first.cert, "rb") as f:
        assert f.read() != before


def test_bad_input(ca, tmp_path):
    with pytest.raises(InvalidInput, match="role"):
        pki.issue(ca, "admin", "x")  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="invalid name"):
        pki.issue(ca, "host", "a b")
    with pytest.raises(InvalidInput, match="--san"):
        pki.issue(ca, "controller", "c1", sans=("not a name",))
    with pytest.raises(NotFound, match="pki init"):
        pki.issue(str(tmp_path / "none"), "host", "h1")


def test_cli_one_line_errors(ca, capsys):
    assert run(["pki", "issue", "host", "h1", "--dir", ca]) == 0
    assert run(["pki", "issue", "host", "h1", "--dir", ca]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "--force" in err[0]


def test_sans_are_ip_and_dns(ca):
    pair = pki.issue(ca, "controller", "c1", sans=("198.18.0.200", "ctl.example"))
    names = _cert(pair.cert).extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(ip) for ip in names.get_values_for_type(x509.IPAddress)] == ["198.18.0.200"]
    assert names.get_values_for_type(x509.DNSName) == ["c1", "ctl.example"]


def _handshake(server: ssl.SSLContext, client: ssl.SSLContext, hostname: str = "127.0.0.1"):
    """(what the server saw, what the client saw or the client's error)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    seen: dict[str, object] = {}

    def serve() -> None:
        conn, _ = listener.accept()
        try:
            with server.wrap_socket(conn, server_side=True) as s:
                seen["server"] = tls.peer_identity(s)
        except (ssl.SSLError, OSError) as e:
            seen["server"] = e

    t = threading.Thread(target=serve)
    t.start()
    try:
        with client.wrap_socket(socket.create_connection(listener.getsockname()),
                                server_hostname=hostname) as s:
            seen["client"] = tls.peer_identity(s)
            s.recv(1)  # TLS 1.3: the server's verdict on our certificate arrives after the handshake
    except (ssl.SSLError, OSError) as e:
        seen["client"] = e
    t.join(10)
    listener.close()
    return seen["server"], seen["client"]


def test_mutual_tls_identifies_both_ends(ca):
    pki.issue(ca, "controller", "c1", sans=("127.0.0.1",))
    pki.issue(ca, "host", "h1")
    server, client = _handshake(tls.server_context(tls.TlsFiles.of(ca, "controller", "c1")),
                                tls.client_context(tls.TlsFiles.of(ca, "host", "h1")))
    assert server == Identity("host", "h1") and client == Identity("controller", "c1")


def test_other_ca_expired_and_missing_certificates_are_refused(ca, tmp_path):
    pki.issue(ca, "controller", "c1", sans=("127.0.0.1",))
    server = tls.server_context(tls.TlsFiles.of(ca, "controller", "c1"))
    other = str(tmp_path / "other")
    pki.init_ca(other)
    pki.issue(other, "host", "h1")
    long_ago = datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=30)
    pki.issue(ca, "host", "old", days=2, now=long_ago)
    ca_only = tls.client_context(tls.TlsFiles(pki.ca_pair(ca).cert))
    # The server's side: its context refuses each of these clients.
    for client in (tls.client_context(tls.TlsFiles(pki.ca_pair(ca).cert, *_pair(other, "h1"))),
                   tls.client_context(tls.TlsFiles.of(ca, "host", "old")), ca_only):
        seen, _ = _handshake(server, client)
        assert isinstance(seen, ssl.SSLError), seen
    # The client's side: a server from another CA is refused before anything is sent.
    pki.issue(other, "controller", "c1", sans=("127.0.0.1",))
    _, seen = _handshake(tls.server_context(tls.TlsFiles.of(other, "controller", "c1")), ca_only)
    assert isinstance(seen, ssl.SSLCertVerificationError)


def _pair(directory, name):
    p = pki.holder_pair(directory, "host", name)
    return p.cert, p.key


def test_unreadable_files_name_the_path(ca, tmp_path):
    with pytest.raises(InvalidInput, match=str(tmp_path / "nope.crt")):
        tls.server_context(tls.TlsFiles(pki.ca_pair(ca).cert, str(tmp_path / "nope.crt"), "k"))
    with pytest.raises(InvalidInput, match="needs a certificate and its key"):
        tls.server_context(tls.TlsFiles(pki.ca_pair(ca).cert))
