"""Certificate checks at start-up: an expired or soon-expiring certificate is said, not found out by clients."""
from __future__ import annotations

import datetime as dt
import os

from keck_tui.common.bounded import CONFIG_FILE, BoundedInputError, read_file

EXPIRY_WARNING_DAYS = 14


def certificate_warnings(cert_path: str | os.PathLike[str], now: dt.datetime) -> list[str]:
    """Warnings for the first certificate in a PEM chain: expired, not yet valid, or expiring soon."""
    try:
        from cryptography import x509
    except ImportError:  # pragma: no cover - cryptography is a dependency
        return [f"cannot check the expiry of {cert_path}: python 'cryptography' is not installed"]
    try:
        cert = x509.load_pem_x509_certificate(read_file(cert_path, CONFIG_FILE, "certificate"))
    except (OSError, BoundedInputError, ValueError) as exc:
        return [f"cannot read certificate {cert_path}: {' '.join(str(exc).split())[:200]}"]
    after, before = cert.not_valid_after_utc, cert.not_valid_before_utc
    if now >= after:
        return [f"TLS certificate {cert_path} EXPIRED on {after:%Y-%m-%d %H:%M} UTC: clients will refuse it"]
    if now < before:
        return [f"TLS certificate {cert_path} is not valid before {before:%Y-%m-%d %H:%M} UTC"]
    left = after - now
    if left <= dt.timedelta(days=EXPIRY_WARNING_DAYS):
        return [f"TLS certificate {cert_path} expires in {left.days} days ({after:%Y-%m-%d} UTC): renew it"]
    return []
