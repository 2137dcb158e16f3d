#!/usr/bin/env python3
"""keck-top beside its peers, in one run: CPU and memory of the TUI and of the agent.

1. TUI: keck-top and its peers each run in their own 120×40 tmux window (one private
   tmux server), all at a 1 s refresh, with nobody typing, over the same SECONDS after
   a warm-up. Peers: glances (``--glances PATH``, e.g. from a separate venv: it is a
   peer, never a dependency), htop and top; a peer that is not installed is skipped
   with a note. CPU is utime+stime of each program's whole process tree (every thread,
   live descendants, and children it reaped) from /proc/<pid>/stat; RSS from
   /proc/<pid>/status. Ratios are keck-top's CPU over each peer's in the same run.
2. Agent: ``keck-top serve`` (nobody querying it: its HTTP server and ingest loop idle
   along) with CHILDREN extra sleeping processes, beside one
   ``ps -e -o pid,stat,time,rss,cmd`` per second over the same window: the agent's CPU
   per 1 s cycle (whole process, from /proc) over ps's per run (getrusage of the
   reaped ps), and their ratio. Each ``--agent-probes`` variant runs in turn.

Run as root for eBPF and full PSS (``sudo .venv/bin/python benchmarks/bench_peers.py``);
``--repeat N`` repeats both parts and prints the median ratio. The load average (this
machine is shared) is printed before and after each part.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shlex
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_sampling import PS_CMD, kill, spawn  # noqa: E402

HZ = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
COLS, ROWS = 120, 40


# ---- /proc accounting ------------------------------------------------------------------

def _stat_fields(pid: int) -> list[str] | None:
    try:
        data = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return data[data.rindex(")") + 2:].split()


def _children(pid: int) -> list[int]:
    out: list[int] = []
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tids:
        try:
            out.extend(int(c) for c in Path(f"/proc/{pid}/task/{tid}/children").read_text().split())
        except OSError:
            pass
    return out


def tree(pid: int) -> list[int]:
    """``pid`` and its live descendants."""
    seen, todo = [], [pid]
    while todo:
        p = todo.pop()
        seen.append(p)
        todo.extend(_children(p))
    return seen


def tree_cpu_s(pid: int) -> float:
    """CPU seconds of a process tree: every live member's utime+stime (all threads), plus
    the root's cutime+cstime (children it reaped)."""
    total = 0
    for i, p in enumerate(tree(pid)):
        f = _stat_fields(p)
        if f is None:
            continue
        total += int(f[11]) + int(f[12])
        if i == 0:
            total += int(f[13]) + int(f[14])
    return total / HZ


def rss_mib(pid: int) -> float:
    """VmRSS of the tree, MiB."""
    total = 0
    for p in tree(pid):
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024


def load_avg() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


# ---- the TUI part ------------------------------------------------------------------------

class Tmux:
    """A private tmux server whose windows are 120×40 panes."""

    def __init__(self) -> None:
        self.sock = f"keck-bench-{os.getpid()}"
        self.session = "bench"
        self.started = False

    def _run(self, *args: str) -> str:
        return subprocess.run(["tmux", "-L", self.sock, *args], capture_output=True, text=True,
                              check=True).stdout

    def window(self, name: str, argv: list[str], env: dict[str, str]) -> int:
        cmd = "exec env " + " ".join(shlex.quote(f"{k}={v}") for k, v in env.items()) + " " + \
            " ".join(shlex.quote(a) for a in argv)
        if not self.started:
            self._run("-f", "/dev/null", "new-session", "-d", "-s", self.session, "-x", str(COLS),
                      "-y", str(ROWS), "-n", name, cmd)
            self._run("set-option", "-g", "default-size", f"{COLS}x{ROWS}")
            self._run("set-option", "-g", "remain-on-exit", "on")
            self.started = True
        else:
            self._run("new-window", "-d", "-t", self.session, "-n", name, cmd)
        target = f"{self.session}:{name}"
        self._run("resize-window", "-t", target, "-x", str(COLS), "-y", str(ROWS))
        return int(self._run("display-message", "-p", "-t", target, "#{pane_pid}").strip())

    def size(self, name: str) -> str:
        return self._run("display-message", "-p", "-t", f"{self.session}:{name}",
                         "#{pane_width}x#{pane_height}").strip()

    def alive(self, name: str) -> bool:
        out = self._run("display-message", "-p", "-t", f"{self.session}:{name}", "#{pane_dead}")
        return out.strip() == "0"

    def screen(self, name: str) -> str:
        return self._run("capture-pane", "-p", "-t", f"{self.session}:{name}")

    def keys(self, name: str, *keys: str) -> None:
        self._run("send-keys", "-t", f"{self.session}:{name}", *keys)

    def kill(self) -> None:
        if self.started:
            subprocess.run(["tmux", "-L", self.sock, "kill-server"], capture_output=True)
            self.started = False


#: Runs keck-top from a given source tree (``python -c``; argv[1:] are its flags).
RUN_FROM = "import sys; sys.path.insert(0, {tree!r}); from keck_tui.cli import main; sys.exit(main())"


def keck_trees(args: argparse.Namespace) -> list[tuple[Path, str]]:
    """(source tree, label suffix): this checkout, and the baseline tree when given."""
    trees = [(REPO, "")]
    if args.baseline_tree is not None:
        trees.append((args.baseline_tree.resolve(), " (baseline)"))
    return trees


def wname(label: str) -> str:
    """A tmux window name for a label (letters, digits, - and _ only)."""
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in label)


def tui_programs(args: argparse.Namespace) -> tuple[dict[str, tuple[list[str], str]], list[str]]:
    """name -> (argv, quit key); and notes on the peers that are missing."""
    notes: list[str] = []
    progs: dict[str, tuple[list[str], str]] = {}
    for tree, tag in keck_trees(args):
        for extra in args.keck_args:
            label = "keck-top" + tag + (f" {extra}" if extra else "")
            progs[label] = ([sys.executable, "-c", RUN_FROM.format(tree=str(tree)), "--interval", "1",
                             "--config", "/dev/null", *shlex.split(extra)], "q")
    glances = args.glances or shutil.which("glances")
    if glances and Path(glances).exists():
        progs["glances"] = ([glances, "-t", "1"], "q")
    else:
        notes.append("glances: not found (give --glances PATH, e.g. a venv's bin/glances); skipped")
    for name, argv in (("htop", ["-d", "10"]), ("top", ["-d", "1"])):
        path = shutil.which(name)
        if path:
            progs[name] = ([path, *argv], "q")
        else:
            notes.append(f"{name}: not installed (Debian package {'procps' if name == 'top' else name}); skipped")
    return progs, notes


def bench_tui(args: argparse.Namespace) -> dict:
    progs, notes = tui_programs(args)
    env = {"TERM": "xterm-256color", "PYTHONPATH": str(REPO), "HOME": tempfile.gettempdir(),
           "COLORTERM": "truecolor"}
    tmux = Tmux()
    pids: dict[str, int] = {}
    load0 = load_avg()
    try:
        for name, (argv, _key) in progs.items():
            pids[name] = tmux.window(wname(name), argv, env)
        time.sleep(args.warmup)
        dead = [n for n in progs if not tmux.alive(wname(n))]
        if dead:
            for n in dead:
                print(f"{n} exited early; its screen:\n{tmux.screen(wname(n))}", file=sys.stderr)
            raise SystemExit(1)
        sizes = {n: tmux.size(wname(n)) for n in progs}
        before = {n: tree_cpu_s(p) for n, p in pids.items()}
        w0 = time.monotonic()
        time.sleep(args.seconds)
        after = {n: tree_cpu_s(p) for n, p in pids.items()}
        wall = time.monotonic() - w0
        rss = {n: rss_mib(p) for n, p in pids.items()}
        for n, (_argv, key) in progs.items():
            tmux.keys(wname(n), key)
        time.sleep(1.0)
    finally:
        tmux.kill()
    cpu = {n: after[n] - before[n] for n in progs}
    return {"wall_s": wall, "cpu_s": cpu, "rss_mib": rss, "sizes": sizes, "notes": notes,
            "load_before": load0, "load_after": load_avg()}


# ---- the agent part -------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_agent(probes: str, extra: list[str], tree: Path = REPO) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    argv = [sys.executable, "-c", RUN_FROM.format(tree=str(tree)), "serve", "--listen", f"127.0.0.1:{port}",
            "--interval", "1", "--config", "/dev/null", "--no-gpu", "--probes", probes, *extra]
    proc = subprocess.Popen(argv, cwd=tree, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env={**os.environ, "PYTHONPATH": str(tree)})
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=1) as resp:
                if json.load(resp).get("status") == "ok":
                    return proc, url
        except OSError:
            if proc.poll() is not None:
                raise SystemExit(f"agent exited: {proc.stderr.read().decode() if proc.stderr else ''}")
        time.sleep(0.2)
    proc.kill()
    raise SystemExit("agent did not produce a snapshot within 60 s")


def snapshot_extra(url: str) -> dict:
    with urllib.request.urlopen(f"{url}/api/v1/snapshot?depth=0", timeout=5) as resp:
        doc = json.load(resp)
    return {"processes": next((s.get("processes") for s in doc.get("sources", [])
                               if s.get("name") in ("procfs", "ebpf")), None),
            "activity": next((s.get("name") for s in doc.get("sources", [])
                              if s.get("name") in ("procfs", "ebpf")), None)}


def children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def bench_agent(args: argparse.Namespace, probes: str, tree: Path = REPO, tag: str = "") -> dict:
    load0 = load_avg()
    proc, url = start_agent(probes, shlex.split(args.agent_args), tree)
    try:
        time.sleep(args.warmup)
        info = snapshot_extra(url)  # one query before the window, none during it
        before = tree_cpu_s(proc.pid)
        w0 = time.monotonic()
        ps: list[float] = []
        deadline = w0 + args.seconds
        tick = w0
        while True:
            c0 = children_cpu()
            subprocess.run(PS_CMD, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
            ps.append(children_cpu() - c0)
            tick += 1.0
            if tick >= deadline:
                break
            time.sleep(max(0.0, tick - time.monotonic()))
        time.sleep(max(0.0, deadline - time.monotonic()))
        cpu = tree_cpu_s(proc.pid) - before
        wall = time.monotonic() - w0
        rss = rss_mib(proc.pid)
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    per_cycle = cpu / wall  # 1 s interval: CPU seconds per wall second = per cycle
    return {"probes": probes, "tag": tag, "activity": info["activity"], "processes": info["processes"],
            "wall_s": wall, "cpu_s": cpu, "per_cycle_ms": per_cycle * 1e3,
            "ps_ms": statistics.median(ps) * 1e3, "ps_runs": len(ps), "rss_mib": rss,
            "load_before": load0, "load_after": load_avg()}


# ---- report ------------------------------------------------------------------------------

def print_tui(r: dict) -> None:
    wall = r["wall_s"]
    print(f"TUI, idle user, 1 s refresh, tmux windows {', '.join(sorted(set(r['sizes'].values())))}, "
          f"{wall:.1f} s window; load average {r['load_before']} before, {r['load_after']} after "
          f"({os.cpu_count()} CPUs)")
    for note in r["notes"]:
        print(f"  note: {note}")
    cpu = r["cpu_s"]
    kecks = [n for n in cpu if n.startswith("keck-top")]
    for n, used in cpu.items():
        print(f"  {n:32s} {used:6.2f} s CPU = {used / wall * 100:5.2f} % of one CPU   RSS {r['rss_mib'][n]:6.1f} MiB")
    for k in kecks:
        base = k.replace("keck-top", "keck-top (baseline)", 1)
        if base != k and base in cpu and cpu[base] > 0:
            print(f"  ratio {k} / {base}: {cpu[k] / cpu[base]:.2f}")
        for n, used in cpu.items():
            if n in kecks:
                continue
            ratio = f"{cpu[k] / used:.2f}" if used > 0 else "inf (peer used no measurable CPU)"
            print(f"  ratio {k} / {n}: {ratio}")


def print_agent(r: dict) -> None:
    print(f"agent{r['tag']}, --probes {r['probes']} (source {r['activity']}, {r['processes']} processes), nobody "
          f"querying, {r['wall_s']:.1f} s; load average {r['load_before']} before, {r['load_after']} after")
    print(f"  agent: {r['cpu_s']:.2f} s CPU = {r['per_cycle_ms']:.1f} ms per 1 s cycle; RSS {r['rss_mib']:.1f} MiB")
    print(f"  ps -e -o pid,stat,time,rss,cmd: median {r['ps_ms']:.1f} ms CPU per run ({r['ps_runs']} runs)")
    print(f"  ratio agent per cycle / ps: {r['per_cycle_ms'] / r['ps_ms']:.2f}" if r["ps_ms"] > 0 else
          "  ratio: ps cost not measurable")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--seconds", type=float, default=20.0, help="measured window (default 20)")
    ap.add_argument("--warmup", type=float, default=8.0, help="seconds before measuring (default 8)")
    ap.add_argument("--repeat", type=int, default=1, help="repeat each part N times (default 1)")
    ap.add_argument("--glances", metavar="PATH", help="glances executable (default: on PATH)")
    ap.add_argument("--keck-args", action="append", default=None, metavar="ARGS",
                    help="one keck-top TUI variant's extra flags; repeat for several (default: '' i.e. defaults)")
    ap.add_argument("--children", type=int, default=1000, help="extra sleeping processes for the agent part")
    ap.add_argument("--agent-probes", action="append", default=None, metavar="PROBES",
                    help="agent variants by --probes value (default: procfs)")
    ap.add_argument("--agent-args", default="", metavar="ARGS", help="extra flags for every agent run")
    ap.add_argument("--baseline-tree", metavar="DIR", type=Path,
                    help="also run keck-top from this source tree (e.g. `git archive` of an older "
                         "commit), labelled (baseline), in the same run")
    ap.add_argument("--skip-tui", action="store_true")
    ap.add_argument("--skip-agent", action="store_true")
    ap.add_argument("--json", metavar="FILE", type=Path, help="also write every result as JSON here")
    args = ap.parse_args(argv)
    args.keck_args = args.keck_args if args.keck_args is not None else [""]
    args.agent_probes = args.agent_probes or ["procfs"]
    if not args.skip_tui and shutil.which("tmux") is None:
        raise SystemExit("the TUI part needs tmux (Debian package tmux); use --skip-tui")
    results: dict[str, list[dict]] = {"tui": [], "agent": []}
    for rep in range(args.repeat):
        if args.repeat > 1:
            print(f"--- run {rep + 1} of {args.repeat}")
        if not args.skip_tui:
            r = bench_tui(args)
            results["tui"].append(r)
            print_tui(r)
        if not args.skip_agent:
            children: list[subprocess.Popen[bytes]] = []
            try:
                spawn(args.children, children)
                time.sleep(1.0)
                for probes in args.agent_probes:
                    for tree, tag in keck_trees(args):
                        r = bench_agent(args, probes, tree, tag)
                        results["agent"].append(r)
                        print_agent(r)
            finally:
                kill(children)
    if args.repeat > 1:
        print("--- medians over the runs")
        for r0 in results["tui"][:1]:
            kecks = [n for n in r0["cpu_s"] if n.startswith("keck-top")]
            for k in kecks:
                for n in r0["cpu_s"]:
                    if n in kecks and n != k.replace("keck-top", "keck-top (baseline)", 1):
                        continue
                    if n == k:
                        continue
                    ratios = [r["cpu_s"][k] / r["cpu_s"][n] for r in results["tui"] if r["cpu_s"][n] > 0]
                    if ratios:
                        print(f"  {k} / {n}: median ratio {statistics.median(ratios):.2f} "
                              f"(runs: {', '.join(f'{x:.2f}' for x in ratios)})")
        for probes, (_tree, tag) in ((p, t) for p in args.agent_probes for t in keck_trees(args)):
            rs = [r for r in results["agent"] if r["probes"] == probes and r["tag"] == tag]
            ratios = [r["per_cycle_ms"] / r["ps_ms"] for r in rs if r["ps_ms"] > 0]
            if ratios:
                print(f"  agent{tag} --probes {probes} / ps: median ratio {statistics.median(ratios):.2f} "
                      f"(runs: {', '.join(f'{x:.2f}' for x in ratios)}); per cycle "
                      f"{statistics.median(r['per_cycle_ms'] for r in rs):.1f} ms, "
                      f"RSS {statistics.median(r['rss_mib'] for r in rs):.1f} MiB")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
