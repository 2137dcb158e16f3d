"""End to end with the attribution engine: pods/containers from cgroup lines and a fake kubelet,
GPU watts from the NVML sampler (fake pynvml), node → namespace → pod → container → process
with every level's children summing to it."""
from __future__ import annotations

import math

import pytest

from keck_tui.attribution.engine import AttributionConfig, AttributionInput, attribute
from keck_tui.clock import FakeClock
from keck_tui.hierarchy.grouping import KubernetesGrouper
from keck_tui.hierarchy.kubelet import parse_pod_list
from keck_tui.model import SourceStatus
from keck_tui.samplers.nvml import open_nvml_sampler
from keck_tui.samplers.types import DOMAIN_PACKAGE, CoreSample, CpuActivity, PowerDomain, PowerReading, ProcessSample
from tests.fakes.fake_nvml import FakeGpu, FakeNvml
from tests.test_kubelet_grouping import KIND_LINE, PODLIST, PROXY_LINE, STATIC_LINE

T0 = 1_700_000_000_000_000


class _Kubelet:
    """Stands in for KubeletClient with a fixed pod list (its HTTP side is tested elsewhere)."""

    def __init__(self) -> None:
        self._pods = parse_pod_list(PODLIST)

    def pods(self):
        return self._pods

    def request_refresh(self) -> None:
        pass


def test_pod_tree_conserves_watts_and_carries_gpu_watts():
    procs = [
        ProcessSample(pid=10, name="trainer", cmd="python train.py", cpu_s=0.6, cgroup_line=KIND_LINE),
        ProcessSample(pid=11, name="kube-proxy", cmd="kube-proxy", cpu_s=0.1, cgroup_line=PROXY_LINE),
        ProcessSample(pid=12, name="etcd", cmd="etcd", cpu_s=0.2, cgroup_line=STATIC_LINE),
        ProcessSample(pid=13, name="sshd", cmd="sshd", cpu_s=0.1, cgroup="/system.slice/ssh.service",
                      cgroup_line="0::/system.slice/ssh.service"),
    ]
    activity = CpuActivity(SourceStatus("procfs", "ok"), 1.0, tuple(procs),
                           (CoreSample(0, busy_s=0.5, total_s=1.0), CoreSample(1, busy_s=0.5, total_s=1.0)))
    power = (PowerReading(SourceStatus("rapl", "ok"),
                          (PowerDomain("package-0", DOMAIN_PACKAGE, 60.0, 1.0, 0.02, joules=60.0, socket=0),)),)
    gpu = FakeGpu(energy_mj=0, processes={10: 1 << 30})
    clock = FakeClock()
    sampler = open_nvml_sampler(clock, nvml=FakeNvml([gpu]))
    sampler.sample()
    gpu.add_samples(10, T0, 6, 95)
    clock.advance(1.0)
    gpu.energy_mj += 400_000
    gpus = (sampler.sample(),)
    grouper = KubernetesGrouper(_Kubelet())  # type: ignore[arg-type]
    groups = {p.pid: grouper.group_of(p) for p in procs}
    out = attribute(AttributionInput("node-1", 1.0, activity, power, gpus, groups=groups),
                    AttributionConfig(idle="none"))
    root = out.root

    def find(level: str, rid: str):
        return next(r for _, r in root.walk() if r.level == level and r.id == rid)

    ns = find("namespace", "ml")
    pod = find("pod", "pod-eab5a334-93fe-48a8-b139-9e8079c1f163")
    ctr = next(c for c in pod.children if c.level == "container")
    proc = next(c for c in ctr.children if c.level == "process")
    assert (pod.name, ctr.name, ctr.id, proc.pid) == ("train-7f9c4", "trainer", "99f3a16ea25b", 10)
    assert proc.gpu_watts == pytest.approx(400.0)  # the GPU's whole power: it is the only process on it
    assert pod.pod_uid == "eab5a334-93fe-48a8-b139-9e8079c1f163" and ctr.container_id.startswith("99f3a16ea25b")
    # 60 W of CPU split by CPU time (0.6/0.1/0.2/0.1 s of 1.0 s) plus the GPU's 400 W under the trainer
    assert (root.watts, ns.watts, pod.watts, find("namespace", "kube-system").watts) == (
        pytest.approx(460.0), pytest.approx(436.0), pytest.approx(436.0), pytest.approx(18.0))
    for row in (root, ns, pod, ctr, find("namespace", "kube-system")):
        assert math.fsum(c.watts for c in row.children) == pytest.approx(row.watts, abs=1e-6), row.id
    assert {c.name for c in find("namespace", "kube-system").children} == {"kube-proxy-8kq2x", "etcd-control-plane"}
    assert find("service", "ssh.service").children[0].pid == 13
