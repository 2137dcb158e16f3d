"""keck-top against hostile peers, as a real process (issue 12).

Every hostile agent answer beside a good agent: ``attach --once --json`` prints the
good node, fresh, and the hostile one as a stale row with its one-line reason, within
the timeout, with finite totals. Tokens go only to the URLs they were given for; a
hostile BMC's links to another origin never get credentials (a second server plays
the other host and records what it gets); hostile Prometheus and Keck answers are
rejected or left out with a reason, never summed.
"""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from aiohttp import web

from keck_tui.model import Snapshot
from tests.hostile import documents as docs
from tests.hostile.peers import (Handler, Peer, agent_routes, bmc_routes, hostile_agents, json_answer, keck_node,
                                 keck_pod, keck_routes, other_host_routes, prometheus_routes, prometheus_vector)

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "agent-token-0123456789"
UNSAFE = ("\x1b", "\x07", "\x9b", "\u202e", "\x00")


def keck_top(*args: str, timeout: float = 90, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "keck_tui", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})})


def _finite_and_ordered(snap: Snapshot) -> None:
    for _, row in snap.root.walk():
        assert all(math.isfinite(v) for v in (row.watts, row.watts_lo, row.watts_hi, row.joules))
        assert row.watts_lo <= row.watts <= row.watts_hi + 1e-9 * max(1.0, row.watts)


HOSTILE = hostile_agents()


@pytest.mark.parametrize("what", [
    "deep JSON", "200 MB answer", "endless chunked answer", "trickle (1 byte / 0.2 s)", "slow answer",
    "not JSON", "NaN watts", "Infinity watts", "1e308 watts", "negative watts", "watts_lo above watts_hi",
    "pid is a string", "rows 300 deep", "redirect elsewhere"])
def test_one_hostile_agent_beside_a_good_one(what: str) -> None:
    with Peer(agent_routes(json_answer(docs.good("good")))) as good, Peer(agent_routes(HOSTILE[what])) as bad:
        started = time.monotonic()
        r = keck_top("attach", good.url, bad.url, "--once", "--json", "--timeout", "2", "--config", "/dev/null")
        elapsed = time.monotonic() - started
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr
    snap = Snapshot.loads(r.stdout)
    nodes = {n.name: n for n in snap.root.children[0].children}
    assert nodes["good"].watts == 100.0 and not nodes["good"].stale
    hostile = [n for n in nodes.values() if n.name != "good"]
    assert len(hostile) == 1 and hostile[0].stale and hostile[0].error and "\n" not in hostile[0].error
    assert snap.root.watts == 100.0
    _finite_and_ordered(snap)
    assert elapsed < 20, elapsed  # the 2 s timeout bounds every answer, endless or trickling


def test_escape_sequences_from_an_agent_never_reach_the_output() -> None:
    with Peer(agent_routes(HOSTILE["escape sequences"])) as bad:
        r = keck_top("attach", bad.url, "--once", "--config", "/dev/null")
        j = keck_top("attach", bad.url, "--once", "--json", "--config", "/dev/null")
    assert r.returncode == 0 and j.returncode == 0, r.stderr + j.stderr
    for out in (r.stdout, j.stdout, r.stderr):
        assert not any(ch in out for ch in UNSAFE)
    assert "\\u001b" not in j.stdout and "pwned" in j.stdout


def test_a_hostile_agent_does_not_stop_batch_output() -> None:
    """QA: --batch printed nothing for 12 s with a deep-JSON agent beside a good one."""
    with Peer(agent_routes(json_answer(docs.good("good")))) as good, Peer(agent_routes(HOSTILE["deep JSON"])) as bad:
        started = time.monotonic()
        r = keck_top("attach", good.url, bad.url, "--batch", "-n", "2", "--interval", "0.5", "--timeout", "2",
                     "--config", "/dev/null")
    assert r.returncode == 0 and r.stdout.count("good") >= 2, r.stdout + r.stderr
    assert time.monotonic() - started < 20


# ---------------------------------------------------------------- tokens per origin

def _token_file(tmp_path: Path, name: str, token: str) -> str:
    path = tmp_path / name
    path.write_text(token + "\n")
    path.chmod(0o600)
    return str(path)


def _bearers(peer: Peer) -> set[str]:
    return {s.headers.get("Authorization", "") for s in peer.seen}


def _keck_peer() -> Peer:
    return Peer(keck_routes({"node_count": 1}, [keck_node()], [{"namespace": "default"}], [keck_pod()]))


def gauges_only(vector: dict) -> Handler:
    """Prometheus answering ``vector`` to the gauge query and nothing to the rate() queries."""
    async def handler(request: web.Request) -> web.StreamResponse:
        if request.query.get("query", "").startswith("rate("):
            return web.json_response(prometheus_vector([]))
        return web.json_response(vector)
    return handler


def _prometheus_peer() -> Peer:
    vector = prometheus_vector([({"__name__": "keck_node_power_watts", "node": "p1"}, "50")])
    return Peer(prometheus_routes(gauges_only(vector)))


def test_the_agents_token_goes_to_the_agents_only(tmp_path: Path) -> None:
    """QA: `attach --token-file` also sent the agents' token to --keck and --prometheus servers."""
    tok = _token_file(tmp_path, "tok", TOKEN)
    with Peer(agent_routes(json_answer(docs.good("a1")))) as agent, _keck_peer() as keck, \
            _prometheus_peer() as prom:
        r = keck_top("attach", agent.url, "--keck", keck.url, "--prometheus", prom.url, "--token-file", tok,
                     "--once", "--json", "--config", "/dev/null")
        assert r.returncode == 0, r.stderr
        assert _bearers(agent) == {f"Bearer {TOKEN}"}
        assert keck.seen and prom.seen and _bearers(keck) == {""} and _bearers(prom) == {""}
        assert "--token-file goes to the agent URLs only" in r.stderr
        keck_tok = _token_file(tmp_path, "keck", "keck-token-9876543210")
        prom_tok = _token_file(tmp_path, "prom", "prom-token-9876543210")
        agent.seen.clear(), keck.seen.clear(), prom.seen.clear()
        r = keck_top("attach", agent.url, "--keck", keck.url, "--prometheus", prom.url, "--token-file", tok,
                     "--keck-token-file", keck_tok, "--prometheus-token-file", prom_tok,
                     "--once", "--json", "--config", "/dev/null")
        assert r.returncode == 0, r.stderr
        assert _bearers(agent) == {f"Bearer {TOKEN}"}
        assert _bearers(keck) == {"Bearer keck-token-9876543210"}
        assert _bearers(prom) == {"Bearer prom-token-9876543210"}


def test_without_agents_the_token_is_for_the_one_server_named(tmp_path: Path) -> None:
    tok = _token_file(tmp_path, "tok", TOKEN)
    with _prometheus_peer() as prom, _keck_peer() as keck:
        r = keck_top("--prometheus", prom.url, "--token-file", tok, "--once", "--json", "--config", "/dev/null")
        assert r.returncode == 0 and _bearers(prom) == {f"Bearer {TOKEN}"}, r.stderr
        r = keck_top("attach", "--keck", keck.url, "--prometheus", prom.url, "--token-file", tok, "--once",
                     "--config", "/dev/null")
        assert r.returncode == 2 and "say which server gets which token" in r.stderr
        assert not keck.seen


def test_a_redirect_never_carries_the_token_elsewhere(tmp_path: Path) -> None:
    tok = _token_file(tmp_path, "tok", TOKEN)
    with Peer(other_host_routes()) as other:
        with Peer(agent_routes(HOSTILE["redirect elsewhere"])) as agent:
            agent.routes["/api/v1/snapshot"] = json_answer({}, 302)
            from tests.hostile.peers import redirect_to
            agent.routes["/api/v1/snapshot"] = redirect_to(f"{other.url}/api/v1/snapshot")
            r = keck_top("attach", agent.url, "--token-file", tok, "--once", "--json", "--config", "/dev/null")
    assert r.returncode == 1  # nothing answered: the redirect was not followed with the token
    assert not [s for s in other.seen if TOKEN in json.dumps(s.headers)]
    assert TOKEN not in r.stdout + r.stderr


# ---------------------------------------------------------------- hostile BMCs

def _credentials(tmp_path: Path) -> str:
    path = tmp_path / "bmc.cred"
    path.write_text("admin:s3cret-bmc-password\n")
    path.chmod(0o600)
    return str(path)


def _once_with_bmc(bmc: Peer, cred: str, *extra: str) -> subprocess.CompletedProcess:
    return keck_top("--once", "--json", "--interval", "0.3", "--probes", "procfs", "--no-gpu",
                    "--redfish", bmc.url, "--redfish-credentials", cred, "--config", "/dev/null", *extra)


@pytest.mark.parametrize("auth", ["basic", "session"])
def test_a_bmc_link_to_another_host_gets_no_credentials(tmp_path: Path, auth: str) -> None:
    """QA: an absolute @odata.id on another host got the Basic credentials (or the X-Auth-Token);
    a Links.Sessions on another host got the user name and password in a POST."""
    cred = _credentials(tmp_path)
    with Peer(other_host_routes()) as other:
        with Peer() as bmc:
            bmc.routes.update(bmc_routes(other.url, chassis_elsewhere=True, sessions_elsewhere=True))
            r = _once_with_bmc(bmc, cred, "--redfish-auth", auth)
        assert r.returncode == 0, r.stderr
        assert bmc.seen  # the BMC itself was read …
        # … and the other host got no credentials, no session token and no login
        assert not other.requests_with("Authorization") and not other.requests_with("X-Auth-Token")
        assert not [s for s in other.seen if s.method == "POST" or b"s3cret" in s.body]
    assert "s3cret" not in r.stdout + r.stderr
    redfish = Snapshot.loads(r.stdout).source("redfish")
    assert redfish is not None and "s3cret" not in redfish.detail


@pytest.mark.parametrize("reading", ["Infinity", "-Infinity", "NaN", "1e999", "-5", "1e308", '"abc"'])
def test_a_bmc_reading_that_is_no_number_is_no_reading(tmp_path: Path, reading: str) -> None:
    """QA: a BMC reading of Infinity made --once --json exit with a traceback."""
    with Peer() as bmc:
        bmc.routes.update(bmc_routes("http://127.0.0.1:9", reading=reading))
        r = _once_with_bmc(bmc, _credentials(tmp_path))
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    snap = Snapshot.loads(r.stdout)
    _finite_and_ordered(snap)
    assert snap.root.watts < 1e6


@pytest.mark.parametrize("what", ["deep JSON", "200 MB answer", "endless chunked answer"])
def test_a_hostile_bmc_is_a_status_not_a_dead_thread(tmp_path: Path, what: str) -> None:
    """QA: nested JSON killed the Redfish thread ("waiting for the first reading" forever)."""
    root = {"deep JSON": HOSTILE["deep JSON"], "200 MB answer": HOSTILE["200 MB answer"],
            "endless chunked answer": HOSTILE["endless chunked answer"]}[what]
    with Peer() as bmc:
        bmc.routes.update(bmc_routes("http://127.0.0.1:9", root=root))
        r = _once_with_bmc(bmc, _credentials(tmp_path))
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    redfish = Snapshot.loads(r.stdout).source("redfish")
    assert redfish is not None and redfish.status in ("error", "unavailable"), redfish
    assert "waiting" not in redfish.detail
    assert ("too large" in redfish.detail) or ("nested" in redfish.detail), redfish.detail


# ---------------------------------------------------------------- Prometheus and Keck

def test_hostile_prometheus_numbers_and_labels(tmp_path: Path) -> None:
    vector = prometheus_vector([
        ({"__name__": "keck_node_power_watts", "node": "ok\x1b[2J", "cluster": "c\u202e1"}, "50"),
        ({"__name__": "keck_node_power_watts", "node": "inf"}, "+Inf"),
        ({"__name__": "keck_node_power_watts", "node": "nan"}, "NaN"),
        ({"__name__": "keck_node_power_watts", "node": "neg"}, "-100"),
        ({"__name__": "keck_node_power_watts", "node": "big"}, "1e308")])
    with Peer(prometheus_routes(gauges_only(vector))) as prom:
        r = keck_top("attach", "--prometheus", prom.url, "--once", "--json", "--config", "/dev/null")
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    snap = Snapshot.loads(r.stdout)
    _finite_and_ordered(snap)
    assert snap.root.watts == 50.0 and not any(ch in r.stdout for ch in UNSAFE)
    assert "4 sample(s) ignored" in snap.source("prometheus").detail


@pytest.mark.parametrize("what", ["deep JSON", "200 MB answer", "not JSON"])
def test_a_hostile_prometheus_answer_is_its_status(what: str) -> None:
    with Peer(prometheus_routes(HOSTILE[what])) as prom:
        r = keck_top("attach", "--prometheus", prom.url, "--once", "--json", "--timeout", "3",
                     "--config", "/dev/null")
    assert r.returncode == 1 and "Traceback" not in r.stderr  # nothing answered: said, not crashed
    snap = Snapshot.loads(r.stdout)
    assert snap.source("prometheus").status == "error" and snap.root.watts == 0.0


@pytest.mark.parametrize("node, pod", [
    (keck_node(platform_watts=1e308), keck_pod()),
    (keck_node(error_ratio=1e308), keck_pod()),
    (keck_node(), keck_pod(total_watts=-50.0)),
    (keck_node(cpu_watts="lots", platform_watts=None), keck_pod()),
    (keck_node(platform_watts=10**400), keck_pod()),
])
def test_a_hostile_keck_controller_beside_a_good_agent(node, pod) -> None:
    with Peer(keck_routes({"node_count": 1}, [node], [{"namespace": "default"}], [pod])) as keck, \
            Peer(agent_routes(json_answer(docs.good("good")))) as agent:
        r = keck_top("attach", agent.url, "--keck", keck.url, "--once", "--json", "--config", "/dev/null")
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    snap = Snapshot.loads(r.stdout)
    _finite_and_ordered(snap)
    assert snap.root.watts == 100.0
    status = next(s for s in snap.sources if s.name.startswith("keck"))
    assert status.status == "error" and status.detail.startswith("answer rejected: row ")


def test_keck_names_with_escapes_are_shown_safely() -> None:
    with Peer(keck_routes({"node_count": 1}, [keck_node("k\x1b]0;x\x07")], [{"namespace": "d\x1b[2J"}],
                          [keck_pod("p\u202eod", namespace="d\x1b[2J", node_name="k\x1b]0;x\x07")])) as keck:
        r = keck_top("attach", "--keck", keck.url, "--once", "--config", "/dev/null")
    assert r.returncode == 0, r.stderr
    assert not any(ch in r.stdout for ch in UNSAFE)
