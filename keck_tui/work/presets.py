"""Inference servers recognised from their command lines, with their token counters.

No configuration needed: the metrics URL comes from the server's own flags and defaults
(a server listening on all addresses is scraped on loopback), and the server's process
with its descendants (vLLM's engine-core processes, TGI's router and shards) is the
energy the tokens are divided into.

| server | recognised by | host, port (default) | counter (unit) | metrics need |
|---|---|---|---|---|
| vLLM | ``vllm serve``, ``-m vllm.entrypoints.openai.api_server`` | ``--host`` (all), ``--port`` (8000) | ``vllm:generation_tokens_total`` (token), ``vllm:prompt_tokens_total`` (prompt token) | nothing (``--uds``: not scraped) |
| llama.cpp | ``llama-server`` | ``--host`` (127.0.0.1), ``--port`` (8080), ``--api-prefix`` | ``llamacpp:tokens_predicted_total`` (token), ``llamacpp:prompt_tokens_total`` (prompt token) | ``--metrics`` |
| TGI | ``text-generation-launcher`` / ``-router`` | ``--hostname`` (0.0.0.0), ``-p``/``--port`` (3000) | ``tgi_request_generated_tokens_sum`` (token), ``tgi_request_input_length_sum`` (prompt token) | nothing |
| SGLang | ``-m sglang.launch_server``, ``sglang serve`` | ``--host`` (127.0.0.1), ``--port`` (30000) | ``sglang:generation_tokens_total`` (token), ``sglang:prompt_tokens_total`` (prompt token) | ``--enable-metrics`` |

Sources: vLLM ``vllm/entrypoints/openai/cli_args.py`` and ``docs/usage/metrics.md``;
llama.cpp ``tools/server/README.md``; TGI ``docs/source/reference/launcher.md`` and
``metrics.md``; SGLang ``docs/references/production_metrics.md`` (see
SOURCE.md of the inference test fixtures, kept outside the repository). TGI has no token counter: its histograms'
``_sum`` grows when a request *finishes*, so its rate is lumpy over short intervals.
Only command-line flags are read, never a process's environment (which may hold
secrets): a port given by ``PORT=`` or ``LLAMA_ARG_PORT=`` is not seen — configure a
``[[work]]`` entry for such a server.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable, Iterable, Mapping, Protocol, Sequence

from keck_tui.work.spec import CounterSpec, RowMatch, WorkSpec

TOKEN = "token"
PROMPT_TOKEN = "prompt token"


@dataclass(frozen=True)
class Server:
    """An inference server found in a command line."""

    kind: str  # vllm | llama.cpp | tgi | sglang
    url: str | None
    why: str = ""  # when url is None


def flag(argv: Sequence[str], *names: str) -> str | None:
    """The value of ``--name VALUE`` or ``--name=VALUE`` (the last one given), else None."""
    value = None
    for i, arg in enumerate(argv):
        for name in names:
            if arg == name and i + 1 < len(argv):
                value = argv[i + 1]
            elif arg.startswith(name + "="):
                value = arg[len(name) + 1:]
    return value


def scrape_host(host: str | None) -> str:
    """The address to scrape a server listening on ``host`` at (loopback for "all")."""
    if host is None or host in ("", "0.0.0.0", "*"):
        return "127.0.0.1"
    if host in ("::", "[::]"):
        return "[::1]"
    if ":" in host and not host.startswith("["):
        return f"[{host}]"
    return host


def _port(text: str | None, default: int) -> int | None:
    if text is None:
        return default
    try:
        port = int(text)
    except ValueError:
        return None
    return port if 1 <= port <= 65535 else None


def _url(kind: str, host: str | None, port_text: str | None, default_port: int, path: str = "/metrics") -> Server:
    port = _port(port_text, default_port)
    if port is None:
        return Server(kind, None, f"{kind}: port {port_text!r} is not a port number")
    return Server(kind, f"http://{scrape_host(host)}:{port}{path}")


def _base(arg: str) -> str:
    return os.path.basename(arg)


def _vllm(argv: Sequence[str]) -> Server | None:
    served = any(_base(a) == "vllm" and i + 1 < len(argv) and argv[i + 1] == "serve" for i, a in enumerate(argv))
    module = any(a in ("vllm.entrypoints.openai.api_server", "vllm.entrypoints.api_server") for a in argv)
    if not (served or module):
        return None
    if flag(argv, "--uds") is not None:
        return Server("vllm", None, "vLLM listens on a unix socket (--uds): not scraped; add a [[work]] entry")
    return _url("vllm", flag(argv, "--host"), flag(argv, "--port"), 8000)


def _llamacpp(argv: Sequence[str]) -> Server | None:
    if not argv or _base(argv[0]) not in ("llama-server", "llama-server.exe"):
        return None
    if "--metrics" not in argv:
        return Server("llama.cpp", None, "llama.cpp's server was started without --metrics: it exposes no "
                                         "counter (restart it with --metrics)")
    prefix = (flag(argv, "--api-prefix") or "").rstrip("/")
    return _url("llama.cpp", flag(argv, "--host") or "127.0.0.1", flag(argv, "--port"), 8080,
                f"{prefix}/metrics" if prefix.startswith("/") or not prefix else f"/{prefix}/metrics")


def _tgi(argv: Sequence[str]) -> Server | None:
    if not argv or _base(argv[0]) not in ("text-generation-launcher", "text-generation-router"):
        return None
    return _url("tgi", flag(argv, "--hostname"), flag(argv, "--port", "-p"), 3000)


def _sglang(argv: Sequence[str]) -> Server | None:
    module = "sglang.launch_server" in argv
    served = any(_base(a) == "sglang" and i + 1 < len(argv) and argv[i + 1] == "serve" for i, a in enumerate(argv))
    if not (module or served):
        return None
    if "--enable-metrics" not in argv:
        return Server("sglang", None, "SGLang was started without --enable-metrics: it exposes no counter "
                                      "(restart it with --enable-metrics)")
    return _url("sglang", flag(argv, "--host") or "127.0.0.1", flag(argv, "--port"), 30000)


DETECTORS: tuple[Callable[[Sequence[str]], Server | None], ...] = (_vllm, _llamacpp, _tgi, _sglang)

COUNTERS: Mapping[str, tuple[CounterSpec, tuple[CounterSpec, ...]]] = {
    "vllm": (CounterSpec("vllm:generation_tokens_total", TOKEN),
             (CounterSpec("vllm:prompt_tokens_total", PROMPT_TOKEN),)),
    "llama.cpp": (CounterSpec("llamacpp:tokens_predicted_total", TOKEN),
                  (CounterSpec("llamacpp:prompt_tokens_total", PROMPT_TOKEN),)),
    "tgi": (CounterSpec("tgi_request_generated_tokens_sum", TOKEN),
            (CounterSpec("tgi_request_input_length_sum", PROMPT_TOKEN),)),
    "sglang": (CounterSpec("sglang:generation_tokens_total", TOKEN),
               (CounterSpec("sglang:prompt_tokens_total", PROMPT_TOKEN),)),
}


def detect(cmd: str) -> Server | None:
    """The inference server a command line starts, if any."""
    argv = cmd.split()
    if not argv:
        return None
    for detector in DETECTORS:
        found = detector(argv)
        if found is not None:
            return found
    return None


class ProcessFacts(Protocol):
    """What the finder reads of a process: a ProcessInfo, or the sampler's ProcessSample itself."""

    @property
    def pid(self) -> int: ...

    @property
    def ppid(self) -> int: ...

    @property
    def cmd(self) -> str: ...

    @property
    def start_time(self) -> float: ...


@dataclass(frozen=True)
class ProcessInfo:
    pid: int
    ppid: int
    cmd: str
    start_time: float = 0.0


class PresetFinder:
    """Servers among the processes, remembered per (pid, start time, command line).

    A server process whose ancestor is a server with the same URL (a worker forked with
    the parent's command line, TGI's router under its launcher) is part of that
    ancestor's tree, not a server of its own.
    """

    def __init__(self) -> None:
        self._seen: dict[tuple[int, float, str], Server | None] = {}

    def find(self, processes: Iterable[ProcessFacts]) -> list[WorkSpec]:
        procs = list(processes)
        found: dict[int, Server] = {}
        seen: dict[tuple[int, float, str], Server | None] = {}
        for p in procs:
            key = (p.pid, p.start_time, p.cmd)
            server = self._seen[key] if key in self._seen else detect(p.cmd)
            seen[key] = server
            if server is not None:
                found[p.pid] = server
        self._seen = seen  # forget processes that are gone
        parent = {p.pid: p.ppid for p in procs}
        specs = []
        for pid, server in sorted(found.items()):
            if _has_ancestor_server(pid, parent, found, server):
                continue
            primary, also = COUNTERS[server.kind]
            specs.append(WorkSpec(name=server.kind, url=server.url, primary=primary, also=also,
                                  match=RowMatch(pid=pid, children=True), source="preset",
                                  why=server.why))
        return specs


def _has_ancestor_server(pid: int, parent: Mapping[int, int], found: Mapping[int, Server], server: Server) -> bool:
    seen = {pid}
    p = parent.get(pid, 0)
    while p and p not in seen:
        other = found.get(p)
        if other is not None and other.kind == server.kind and other.url == server.url:
            return True
        seen.add(p)
        p = parent.get(p, 0)
    return False
