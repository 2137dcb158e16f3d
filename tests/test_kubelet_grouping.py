"""Kubernetes grouping: pods by UID without a kubelet, names from a fake kubelet's PodList."""
from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest
from aiohttp import web

from keck_tui.hierarchy.grouping import UNKNOWN_NAMESPACE_ID, KubernetesGrouper, make_grouper
from keck_tui.hierarchy.kubelet import (KubeletClient, KubeletConfig, KubeletEndpoint, endpoints_from_env,
                                        normalize_url, parse_pod_list)
from keck_tui.samplers.types import ProcessSample
from tests.fakes.http_server import serve_in_thread

PODLIST = json.loads((Path(__file__).parent / "fakes" / "kubelet_pods.json").read_text())
PROXY_LINE = ("13:memory:/system.slice/containerd.service/kubepods-besteffort-pod0043435f_1854_4327_b76b_"
              "730f681a781d.slice:cri-containerd:01fd96f7ad292b02a8317cde4ecb8c7ef3cc06ffdd113f13410e0837eb2b2a20")
KIND_LINE = ("0::/system.slice/docker-fd9d0ea06257a9780827cbc7fd92e3812a54fca26d63e191b73610d5d48b9cbd.scope/"
             "kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-besteffort.slice/kubelet-kubepods-besteffort-"
             "podeab5a334_93fe_48a8_b139_9e8079c1f163.slice/cri-containerd-99f3a16ea25b7724cb56a4f0c0df1113ad9474"
             "fbf5545bead97fd5c7f61c13f4.scope")
STATIC_LINE = ("0::/kubelet/kubepods/burstable/pod46dac9a538838115821dfd9559149484/"
               "972055640bc63f5c4d894145950cf92cdfb524dcf049fbe6aee47bf23facf297")


def proc(line: str, pid: int = 100, name: str = "worker", cgroup: str = "") -> ProcessSample:
    return ProcessSample(pid=pid, name=name, cmd=name, cpu_s=0.1, cgroup=cgroup, cgroup_line=line)


def test_parse_pod_list_real_format():
    pods = parse_pod_list(PODLIST)
    assert set(pods) == {"0043435f-1854-4327-b76b-730f681a781d", "3cae2e45-052c-4b11-80d3-4d7b2d2d3464",
                         "46dac9a538838115821dfd9559149484", "eab5a334-93fe-48a8-b139-9e8079c1f163"}
    proxy = pods["0043435f-1854-4327-b76b-730f681a781d"]
    assert (proxy.name, proxy.namespace, proxy.qos) == ("kube-proxy-8kq2x", "kube-system", "BestEffort")
    assert proxy.containers == {"01fd96f7ad292b02a8317cde4ecb8c7ef3cc06ffdd113f13410e0837eb2b2a20": "kube-proxy"}
    assert proxy.labels["k8s-app"] == "kube-proxy"
    train = pods["eab5a334-93fe-48a8-b139-9e8079c1f163"]
    assert sorted(train.containers.values()) == ["fetch-weights", "trainer"]  # init containers too


@pytest.mark.parametrize("doc", [[], {"items": "x"}, {"kind": "Status"}])
def test_parse_pod_list_rejects_non_podlists(doc):
    with pytest.raises(ValueError):
        parse_pod_list(doc)


def test_parse_pod_list_skips_malformed_items():
    pods = parse_pod_list({"items": [1, {"metadata": "x"}, {"metadata": {"name": "a"}},
                                     {"metadata": {"uid": "u", "name": "n"}, "status": None}]})
    assert list(pods) == ["u"] and pods["u"].namespace == "default"


def test_without_kubelet_pods_show_by_uid():
    g = make_grouper(KubeletConfig(), env={})
    path = g.group_of(proc(PROXY_LINE))
    assert [(lv.level, lv.id, lv.name) for lv in path] == [
        ("namespace", UNKNOWN_NAMESPACE_ID, "(unknown namespace)"),
        ("pod", "pod-0043435f-1854-4327-b76b-730f681a781d", "0043435f-1854-4327-b76b-730f681a781d"),
        ("container", "01fd96f7ad29", "01fd96f7ad29"),
    ]
    assert path[1].pod_uid == "0043435f-1854-4327-b76b-730f681a781d"
    assert path[2].container_id == "01fd96f7ad292b02a8317cde4ecb8c7ef3cc06ffdd113f13410e0837eb2b2a20"
    assert all("/" not in lv.id for lv in path)


def test_non_pod_processes_group_by_systemd_unit_and_docker_container():
    g = make_grouper(KubeletConfig(), env={})
    svc = g.group_of(proc("0::/system.slice/kubelet.service", cgroup="/system.slice/kubelet.service"))
    assert [(lv.level, lv.id) for lv in svc] == [("slice", "system.slice"), ("service", "kubelet.service")]
    docker = g.group_of(proc("13:hugetlb:/system.slice/docker-2fa3e04b676df750842faf017052dd37ea0cc5bc7259a3487a17"
                             "18c7fe100c94.scope"))
    assert [(lv.level, lv.id, lv.name) for lv in docker] == [
        ("slice", "system.slice", "system.slice"), ("container", "docker-2fa3e04b676d", "docker 2fa3e04b676d")]
    assert docker[1].container_id.startswith("2fa3e04b676d")
    user = g.group_of(proc("1:name=systemd:/user.slice/user-0.slice/session-14.scope"))
    assert [lv.id for lv in user] == ["user-0.slice", "session-14.scope"]
    assert g.group_of(proc("0::/")) == ()


def test_grouper_reads_procfs_when_the_sample_has_no_cgroup(tmp_path):
    (tmp_path / "42").mkdir()
    (tmp_path / "42" / "cgroup").write_text(STATIC_LINE + "\n")
    g = make_grouper(KubeletConfig(), str(tmp_path), env={})
    path = g.group_of(ProcessSample(pid=42, name="etcd", cmd="etcd", cpu_s=0.0))
    assert path[1].id == "pod-46dac9a538838115821dfd9559149484"
    assert g.group_of(ProcessSample(pid=43, name="gone", cmd="gone", cpu_s=0.0)) == ()


def _kubelet_app(calls: list[str], *, status: int = 200, body: bytes | None = None, token: str | None = None):
    async def pods(request: web.Request) -> web.Response:
        calls.append(request.headers.get("Authorization", ""))
        if token is not None and request.headers.get("Authorization") != f"Bearer {token}":
            return web.Response(status=401, text="Unauthorized")
        return web.Response(status=status, body=body if body is not None else json.dumps(PODLIST).encode(),
                            content_type="application/json")
    app = web.Application()
    app.router.add_get("/pods", pods)
    return app


def _wait_for(cond, timeout: float = 5.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return
        time.sleep(0.02)
    raise AssertionError("condition not met in time")


def test_names_from_a_fake_kubelet_in_the_background():
    calls: list[str] = []
    with serve_in_thread(_kubelet_app(calls)) as base:
        g = make_grouper(KubeletConfig(url=base), env={})
        assert isinstance(g, KubernetesGrouper)
        first = g.group_of(proc(KIND_LINE))  # never blocks: UIDs until the first answer
        assert first[0].id in (UNKNOWN_NAMESPACE_ID, "ml")
        _wait_for(lambda: g.group_of(proc(KIND_LINE))[0].id == "ml")
        path = g.group_of(proc(KIND_LINE))
        assert [(lv.level, lv.id, lv.name) for lv in path] == [
            ("namespace", "ml", "ml"),
            ("pod", "pod-eab5a334-93fe-48a8-b139-9e8079c1f163", "train-7f9c4"),
            ("container", "99f3a16ea25b", "trainer"),
        ]
        assert path[1].labels == {"app": "trainer"} and path[2].namespace == "ml"
        static = g.group_of(proc(STATIC_LINE, name="etcd"))
        assert [lv.name for lv in static] == ["kube-system", "etcd-control-plane", "etcd"]
        pause = g.group_of(proc(PROXY_LINE, name="pause"))
        assert pause[2].name == "(sandbox)"
        assert g.status().status == "ok" and "4 pods" in g.status().detail
        g.stop()


async def test_fetch_once_with_token_and_401(tmp_path):
    calls: list[str] = []
    token = tmp_path / "token"
    token.write_text("s3cret\n")
    with serve_in_thread(_kubelet_app(calls, token="s3cret")) as base:
        good = KubeletClient([KubeletEndpoint(base + "/pods", token_file=str(token))])
        st = await good.fetch_once()
        assert st.status == "ok" and len(good._pods) == 4
        assert calls[-1] == "Bearer s3cret"
        bad = KubeletClient([KubeletEndpoint(base + "/pods")])
        st = await bad.fetch_once()
        assert st.status == "unavailable" and "HTTP 401" in st.detail and "fix" in st.extra


async def test_fetch_once_bad_json_and_unreachable_keep_old_pods():
    calls: list[str] = []
    with serve_in_thread(_kubelet_app(calls, body=b"{not json")) as base:
        client = KubeletClient([KubeletEndpoint(base + "/pods")])
        st = await client.fetch_once()
        assert st.status == "unavailable" and "bad PodList" in st.detail
    client = KubeletClient([KubeletEndpoint("http://127.0.0.1:9/pods")], timeout=2.0)
    st = await client.fetch_once()
    assert st.status == "unavailable" and "127.0.0.1:9" in st.detail


async def test_falls_back_to_second_endpoint_and_remembers_it():
    calls: list[str] = []
    with serve_in_thread(_kubelet_app(calls)) as base:
        client = KubeletClient([KubeletEndpoint("http://127.0.0.1:9/pods"), KubeletEndpoint(base + "/pods")],
                               timeout=2.0)
        assert (await client.fetch_once()).status == "ok"
        assert client._working.url == base + "/pods"


def test_endpoints_from_env(tmp_path):
    assert endpoints_from_env({}) == []
    eps = endpoints_from_env({"KUBERNETES_SERVICE_HOST": "10.96.0.1", "NODE_IP": "10.0.0.11"},
                             KubeletConfig(insecure=True), sa_dir=str(tmp_path))
    assert [e.url for e in eps] == ["https://10.0.0.11:10250/pods", "http://10.0.0.11:10255/pods"]
    assert eps[0].token_file == str(tmp_path / "token") and eps[0].verify_tls is False
    assert eps[1].token_file is None
    assert endpoints_from_env({"KUBERNETES_SERVICE_HOST": "x", "HOST_IP": "fd00::1"})[0].url == \
        "https://[fd00::1]:10250/pods"
    assert normalize_url("http://h:10255/") == "http://h:10255/pods"
    assert normalize_url("http://h:10255/pods") == "http://h:10255/pods"


def test_make_grouper_autodetects_on_a_node():
    g = make_grouper(KubeletConfig(), env={"KUBERNETES_SERVICE_HOST": "10.96.0.1"})
    assert g.kubelet is not None
    assert [e.url for e in g.kubelet._endpoints][0] == "https://127.0.0.1:10250/pods"
    assert make_grouper(KubeletConfig(), env={}).kubelet is None


async def test_authenticated_port_with_ca_file_and_token(tmp_path):
    trustme = pytest.importorskip("trustme")
    import ssl
    ca = trustme.CA()
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(ctx)
    ca_file = tmp_path / "ca.crt"
    ca.cert_pem.write_to_path(str(ca_file))
    token = tmp_path / "token"
    token.write_text("sa-token")
    calls: list[str] = []
    with serve_in_thread(_kubelet_app(calls, token="sa-token"), ssl_context=ctx) as base:
        ok = KubeletClient([KubeletEndpoint(base + "/pods", token_file=str(token), ca_file=str(ca_file))])
        assert (await ok.fetch_once()).status == "ok" and len(ok._pods) == 4
        untrusted = KubeletClient([KubeletEndpoint(base + "/pods", token_file=str(token))])
        st = await untrusted.fetch_once()
        assert st.status == "unavailable" and "TLS verification failed" in st.detail and "insecure" in st.detail
        insecure = KubeletClient([KubeletEndpoint(base + "/pods", token_file=str(token), verify_tls=False)])
        assert (await insecure.fetch_once()).status == "ok"
    missing = KubeletClient([KubeletEndpoint("https://127.0.0.1:9/pods", token_file=str(tmp_path / "nope"))])
    st = await missing.fetch_once()
    assert "cannot read token" in st.detail


def test_wait_for_first_polls_without_pods_and_stop_cancels_a_slow_fetch():
    # --once / doctor on a node: the kubelet is asked even before a pod process is seen.
    calls: list[str] = []
    with serve_in_thread(_kubelet_app(calls)) as base:
        g = make_grouper(KubeletConfig(url=base), env={})
        assert g.wait_for_first(10.0)
        assert g.status().status == "ok" and "4 pods" in g.status().detail
        g.stop()

    async def hang(request: web.Request) -> web.Response:
        await asyncio.sleep(30)
        return web.Response(status=500)

    slow = web.Application()
    slow.router.add_get("/pods", hang)
    with serve_in_thread(slow) as base:
        client = KubeletClient([KubeletEndpoint(base + "/pods")], timeout=20.0)
        assert not client.wait_for_first(0.3)  # the fetch is in flight
        t0 = time.monotonic()
        client.stop()
        took = time.monotonic() - t0
        assert took < 1.0, f"stop() took {took:.1f} s"
        assert not client._poller.loop.thread.is_alive()  # type: ignore[union-attr]


async def test_401_advice_names_the_rbac_the_deploy_docs_grant():
    # deploy/kubernetes/rbac.yaml grants nodes/pods (1.36+); the advice named only nodes/proxy.
    calls: list[str] = []
    with serve_in_thread(_kubelet_app(calls, token="s3cret")) as base:
        st = await KubeletClient([KubeletEndpoint(base + "/pods")]).fetch_once()
    assert "nodes/pods" in st.detail and "nodes/pods" in st.extra["fix"]


def test_a_poll_that_raises_stays_visible_and_the_poller_retries(monkeypatch):
    """A failure fetch_once does not catch (here a RecursionError from the parser) used to end the
    kubelet thread silently: the status said 'ok' with the last pod list for ever."""
    import keck_tui.hierarchy.kubelet as kubelet

    calls: list[str] = []
    real = kubelet.parse_pod_list
    failing = {"on": False}

    def parse(doc):
        if failing["on"]:
            raise RecursionError("maximum recursion depth exceeded")
        return real(doc)

    monkeypatch.setattr(kubelet, "parse_pod_list", parse)
    with serve_in_thread(_kubelet_app(calls)) as base:
        client = KubeletClient([KubeletEndpoint(base + "/pods")], refresh_s=0.1, min_gap_s=0.0)
        assert client.wait_for_first(10.0) and client.status().status == "ok"
        failing["on"] = True
        _wait_for(lambda: client.status().status == "error")
        assert "RecursionError" in client.status().detail and len(client.pods()) == 4  # the last list is kept
        failing["on"] = False
        _wait_for(lambda: client.status().status == "ok")  # and it recovers
        assert client._poller.loop.thread.is_alive()  # type: ignore[union-attr]
        client.stop()
