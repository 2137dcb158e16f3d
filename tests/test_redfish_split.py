"""The Redfish split: the pure schema reader, the client's origin rule, the poller's error state."""
from __future__ import annotations

import base64
import time

import pytest
from aiohttp import web

from keck_tui.clock import FakeClock
from keck_tui.samplers.redfish import RedfishClient, RedfishError, RedfishSampler, schema
from tests.fakes.http_server import serve_in_thread


# ---- schema: pure functions ----
def test_readings_are_finite_non_negative_numbers():
    assert schema.reading(schema.ENVIRONMENT_METRICS, {"PowerWatts": {"Reading": 374}}) == 374.0
    for bad in (float("inf"), float("nan"), -5, True, "374", 10 ** 400, None):
        assert schema.reading(schema.ENVIRONMENT_METRICS, {"PowerWatts": {"Reading": bad}}) is None
    assert schema.reading(schema.POWER_CONTROL, {"PowerControl": [{}, {"PowerConsumedWatts": 344}]}) == 344.0
    assert schema.reading(schema.POWER_CONTROL, {"PowerControl": "not a list"}) is None
    assert schema.reading(schema.SENSOR_CHASSIS, {"Reading": 5.0, "Status": {"State": "Absent"}}) is None
    assert schema.reading(schema.PSU_INPUT, {"InputPowerWatts": {"Reading": 12.5}}) == 12.5


def test_containment_and_top_level_plans():
    plan = lambda cid: schema.Plan(cid, cid, schema.ENVIRONMENT_METRICS, [f"/{cid}"], 0.05)  # noqa: E731
    chassis = {"/c/Node": {"Links": {"Contains": [{"@odata.id": "/c/Card/"}]}},
               "/c/Card": {"Links": {"ContainedBy": {"@odata.id": "/c/Node#x"}}},
               "/c/Loose": {}}
    parents = schema.containment(chassis)
    assert parents == {"/c/Node": set(), "/c/Card": {"/c/Node"}, "/c/Loose": set()}
    plans = {"/c/Node": plan("Node"), "/c/Card": plan("Card"), "/c/Loose": plan("Loose")}
    kinds = {"/c/Node": "RackMount", "/c/Card": "Card", "/c/Loose": "Card"}
    assert [p.chassis_id for p in schema.top_level(plans, parents, kinds)] == ["Node"]  # Card inside, Loose a card
    only_cards = {"/c/Loose": plan("Loose")}
    assert [p.chassis_id for p in schema.top_level(only_cards, parents, kinds)] == ["Loose"]
    cycle = {"/a": {"/b"}, "/b": {"/a"}}
    assert len(schema.top_level({"/a": plan("a")}, cycle, {})) == 1  # a loop of links ends


def test_sensor_plan_prefers_the_chassis_sensor():
    s = lambda ctx, w, name="x": {"ReadingType": "Power", "Reading": w, "PhysicalContext": ctx,  # noqa: E731
                                  "Name": name, "Accuracy": 1}
    p = schema.sensor_plan("n", "n", [("/1", s("PowerSupply", 10, "PSU1 input")), ("/2", s("Chassis", 30))])
    assert (p.method, p.uris, p.accuracy) == (schema.SENSOR_CHASSIS, ["/2"], 0.01)
    p = schema.sensor_plan("n", "n", [("/1", s("PowerSupply", 10, "PSU1 input")), ("/3", s("CPU", 5))])
    assert (p.method, p.uris) == (schema.SENSOR_PSU_INPUT, ["/1"])
    assert schema.sensor_plan("n", "n", [("/3", s("CPU", 5))]) is None


# ---- client: credentials only to the configured origin ----
def _bmc(evil_base: str, log: list[str], *, absolute_member: bool = False, sessions_elsewhere: bool = False,
         location_elsewhere: bool = False, nested: dict | None = None) -> web.Application:
    async def handler(request: web.Request) -> web.Response:
        log.append(f"bmc {request.method} {request.path} auth={request.headers.get('Authorization', '')}"
                   f" token={request.headers.get('X-Auth-Token', '')}")
        path = request.path.rstrip("/")
        if request.method == "POST":
            where = f"{evil_base}/gone" if location_elsewhere else "/redfish/v1/SessionService/Sessions/1"
            return web.Response(status=201, headers={"X-Auth-Token": "tok-1", "Location": where})
        if request.method == "DELETE":
            return web.Response(status=204)
        if nested is not None and nested.get("on"):
            return web.Response(body=b"[" * 5000 + b"]" * 5000, content_type="application/json")
        docs = {
            "/redfish/v1": {"Chassis": {"@odata.id": "/redfish/v1/Chassis"},
                            "Links": {"Sessions": {"@odata.id": (f"{evil_base}/redfish/v1/SessionService/Sessions"
                                                                 if sessions_elsewhere else
                                                                 "/redfish/v1/SessionService/Sessions")}}},
            "/redfish/v1/Chassis": {"Members": [{"@odata.id": "/redfish/v1/Chassis/1"}] + (
                [{"@odata.id": f"{evil_base}/redfish/v1/Chassis/2"}] if absolute_member else [])},
            "/redfish/v1/Chassis/1": {"Id": "1", "EnvironmentMetrics": {"@odata.id": "/redfish/v1/Chassis/1/EM"}},
            "/redfish/v1/Chassis/1/EM": {"PowerWatts": {"Reading": 400}},
        }
        if path not in docs:
            return web.Response(status=404)
        return web.json_response(docs[path])

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    return app


def _evil(log: list[str]) -> web.Application:
    async def handler(request: web.Request) -> web.Response:
        body = await request.read()
        log.append(f"evil {request.method} {request.path} auth={request.headers.get('Authorization', '')} "
                   f"token={request.headers.get('X-Auth-Token', '')} body={body.decode(errors='replace')}")
        return web.json_response({"Id": "2", "EnvironmentMetrics": {"@odata.id": "/x"}}, status=201,
                                 headers={"X-Auth-Token": "evil"})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    return app


def test_an_absolute_member_on_another_host_gets_no_credentials():
    log: list[str] = []
    with serve_in_thread(_evil(log)) as evil, serve_in_thread(_bmc(evil, log, absolute_member=True)) as bmc:
        basic = RedfishSampler(bmc, credentials=("admin", "pw"), clock=FakeClock()).read_now()
        session = RedfishSampler(bmc, auth="session", credentials=("admin", "pw"), clock=FakeClock()).read_now()
    assert basic.source.ok and basic.domains[0].watts == 400.0 and session.source.ok
    assert not [line for line in log if line.startswith("evil")], log  # never contacted at all
    want = "Basic " + base64.b64encode(b"admin:pw").decode()
    assert any(f"auth={want}" in line for line in log if line.startswith("bmc GET"))


def test_sessions_link_or_location_elsewhere_is_refused():
    log: list[str] = []
    with serve_in_thread(_evil(log)) as evil:
        with serve_in_thread(_bmc(evil, log, sessions_elsewhere=True)) as bmc:
            r = RedfishSampler(bmc, auth="session", credentials=("admin", "s3cret"), clock=FakeClock()).read_now()
        assert r.source.status == "error" and "another origin" in r.source.detail and "s3cret" not in r.source.detail
        with serve_in_thread(_bmc(evil, log, location_elsewhere=True)) as bmc:
            r = RedfishSampler(bmc, auth="session", credentials=("admin", "s3cret"), clock=FakeClock()).read_now()
        assert r.source.ok  # logged in; the session's Location elsewhere is just not used for the logout
    assert not [line for line in log if line.startswith("evil")], log


def test_client_absolute_and_errors():
    c = RedfishClient("https://bmc.example:8443", credentials=("u", "p"))
    assert c.url == "https://bmc.example:8443/redfish/v1" and c.origin == "https://bmc.example:8443"
    assert c.absolute("/redfish/v1/Chassis") == "https://bmc.example:8443/redfish/v1/Chassis"
    assert c.absolute("https://BMC.example:8443/x") == "https://BMC.example:8443/x"
    for elsewhere in ("https://evil/x", "//evil/x", "http://bmc.example:8443/x"):
        with pytest.raises(RedfishError, match="another origin"):
            c.absolute(elsewhere)


# ---- sampler: a failing or raising poll stays visible and is retried ----
def test_nested_json_is_a_status_and_the_poller_recovers():
    """QA (issue 12): a BMC answering nested JSON killed the Redfish thread; the source then said
    'waiting for the first reading' for ever."""
    log: list[str] = []
    nested = {"on": True}
    with serve_in_thread(_bmc("http://127.0.0.1:9", log, nested=nested)) as bmc:
        s = RedfishSampler(bmc, interval=0.1, timeout=2.0)
        assert s.wait_for_first(10)
        r = s.sample()
        assert r.source.status in ("unavailable", "error") and "nested" in r.source.detail, r.source.detail
        nested["on"] = False
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not s.sample().domains:
            time.sleep(0.05)
        r = s.sample()
        s.stop()
    assert r.source.ok and r.domains[0].watts == 400.0


def test_a_poll_that_raises_is_the_status_not_a_dead_thread(monkeypatch):
    from keck_tui.samplers.redfish.discovery import Discovery

    async def boom(self):
        raise ZeroDivisionError("a bug in discovery")

    monkeypatch.setattr(Discovery, "plans", boom)
    s = RedfishSampler("http://127.0.0.1:9", interval=0.1, timeout=1.0)
    assert s.wait_for_first(10)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and s._poller.failures < 2:
        time.sleep(0.05)
    r = s.sample()
    assert r.source.status in ("unavailable", "error") and "ZeroDivisionError: a bug in discovery" in r.source.detail
    assert s._poller.failures >= 2 and s._poller.loop.thread.is_alive()  # type: ignore[union-attr]
    s.stop()
