#!/usr/bin/env bash
# Check keck-top's NVIDIA GPU power and per-process attribution on a real GPU.
#
# Runs from a copy of the working tree with nothing installed (PYTHONPATH=<repo>);
# needs pynvml (nvidia-ml-py) and torch with CUDA in $PYTHON. Steps:
#   1. idle: GPU 0's power with nothing of ours running (NVML directly)
#   2. a bf16 matmul loop in the background; NVML directly: does Δenergy/Δt agree with
#      the mean of nvmlDeviceGetPowerUsage over the same window?
#   3. keck-top's NVML sampler: does the worker get most of the SM share?
#   4. keck-top --once --json: does the worker's process row carry most of the GPU's
#      active watts (device watts - idle)?
#   5. a second, 25 %-duty worker beside the first: are shares ordered busy > light?
# Prints every number, writes the evidence to $OUT, exits 1 when a check fails.
#
# Usage: scripts/gpu-check.sh        env: PYTHON (python3), OUT (a new /tmp folder), GPU_CHECK_TOL (0.8)
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PY=${PYTHON:-python3}
OUT=${OUT:-$(mktemp -d /tmp/keck-gpu-check.XXXXXX)}
mkdir -p "$OUT"
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
export CUDA_DEVICE_ORDER=PCI_BUS_ID   # CUDA device 0 == NVML index 0
export KECK_GPU_CHECK_OUT="$OUT"
cd "$ROOT" || exit 2

cat > "$OUT/worker.py" <<'EOF'
"""bf16 matmuls on cuda:0 with a duty cycle (busy part of each 200 ms period) until killed."""
import sys, time
import torch
duty, ready = float(sys.argv[1]), sys.argv[2]
a = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
b = torch.randn_like(a)
(a @ b).sum().item()
open(ready, "w").write("ready\n")
deadline = time.time() + 600  # never outlive a forgotten run by much
while time.time() < deadline:
    t0 = time.time()
    while time.time() - t0 < 0.2 * duty:
        c = a @ b
        torch.cuda.synchronize()
    if duty < 1.0:
        time.sleep(0.2 * (1.0 - duty))
EOF

cat > "$OUT/check.py" <<'EOF'
import json, os, subprocess, sys, time
OUT = os.environ["KECK_GPU_CHECK_OUT"]
TOL = float(os.environ.get("GPU_CHECK_TOL", "0.8"))
results = {"checks": {}}
workers = []


def say(*a):
    print(*a, flush=True)


def check(name, ok, detail):
    results["checks"][name] = {"ok": bool(ok), "detail": detail}
    say(f"[{'PASS' if ok else 'FAIL'}] {name}: {detail}")


try:
    import pynvml
    import torch  # noqa: F401  (the workers need it; fail early)
except ImportError as exc:
    say(f"missing {exc.name}: this check needs pynvml (nvidia-ml-py) and torch with CUDA")
    sys.exit(2)
try:
    pynvml.nvmlInit()
except pynvml.NVMLError as exc:
    say(f"NVML unavailable: {exc}")
    sys.exit(2)
h = pynvml.nvmlDeviceGetHandleByIndex(0)
name = pynvml.nvmlDeviceGetName(h)
driver = pynvml.nvmlSystemGetDriverVersion()
results["device"] = {"name": str(name), "driver": str(driver), "count": pynvml.nvmlDeviceGetCount()}
say(f"GPU 0: {name}, driver {driver}, {results['device']['count']} GPU(s)")
others = [p.pid for p in pynvml.nvmlDeviceGetComputeRunningProcesses(h)]
if others:
    say(f"warning: GPU 0 already runs compute processes {others}; shares will include them")


def measure(seconds):
    """Δenergy/Δt and the mean of nvmlDeviceGetPowerUsage (10 Hz) over the same window."""
    e0, t0 = pynvml.nvmlDeviceGetTotalEnergyConsumption(h), time.monotonic()
    powers = []
    while time.monotonic() - t0 < seconds:
        powers.append(pynvml.nvmlDeviceGetPowerUsage(h) / 1000.0)
        time.sleep(0.1)
    e1, t1 = pynvml.nvmlDeviceGetTotalEnergyConsumption(h), time.monotonic()
    energy_w = (e1 - e0) / 1000.0 / (t1 - t0)
    mean_w = sum(powers) / len(powers)
    return {"energy_w": round(energy_w, 2), "power_mean_w": round(mean_w, 2), "n": len(powers),
            "seconds": round(t1 - t0, 3), "rel_diff": round(abs(energy_w - mean_w) / mean_w, 4)}


def start_worker(duty):
    ready = os.path.join(OUT, f"ready-{duty}")
    if os.path.exists(ready):
        os.unlink(ready)
    p = subprocess.Popen([sys.executable, os.path.join(OUT, "worker.py"), str(duty), ready])
    workers.append(p)
    end = time.monotonic() + 180
    while not os.path.exists(ready):
        if p.poll() is not None or time.monotonic() > end:
            raise SystemExit(f"worker (duty {duty}) failed to start (exit {p.poll()})")
        time.sleep(0.2)
    return p


def sampler_window(seconds):
    from keck_tui.samplers.nvml import open_nvml_sampler
    s = open_nvml_sampler()
    s.sample()
    time.sleep(seconds)
    r = s.sample()
    if not r.source.ok or not r.devices:
        raise RuntimeError(f"nvml sampler: {r.source.status}: {r.source.detail}")
    d = r.devices[0]
    return {"watts": round(d.watts, 2), "accuracy_w": round(d.accuracy_w, 2), "util_pct": d.util_pct,
            "sm_clock_mhz": d.sm_clock_mhz, "idle_watts": d.idle_watts, "flags": r.source.extra.get("flags"),
            "shares": {p.pid: round(p.sm_share, 4) for p in d.processes}}


def rows(row):
    yield row
    for c in row.get("children", []):
        yield from rows(c)


try:
    # 1. idle
    time.sleep(1.0)
    idle = measure(3.0)
    results["idle"] = idle
    say(f"idle: energy counter {idle['energy_w']} W, mean power reading {idle['power_mean_w']} W")
    idle_w = idle["energy_w"]

    # 2. one busy worker; energy counter vs power readings
    busy = start_worker(1.0)
    say(f"busy worker pid {busy.pid} ready")
    time.sleep(3.0)
    load = measure(5.0)
    results["load"] = load
    say(f"load: energy counter {load['energy_w']} W, mean power reading {load['power_mean_w']} W "
        f"({load['n']} readings over {load['seconds']} s)")
    check("energy counter agrees with power readings", load["rel_diff"] <= 0.05,
          f"{load['rel_diff']:.2%} apart (limit 5 %)")

    # 3. keck-top's sampler
    try:
        samp = sampler_window(3.0)
        results["sampler"] = samp
        share = samp["shares"].get(busy.pid, 0.0)
        say(f"sampler: {samp['watts']} W ±{samp['accuracy_w']} W, util {samp['util_pct']} %, "
            f"SM {samp['sm_clock_mhz']} MHz, shares {samp['shares']}")
        check("sampler gives the worker most of the SM share", share >= TOL, f"share {share:.3f} (limit {TOL})")
        check("sampler watts agree with the direct energy measurement",
              abs(samp["watts"] - load["energy_w"]) <= max(samp["accuracy_w"], 0.05 * load["energy_w"]),
              f"{samp['watts']} W vs {load['energy_w']} W")
    except Exception as exc:  # noqa: BLE001
        check("sampler gives the worker most of the SM share", False, f"{type(exc).__name__}: {exc}")

    # 4. keck-top --once --json
    cmd = [sys.executable, "-c", "import sys; from keck_tui.cli import main; sys.exit(main())",
           "--once", "--json", "--interval", "3"]
    t0 = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    results["keck_top"] = {"rc": proc.returncode, "seconds": round(time.monotonic() - t0, 2),
                           "stderr_tail": proc.stderr[-2000:]}
    with open(os.path.join(OUT, "snapshot.json"), "w") as fh:
        fh.write(proc.stdout)
    if proc.returncode != 0:
        check("keck-top --once --json runs", False, f"exit {proc.returncode}: {proc.stderr.strip()[-500:]}")
    else:
        snap = json.loads(proc.stdout)
        nvml_src = next((s for s in snap.get("sources", []) if s.get("name") == "nvml"), None)
        say("keck-top sources: " + ", ".join(f"{s['name']}={s['status']}" for s in snap.get("sources", [])))
        dev_w = (nvml_src or {}).get("watts")
        mine = [r for r in rows(snap["root"]) if r.get("level") == "process" and r.get("pid") == busy.pid]
        gpu_w = (mine[0].get("gpu_watts") or (mine[0].get("components") or {}).get("gpu") or 0.0) if mine else 0.0
        idle_row = next((r for r in snap["root"].get("children", []) if r.get("id") == "(idle)"), None)
        results["keck_top"].update(device_watts=dev_w, worker_gpu_watts=gpu_w, worker_found=bool(mine),
                                   node_watts=snap["root"].get("watts"),
                                   idle_row_watts=idle_row.get("watts") if idle_row else None)
        say(f"keck-top: node {snap['root'].get('watts')} W, nvml {dev_w} W, worker pid {busy.pid} "
            f"gpu_watts {gpu_w} W, (idle) row {results['keck_top']['idle_row_watts']} W")
        if dev_w is None:
            check("worker carries most of the GPU's active watts", False,
                  f"no nvml source in the snapshot: {nvml_src}")
        else:
            active = max(dev_w - idle_w, 1e-9)
            check("worker carries most of the GPU's active watts", bool(mine) and gpu_w >= TOL * active,
                  f"{gpu_w:.1f} W of {active:.1f} W active ({dev_w:.1f} W - idle {idle_w:.1f} W)"
                  + ("" if mine else "; worker's process row not found (PID namespace?)"))

    # 5. a light worker beside the busy one
    light = start_worker(0.25)
    say(f"light (25 % duty) worker pid {light.pid} ready")
    time.sleep(2.0)
    try:
        both = sampler_window(8.0)
        results["two_workers"] = both
        sb, sl = both["shares"].get(busy.pid, 0.0), both["shares"].get(light.pid, 0.0)
        say(f"two workers: {both['watts']} W, shares busy {sb}, light {sl}, all {both['shares']}")
        check("busy worker's share exceeds the light one's", sb > sl, f"{sb:.3f} > {sl:.3f}")
    except Exception as exc:  # noqa: BLE001
        check("busy worker's share exceeds the light one's", False, f"{type(exc).__name__}: {exc}")
finally:
    for p in workers:
        p.terminate()
    for p in workers:
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
    with open(os.path.join(OUT, "results.json"), "w") as fh:
        json.dump(results, fh, indent=2, default=str)

failed = [k for k, v in results["checks"].items() if not v["ok"]]
say(f"results in {OUT}/results.json; {len(results['checks']) - len(failed)} passed, {len(failed)} failed")
sys.exit(1 if failed else 0)
EOF

"$PY" "$OUT/check.py"
