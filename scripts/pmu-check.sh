#!/usr/bin/env bash
# Check keck-top's attribution models on a machine with a PMU and RAPL.
#
# Runs from a copy of the working tree with nothing installed (PYTHONPATH=<repo>, the
# machine's own python3 >= 3.11; keck-top's local sampling needs no third-party module).
# A compute-bound and a memory-bound loop of equal CPU time, each pinned to its own CPU;
# after a calibration phase with varied load (so the full model learns its coefficients
# against RAPL), prints each one's watts under cpu-time, frequency-weighted and full,
# beside the RAPL package total, its counters and IPC. Run as root (RAPL's energy_uj is
# root-only; counters need perf_event_paranoid <= 0 or CAP_PERFMON for per-CPU events).
#
# Usage: scripts/pmu-check.sh [--calibrate-s 150] [--measure-s 30] [--cpus C M] [--mem-mb 512]
#                             [--probes auto|ebpf|procfs] [--state-dir DIR] [--force]
# env: PYTHON (python3)
# Exit: 0 ran · 2 usage or a missing prerequisite · 3 no PMU or no RAPL here (says which and why)
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PY=${PYTHON:-python3}
if ! command -v "$PY" >/dev/null 2>&1; then
  echo "pmu-check: no $PY on this machine (set PYTHON=/path/to/python3.11+)" >&2
  exit 2
fi
if ! "$PY" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)'; then
  echo "pmu-check: $("$PY" -V 2>&1) is too old: keck-top needs Python >= 3.11 (set PYTHON=...)" >&2
  exit 2
fi
if [ "$(uname -s)" != "Linux" ]; then
  echo "pmu-check: Linux only (RAPL through powercap, perf_event_open)" >&2
  exit 3
fi
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
cd "$ROOT" || exit 2
exec "$PY" "$ROOT/scripts/pmu_check.py" "$@"
