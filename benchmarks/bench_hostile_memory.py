"""Peak memory of keck-top against hostile peers that answer without end (issue 12).

Runs ``keck-top attach URL --once --json`` against a hostile agent (a 200 MB answer with
its length declared, the same without, an endless chunked answer, a trickle) and
``keck-top --once --json --redfish URL`` against a BMC doing the same, plus a good agent
as the control, and reports each run's peak RSS (the child's ru_maxrss, measured from a
fresh process that does nothing else), wall time and exit status. With ``--baseline-tree
DIR`` the same runs use an older checkout too, interleaved, and the table shows both.

    python benchmarks/bench_hostile_memory.py --runs 3 --baseline-tree /tmp/keck-before
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.hostile import documents  # noqa: E402
from tests.hostile.peers import (Peer, agent_routes, bmc_routes, endless_answer, huge_answer,  # noqa: E402
                                 json_answer)

AS_LIMIT = 8 << 30  # a runaway read stops here instead of taking the machine

PROBE = """
import resource, subprocess, sys, time
resource.setrlimit(resource.RLIMIT_AS, ({limit}, {limit}))
t = time.monotonic()
r = subprocess.run(sys.argv[1:], capture_output=True, timeout=120)
print(r.returncode, time.monotonic() - t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
"""


def measure(tree: Path, argv: list[str]) -> tuple[int, float, float]:
    """(exit status, seconds, peak RSS MiB) of ``keck-top argv`` run from ``tree``."""
    out = subprocess.run([sys.executable, "-c", PROBE.format(limit=AS_LIMIT), sys.executable, "-m", "keck_tui",
                          *argv], capture_output=True, text=True, cwd=tree,
                         env={**os.environ, "PYTHONPATH": str(tree)}, timeout=200)
    code, seconds, rss_kib = out.stdout.split()
    return int(code), float(seconds), int(rss_kib) / 1024


def cases(cred: str) -> list[tuple[str, dict, list[str]]]:
    """(name, peer routes, argv with {url})."""
    attach = ["attach", "{url}", "--once", "--json", "--timeout", "2", "--config", "/dev/null"]
    bmc = ["--once", "--json", "--interval", "0.2", "--probes", "procfs", "--no-gpu", "--redfish", "{url}",
           "--redfish-credentials", cred, "--config", "/dev/null"]
    hostile_root = {"200 MB": huge_answer(), "200 MB, no length": huge_answer(declare=False),
                    "endless chunked": endless_answer()}
    out = [("agent: good (control)", agent_routes(json_answer(documents.good("good"))), attach)]
    out += [(f"agent: {name}", agent_routes(handler), attach) for name, handler in hostile_root.items()]
    out += [(f"BMC: {name}", bmc_routes("http://127.0.0.1:9", root=handler), bmc)
            for name, handler in hostile_root.items()]
    return out


def garbage_recording(lines: int = 1_000_000) -> Path:
    """A recording of ``lines`` garbage lines (report kept every bad line's reason in memory)."""
    path = Path("/tmp/bench-hostile-garbage.jsonl")
    if not path.exists() or path.stat().st_size < lines * 20:
        with open(path, "w") as fh:
            for i in range(lines):
                fh.write(f"garbage line {i:09d} that is not a snapshot\n")
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--baseline-tree", type=Path, help="an older checkout to measure beside this one")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    trees = [("this", ROOT)] + ([("baseline", args.baseline_tree.resolve())] if args.baseline_tree else [])
    cred = Path("/tmp/bench-hostile-bmc.cred")
    cred.write_text("admin:pw\n")
    cred.chmod(0o600)
    results: dict[str, dict[str, list[tuple[int, float, float]]]] = {}
    for name, routes, argv in cases(str(cred)):
        with Peer(dict(routes)) as peer:
            runs = [a.replace("{url}", peer.url) for a in argv]
            for _ in range(args.runs):
                for label, tree in trees:  # interleaved: both trees see the same machine state
                    results.setdefault(name, {}).setdefault(label, []).append(measure(tree, runs))
    report = ["report", str(garbage_recording()), "--jobs", "1", "--config", "/dev/null"]
    for _ in range(args.runs):
        for label, tree in trees:
            results.setdefault("report: 1M garbage lines", {}).setdefault(label, []).append(measure(tree, report))
    if args.json:
        print(json.dumps(results, indent=1))
        return 0
    head = f"{'case':<28}" + "".join(f"{label + ' peak RSS MiB':>26}{label + ' s':>10}{'exit':>6}" for label, _ in trees)
    print(head)
    for name, by_tree in results.items():
        line = f"{name:<28}"
        for label, _ in trees:
            rs = by_tree[label]
            rss = [r[2] for r in rs]
            line += (f"{statistics.median(rss):>14.0f} ({min(rss):.0f}–{max(rss):.0f})"
                     f"{statistics.median([r[1] for r in rs]):>10.1f}{'/'.join(sorted({str(r[0]) for r in rs})):>6}")
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
