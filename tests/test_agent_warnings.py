"""Start-up warnings for exposed secrets and certificates (issue 12)."""
from __future__ import annotations

import datetime as dt

import pytest

from keck_tui.agent.auth import exposure_warning
from keck_tui.common.tokens import TokenError, load_token
from keck_tui.agent.certs import certificate_warnings

trustme = pytest.importorskip("trustme")


def test_a_token_file_others_can_read_is_warned_about(tmp_path):
    tok = tmp_path / "token"
    tok.write_text("abc\n")
    tok.chmod(0o644)
    warning = exposure_warning(tok)
    assert warning and "0644" in warning and f"chmod 600 {tok}" in warning
    tok.chmod(0o600)
    assert exposure_warning(tok) is None


def test_token_files_are_read_bounded(tmp_path):
    with pytest.raises(TokenError, match="not a regular file"):
        load_token("/dev/zero")
    big = tmp_path / "big"
    big.write_bytes(b"a" * 100_000)
    with pytest.raises(TokenError, match="larger than"):
        load_token(big)


def _cert(tmp_path, not_after: dt.datetime) -> str:
    ca = trustme.CA()
    leaf = ca.issue_cert("localhost", not_after=not_after)
    path = tmp_path / "cert.pem"
    leaf.cert_chain_pems[0].write_to_path(str(path))
    return str(path)


def test_expired_and_expiring_certificates_are_warned_about(tmp_path):
    now = dt.datetime(2026, 12, 2, tzinfo=dt.timezone.utc)
    expired = _cert(tmp_path, dt.datetime(2026, 11, 1, tzinfo=dt.timezone.utc))
    assert "EXPIRED on 2026-11-01" in certificate_warnings(expired, now)[0]
    soon = _cert(tmp_path, now + dt.timedelta(days=5, hours=1))
    assert "expires in 5 days" in certificate_warnings(soon, now)[0]
    fine = _cert(tmp_path, now + dt.timedelta(days=90))
    assert certificate_warnings(fine, now) == []
    assert "cannot read certificate" in certificate_warnings(tmp_path / "missing.pem", now)[0]
