"""Work counters, the pure parts: [[work]] entries, reading real expositions, rates, presets, rows."""
from __future__ import annotations

import pytest

from tests.conftest import shared_fixture
from keck_tui.cost import Tariff
from keck_tui.model import Row, Snapshot, SourceStatus
from keck_tui.samplers.types import CpuActivity, ProcessSample
from keck_tui.work.attach import WorkMonitor
from keck_tui.work.exposition import ExpositionError, read_counters
from keck_tui.work.presets import PresetFinder, ProcessInfo, detect, scrape_host
from keck_tui.work.rate import OK, RESET, WAITING, WARMING, CounterTrack
from keck_tui.work.scraper import Result
from keck_tui.work.spec import CounterSpec, WorkSpecError, parse_entries

GEN = CounterSpec("vllm:generation_tokens_total", "token")
PROMPT = CounterSpec("vllm:prompt_tokens_total", "prompt token")


# ------------------------------------------------------------------ [[work]] entries


def test_work_entries_are_checked():
    specs = parse_entries([{"process": "gunicorn", "url": "http://127.0.0.1:9100/metrics",
                            "counter": "http_requests_total", "labels": {"code": "200"}, "unit": "request",
                            "also": [{"counter": "bytes_total", "unit": "byte"}]},
                           {"pod": "api-*", "namespace": "prod", "url": "https://api:8443/metrics",
                            "counter": "frames_total", "unit": "frame", "name": "encoder", "timeout": 1}])
    a, b = specs
    assert a.name == "http_requests_total" and a.primary.labels == (("code", "200"),)
    assert a.match.process_matches(1, "gunicorn", "x") and not a.match.process_matches(1, "gunicorn2", "x")
    assert a.also[0].unit == "byte" and a.match.children
    assert b.match.group_matches("pod", "api-7d9", "prod") and not b.match.group_matches("pod", "api-7d9", "dev")
    assert b.timeout_s == 1.0 and b.name == "encoder"


@pytest.mark.parametrize("entry,why", [
    ({"url": "http://h/metrics", "counter": "c", "unit": "u"}, "say which rows"),
    ({"process": "x", "counter": "c", "unit": "u"}, "'url' is required"),
    ({"process": "x", "url": "ftp://h/m", "counter": "c", "unit": "u"}, "not an http(s) URL"),
    ({"process": "x", "url": "http://u:p@h/m", "counter": "c", "unit": "u"}, "credentials"),
    ({"process": "x", "url": "http://h/m", "counter": "c c", "unit": "u"}, "not a Prometheus sample name"),
    ({"process": "(", "url": "http://h/m", "counter": "c", "unit": "u"}, "not a regular expression"),
    ({"process": "x", "url": "http://h/m", "counter": "c"}, "'unit' is required"),
    ({"process": "x", "url": "http://h/m", "counter": "c", "unit": "u", "colour": 1}, "unknown key 'colour'"),
    ({"process": "x", "url": "http://h/m", "counter": "c", "unit": "u", "timeout": 0}, "'timeout'"),
    ({"process": "x", "pod": "p", "url": "http://h/m", "counter": "c", "unit": "u"}, "not both"),
    ({"process": "x", "url": "http://h/m", "counter": "c", "unit": "u", "labels": {"a": 1}}, "table of strings"),
])
def test_bad_work_entries_say_why(entry, why):
    with pytest.raises(WorkSpecError, match=None) as err:
        parse_entries([entry])
    assert why in str(err.value) and "[[work]] entry 1" in str(err.value)


# ------------------------------------------------------------------ real expositions


@pytest.mark.parametrize("name,counter,labels,expected", [
    ("vllm-0.7-v0engine-aibrix-docs.txt", "vllm:generation_tokens_total", (), 955.0),
    ("vllm-0.7-v0engine-aibrix-docs.txt", "vllm:prompt_tokens_total", (), 148.0),
    ("vllm-v1engine-engine-label-partial.txt", "vllm:generation_tokens_total", (("engine", "0"),), 0.0),
    ("llamacpp-upstream-server-cuda-2026.txt", "llamacpp:tokens_predicted_total", (), 10911.0),
    ("llamacpp-ik_llama-fork-2025-08.txt", "llamacpp:prompt_tokens_total", (), 6886.0),
    ("sglang-docs-production-metrics.txt", "sglang:generation_tokens_total", (), 7557572.0),
    ("sglang-docs-production-metrics.txt", "sglang:time_to_first_token_seconds_count", (), 11008.0),
])
def test_counters_from_real_expositions(name, counter, labels, expected):
    body = shared_fixture("inference", name).read_bytes()
    spec = CounterSpec(counter, "x", labels)
    got = read_counters(body, [spec])[spec]
    assert got.value == pytest.approx(expected) and got.series == 1


def test_created_gauges_are_never_taken_for_the_counter():
    body = shared_fixture("inference", "vllm-v1engine-engine-label-partial.txt").read_bytes()
    got = read_counters(body, [GEN])[GEN]
    assert got.value == 0.0  # not the ~1.78e9 of vllm:generation_tokens_created


def test_missing_series_and_label_filters_say_why():
    body = shared_fixture("inference", "vllm-v1engine-engine-label-partial.txt").read_bytes()
    other = CounterSpec("vllm:generation_tokens_total", "token", (("engine", "7"),))
    absent = CounterSpec("llamacpp:tokens_predicted_total", "token")
    got = read_counters(body, [other, absent])
    assert got[other].value is None and "none with {engine=\"7\"}" in got[other].why
    assert got[absent].value is None and "no series llamacpp:tokens_predicted_total" in got[absent].why
    with pytest.raises(ExpositionError):
        read_counters(b"<html>not metrics</html>\n{", [GEN])


def test_series_of_several_engines_are_summed():
    text = ("# TYPE vllm:generation_tokens counter\n"
            'vllm:generation_tokens_total{engine="0",model_name="m"} 100\n'
            'vllm:generation_tokens_total{engine="1",model_name="m"} 50\n')
    got = read_counters(text, [GEN])[GEN]
    assert got.value == 150.0 and got.series == 2


# ------------------------------------------------------------------ rates


def test_counter_track_steps_resets_and_waits():
    t = CounterTrack()
    assert t.step(1, 10.0, 100.0).status == WARMING
    s = t.step(2, 12.0, 300.0)
    assert (s.status, s.units, s.rate, s.window_s) == (OK, 200.0, 100.0, 2.0)
    assert t.step(2, 12.0, 300.0).status == WAITING  # the same scrape again
    r = t.step(3, 13.0, 40.0)
    assert r.status == RESET and r.units == 40.0 and r.rate is None and "restarted" in r.why
    e = t.step(4, 14.0, None, "cannot connect: Connection refused")
    assert e.status == "error" and "refused" in e.why
    s = t.step(5, 15.0, 240.0)  # the failed scrape only made the step longer
    assert s.units == 200.0 and s.window_s == 2.0 and s.rate == 100.0


# ------------------------------------------------------------------ presets


@pytest.mark.parametrize("cmd,url", [
    ("/usr/bin/python3 /usr/local/bin/vllm serve meta-llama/Llama-3.1-8B --port 8001", "http://127.0.0.1:8001/metrics"),
    ("python -m vllm.entrypoints.openai.api_server --model m --host=10.0.0.5", "http://10.0.0.5:8000/metrics"),
    ("vllm serve m --host :: --port 9000", "http://[::1]:9000/metrics"),
    ("/opt/llama.cpp/build/bin/llama-server -m x.gguf --metrics --host 0.0.0.0 --port 8081",
     "http://127.0.0.1:8081/metrics"),
    ("llama-server -m x.gguf --metrics --api-prefix /llm", "http://127.0.0.1:8080/llm/metrics"),
    ("text-generation-launcher --model-id m -p 8080", "http://127.0.0.1:8080/metrics"),
    ("/usr/src/text-generation-router --hostname 127.0.0.1 --port 3000", "http://127.0.0.1:3000/metrics"),
    ("python3 -m sglang.launch_server --model-path m --enable-metrics --host 0.0.0.0",
     "http://127.0.0.1:30000/metrics"),
])
def test_servers_and_their_metrics_urls(cmd, url):
    server = detect(cmd)
    assert server is not None and server.url == url


@pytest.mark.parametrize("cmd,why", [
    ("llama-server -m x.gguf --port 8080", "without --metrics"),
    ("python3 -m sglang.launch_server --model-path m", "without --enable-metrics"),
    ("vllm serve m --uds /run/vllm.sock", "unix socket"),
    ("vllm serve m --port http", "not a port number"),
])
def test_servers_without_a_counter_say_what_to_do(cmd, why):
    server = detect(cmd)
    assert server is not None and server.url is None and why in server.why


def test_not_servers():
    for cmd in ("vim vllm serve.txt", "python3 train.py --port 8000", "grep llama-server log", ""):
        assert detect(cmd) is None
    assert scrape_host("0.0.0.0") == "127.0.0.1" and scrape_host("fe80::1") == "[fe80::1]"


def test_a_forked_worker_with_the_same_command_line_is_part_of_its_parent():
    finder = PresetFinder()
    cmd = "vllm serve m --port 8000"
    specs = finder.find([ProcessInfo(100, 1, cmd), ProcessInfo(101, 100, cmd), ProcessInfo(102, 100, "VLLM::EngineCore"),
                         ProcessInfo(200, 1, "vllm serve other --port 8001")])
    assert [(s.match.pid, s.url) for s in specs] == [(100, "http://127.0.0.1:8000/metrics"),
                                                     (200, "http://127.0.0.1:8001/metrics")]
    assert specs[0].primary == GEN and specs[0].also == (PROMPT,) and specs[0].source == "preset"


# ------------------------------------------------------------------ rows


class FakeScraper:
    def __init__(self) -> None:
        self.results: dict[str, Result] = {}
        self.targets = {}
        self.kicks = 0

    def set_targets(self, targets):
        self.targets = dict(targets)

    def kick(self):
        self.kicks += 1

    def latest(self, url):
        return self.results.get(url)

    def close(self):
        pass

    def put(self, url, n, t, values=None, error=None):
        from keck_tui.work.exposition import CounterValue
        vals = None if values is None else {k: CounterValue(v, 1) for k, v in values.items()}
        self.results[url] = Result(n, t, vals, error)


def _proc(pid, ppid, name, cmd, watts=0.0):
    row = Row("process", f"pid-{pid}", f"{name} ({pid})", watts, watts * 0.9, watts * 1.1, pid=pid, cmd=cmd)
    sample = ProcessSample(pid=pid, name=name, cmd=cmd, cpu_s=0.1, ppid=ppid)
    return row, sample


def _snap(rows, t=1000.0):
    root = Row("node", "n", "n", sum(r.watts for r in rows), 0.0, 999.0,
               children=(Row("service", "svc", "svc", sum(r.watts for r in rows), 0.0, 999.0, children=tuple(rows)),))
    return Snapshot(time=t, interval_s=1.0, host="n", model="cpu-time", sources=(SourceStatus("x", "ok"),), root=root)


def test_a_detected_server_gets_joules_per_token_over_its_whole_tree():
    server, s1 = _proc(100, 1, "python3", "python3 /usr/bin/vllm serve m --port 8000", 20.0)
    engine, s2 = _proc(101, 100, "VLLM::EngineCore", "VLLM::EngineCore", 180.0)
    other, s3 = _proc(300, 1, "sshd", "sshd", 5.0)
    activity = CpuActivity(SourceStatus("procfs", "ok"), 1.0, processes=(s1, s2, s3))
    scraper = FakeScraper()
    mon = WorkMonitor([], scraper, tariff=Tariff(price_per_kwh=0.30, co2e_g_per_kwh=400), monotonic=lambda: 11.0)
    url = "http://127.0.0.1:8000/metrics"
    snap = mon.annotate(_snap([server, engine, other]), activity)
    assert url in scraper.targets and scraper.targets[url][0] == (GEN, PROMPT)
    row = snap.root.find(["n", "svc", "pid-100"])
    assert row.extra["work"]["status"] == "waiting"  # nothing scraped yet
    scraper.put(url, 1, 9.0, {GEN: 1000.0, PROMPT: 500.0})
    mon.annotate(_snap([server, engine, other]), activity)  # warming up
    scraper.put(url, 2, 10.0, {GEN: 1400.0, PROMPT: 600.0})
    snap = mon.annotate(_snap([server, engine, other]), activity)
    w = snap.root.find(["n", "svc", "pid-100"]).extra["work"]
    assert w["status"] == OK and w["rate"] == 400.0 and w["units"] == 400.0 and w["rows"] == 2
    assert w["watts"] == 200.0 and w["j_per_unit"] == pytest.approx(0.5)
    assert w["j_per_unit_lo"] == pytest.approx(180.0 / 401.0, rel=1e-5)
    assert w["j_per_unit_hi"] == pytest.approx(220.0 / 399.0, rel=1e-5)
    assert w["units_per_j"] == pytest.approx(2.0)
    assert w["cost_per_m"] == pytest.approx(0.5 * 1e6 / 3.6e6 * 0.30, rel=1e-5)
    assert w["co2e_g_per_m"] == pytest.approx(0.5 * 1e6 / 3.6e6 * 400, rel=1e-5)
    assert w["source"] == "preset:vllm" and w["age_s"] == 1.0
    assert w["also"][0]["unit"] == "prompt token" and w["also"][0]["j_per_unit"] == pytest.approx(2.0)
    assert "work" not in snap.root.find(["n", "svc", "pid-101"]).extra  # in the basis, not marked
    assert "work" not in snap.root.find(["n", "svc", "pid-300"]).extra
    status = snap.source("work")
    assert status is not None and status.ok and "vllm: 400 token/s" in status.detail
    # the document round-trips: recordings and the agent keep it
    again = Snapshot.loads(snap.dumps())
    assert again.root.find(["n", "svc", "pid-100"]).extra["work"]["j_per_unit"] == pytest.approx(0.5)


def test_dead_endpoint_and_reset_are_said_on_the_row():
    server, s1 = _proc(100, 1, "llama-server", "llama-server -m x --metrics", 50.0)
    activity = CpuActivity(SourceStatus("procfs", "ok"), 1.0, processes=(s1,))
    scraper = FakeScraper()
    mon = WorkMonitor([], scraper)
    url = "http://127.0.0.1:8080/metrics"
    scraper.put(url, 1, 1.0, error="cannot connect: Connection refused")
    w = mon.annotate(_snap([server]), activity).root.find(["n", "svc", "pid-100"]).extra["work"]
    assert w["status"] == "error" and w["why"] == "cannot connect: Connection refused"
    assert w["j_per_unit"] is None
    snap = mon.annotate(_snap([server]), activity)
    assert not snap.source("work").ok or "error" in snap.source("work").detail
    tok = CounterSpec("llamacpp:tokens_predicted_total", "token")
    scraper.put(url, 2, 2.0, {tok: 500.0})
    scraper.put(url, 3, 3.0, {tok: 700.0})
    mon.annotate(_snap([server]), activity)
    scraper.put(url, 4, 4.0, {tok: 20.0})
    w = mon.annotate(_snap([server]), activity).root.find(["n", "svc", "pid-100"]).extra["work"]
    assert w["status"] == RESET and "restarted" in w["why"] and w["j_per_unit"] is None


def test_a_server_without_metrics_says_what_to_do():
    server, s1 = _proc(100, 1, "llama-server", "llama-server -m x", 50.0)
    activity = CpuActivity(SourceStatus("procfs", "ok"), 1.0, processes=(s1,))
    scraper = FakeScraper()
    w = WorkMonitor([], scraper).annotate(_snap([server]), activity).root.find(["n", "svc", "pid-100"]).extra["work"]
    assert w["status"] == "unavailable" and "--metrics" in w["why"] and scraper.targets == {}


def test_config_entries_match_pods():
    pod = Row("pod", "uid-1", "api-1", 30.0, 27.0, 33.0, namespace="prod",
              children=(Row("container", "c1", "api", 30.0, 27.0, 33.0),))
    ns = Row("namespace", "prod", "prod", 30.0, 27.0, 33.0, children=(pod,))
    snap = Snapshot(time=1.0, interval_s=1.0, host="n", model="m", sources=(),
                    root=Row("node", "n", "n", 30.0, 27.0, 33.0, children=(ns,)))
    spec = parse_entries([{"pod": "api-*", "url": "http://api:9000/metrics", "counter": "frames_total",
                           "unit": "frame"}])[0]
    scraper = FakeScraper()
    mon = WorkMonitor([spec], scraper, presets=False)
    scraper.put("http://api:9000/metrics", 1, 1.0, {spec.primary: 0.0})
    mon.annotate(snap, None)
    scraper.put("http://api:9000/metrics", 2, 2.0, {spec.primary: 60.0})
    out = mon.annotate(snap, None)
    w = out.root.find(["n", "prod", "uid-1"]).extra["work"]
    assert w["rate"] == 60.0 and w["j_per_unit"] == pytest.approx(0.5) and w["source"] == "config"
    assert "work" not in out.root.find(["n", "prod", "uid-1", "c1"]).extra


def test_agent_metrics_export_work_rates_and_counters_for_any_window():
    from prometheus_client import generate_latest
    from prometheus_client.parser import text_string_to_metric_families

    from keck_tui.agent.metrics import MetricsState, make_registry

    server, s1 = _proc(100, 1, "python3", "vllm serve m", 200.0)
    activity = CpuActivity(SourceStatus("procfs", "ok"), 1.0, processes=(s1,))
    scraper = FakeScraper()
    mon = WorkMonitor([], scraper)
    url = "http://127.0.0.1:8000/metrics"
    state = MetricsState()
    for n, tokens in enumerate((0.0, 400.0, 800.0), 1):
        scraper.put(url, n, float(n), {GEN: tokens, PROMPT: tokens / 4})
        state.update(mon.annotate(_snap([server], t=1000.0 + n), activity))
    text = generate_latest(make_registry(state)).decode()
    got = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            got[(s.name, s.labels.get("unit"))] = s.value
    assert got[("keck_work_units_per_second", "token")] == 400.0
    assert got[("keck_work_joules_per_unit", "token")] == pytest.approx(0.5)
    assert got[("keck_work_joules_per_unit", "prompt token")] == pytest.approx(2.0)
    assert got[("keck_work_up", "token")] == 1.0
    assert got[("keck_work_units_total", "token")] == 800.0  # 400 + 400 (the first scrape only warms up)
    assert got[("keck_work_energy_joules_total", "token")] == pytest.approx(3 * 200.0)
    assert got[("keck_work_energy_joules_total", "prompt token")] == pytest.approx(3 * 200.0)


def test_report_gives_energy_per_unit_over_the_window(tmp_path):
    from keck_tui.recording import RecordingWriter
    from keck_tui.report import report_file, report_snapshots

    server, s1 = _proc(100, 1, "python3", "vllm serve m", 200.0)
    activity = CpuActivity(SourceStatus("procfs", "ok"), 1.0, processes=(s1,))
    scraper = FakeScraper()
    mon = WorkMonitor([], scraper, tariff=Tariff(price_per_kwh=0.36))
    url = "http://127.0.0.1:8000/metrics"
    snaps = []
    # 1000 tokens/s for 3 s, then idle for 2 s: J/token over the window is Σ energy ÷ Σ tokens
    counts = (0, 1000, 2000, 3000, 3000, 3000)
    for n, tokens in enumerate(counts, 1):
        scraper.put(url, n, float(n), {GEN: float(tokens), PROMPT: tokens / 2})
        snaps.append(mon.annotate(_snap([server], t=1000.0 + n), activity))
    tariff = Tariff(price_per_kwh=0.36)
    rep = report_snapshots(snaps, "process", tariff)
    tok = next(w for w in rep.work if w["unit"] == "token")
    assert tok["work"] == "vllm" and tok["row"] == "python3" and tok["units"] == 3000.0
    assert tok["energy_j"] == pytest.approx(6 * 200.0)  # every snapshot's energy counts, idle ones too
    assert tok["j_per_unit"] == pytest.approx(1200.0 / 3000.0)
    assert tok["j_per_unit_lo"] == pytest.approx(0.9 * 1200.0 / 3000.0)
    assert tok["cost_per_m"] == pytest.approx(1200.0 / 3.6e6 * 0.36 / 3000.0 * 1e6)
    prompt = next(w for w in rep.work if w["unit"] == "prompt token")
    assert prompt["units"] == 1500.0
    # the same through a recording file (the fast path reads rows, work lines are parsed again)
    path = tmp_path / "rec.jsonl"
    with RecordingWriter(path) as w:
        for s in snaps:
            w.write(s)
    rep2 = report_file(path, "process", tariff)
    assert rep2.to_json()["work"] == rep.work
    from keck_tui.report import render_report
    text = render_report(rep2)
    assert "energy per unit of work over the window:" in text
    line = next(ln for ln in text.splitlines() if ln.startswith("vllm") and "  token" in ln)
    assert "python3" in line and "3.0k" in line and "0.4 J" in line
    # a window that keeps only the last two (idle) snapshots: energy but no tokens
    rep3 = report_file(path, "process", tariff, since=1000.0 + 4.0)
    idle = next(w for w in rep3.to_json()["work"] if w["unit"] == "token")
    assert idle["units"] == 0.0 and idle["j_per_unit"] is None and idle["energy_j"] == pytest.approx(400.0)


def test_config_file_work_entries_and_presets_switch(tmp_path):
    from keck_tui.config import ConfigError, load_config

    cfg = tmp_path / "c.toml"
    cfg.write_text('work_presets = false\n[[work]]\nprocess = "gunicorn"\nurl = "http://127.0.0.1:9100/metrics"\n'
                   'counter = "http_requests_total"\nunit = "request"\n')
    s = load_config(cfg, explicit=True)
    assert s.work_presets is False and len(s.work) == 1 and s.work[0].primary.unit == "request"
    cfg.write_text('[[work]]\nprocess = "x"\nurl = "http://127.0.0.1:9100/metrics"\ncounter = "c"\nunit = "u"\n'
                   'colour = "red"\n')
    with pytest.raises(ConfigError, match="unknown key 'colour'"):
        load_config(cfg, explicit=True)
    cfg.write_text("work_presets = 1\n")
    with pytest.raises(ConfigError, match="work_presets must be true or false"):
        load_config(cfg, explicit=True)


def test_no_inference_server_no_scrape_thread():
    from keck_tui.work.scraper import Scraper

    scraper = Scraper()
    mon = WorkMonitor([], scraper)
    _, s1 = _proc(100, 1, "sshd", "sshd -D", 1.0)
    activity = CpuActivity(SourceStatus("procfs", "ok"), 1.0, processes=(s1,))
    snap = _snap([_proc(100, 1, "sshd", "sshd -D", 1.0)[0]])
    mon.prime(activity)
    mon.kick()
    out = mon.annotate(snap, activity)
    assert out is snap  # nothing to add: the very same snapshot
    assert scraper._loop is None  # no thread was started
    mon.close()


def test_no_work_presets_flag_turns_detection_off(tmp_path):
    from keck_tui.cli import build_parser
    from keck_tui.commands.base import settings_from_args
    from keck_tui.wiring import build_work

    empty = tmp_path / "none.toml"
    empty.write_text("")
    args = build_parser().parse_args(["--config", str(empty), "--no-work-presets", "--once"])
    settings = settings_from_args(args)
    assert settings.work_presets is False and build_work(settings) is None
    on = settings_from_args(build_parser().parse_args(["--config", str(empty), "--once"]))
    monitor = build_work(on)
    assert monitor is not None and monitor.presets is not None
    monitor.close()
