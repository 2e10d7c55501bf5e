"""Daemons refuse to start insecurely or half-configured, in one line naming what is wrong."""

from __future__ import annotations

import logging

import pytest

from daolinet.cli.main import run
from daolinet.errors import InvalidInput
from daolinet.security import pki
from daolinet.security.settings import Security
from daolinet.security.tls import TlsFiles


def _one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


def test_a_missing_key_stops_the_controller_naming_the_path(tmp_path, capsys) -> None:
    pki.init_ca(str(tmp_path))
    pair = pki.issue(str(tmp_path), "controller", "c1")
    missing = str(tmp_path / "gone.key")
    assert run(["controller", f"--store=sqlite:///{tmp_path}/s.db", f"--tls-cert={pair.cert}",
                f"--tls-key={missing}", f"--tls-ca={tmp_path}/ca.crt"]) == 1
    line = _one_error_line(capsys)
    assert missing in line and "No such file" in line


def test_an_unreadable_certificate_stops_the_agent(tmp_path, capsys) -> None:
    assert run(["agent", "--controller=ssl:198.18.0.200:6653", "--pip-pool=198.18.1.0/24",
                "--api=https://198.18.0.200:8650", f"--tls-cert={tmp_path}/h1.crt",
                f"--tls-key={tmp_path}/h1.key", f"--tls-ca={tmp_path}/ca.crt"]) == 1
    assert f"{tmp_path}/ca.crt" in _one_error_line(capsys)


def test_plaintext_targets_need_insecure(tmp_path, capsys) -> None:
    pki.init_ca(str(tmp_path))
    pair = pki.issue(str(tmp_path), "controller", "c1")
    assert run(["controller", f"--store=sqlite:///{tmp_path}/s.db", "--of-listen=tcp:127.0.0.1:6653",
                f"--tls-cert={pair.cert}", f"--tls-key={pair.key}", f"--tls-ca={tmp_path}/ca.crt"]) == 1
    line = _one_error_line(capsys)
    assert "plaintext" in line and "--insecure" in line
    with pytest.raises(InvalidInput, match="--tls-key"):
        Security.from_options(cert=pair.cert, key=None, ca=f"{tmp_path}/ca.crt", insecure=False)
    with pytest.raises(InvalidInput, match="needs --tls-cert"):
        Security(tls=None, insecure=True).check_targets(["ssl:0.0.0.0:6653"], "--of-listen")


def test_insecure_is_explicit_and_warned(caplog) -> None:
    security = Security.from_options(cert=None, key=None, ca=None, insecure=True)
    assert security.tls is None
    security.check_targets(["tcp:127.0.0.1:6653", "unix:/run/x.sock"], "--of-listen")
    with caplog.at_level(logging.WARNING):
        security.warn("controller")
    assert "--insecure" in caplog.text
    with pytest.raises(InvalidInput, match="--insecure"):
        Security.from_options(cert=None, key=None, ca=None, insecure=False)


def test_etcd_tls_needs_all_three_files(tmp_path) -> None:
    pki.init_ca(str(tmp_path))
    pair = pki.issue(str(tmp_path), "controller", "c1")
    with pytest.raises(InvalidInput, match="--etcd-ca, --etcd-cert and --etcd-key"):
        Security.from_options(cert=None, key=None, ca=None, insecure=True, etcd_cert=pair.cert)
    ok = Security.from_options(cert=None, key=None, ca=None, insecure=True, etcd_ca=f"{tmp_path}/ca.crt",
                               etcd_cert=pair.cert, etcd_key=pair.key)
    assert ok.etcd == TlsFiles(f"{tmp_path}/ca.crt", pair.cert, pair.key)
