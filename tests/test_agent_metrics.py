"""The agent's /metrics: parsed back with prometheus-client, bounded, promtool-clean."""
from __future__ import annotations

import shutil
import subprocess

import pytest
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families

from keck_tui.agent.app import AgentService, build_app
from fakes.snapshots import fake_snapshot
from keck_tui.agent.metrics import MetricsState, default_families, make_registry
from keck_tui.feed import StaticFeed
from prometheus_client import generate_latest


def _samples(text: str) -> dict[str, dict[tuple, float]]:
    out: dict[str, dict[tuple, float]] = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out.setdefault(s.name, {})[tuple(sorted(s.labels.items()))] = s.value
    return out


def _lab(**kw) -> tuple:
    return tuple(sorted(kw.items()))


async def test_metrics_endpoint_parses_back_with_exact_values() -> None:
    snaps = [fake_snapshot("node-a", 100.0, time=1000.0, interval_s=2.0),
             fake_snapshot("node-a", 50.0, time=1002.0, interval_s=2.0)]
    feed = StaticFeed(snaps)
    svc = AgentService(feed, metrics=MetricsState(default_families(top_processes=3), wall=lambda: 1004.5))
    client = TestClient(TestServer(build_app(svc)))
    await client.start_server()
    try:
        svc.ingest()
        feed.advance()
        resp = await client.get("/metrics")
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        m = _samples(await resp.text())
    finally:
        await client.close()
    assert m["keck_node_power_watts"] == {_lab(node="node-a"): 50.0}
    assert m["keck_node_joules_total"] == {_lab(node="node-a"): 100.0 * 2 + 50.0 * 2}
    assert m["keck_component_power_watts"][_lab(node="node-a", component="cpu")] == pytest.approx(35.0)
    assert m["keck_namespace_power_watts"] == {
        _lab(node="node-a", namespace="ns0"): 20.0, _lab(node="node-a", namespace="ns1"): 20.0}
    assert m["keck_namespace_joules_total"][_lab(node="node-a", namespace="ns1")] == pytest.approx(80 * 2 / 2 + 40 * 2 / 2)
    assert m["keck_pod_power_watts"][_lab(node="node-a", namespace="ns1", pod="pod1-0")] == 10.0
    # top-level rows sum to the node exactly (conservation survives export)
    assert m["keck_group_power_watts"] == {_lab(node="node-a", level="namespace", group="ns0"): 20.0,
                                           _lab(node="node-a", level="namespace", group="ns1"): 20.0,
                                           _lab(node="node-a", level="idle", group="(idle)"): 10.0}
    assert m["keck_container_power_watts"][
        _lab(node="node-a", namespace="ns0", pod="pod0-1", container="app")] == 10.0
    # 8 processes of 5 W: top 3 minus one slot → 2 named + (other) holding the other 6
    procs = m["keck_process_power_watts"]
    assert len(procs) == 3
    assert procs[_lab(node="node-a", pid="(other)", comm="(other)")] == pytest.approx(30.0)
    assert sum(procs.values()) == pytest.approx(40.0)
    assert m["keck_series_folded_rows"][_lab(node="node-a", family="process")] == 6.0
    assert m["keck_node_power_lower_bound_watts"] == {_lab(node="node-a"): 47.5}
    assert m["keck_node_power_upper_bound_watts"] == {_lab(node="node-a"): 52.5}
    assert m["keck_source_up"] == {_lab(node="node-a", source="rapl", kind="measured"): 1.0,
                                   _lab(node="node-a", source="nvml", kind="measured"): 0.0}
    assert m["keck_snapshot_age_seconds"] == {_lab(node="node-a"): 2.5}


def test_pod_cardinality_is_bounded_and_totals_kept() -> None:
    state = MetricsState(default_families(max_pods=10, top_processes=5))
    snap = fake_snapshot("n", 1000.0, namespaces=5, pods=40, processes=1)
    for i in range(3):
        state.update(snap)
    text = generate_latest(make_registry(state)).decode()
    m = _samples(text)
    assert len(m["keck_pod_power_watts"]) == 10
    assert sum(m["keck_pod_power_watts"].values()) == pytest.approx(800.0)
    assert len(m["keck_container_power_watts"]) == 20
    assert len(m["keck_pod_joules_total"]) == 10
    assert sum(m["keck_pod_joules_total"].values()) == pytest.approx(2400.0)
    assert m["keck_series_folded_rows"][_lab(node="n", family="pod")] == 191.0


def test_counters_of_vanished_series_are_kept_then_evicted() -> None:
    state = MetricsState(default_families(top_processes=2))
    for i in range(20):
        state.update(fake_snapshot(f"n", 10.0, namespaces=1, pods=1, processes=1, time=float(i))
                     .__class__(**{**fake_snapshot("n", 10.0, namespaces=1, pods=1, processes=1).__dict__,
                                   "root": _rename_proc(fake_snapshot("n", 10.0, namespaces=1, pods=1,
                                                                      processes=1).root, i)}))
    # each snapshot has one new process; counters keep at most 4 × cap
    assert len(state.counters["process"]) == 8
    assert len(state.gauges["process"]) == 1


def _rename_proc(root, i):
    from dataclasses import replace
    ns = root.children[0]
    pod = ns.children[0]
    cont = pod.children[0]
    proc = replace(cont.children[0], pid=5000 + i, id=f"pid{5000 + i}")
    cont = replace(cont, children=(proc,))
    pod = replace(pod, children=(cont,))
    ns = replace(ns, children=(pod,))
    return replace(root, children=(ns,) + root.children[1:])


def test_promtool_check_metrics_is_clean(tmp_path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed (Debian package 'prometheus')")
    state = MetricsState(default_families(max_pods=5, top_processes=4))
    state.update(fake_snapshot("node-a", 123.0, namespaces=3, pods=4, processes=3))
    text = generate_latest(make_registry(state))
    proc = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, timeout=30)
    assert proc.returncode == 0, proc.stdout.decode() + proc.stderr.decode()
    assert proc.stdout.strip() == b"" and proc.stderr.strip() == b""


def test_calibration_state_is_exported_and_promtool_clean(tmp_path) -> None:
    from dataclasses import replace

    snap = replace(fake_snapshot("node-a", 80.0), extra={"calibration": {
        "model": "full", "status": "calibrated", "samples": 600, "needed": 60, "rmse_w": 0.31, "r2": 0.997,
        "recalibrations": 2, "last_recalibration": 1700000000.0, "fit_rmse_w": None}})
    state = MetricsState()
    state.update(snap)
    text = generate_latest(make_registry(state))
    m = _samples(text.decode())
    lab = _lab(node="node-a", model="full")
    assert m["keck_calibration_calibrated"] == {lab: 1.0}
    assert m["keck_calibration_samples"] == {lab: 600.0}
    assert m["keck_calibration_tracking_error_watts"] == {lab: 0.31}
    assert m["keck_calibration_r_squared"] == {lab: 0.997}
    assert m["keck_calibration_recalibrations"] == {lab: 2.0}
    assert m["keck_calibration_last_fit_timestamp_seconds"] == {lab: 1700000000.0}
    state.update(replace(snap, extra={"calibration": {"model": "full", "status": "calibrating", "samples": 3}}))
    m = _samples(generate_latest(make_registry(state)).decode())
    assert m["keck_calibration_calibrated"] == {lab: 0.0} and "keck_calibration_r_squared" not in m
    promtool = shutil.which("promtool")
    if promtool is not None:
        proc = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, timeout=30)
        assert proc.returncode == 0, proc.stdout.decode() + proc.stderr.decode()


def test_hardware_counter_families_per_core_and_node() -> None:
    from dataclasses import replace

    from keck_tui.model import SourceStatus

    def snap(per_core):
        base = fake_snapshot("node-a", 80.0)
        status = SourceStatus("counters", "ok", "perf_event_open per CPU", extra={"per_core": per_core})
        return replace(base, sources=base.sources + (status,))

    state = MetricsState()
    state.update(snap([{"cpu": 0, "cycles": 3e9, "instructions": 6e9, "llc_misses": 4e4, "running_ratio": 1.0},
                       {"cpu": 1, "cycles": 1e9, "instructions": 5e8, "running_ratio": 0.5}]))
    state.update(snap([{"cpu": 0, "cycles": 1e9, "instructions": 1e9, "llc_misses": 1e4, "running_ratio": 1.0},
                       {"cpu": 1, "cycles": 1e9, "instructions": 5e8, "running_ratio": 0.5},
                       {"cpu": True, "cycles": 1.0}, {"cpu": 2, "cycles": float("nan")}, "junk"]))
    text = generate_latest(make_registry(state))
    m = _samples(text.decode())
    core = lambda cpu: _lab(node="node-a", cpu=cpu)  # noqa: E731
    assert m["keck_core_instructions_total"] == {core("0"): 7e9, core("1"): 1e9}
    assert m["keck_core_llc_misses_total"] == {core("0"): 5e4}  # cpu 1 has no LLC counter: no series, not 0
    assert m["keck_core_cycles_total"] == {core("0"): 4e9, core("1"): 2e9}
    assert m["keck_node_instructions_total"] == {_lab(node="node-a"): 8e9}
    assert m["keck_core_instructions_per_cycle"] == {core("0"): 1.0, core("1"): 0.5}
    assert m["keck_node_instructions_per_cycle"] == {_lab(node="node-a"): 0.75}
    assert m["keck_core_counters_running_ratio"][core("1")] == 0.5
    promtool = shutil.which("promtool")
    if promtool is not None:
        proc = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, timeout=30)
        assert proc.returncode == 0, proc.stdout.decode() + proc.stderr.decode()
    # without a PMU: no counter families at all
    bare = MetricsState()
    bare.update(fake_snapshot("node-a", 80.0))
    assert not any(k.startswith(("keck_core_", "keck_node_instr")) for k in
                   _samples(generate_latest(make_registry(bare)).decode()))
