"""What ``keck-top run`` prints: a ``perf stat``-like text block, or ``keck-top-run/1`` JSON.

The JSON document is built first; the text is rendered from it, so both always
say the same. Schema (``docs/run.md`` documents every field)::

    {"schema": "keck-top-run/1", "command": [...], "host": ..., "interval_s": ...,
     "resolution": {...}, "idle_policy": "active|proportional|whole", "estimated": bool,
     "model": ..., "model_reason": ..., "sources": [...], "tracking": {...},
     "currency": ..., "price_per_kwh": ..., "co2e_g_per_kwh": ..., "exit_status": int,
     "stopped": str|null, "runs": [Run, ...], "summary": {name: Summary}}
"""
from __future__ import annotations

import math
from typing import Any

from keck_tui.common.formatting import fmt_grams, fmt_money, fmt_si
from keck_tui.cost import J_PER_KWH, Tariff
from keck_tui.runmeter.meter import IDLE_POLICIES, Bounded
from keck_tui.runmeter.session import Measurement, RunOutcome, argv_text
from keck_tui.runmeter.stats import summarise

SCHEMA = "keck-top-run/1"
#: What the summary over --repeat runs covers (each a field of every run).
SUMMARY_FIELDS = ("energy_j", "wall_s", "cpu_s", "mean_watts")


def _b(b: Bounded) -> dict[str, float]:
    return {"value": b.value, "lo": b.lo, "hi": b.hi}


def run_json(run: RunOutcome, policy: str, tariff: Tariff) -> dict[str, Any]:
    e = run.energy
    total = e.total(policy)
    wall = run.wall_s
    mean = total.scaled(1.0 / wall) if wall > 0 else Bounded(0.0, 0.0, 0.0)
    cost, co2 = _cost(total.value, run.start, run.end, tariff)
    kernel = e.kernel_cpu_s
    idle_added = e.total(policy).value - e.active.value
    return {
        "run": run.index + 1,
        "exit_status": run.exit_status,
        "signal": run.signal,
        "interrupted": run.interrupted,
        "start": run.start,
        "end": run.end,
        "wall_s": wall,
        "cpu_s": kernel if kernel is not None else e.cpu_s,
        "cpu_s_sampled": e.cpu_s,
        "cpu_s_kernel": kernel,
        "cpu_s_kernel_source": e.kernel_source,
        "user_s": run.user_s,
        "system_s": run.system_s,
        "energy_j": _b(total),
        "energy_wh": _b(total.scaled(1 / 3600.0)),
        "mean_watts": _b(mean),
        "peak_watts": _b(e.peak_w),
        "peak_time": e.peak_time,
        "components_j": {"cpu": e.cpu_j, "dram": e.dram_j, "gpu": e.gpu_j, "idle": idle_added},
        "energy_by_policy_j": {p: _b(e.total(p)) for p in IDLE_POLICIES},
        "node_energy_j": _b(e.node),
        "share_of_node": (total.value / e.node.value) if e.node.value > 0 else None,
        "cost": cost,
        "co2e_g": co2,
        "processes": e.processes,
        "missed_cpu_s": e.correction_cpu_s,
        "missed_energy_j": e.correction_j,
        "intervals": e.intervals,
        "measured_s": e.measured_s,
        "leftover_processes": run.leftover,
        "keck_top_cpu_s": run.own_cpu_s,
        "work": [{"work": name, "unit": unit, "units": units,
                  "j_per_unit": _b(total.scaled(1.0 / units)) if units > 0 else None}
                 for (name, unit), units in sorted(e.work.items())],
    }


def _cost(joules: float, start: float, end: float, tariff: Tariff) -> tuple[float | None, float | None]:
    """Cost and grams CO2e of ``joules`` at the mean tariff over [start, end]."""
    if end > start:
        p_int, c_int = tariff.integrals(start, end)
        dur = end - start
        price = None if p_int is None else p_int / dur
        co2 = None if c_int is None else c_int / dur
    else:
        price, co2 = tariff.rates_at(start)
    return (None if price is None else joules / J_PER_KWH * price,
            None if co2 is None else joules / J_PER_KWH * co2)


def measurement_json(m: Measurement, policy: str, tariff: Tariff) -> dict[str, Any]:
    runs = [run_json(r, policy, tariff) for r in m.runs]
    snap = next((r.snapshot for r in reversed(m.runs) if r.snapshot is not None), None)
    last = m.runs[-1] if m.runs else None
    summary: dict[str, Any] = {}
    if runs:
        for name in SUMMARY_FIELDS:
            values = [r[name]["value"] if isinstance(r[name], dict) else r[name] for r in runs]
            summary[name] = summarise([v for v in values if v is not None]).to_json()
    measured = sum(r.energy.measured_s for r in m.runs)
    count = sum(r.energy.intervals for r in m.runs)
    interval = measured / count if count else m.request.interval
    exact_cpu = bool(last and last.energy.kernel_source == "cgroup")
    price, co2 = tariff.rates_at(last.start) if last else (tariff.price_per_kwh, tariff.co2e_g_per_kwh)
    return {
        "schema": SCHEMA,
        "command": list(m.request.argv),
        "host": snap.host if snap else None,
        "interval_s": interval,
        "resolution": {
            "interval_s": interval,
            "interval": (f"auto: {m.request.interval:g} s, lengthened (up to {m.request.max_interval:g} s) "
                         f"while sampling costs more than {100 * m.request.max_overhead:g} % of a CPU"
                         if m.request.adaptive else f"{m.request.interval:g} s (--interval)"),
            "peak": f"peak watts are means over {interval:.2g}-s intervals",
            "cpu_time": ("kernel cgroup cpu.stat (1 µs), every descendant" if exact_cpu else
                         "kernel rusage of the reaped tree at the end; per interval from "
                         + ("eBPF (ns)" if snap and any(s.name == "ebpf" and s.ok for s in snap.sources)
                            else "procfs (clock ticks)")),
        },
        "idle_policy": policy,
        "estimated": bool(snap.estimated) if snap else None,
        "model": snap.model if snap else None,
        "model_reason": (snap.extra.get("model_reason") if snap else None),
        "idle_baseline": ({"watts": snap.extra.get("idle_watts"), "method": snap.extra.get("idle_method")}
                          if snap else None),
        "sources": [{"name": s.name, "kind": s.kind, "status": s.status, "detail": s.detail}
                    for s in (snap.sources if snap else ())],
        "warnings": list(snap.warnings) if snap else [],
        "tracking": {"method": last.tracking if last else None,
                     "detail": last.tracking_detail if last else None,
                     "notes": list(m.tracking_notes)},
        "currency": tariff.currency,
        "price_per_kwh": price,
        "co2e_g_per_kwh": co2,
        "exit_status": last.exit_status if last else None,
        "stopped": m.stopped,
        "runs": runs,
        "summary": summary,
    }


# ------------------------------------------------------------------ text


def _j(x: float) -> str:
    return fmt_si(x, "J")


def _w(x: float) -> str:
    return fmt_si(x, "W")


def _wh(x_j: float) -> str:
    return fmt_si(x_j / 3600.0, "Wh")


def _range(b: dict[str, float], unit=_j) -> str:
    half = max(b["hi"] - b["value"], b["value"] - b["lo"])
    return f"±{unit(half)}, {unit(b['lo'])} … {unit(b['hi'])}"


def _money(v: float | None, currency: str) -> str:
    """A run's cost is often a millionth of a cent: significant digits, not fixed decimals."""
    if v is None:
        return "—"
    return f"{currency}{v:.3g}" if abs(v) < 0.1 else fmt_money(v, currency)


def _grams(v: float | None) -> str:
    if v is None:
        return "—"
    return fmt_si(v, "g") if v < 1000 else fmt_grams(v, unit=True)


def render_text(doc: dict[str, Any]) -> str:
    """The report for stderr (or --output): one labelled line per figure, like perf stat."""
    est = "~" if doc.get("estimated") else ""
    lines = [f" keck-top run: {argv_text(doc['command'])}"]
    runs = doc["runs"]
    if not runs:
        return "\n".join(lines) + "\n"
    if len(runs) == 1:
        lines += _run_lines(runs[0], doc, est)
    else:
        lines += _summary_lines(doc, est)
    lines += _common_lines(doc, runs[-1])
    if doc.get("stopped"):
        lines.append(f"   stopped early       {doc['stopped']}")
    return "\n".join(lines) + "\n"


def _label(name: str, text: str) -> str:
    return f"   {name:<20}{text}"


def _run_lines(r: dict[str, Any], doc: dict[str, Any], est: str) -> list[str]:
    out = []
    status = str(r["exit_status"])
    if r["signal"]:
        status += f" (killed by signal {r['signal']})"
    if r["interrupted"]:
        status += " — interrupted: figures cover the run up to then"
    out.append(_label("exit status", status))
    out.append(_label("wall time", f"{r['wall_s']:.3f} s"))
    cpu = f"{r['cpu_s']:.3f} s"
    if r["user_s"] is not None and r["system_s"] is not None:
        cpu += f" (user {r['user_s']:.3f} s, system {r['system_s']:.3f} s)"
    if r["cpu_s_kernel"] is not None:
        cpu += f"; sampled {r['cpu_s_sampled']:.3f} s"
    out.append(_label("CPU time", cpu))
    e = r["energy_j"]
    label = "ESTIMATED" if doc.get("estimated") else "measured"
    out.append(_label("energy", f"{est}{_j(e['value'])} ({_range(e)}) = {est}{_wh(e['value'])}  {label}"))
    m = r["mean_watts"]
    p = r["peak_watts"]
    out.append(_label("power", f"mean {est}{_w(m['value'])} ({_range(m, _w)}), peak {est}{_w(p['value'])} "
                               f"(±{_w(max(p['hi'] - p['value'], p['value'] - p['lo']))}, "
                               f"{doc['interval_s']:.2g}-s intervals)"))
    c = r["components_j"]
    split = " · ".join(f"{k} {est}{_j(c[k])}" for k in ("cpu", "dram", "gpu") if c[k] > 0 or k == "cpu")
    if c["idle"] > 0:
        split += f" · idle share {est}{_j(c['idle'])}"
    out.append(_label("split", split))
    out.append(_label("idle policy", _idle_text(r, doc["idle_policy"], est)))
    share = r["share_of_node"]
    node = r["node_energy_j"]["value"]
    out.append(_label("share of node", (f"{100 * share:.1f} % of the node's {est}{_j(node)} over the run"
                                        if share is not None else "—")))
    out.append(_label("cost · carbon", _cost_text(r, doc)))
    for w in r.get("work") or ():
        per = (f": {est}{_j(w['j_per_unit']['value'])} per {w['unit']} "
               f"({_j(w['j_per_unit']['lo'])} … {_j(w['j_per_unit']['hi'])})" if w["j_per_unit"] else "")
        out.append(_label("work", f"{w['units']:.6g} {w['unit']} ({w['work']}){per}"))
    return out


def _idle_text(r: dict[str, Any], policy: str, est: str) -> str:
    by = r["energy_by_policy_j"]
    what = {"active": "active: the command's power above the node's idle baseline, no share of idle",
            "proportional": "proportional: plus its share of idle power, by its share of activity",
            "whole": "whole: plus all of the node's idle and platform power while it ran"}[policy]
    others = ", ".join(f"{p} {est}{_j(by[p]['value'])}" for p in IDLE_POLICIES)
    return f"{what} ({others})"


def _cost_text(r: dict[str, Any], doc: dict[str, Any]) -> str:
    if r["cost"] is None and r["co2e_g"] is None:
        return "— (set price_per_kwh / co2e_g_per_kwh in the config)"
    rates = []
    if doc.get("price_per_kwh") is not None:
        rates.append(f"{doc['currency']}{doc['price_per_kwh']:g}/kWh")
    if doc.get("co2e_g_per_kwh") is not None:
        rates.append(f"{doc['co2e_g_per_kwh']:g} g/kWh")
    return f"{_money(r['cost'], doc['currency'])} · {_grams(r['co2e_g'])} CO2e (at {', '.join(rates)})"


def _summary_lines(doc: dict[str, Any], est: str) -> list[str]:
    s = doc["summary"]
    runs = doc["runs"]
    statuses = sorted({r["exit_status"] for r in runs})
    out = [_label("runs", f"{len(runs)} (exit status {', '.join(map(str, statuses))}); "
                          "mean ± 95 % confidence interval (Student's t)")]

    def stat(name: str, key: str, unit) -> None:
        x = s[key]
        ci = f" ± {unit(x['ci95'])}" if x["ci95"] is not None else ""
        sd = f", sd {unit(x['stdev'])}" if x["stdev"] is not None else ""
        out.append(_label(name, f"{est if key in ('energy_j', 'mean_watts') else ''}{unit(x['mean'])}{ci}"
                                f" (min {unit(x['min'])}, max {unit(x['max'])}{sd})"))

    stat("energy", "energy_j", _j)
    stat("wall time", "wall_s", lambda v: f"{v:.3f} s")
    stat("CPU time", "cpu_s", lambda v: f"{v:.3f} s")
    stat("mean power", "mean_watts", _w)
    bound = [max(r["energy_j"]["hi"] - r["energy_j"]["value"], r["energy_j"]["value"] - r["energy_j"]["lo"])
             for r in runs]
    out.append(_label("bound per run", f"±{_j(max(bound))} at most (the model's error; the CI is the "
                                       "spread between runs and does not include it)"))
    out.append(_label("idle policy", _idle_text(runs[-1], doc["idle_policy"], est)))
    out.append(_label("cost · carbon", "per run: " + _cost_text(runs[-1], doc)))
    return out


def _common_lines(doc: dict[str, Any], last: dict[str, Any]) -> list[str]:
    t = doc["tracking"]
    out = [_label("tracking", f"{t['method']}: {t['detail']}")]
    extra = []
    if last["processes"]:
        extra.append(f"{last['processes']} process{'es' if last['processes'] != 1 else ''} sampled")
    if abs(last["missed_cpu_s"]) >= 0.0005:
        extra.append(f"{last['missed_cpu_s']:+.3f} s CPU the samples missed, added from the kernel's "
                     f"{last['cpu_s_kernel_source']} accounting")
    if last["leftover_processes"]:
        extra.append(f"{last['leftover_processes']} still running when it exited (not measured further)")
    if extra:
        out.append(_label("", "; ".join(extra)))
    srcs = [s["name"] for s in doc["sources"] if s["status"] == "ok"]
    out.append(_label("sources", ", ".join(srcs) or "—"))
    if doc.get("estimated"):
        est = next((s["detail"] for s in doc["sources"] if s["name"] == "estimate" and s.get("detail")), "")
        out.append(_label("", "ESTIMATED: " + (est or "no power sensor, CPU power from utilisation")))
    base = doc.get("idle_baseline") or {}
    idle = (f"; idle baseline {base['watts']:.3g} W ({base['method']})"
            if base.get("watts") is not None else "")
    out.append(_label("model", f"{doc.get('model')} ({doc.get('model_reason') or ''}){idle}"))
    out.append(_label("resolution", f"sampled every {doc['interval_s']:.2g} s ({doc['resolution']['interval']}); "
                                    f"CPU time: {doc['resolution']['cpu_time']}"
                                    f"; keck-top itself used {last['keck_top_cpu_s']:.3f} s CPU (not charged)"))
    for w in doc.get("warnings") or ():
        out.append(_label("warning", w))
    return out


def finite(doc: Any) -> Any:
    """The document with non-finite floats as None (JSON has no NaN)."""
    if isinstance(doc, dict):
        return {k: finite(v) for k, v in doc.items()}
    if isinstance(doc, list):
        return [finite(v) for v in doc]
    if isinstance(doc, float) and not math.isfinite(doc):
        return None
    return doc


def json_text(doc: dict[str, Any]) -> str:
    import json

    return json.dumps(finite(doc), indent=2, allow_nan=False) + "\n"
