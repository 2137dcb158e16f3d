"""Redfish sampler against the DMTF mockups served by a local aiohttp server."""
from __future__ import annotations

import asyncio
import base64
import json
import time
from pathlib import Path

import pytest
from aiohttp import web

from keck_tui.cli import build_parser
from keck_tui.commands.base import local_sources_from_args
from keck_tui.clock import FakeClock
from keck_tui.config import Settings
from keck_tui.common.errors import SourceConfigError
from keck_tui.samplers.redfish import DEFAULT_ACCURACY, RedfishConfig, RedfishSampler, read_credentials
from keck_tui.samplers.types import DOMAIN_NODE
from keck_tui.wiring import LocalSources, build_power
from tests.conftest import shared_fixture
from tests.fakes.http_server import serve_in_thread


def mockup_app(folder: Path, *, hidden: tuple[str, ...] = (), broken: tuple[str, ...] = (),
               basic: tuple[str, str] | None = None, session: tuple[str, str] | None = None,
               delay_s: float = 0.0, log: list[str] | None = None) -> web.Application:
    """Serve /redfish/v1/<P> from <folder>/<P>/index.json (trailing '/' and '#...' ignored)."""
    tokens: set[str] = set()
    log = log if log is not None else []

    async def handler(request: web.Request) -> web.StreamResponse:
        path = request.path.rstrip("/")
        log.append(f"{request.method} {path}")
        if delay_s:
            await asyncio.sleep(delay_s)
        if request.method == "POST" and path.endswith("/SessionService/Sessions"):
            body = await request.json()
            if session is None or (body.get("UserName"), body.get("Password")) != session:
                return web.Response(status=401)
            token = f"tok{len(tokens)}"
            tokens.add(token)
            return web.Response(status=201, headers={"X-Auth-Token": token,
                                                     "Location": f"/redfish/v1/SessionService/Sessions/{token}"})
        if request.method == "DELETE":
            tokens.discard(path.rsplit("/", 1)[-1])
            return web.Response(status=204)
        if basic is not None:
            want = "Basic " + base64.b64encode(f"{basic[0]}:{basic[1]}".encode()).decode()
            if request.headers.get("Authorization") != want:
                return web.Response(status=401)
        if session is not None and path != "/redfish/v1" and request.headers.get("X-Auth-Token") not in tokens:
            return web.Response(status=401)
        rel = path[len("/redfish/v1"):].lstrip("/")
        if any(rel.startswith(h) for h in hidden):
            return web.Response(status=404)
        if any(rel == b for b in broken):
            return web.Response(body=b'{"PowerWatts": {"Reading": 3', content_type="application/json")
        f = folder / rel / "index.json"
        if not f.is_file():
            return web.Response(status=404)
        return web.Response(body=f.read_bytes(), content_type="application/json")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    return app


def poll(sampler: RedfishSampler):
    return sampler.read_now()


@pytest.mark.parametrize("mockup, expected", [
    ("public-rackmount1", {"chassis-1U": (374.0, 0.002, "EnvironmentMetrics.PowerWatts")}),
    ("public-tower", {"chassis-Tower": (974.0, 0.002, "EnvironmentMetrics.PowerWatts")}),
    # Card1/Card2 are contained in 1U: not added
    ("public-smartnic", {"chassis-1U": (374.0, 0.002, "EnvironmentMetrics.PowerWatts")}),
    # the enclosure has no standard reading, so the node chassis inside it counts
    ("hpe-xl675d-a100", {"chassis-1": (894.0, DEFAULT_ACCURACY, "Power.PowerControl")}),
])
def test_mockups_give_the_chassis_power_they_state(mockup, expected):
    folder = shared_fixture("redfish", mockup)
    with serve_in_thread(mockup_app(folder)) as base:
        r = poll(RedfishSampler(base, clock=FakeClock()))
    assert r.source.status == "ok", r.source.detail
    got = {d.name: (d.watts, d.accuracy, c["from"]) for d, c in zip(r.domains, r.source.extra["chassis"])}
    assert got == {k: (pytest.approx(w), pytest.approx(a), m) for k, (w, a, m) in expected.items()}
    assert all(d.kind == DOMAIN_NODE for d in r.domains)
    assert r.source.watts == pytest.approx(sum(w for w, _, _ in expected.values()))


@pytest.mark.parametrize("hidden, watts, accuracy, method", [
    (("Chassis/1U/EnvironmentMetrics",), 937.4, 0.01, "PowerSupplies.InputPowerWatts"),
    (("Chassis/1U/EnvironmentMetrics", "Chassis/1U/PowerSubsystem"), 344.0, DEFAULT_ACCURACY, "Power.PowerControl"),
    (("Chassis/1U/EnvironmentMetrics", "Chassis/1U/Power"), 374.0, 0.002,  # prefix: Power and PowerSubsystem
     "Sensors.Chassis"),
])
def test_preference_order_falls_back(hidden, watts, accuracy, method):
    folder = shared_fixture("redfish", "public-rackmount1")
    with serve_in_thread(mockup_app(folder, hidden=hidden)) as base:
        r = poll(RedfishSampler(base, clock=FakeClock()))
    assert r.source.ok, r.source.detail
    (d,) = r.domains
    assert (d.watts, d.accuracy, r.source.extra["chassis"][0]["from"]) == (pytest.approx(watts),
                                                                            pytest.approx(accuracy), method)


def test_tower_psu_sum_uses_both_supplies():
    folder = shared_fixture("redfish", "public-tower")
    with serve_in_thread(mockup_app(folder, hidden=("Chassis/Tower/EnvironmentMetrics",))) as base:
        r = poll(RedfishSampler(base, clock=FakeClock()))
    assert r.domains[0].watts == pytest.approx(974.8)  # 487.4 + 487.4


def test_hpe_trailing_slash_ids_and_url_forms():
    folder = shared_fixture("redfish", "hpe-xl675d-a100")
    with serve_in_thread(mockup_app(folder)) as base:
        for url in (base, base + "/", base + "/redfish/v1", base + "/redfish/v1/"):
            s = RedfishSampler(url, clock=FakeClock())
            assert s.url == base + "/redfish/v1"
            assert poll(s).domains[0].watts == 894.0


def test_basic_auth_ok_and_401():
    folder = shared_fixture("redfish", "public-rackmount1")
    with serve_in_thread(mockup_app(folder, basic=("admin", "pw:with:colons"))) as base:
        ok = poll(RedfishSampler(base, credentials=("admin", "pw:with:colons"), clock=FakeClock()))
        assert ok.source.ok and ok.domains[0].watts == 374.0
        bad = RedfishSampler(base, credentials=("admin", "wrong"), clock=FakeClock())
        r = poll(bad)
        assert r.source.status == "error" and "HTTP 401" in r.source.detail and r.domains == ()


def test_session_auth_logs_in_reads_and_logs_out():
    folder = shared_fixture("redfish", "public-rackmount1")
    log: list[str] = []
    app = mockup_app(folder, session=("svc", "s3cret"), log=log)
    with serve_in_thread(app) as base:
        r = poll(RedfishSampler(base, auth="session", credentials=("svc", "s3cret"), clock=FakeClock()))
        assert r.source.ok and r.domains[0].watts == 374.0
        assert "POST /redfish/v1/SessionService/Sessions" in log
        assert log[-1].startswith("DELETE /redfish/v1/SessionService/Sessions/tok")
        r = poll(RedfishSampler(base, auth="session", credentials=("svc", "nope"), clock=FakeClock()))
        assert r.source.status == "error" and "session" in r.source.detail


def test_malformed_json_missing_links_and_unreachable_are_statuses():
    folder = shared_fixture("redfish", "public-rackmount1")
    with serve_in_thread(mockup_app(folder, broken=("Chassis",))) as base:
        r = poll(RedfishSampler(base, clock=FakeClock()))
        assert r.source.status == "error" and "malformed JSON" in r.source.detail
    with serve_in_thread(mockup_app(folder, hidden=("Chassis/1U",))) as base:
        r = poll(RedfishSampler(base, clock=FakeClock()))
        assert r.source.status == "error" and "no chassis reports its power" in r.source.detail
    r = poll(RedfishSampler("http://127.0.0.1:9", clock=FakeClock(), timeout=2.0))
    assert r.source.status == "error" and "127.0.0.1:9" in r.source.detail


def test_timeout_is_a_status():
    folder = shared_fixture("redfish", "public-rackmount1")
    with serve_in_thread(mockup_app(folder, delay_s=1.0)) as base:
        r = poll(RedfishSampler(base, clock=FakeClock(), timeout=0.2))
    assert r.source.status == "error" and "timed out after 0.2 s" in r.source.detail


def test_sample_never_blocks_and_returns_the_latest_reading():
    folder = shared_fixture("redfish", "public-tower")
    with serve_in_thread(mockup_app(folder, delay_s=0.3)) as base:
        s = RedfishSampler(base, interval=0.2)
        t0 = time.monotonic()
        first = s.sample()
        assert time.monotonic() - t0 < 0.1  # the BMC takes 0.3 s a request; sample() does not wait
        assert first.source.ok and first.domains == () and "waiting" in first.source.detail
        assert s.wait_for_first(15.0)  # what --once uses
        assert s.sample().domains[0].watts == 974.0
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and not s.sample().domains:
            time.sleep(0.05)
        r = s.sample()
        s.stop()
    assert r.domains[0].watts == 974.0 and r.source.watts == 974.0
    assert r.domains[0].interval_s > 0


def test_stale_reading_is_dropped():
    folder = shared_fixture("redfish", "public-rackmount1")
    clock = FakeClock()
    with serve_in_thread(mockup_app(folder)) as base:
        s2 = RedfishSampler(base, interval=10.0, clock=clock, timeout=5.0)
        asyncio.run(_poll_store(s2))
    s2._poller.stop()  # no poller thread: we drive time by hand
    assert s2.sample().domains[0].watts == 374.0
    clock.advance(36.0)  # > 3 intervals + timeout
    r = s2.sample()
    assert r.source.status == "error" and r.domains == () and "no reading" in r.source.detail


async def _poll_store(s: RedfishSampler) -> None:
    await s._one_poll(store=True)


def test_from_config_credentials_file_env_and_errors(tmp_path):
    creds = tmp_path / "bmc"
    creds.write_text("root:calvin:x\n")
    config = RedfishConfig("https://bmc.example", credentials_file=str(creds), auth="session", insecure=True,
                           interval=30.0)
    s = RedfishSampler.from_config(config, FakeClock(), env={})
    assert (s.auth, s._credentials, s.verify_tls, s.interval) == ("session", ("root", "calvin:x"), False, 30.0)
    s = RedfishSampler.from_config(RedfishConfig("bmc.example:8443"), FakeClock(),
                                   env={"KECK_REDFISH_USER": "u", "KECK_REDFISH_PASSWORD": "p"})
    assert (s.url, s.auth, s._credentials, s.verify_tls, s.interval) == (
        "https://bmc.example:8443/redfish/v1", "basic", ("u", "p"), True, 10.0)
    assert read_credentials(None, {}) is None
    (tmp_path / "bad").write_text("no-colon\n")
    for path, why in ((str(tmp_path / "bad"), "expected 'user:password'"), (str(tmp_path / "missing"), "cannot read")):
        with pytest.raises(SourceConfigError, match=why):
            RedfishSampler.from_config(RedfishConfig("https://b", credentials_file=path), env={})
        # the command line names the option: one line, exit 2
        with pytest.raises(SourceConfigError, match=f"^--redfish: .*{why}"):
            build_power(LocalSources(redfish=RedfishConfig("https://b", credentials_file=path)), Settings(),
                        FakeClock())
    with pytest.raises(SourceConfigError, match="not an http"):
        RedfishSampler.from_config(RedfishConfig("ftp://b"), env={})


def test_tls_verified_by_default_and_insecure_accepts_self_signed():
    trustme = pytest.importorskip("trustme")
    import ssl
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(ctx)
    folder = shared_fixture("redfish", "public-rackmount1")
    with serve_in_thread(mockup_app(folder), ssl_context=ctx) as base:
        assert base.startswith("https://")
        strict = RedfishSampler(base, clock=FakeClock())
        r = poll(strict)
        assert r.source.status == "error" and "certificate" in r.source.detail.lower()
        assert "--redfish-insecure" in strict._fix(r.source.detail)
        r = poll(RedfishSampler(base, verify_tls=False, clock=FakeClock()))
        assert r.source.ok and r.domains[0].watts == 374.0


def _write(folder: Path, rel: str, doc: dict) -> None:
    path = folder / rel / "index.json" if rel else folder / "index.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc))


def _synthetic_bmc(folder: Path, chassis: dict[str, tuple[str, dict]]) -> None:
    """A minimal service: chassis id -> (ChassisType, extra resources {rel path: doc})."""
    _write(folder, "", {"Chassis": {"@odata.id": "/redfish/v1/Chassis"}})
    _write(folder, "Chassis", {"Members": [{"@odata.id": f"/redfish/v1/Chassis/{c}"} for c in chassis]})
    for cid, (ctype, resources) in chassis.items():
        doc = {"Id": cid, "Name": f"{cid} chassis", "ChassisType": ctype}
        for rel, res in resources.items():
            if "/" not in rel:
                doc[rel] = {"@odata.id": f"/redfish/v1/Chassis/{cid}/{rel}"}
            _write(folder, f"Chassis/{cid}/{rel}", res)
        _write(folder, f"Chassis/{cid}", doc)


def test_unlinked_card_chassis_is_not_added_to_the_node_but_two_nodes_are(tmp_path):
    em = lambda w: {"PowerWatts": {"Reading": w}}  # noqa: E731
    _synthetic_bmc(tmp_path, {"Node": ("RackMount", {"EnvironmentMetrics": em(500)}),
                              "GPU_SXM_1": ("Card", {"EnvironmentMetrics": em(300)}),
                              "Node2": ("Blade", {"EnvironmentMetrics": em(250)})})
    with serve_in_thread(mockup_app(tmp_path)) as base:
        r = poll(RedfishSampler(base, clock=FakeClock()))
    assert {d.name: d.watts for d in r.domains} == {"chassis-Node": 500.0, "chassis-Node2": 250.0}
    assert r.source.watts == 750.0


def test_only_cards_report_power_then_cards_count(tmp_path):
    _synthetic_bmc(tmp_path, {"Node": ("RackMount", {}),
                              "Card1": ("Card", {"EnvironmentMetrics": {"PowerWatts": {"Reading": 75.5}}})})
    with serve_in_thread(mockup_app(tmp_path)) as base:
        r = poll(RedfishSampler(base, clock=FakeClock()))
    assert [(d.name, d.watts) for d in r.domains] == [("chassis-Card1", 75.5)]


def test_power_supply_input_sensors_are_summed(tmp_path):
    sensor = lambda sid, w, ctx, acc=None: {"Id": sid, "Name": sid, "ReadingType": "Power", "Reading": w,  # noqa: E731
                                            "PhysicalContext": ctx, **({"Accuracy": acc} if acc else {})}
    _synthetic_bmc(tmp_path, {"Node": ("RackMount", {
        "Sensors": {"Members": [{"@odata.id": f"/redfish/v1/Chassis/Node/Sensors/{s}"}
                                for s in ("PS1InputPower", "PS2InputPower", "CPU1Power", "PS3InputPower")]},
        "Sensors/PS1InputPower": sensor("PS1InputPower", 210.0, "PowerSupply", 2),
        "Sensors/PS2InputPower": sensor("PS2InputPower", 190.5, "PowerSupply", 1),
        "Sensors/PS3InputPower": {**sensor("PS3InputPower", None, "PowerSupply"), "Status": {"State": "Absent"}},
        "Sensors/CPU1Power": sensor("CPU1Power", 90.0, "CPU"),
    })})
    with serve_in_thread(mockup_app(tmp_path)) as base:
        r = poll(RedfishSampler(base, clock=FakeClock()))
    (d,) = r.domains
    assert (d.watts, d.accuracy, r.source.extra["chassis"][0]["from"]) == (
        pytest.approx(400.5), pytest.approx(0.02), "Sensors.PowerSupplyInput")


def test_stop_cancels_a_poll_in_flight_instead_of_waiting_for_a_slow_bmc():
    # A BMC that takes 3 s a request: stop() (Ctrl-C, SIGTERM of `serve`, end of --once)
    # must not wait for the discovery's chain of requests to finish.
    folder = shared_fixture("redfish", "public-tower")
    with serve_in_thread(mockup_app(folder, delay_s=3.0)) as base:
        s = RedfishSampler(base, interval=10.0, timeout=5.0)
        s.sample()  # starts the poller; its first request is now waiting on the BMC
        time.sleep(0.3)
        t0 = time.monotonic()
        s.stop()
        took = time.monotonic() - t0
    assert took < 1.0, f"stop() took {took:.1f} s"
    assert not s._poller.loop.thread.is_alive()  # type: ignore[union-attr]


def test_fix_advice_matches_the_failure_and_the_url_is_not_repeated():
    refused = RedfishSampler("http://127.0.0.1:9", clock=FakeClock(), timeout=2.0)
    r = refused.read_now()
    refused._last_error, refused._polls = r.source.detail, 1
    refused._poller.stop()  # no poller thread: the reading above is the one to report
    s = refused.sample()
    # aiohttp says "ssl:default" in every connection error: that is no TLS problem
    assert "insecure" not in s.source.extra["fix"] and "answers at" in s.source.extra["fix"]
    assert s.source.detail.count("http://127.0.0.1:9") == 1
    wrong_scheme = RedfishSampler("https://127.0.0.1:9", clock=FakeClock())
    fix = wrong_scheme._fix("Cannot connect to host 127.0.0.1:9 ssl:default [[SSL: WRONG_VERSION_NUMBER] wrong "
                            "version number (_ssl.c:1006)]")
    assert "insecure" not in fix and "http/https" in fix
    assert "insecure" in wrong_scheme._fix("https://x: TLS certificate not trusted (self-signed certificate)")
    session = RedfishSampler("http://127.0.0.1:9", auth="session", clock=FakeClock())
    fix = session._fix("session auth needs credentials (--redfish-credentials FILE or ...)")
    assert "user/password" in fix and "--redfish-auth session" not in fix


def test_config_redfish_section_is_used(tmp_path):
    # `[redfish] url = ...` in the config file used to be accepted and silently ignored.
    from keck_tui.clock import SystemClock
    from keck_tui.config import settings_from_mapping

    creds = tmp_path / "bmc"
    creds.write_text("svc:pw\n")
    settings = settings_from_mapping({"redfish": {"url": "https://bmc.example", "credentials_file": str(creds),
                                                  "auth": "session", "insecure": True, "interval": 30}})
    args = build_parser().parse_args([])
    bmcs = [s for s in build_power(local_sources_from_args(args, settings), settings, SystemClock())
            if isinstance(s, RedfishSampler)]
    assert len(bmcs) == 1
    s = bmcs[0]
    assert (s.url, s.auth, s.verify_tls, s.interval) == ("https://bmc.example/redfish/v1", "session", False, 30)
    assert s._credentials == ("svc", "pw")
    # flags win over the config
    args = build_parser().parse_args(["--redfish", "http://other", "--redfish-auth", "basic"])
    s = [s for s in build_power(local_sources_from_args(args, settings), settings, SystemClock())
         if isinstance(s, RedfishSampler)][0]
    assert (s.url, s.auth) == ("http://other/redfish/v1", "basic")


def test_credentials_in_the_url_are_refused_without_echoing_them():
    # aiohttp would use them, and the URL (password included) went into every snapshot.
    with pytest.raises(SourceConfigError) as exc:
        RedfishSampler.from_config(RedfishConfig("https://admin:s3cret@bmc.example"), env={})
    assert "--redfish-credentials" in str(exc.value) and "s3cret" not in str(exc.value)
