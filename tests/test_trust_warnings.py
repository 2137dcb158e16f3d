"""Operator warnings on stderr and in doctor (issue 12): secret files others can read, an agent
beyond loopback without a token, TLS certificates expired or expiring within 14 days."""
from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.hostile import documents as docs
from tests.hostile.peers import Peer, agent_routes, json_answer

ROOT = Path(__file__).resolve().parents[1]
trustme = pytest.importorskip("trustme")


def _secret(tmp_path: Path, name: str, text: str, mode: int) -> str:
    path = tmp_path / name
    path.write_text(text)
    path.chmod(mode)
    return str(path)


def _snapshot_file(tmp_path: Path) -> str:
    path = tmp_path / "snap.json"
    path.write_text(json.dumps(docs.good("n1")))
    return str(path)


def _serve_stderr(*args: str) -> list[str]:
    """The lines `keck-top serve` prints before (and including) 'listening on …'."""
    proc = subprocess.Popen([sys.executable, "-m", "keck_tui", "serve", "--config", "/dev/null", *args],
                            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    lines: list[str] = []
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = proc.stderr.readline()
            if not line:
                break
            lines.append(line.rstrip("\n"))
            if "listening on" in line:
                break
    finally:
        proc.terminate()
        proc.wait(10)
    return lines


def _cert_and_key(tmp_path: Path, not_after: dt.datetime, key_mode: int = 0o600) -> tuple[str, str]:
    leaf = trustme.CA().issue_cert("localhost", not_after=not_after)
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    leaf.cert_chain_pems[0].write_to_path(str(cert))
    leaf.private_key_pem.write_to_path(str(key))
    key.chmod(key_mode)
    return str(cert), str(key)


def test_serve_warns_about_a_readable_token_and_key_and_an_expiring_certificate(tmp_path: Path) -> None:
    token = _secret(tmp_path, "token", "s3cret-token-abcdef\n", 0o644)
    cert, key = _cert_and_key(tmp_path, dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=3), 0o644)
    lines = _serve_stderr("--listen", "127.0.0.1:0", "--from-file", _snapshot_file(tmp_path),
                          "--token-file", token, "--tls-cert", cert, "--tls-key", key)
    text = "\n".join(lines)
    assert "listening on https://" in lines[-1], text
    assert f"keck-top serve: warning: token file {token} is accessible to other users (mode 0644)" in text
    assert f"TLS key {key} is accessible to other users" in text
    assert f"TLS certificate {cert} expires in 2 days" in text
    assert "s3cret" not in text


def test_serve_warns_when_listening_beyond_loopback_without_auth(tmp_path: Path) -> None:
    lines = _serve_stderr("--listen", "0.0.0.0:0", "--insecure-no-auth", "--from-file", _snapshot_file(tmp_path))
    assert any("warning: listening on 0.0.0.0:0 without a token (--insecure-no-auth)" in line for line in lines), lines


def test_serve_says_nothing_when_all_is_well(tmp_path: Path) -> None:
    token = _secret(tmp_path, "token", "s3cret-token-abcdef\n", 0o600)
    cert, key = _cert_and_key(tmp_path, dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=90))
    lines = _serve_stderr("--listen", "127.0.0.1:0", "--from-file", _snapshot_file(tmp_path),
                          "--token-file", token, "--tls-cert", cert, "--tls-key", key)
    assert len(lines) == 1 and "listening on" in lines[0], lines


def test_an_expired_certificate_is_said(tmp_path: Path) -> None:
    cert, key = _cert_and_key(tmp_path, dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=1))
    lines = _serve_stderr("--listen", "127.0.0.1:0", "--from-file", _snapshot_file(tmp_path),
                          "--tls-cert", cert, "--tls-key", key)
    assert any(f"TLS certificate {cert} EXPIRED on" in line for line in lines), lines


def test_attach_warns_about_readable_token_files_its_own_and_the_fleets(tmp_path: Path) -> None:
    own = _secret(tmp_path, "own.token", "own-token-0123456789\n", 0o640)
    fleet_token = _secret(tmp_path, "fleet.token", "fleet-token-0123456789\n", 0o604)
    with Peer(agent_routes(json_answer(docs.good("n1")))) as agent:
        fleet = tmp_path / "fleet.toml"
        fleet.write_text(f'token_file = "fleet.token"\n[clusters.a]\nagents = ["{agent.url}"]\n')
        r = subprocess.run([sys.executable, "-m", "keck_tui", "attach", agent.url, "--fleet", str(fleet),
                            "--token-file", own, "--once", "--json", "--config", "/dev/null"],
                           capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    assert f"keck-top: warning: token file {own} is accessible to other users (mode 0640)" in r.stderr
    assert f"fleet token file {fleet_token} is accessible to other users (mode 0604)" in r.stderr
    assert "token-0123456789" not in r.stderr + r.stdout


def test_local_sources_and_doctor_warn_about_readable_secrets(tmp_path: Path) -> None:
    cred = _secret(tmp_path, "bmc.cred", "admin:pw\n", 0o644)
    agent_token = _secret(tmp_path, "agent.token", "agent-token-0123456789\n", 0o644)
    config = tmp_path / "config.toml"
    config.write_text(f'[agent]\ntoken_file = "{agent_token}"\n\n'
                      f'[redfish]\nurl = "http://127.0.0.1:9"\ncredentials_file = "{cred}"\ninterval = 1\n')
    r = subprocess.run([sys.executable, "-m", "keck_tui", "--once", "--json", "--interval", "0.2", "--probes",
                        "procfs", "--no-gpu", "--config", str(config)],
                       capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    assert f"keck-top: warning: Redfish credentials file {cred} is accessible to other users" in r.stderr
    d = subprocess.run([sys.executable, "-m", "keck_tui", "doctor", "--json", "--probes", "procfs", "--no-gpu",
                        "--config", str(config)], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert d.returncode == 0, d.stderr
    warnings = json.loads(d.stdout)["warnings"]
    assert any(f"Redfish credentials file {cred}" in w for w in warnings), warnings
    assert any(f"token file {agent_token}" in w for w in warnings), warnings


def test_doctor_lists_an_agent_configured_beyond_loopback_without_auth(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[agent]\nlisten = "0.0.0.0:9464"\ninsecure_no_auth = true\n')
    d = subprocess.run([sys.executable, "-m", "keck_tui", "doctor", "--probes", "procfs", "--no-gpu",
                        "--config", str(config)], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert d.returncode == 0, d.stderr
    assert "warning: listening on 0.0.0.0:9464 without a token" in d.stdout
