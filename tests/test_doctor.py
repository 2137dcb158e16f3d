"""doctor's findings: advice that matches what was (and was not) found."""
from __future__ import annotations

from keck_tui.commands.doctor import diagnose
from keck_tui.model import KIND_ESTIMATED, Row, Snapshot, SourceStatus


def _snap(*sources: SourceStatus, estimated: bool) -> Snapshot:
    root = Row(level="node", id="n", name="n", watts=1.0, watts_lo=1.0, watts_hi=1.0)
    return Snapshot(time=0.0, interval_s=1.0, host="n", model="cpu-time", sources=sources, root=root,
                    estimated=estimated)


def by_source(findings):
    return {f["source"]: f for f in findings}


def test_a_poller_that_has_not_answered_is_missing_not_found():
    snap = _snap(SourceStatus("redfish", "ok", "waiting for the first reading from http://bmc/redfish/v1"),
                 SourceStatus("kubelet", "ok", "waiting for the first /pods answer"), estimated=True)
    f = by_source(diagnose(snap))
    assert f["redfish"]["state"] == "missing" and "no answer within" in f["redfish"]["why"]
    assert "--redfish" in f["redfish"]["fix"]
    assert f["kubelet"]["state"] == "missing" and f["kubelet"]["fix"]


def test_redfish_not_configured_is_a_finding_with_how_to():
    snap = _snap(SourceStatus("rapl", "unavailable", "no RAPL"), estimated=True)
    f = by_source(diagnose(snap, redfish_configured=False))
    assert f["redfish"]["state"] == "missing" and "--redfish https://" in f["redfish"]["fix"]
    assert "redfish" not in by_source(diagnose(snap, redfish_configured=True))


def test_estimate_advice_when_the_total_is_measured():
    est = SourceStatus("estimate", "ok", "no CPU power sensor", kind=KIND_ESTIMATED, watts=10.0)
    measured = by_source(diagnose(_snap(SourceStatus("redfish", "ok", "974 W"), est, estimated=False)))
    assert "node total is measured" in measured["estimate"]["fix"]
    assert "Redfish" not in measured["estimate"]["fix"]  # it is there already
    guessed = by_source(diagnose(_snap(est, estimated=True)))
    assert "node total is measured" not in guessed["estimate"]["fix"]


def test_a_working_source_with_its_own_advice_shows_it():
    nominal = SourceStatus("cpufreq", "ok", "frequencies are nominal (from /proc/cpuinfo: no cpufreq)",
                           extra={"fix": "load a cpufreq driver"})
    plain = SourceStatus("ebpf", "ok", "exact per-core on-CPU time")
    f = by_source(diagnose(_snap(nominal, plain, estimated=True)))
    assert f["cpufreq"]["state"] == "found" and f["cpufreq"]["fix"] == "load a cpufreq driver"
    assert f["ebpf"]["fix"] == ""


def test_calibration_is_a_finding():
    from dataclasses import replace

    rapl = SourceStatus("rapl", "ok", "package-0")
    snap = replace(_snap(rapl, estimated=False),
                   extra={"calibration": {"model": "full", "status": "calibrating", "samples": 1, "needed": 60,
                                          "reason": "collecting samples (1/60)", "saved": "no saved calibration"}})
    f = by_source(diagnose(snap))["calibration"]
    assert f["state"] == "calibrating" and "collecting samples (1/60)" in f["why"] and "--state-dir" in f["fix"]
    done = replace(snap, extra={"calibration": {"model": "full", "status": "calibrated", "samples": 600, "needed": 60,
                                                "rmse_w": 0.3, "r2": 0.997, "recalibrations": 2, "restored": True,
                                                "last_recalibration": 1.7e9, "saved": "saved to /x/c.json"}})
    f = by_source(diagnose(done))["calibration"]
    assert f["state"] == "found" and "±0.3 W, R² 0.997, 2 recalibration(s)" in f["why"]
    assert "resumed from the saved state" in f["why"] and f["fix"] == ""
    vm = replace(_snap(SourceStatus("rapl", "unavailable", "no RAPL"), estimated=True),
                 extra={"calibration": {"model": "cpu-time", "status": "calibrating", "samples": 0, "needed": 60}})
    f = by_source(diagnose(vm))["calibration"]
    assert f["state"] == "missing" and "no measured CPU power" in f["why"] and "RAPL" in f["fix"]


def test_counters_finding_gives_the_kernels_reason_and_the_fix():
    """The real perf_event_open failure on this machine, as doctor shows it."""
    from pathlib import Path

    import pytest

    from keck_tui.probes import perfevent
    from keck_tui.samplers.perfcounters import PerfCounterSampler

    if not perfevent.supported() or Path("/sys/bus/event_source/devices/cpu").exists():
        pytest.skip("needs a machine without a CPU PMU (a VM like this one)")
    sampler = PerfCounterSampler()
    status = sampler.sample().source
    sampler.close()
    f = by_source(diagnose(_snap(status, estimated=True)))["counters"]
    assert f["state"] == "missing"
    if status.extra.get("missing", {}).get("cycles", "").startswith("no PMU"):
        assert f["why"] == "no PMU: this CPU (or VM) exposes no hardware counter cycles"
        assert "pmu=on" in f["fix"] and "metal" in f["fix"]


def test_counters_permission_finding_names_paranoid():
    import errno

    from keck_tui.probes import perfevent

    reason = perfevent.reason_for(errno.EACCES, perfevent.CYCLES, 0, paranoid_value=2)
    status = SourceStatus("counters", "unavailable", reason, extra={"fix": perfevent.fix_for(errno.EACCES)})
    f = by_source(diagnose(_snap(status, estimated=True)))["counters"]
    assert "kernel.perf_event_paranoid is 2" in f["why"]
    assert f["fix"].startswith("sudo sysctl kernel.perf_event_paranoid=0") and "CAP_PERFMON" in f["fix"]
    working = SourceStatus("counters", "ok", "perf_event_open per CPU: cycles on 2 CPUs")
    assert by_source(diagnose(_snap(working, estimated=True)))["counters"]["fix"] == ""
