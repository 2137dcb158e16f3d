"""--batch / --once text header: what it says about estimated power must be true."""
from __future__ import annotations

from attribution_inputs import activity, bmc, gpu, proc, rapl

from keck_tui.attribution.engine import AttributionConfig, AttributionInput, attribute
from keck_tui.model import KIND_ESTIMATED, Snapshot, SourceStatus
from keck_tui.textout import render_table


def _snap(power=(), gpus=()) -> Snapshot:
    act = activity([proc(1, {0: 0.5}), proc(2, {1: 0.25})])
    res = attribute(AttributionInput("n", 1.0, act, tuple(power), gpus=tuple(gpus)),
                    AttributionConfig(tdp=40.0, idle_watts=10.0))
    sources = [r.source for r in power] + [r.source for r in gpus]
    if res.cpu.estimated:
        sources.append(SourceStatus("estimate", "ok", kind=KIND_ESTIMATED, watts=res.cpu.watts))
    return Snapshot(time=0.0, interval_s=1.0, host="n", model=res.model, sources=tuple(sources),
                    root=res.root, estimated=res.estimated)


def test_bmc_total_is_measured_and_the_header_does_not_claim_no_sensor():
    snap = _snap([bmc(300.0)])
    assert not snap.estimated and not snap.root.estimated  # the BMC measured the 300 W
    head = render_table(snap).splitlines()[0]
    assert "300.0 W" in head and "~300" not in head
    assert "no power sensor" not in head and "CPU share ESTIMATED" in head


def test_nothing_measured_says_estimated_no_sensor():
    head = render_table(_snap()).splitlines()[0]
    assert "~" in head and "(ESTIMATED: no power sensor" in head


def test_gpu_measured_cpu_estimated_is_partly_estimated():
    snap = _snap(gpus=[gpu(200.0, {1: 1.0})])
    assert snap.root.estimated and not snap.estimated
    head = render_table(snap).splitlines()[0]
    assert "partly ESTIMATED" in head and "no power sensor" not in head


def test_all_measured_has_no_estimate_note():
    head = render_table(_snap([rapl(40.0)])).splitlines()[0]
    assert "ESTIMATED" not in head and "~" not in head
