"""Prometheus source: Kepler (0.10+ and 0.7), Scaphandre and keck-top metrics → fleet tree;
and a real Prometheus scraping two real agents."""
from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from dataclasses import replace

import aiohttp
import pytest

from tests.agent_procs import REPO, AgentProc, free_port
from tests.conftest import shared_fixture
from tests.fakes.snapshots import fake_snapshot
from keck_tui.common.http import HttpError
from keck_tui.sources.prometheus import PrometheusSource, parse_vector
from keck_tui.sources.promdata import LabelConfig, Sample, build_clusters
from tests.promscrape import rates_between, samples_from_text

KEPLER_010 = """\
# HELP kepler_node_cpu_watts Power consumption of cpu at node level in watts
# TYPE kepler_node_cpu_watts gauge
kepler_node_cpu_watts{node_name="w1",path="/sys/class/powercap/intel-rapl:0",zone="package"} 60
kepler_node_cpu_watts{node_name="w1",path="/sys/class/powercap/intel-rapl:1",zone="package"} 40
kepler_node_cpu_watts{node_name="w1",path="/sys/class/powercap/intel-rapl:0:0",zone="core"} 45
kepler_node_cpu_watts{node_name="w1",path="/sys/class/powercap/intel-rapl:0:1",zone="uncore"} 5
kepler_node_cpu_watts{node_name="w1",path="/sys/class/powercap/intel-rapl:0:2",zone="dram"} 12
kepler_node_cpu_watts{node_name="w2",path="/sys/class/powercap/intel-rapl:0",zone="package"} 30
kepler_node_cpu_watts{node_name="w2",path="/sys/class/powercap/intel-rapl:0:2",zone="dram"} 6
kepler_node_cpu_watts{node_name="w2",path="/sys/class/powercap/intel-rapl-psys",zone="psys"} 80
# HELP kepler_pod_cpu_watts Power consumption of cpu at pod level in watts
# TYPE kepler_pod_cpu_watts gauge
kepler_pod_cpu_watts{node_name="w1",pod_id="u1",pod_name="api-0",pod_namespace="shop",state="running",zone="package"} 20
kepler_pod_cpu_watts{node_name="w1",pod_id="u1",pod_name="api-0",pod_namespace="shop",state="running",zone="core"} 15
kepler_pod_cpu_watts{node_name="w1",pod_id="u1",pod_name="api-0",pod_namespace="shop",state="running",zone="dram"} 3
kepler_pod_cpu_watts{node_name="w1",pod_id="u2",pod_name="db-0",pod_namespace="shop",state="running",zone="package"} 10
kepler_pod_cpu_watts{node_name="w1",pod_id="u3",pod_name="old-0",pod_namespace="shop",state="terminated",zone="package"} 99
kepler_pod_cpu_watts{node_name="w2",pod_id="u4",pod_name="job-0",pod_namespace="batch",state="running",zone="psys"} 25
kepler_pod_cpu_watts{node_name="w2",pod_id="u4",pod_name="job-0",pod_namespace="batch",state="running",zone="package"} 18
"""

SCAPHANDRE = """\
# HELP scaph_host_power_microwatts Power measurement on the whole host, in microwatts
# TYPE scaph_host_power_microwatts gauge
scaph_host_power_microwatts{instance="s1"} 75000000
# HELP scaph_socket_power_microwatts Power measurement relative to a CPU socket, in microwatts
# TYPE scaph_socket_power_microwatts gauge
scaph_socket_power_microwatts{instance="s1",socket_id="0"} 40000000
scaph_socket_power_microwatts{instance="s1",socket_id="1"} 20000000
# HELP scaph_domain_power_microwatts Power measurement relative to a RAPL Domain, in microwatts
# TYPE scaph_domain_power_microwatts gauge
scaph_domain_power_microwatts{instance="s1",domain_name="core",socket_id="0"} 30000000
scaph_domain_power_microwatts{instance="s1",domain_name="uncore",socket_id="0"} 2000000
scaph_domain_power_microwatts{instance="s1",domain_name="dram",socket_id="0"} 8000000
# HELP scaph_process_power_consumption_microwatts Power consumption due to the process, measured on at the topology level, in microwatts
# TYPE scaph_process_power_consumption_microwatts gauge
scaph_process_power_consumption_microwatts{instance="s1",pid="10",exe="nginx",cmdline="nginx -g daemon"} 12500000
scaph_process_power_consumption_microwatts{instance="s1",pid="11",exe="postgres",cmdline="postgres"} 7500000
"""


def _node(clusters, cluster, node):
    c = next(c for c in clusters if c.id == cluster)
    return next(n for n in c.children if n.id == node)


def test_kepler_010_zones_not_double_counted() -> None:
    clusters = build_clusters(samples_from_text(KEPLER_010))
    w1 = _node(clusters, "default", "w1")
    # package (2 sockets) + dram; core and uncore are inside package
    assert w1.watts == 112.0
    assert w1.components == {"cpu": 100.0, "dram": 12.0}
    assert w1.sources == ("prometheus:kepler",)
    shop = w1.find(("w1", "shop"))
    assert shop.watts == 33.0  # api-0: package 20 + dram 3 (core not added); db-0 10; terminated pod left out
    assert [p.id for p in shop.children] == ["api-0", "db-0"]
    assert w1.find(("w1", "(residual)")).watts == 79.0
    w2 = _node(clusters, "default", "w2")
    assert w2.watts == 80.0  # psys is the platform: it contains package and dram
    assert "psys" in w2.note
    assert w2.find(("w2", "batch", "job-0")).watts == 25.0
    assert clusters[0].watts == 192.0


def test_kepler_07_fixture_through_rate() -> None:
    text = shared_fixture("kepler", "metrics-0.7.11.txt").read_text()
    before = samples_from_text(text)
    after = [replace(s, value=s.value + 10 * _rate_of(s)) if s.name.endswith("_total") else s for s in before]
    samples = rates_between(before, after, 10.0)
    clusters = build_clusters(samples, LabelConfig(default_node="minikube"))
    node = _node(clusters, "default", "minikube")
    # every counter grows at 1 J/s per 1000 J already counted: platform 38868.072 J → 38.868072 W
    assert node.watts == pytest.approx(38.868072)
    assert node.components == pytest.approx({"cpu": 29.680587, "dram": 4.785072, "other": 4.402413})
    assert node.estimated is True  # source="trained_power_model"
    system = node.find(("minikube", "system", "system_processes"))
    assert system.watts == pytest.approx(6.997104)  # dynamic mode only
    pods = [r for p, r in node.walk() if r.level == "pod"]
    assert sum(p.watts for p in pods) == pytest.approx(39.0601, abs=1e-3)
    assert node.find(("minikube", "(residual)")).watts == 0.0
    assert "more than the node" in node.note
    etcd = node.find(("minikube", "kube-system", "etcd-minikube", "etcd"))
    assert etcd.level == "container" and etcd.watts == pytest.approx(_dyn("etcd", text) / 1000)


def _rate_of(s: Sample) -> float:
    return s.value / 1000.0


def _dyn(container: str, text: str) -> float:
    for line in text.splitlines():
        if line.startswith("kepler_container_joules_total{") and f'container_name="{container}"' in line \
                and 'mode="dynamic"' in line:
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(container)


def test_old_kepler_without_platform_adds_package_dram_other_not_core() -> None:
    text = """\
kepler_node_package_joules_total{instance="n1",mode="dynamic",package="0"} 100
kepler_node_core_joules_total{instance="n1",mode="dynamic",package="0"} 80
kepler_node_uncore_joules_total{instance="n1",mode="dynamic",package="0"} 10
kepler_node_dram_joules_total{instance="n1",mode="dynamic",package="0"} 20
kepler_node_other_joules_total{instance="n1",mode="dynamic",package="socket0"} 5
"""
    before = samples_from_text(text)
    after = [replace(s, value=s.value * 2) for s in before]
    node = _node(build_clusters(rates_between(before, after, 5.0)), "default", "n1")
    assert node.watts == pytest.approx((100 + 20 + 5) / 5)


def test_scaphandre_microwatts() -> None:
    node = _node(build_clusters(samples_from_text(SCAPHANDRE)), "default", "s1")
    assert node.watts == 75.0
    assert node.components == {"cpu": 60.0, "dram": 8.0}  # core/uncore are inside the socket
    assert [(c.id, c.name, c.watts, c.pid) for c in node.children] == [
        ("pid-10", "nginx", 12.5, 10), ("pid-11", "postgres", 7.5, 11), ("(residual)", "(residual)", 55.0, None)]


def test_scaphandre_real_excerpt_quirks() -> None:
    samples = samples_from_text(shared_fixture("scaphandre", "metrics-0.1-issue44-excerpt.txt").read_text())
    assert len(samples) == 4  # HELP/TYPE repeated per sample and names that differ are tolerated
    node = _node(build_clusters(samples, LabelConfig(default_node="laptop")), "default", "laptop")
    assert node.watts == 0.0
    assert sorted(c.name for c in node.children if c.level == "process") == [
        "gsd-color", "gsd-power", "gsd-printer", "ibus-engine-sim"]


def test_configurable_cluster_and_node_labels() -> None:
    samples = [Sample("keck_node_power_watts", {"k8s": "prod", "host": "a", "node": "ignored"}, 10.0),
               Sample("keck_node_power_watts", {"k8s": "prod", "host": "b"}, 20.0),
               Sample("keck_node_power_watts", {"host": "c"}, 5.0)]
    clusters = build_clusters(samples, LabelConfig(cluster_label="k8s", node_label="host", default_cluster="other"))
    assert [(c.id, [n.id for n in c.children], c.watts) for c in clusters] == [
        ("other", ["c"], 5.0), ("prod", ["a", "b"], 30.0)]


def test_keck_metrics_tree_and_priority_over_kepler() -> None:
    samples = [Sample("keck_node_power_watts", {"node": "n"}, 50.0),
               Sample("keck_node_power_lower_bound_watts", {"node": "n"}, 45.0),
               Sample("keck_node_power_upper_bound_watts", {"node": "n"}, 55.0),
               Sample("keck_pod_power_watts", {"node": "n", "namespace": "a", "pod": "p"}, 20.0),
               Sample("keck_container_power_watts", {"node": "n", "namespace": "a", "pod": "p", "container": "c1"}, 15.0),
               Sample("keck_container_power_watts", {"node": "n", "namespace": "a", "pod": "p", "container": "c2"}, 5.0),
               Sample("keck_process_power_watts", {"node": "n", "pid": "1", "comm": "x"}, 3.0),
               Sample("kepler_node_cpu_watts", {"node": "n", "zone": "package"}, 999.0)]
    node = _node(build_clusters(samples), "default", "n")
    assert (node.watts, node.watts_lo, node.watts_hi) == (50.0, 45.0, 55.0)
    assert node.sources == ("prometheus:keck",)
    assert [c.watts for c in node.find(("n", "a", "p")).children] == [15.0, 5.0]
    # processes are left out when pods exist (they may be inside those pods)
    assert [c.id for c in node.children] == ["a", "(residual)"]
    assert node.find(("n", "(residual)")).watts == 30.0
    # bounds are exported per node only: workloads carry the node's relative bound (±10 %)
    pod = node.find(("n", "a", "p"))
    assert (pod.watts_lo, pod.watts_hi) == (pytest.approx(18.0), pytest.approx(22.0))
    c1 = node.find(("n", "a", "p", "c1"))
    assert (c1.watts_lo, c1.watts_hi) == (pytest.approx(13.5), pytest.approx(16.5))


def test_parse_vector_and_errors() -> None:
    doc = {"status": "success", "data": {"resultType": "vector", "result": [
        {"metric": {"__name__": "keck_node_power_watts", "node": "a"}, "value": [1, "12.5"]},
        {"metric": {"node": "b"}, "value": [1, "NaN"]},
        {"metric": {"node": "c"}, "value": "garbage"}]}}
    assert parse_vector(doc) == [Sample("keck_node_power_watts", {"node": "a"}, 12.5)]
    assert parse_vector({"status": "success", "data": {"resultType": "vector", "result": [
        {"metric": {"node": "b"}, "value": [1, "2"]}]}}, "x_total") == [Sample("x_total", {"node": "b"}, 2.0)]
    with pytest.raises(HttpError, match="bad_data"):
        parse_vector({"status": "error", "error": "bad_data"})
    with pytest.raises(HttpError, match="matrix"):
        parse_vector({"status": "success", "data": {"resultType": "matrix", "result": []}})


async def test_unreachable_prometheus_is_a_stale_cluster() -> None:
    src = PrometheusSource(f"http://127.0.0.1:{free_port()}", timeout=0.5)
    async with aiohttp.ClientSession() as session:
        await src.poll(session)
    rows = src.cluster_rows()
    assert rows[0].stale and rows[0].error.startswith("cannot connect") and rows[0].watts == 0.0
    assert src.statuses()[0].status == "error"


def _get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=2) as r:
        return json.loads(r.read())


@pytest.mark.slow
async def test_real_prometheus_scraping_two_real_agents(tmp_path) -> None:
    prom = shutil.which("prometheus")
    if prom is None:
        pytest.skip("prometheus not installed (Debian package 'prometheus')")
    a = AgentProc(tmp_path, fake_snapshot("alpha", 42.5, namespaces=2, pods=3), interval=0.5)
    b = AgentProc(tmp_path, None, interval=0.5, extra=["--host-name", "beta", "--no-gpu", "--probes", "procfs"])
    port = free_port()
    cfg = tmp_path / "prometheus.yml"
    cfg.write_text(f"""
global:
  scrape_interval: 1s
  scrape_timeout: 900ms
scrape_configs:
  - job_name: keck
    static_configs:
      - targets: ['127.0.0.1:{a.port}']
        labels: {{cluster: east}}
      - targets: ['127.0.0.1:{b.port}']
        labels: {{cluster: west}}
""")
    proc = None
    try:
        a.start()
        b.start()
        proc = subprocess.Popen([prom, f"--config.file={cfg}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                                 f"--web.listen-address=127.0.0.1:{port}", "--log.level=error"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        url = f"http://127.0.0.1:{port}"
        q = urllib.parse.quote("count(keck_node_power_watts)")
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                res = _get_json(f"{url}/api/v1/query?query={q}")["data"]["result"]
                if res and float(res[0]["value"][1]) == 2:
                    break
            except OSError:
                pass
            await asyncio.sleep(0.2)
        else:
            pytest.fail("Prometheus did not scrape both agents in 20 s: " + proc.stderr.read1().decode())
        src = PrometheusSource(url)
        async with aiohttp.ClientSession() as session:
            await src.poll(session)
        assert src.error is None
        clusters = {c.id: c for c in src.cluster_rows()}
        assert sorted(clusters) == ["east", "west"]
        alpha = clusters["east"].children[0]
        assert alpha.id == "alpha" and alpha.watts == 42.5
        assert alpha.find(("alpha", "ns1", "pod1-2")).watts == pytest.approx(42.5 * 0.8 / 2 / 3)
        beta = clusters["west"].children[0]
        assert beta.id == "beta"
        # the agent's own numbers: the value Prometheus holds is one of the agent's last snapshots
        since = time.time() - 5
        hist = _get_json(f"{b.url}/api/v1/history?path=beta&since={since}")["points"]
        assert beta.watts in [p["watts"] for p in hist]
        fleet_total = sum(c.watts for c in clusters.values())
        own_total = 42.5 + beta.watts
        assert fleet_total == pytest.approx(own_total)
        # the same through the CLI: keck-top --prometheus URL --once --json
        try:
            from keck_tui.cli import build_parser
            build_parser()
        except Exception as exc:  # noqa: BLE001
            pytest.skip(f"CLI not loadable yet: {exc}")
        out = subprocess.run([sys.executable, "-m", "keck_tui.cli", "--prometheus", url, "--once", "--json",
                              "--config", str(tmp_path / "none.toml")],
                             cwd=REPO, capture_output=True, text=True, timeout=30)
        assert out.returncode == 0, out.stderr
        doc = json.loads(out.stdout)
        assert doc["root"]["level"] == "fleet"
        assert [c["id"] for c in doc["root"]["children"]] == ["east", "west"]
        assert doc["root"]["children"][0]["watts"] == 42.5
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(10)
            proc.stderr.close()
        a.stop()
        b.stop()


def test_rate_window_is_checked_up_front() -> None:
    """QA: --rate-window xyz was accepted and every poll then failed with Prometheus's parse error."""
    from keck_tui.common.errors import SourceConfigError
    from keck_tui.sources.prometheus import PrometheusConfig, prometheus_source

    for bad in ("xyz", "5", "1m ", "m", "1h1x"):
        with pytest.raises(SourceConfigError, match="--rate-window must be a Prometheus duration"):
            prometheus_source(PrometheusConfig("http://p:9090", rate_window=bad))
    for good in ("1m", "30s", "1h30m", "500ms", "2d"):
        assert prometheus_source(PrometheusConfig("http://p:9090", rate_window=good)).rate_window == good
    # one URL check (common.urls) and one message style for every URL
    with pytest.raises(SourceConfigError, match=r"^--prometheus: not an http\(s\) URL: 'p:9090' \(it must start with http"):
        prometheus_source(PrometheusConfig("p:9090"))


def test_prometheus_rows_accumulate_energy_between_good_polls() -> None:
    """QA: rows built from PromQL gauges kept joules = 0."""
    samples = [Sample("keck_node_power_watts", {"node": "n1", "cluster": "c"}, 50.0)]
    now = [10.0]
    src = PrometheusSource("http://p:9090", monotonic=lambda: now[0])

    async def fake_samples(session):  # noqa: ANN001
        return samples

    src.samples = fake_samples  # type: ignore[method-assign]
    for step in (0.0, 1.5, 2.5):
        now[0] += step
        asyncio.run(src.poll(None))  # type: ignore[arg-type]
    (c,) = src.cluster_rows()
    assert c.find(("c", "n1")).joules == pytest.approx(200.0) and c.joules == pytest.approx(200.0)


def test_node_that_drops_out_of_prometheus_is_a_stale_row_for_a_while() -> None:
    """QA: when an agent died its series went stale and the node silently vanished from the
    Prometheus tree (the fleet total shrank without a word); agents' dead nodes are stale rows."""
    from keck_tui.sources.prometheus import VANISHED_KEEP_S

    both = [Sample("keck_node_power_watts", {"node": "n1", "cluster": "c"}, 50.0),
            Sample("keck_node_power_watts", {"node": "n2", "cluster": "c"}, 30.0),
            Sample("keck_node_power_watts", {"node": "n3", "cluster": "lab"}, 5.0)]
    current = [both]
    now = [10.0]
    src = PrometheusSource("http://p:9090", monotonic=lambda: now[0])

    async def fake_samples(session):  # noqa: ANN001
        return current[0]

    src.samples = fake_samples  # type: ignore[method-assign]
    asyncio.run(src.poll(None))  # type: ignore[arg-type]
    current[0] = both[:1]  # n2 and the whole lab cluster are gone
    now[0] += 4.0
    asyncio.run(src.poll(None))  # type: ignore[arg-type]
    c, lab = src.cluster_rows()
    n1, n2 = c.children
    assert (n1.id, n1.stale, n2.id, n2.stale, n2.age_s, n2.watts) == ("n1", None, "n2", True, 4.0, 30.0)
    assert "no longer in Prometheus" in n2.error and c.watts == 80.0
    assert lab.id == "lab" and lab.children[0].stale and lab.watts == 5.0
    now[0] += VANISHED_KEEP_S + 1
    asyncio.run(src.poll(None))  # type: ignore[arg-type]
    (c,) = src.cluster_rows()
    assert [n.id for n in c.children] == ["n1"] and c.watts == 50.0
