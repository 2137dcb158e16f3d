"""Smoke test of benchmarks/bench_agent.py (the real numbers come from a full run)."""
from __future__ import annotations

import json
import subprocess
import sys

from tests.agent_procs import REPO


def test_bench_agent_quick_runs() -> None:
    out = subprocess.run([sys.executable, "benchmarks/bench_agent.py", "--quick", "--json"], cwd=REPO,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["agent"]["errors"] == 0 and doc["agent"]["requests"] == 50
    assert doc["agent"]["p99_ms"] > 0
    assert [r["depth"] for r in doc["attach"]] == [2, None]
    assert all(r["stale"] == 0 and r["nodes"] == 5 for r in doc["attach"])
    assert doc["attach"][0]["fleet_watts"] == sum(100.0 + i for i in range(5))
