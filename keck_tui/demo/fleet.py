"""The demo fleet's hardware and workloads: 2 clusters, 5 nodes, namespaces, pods, processes.

Plain data. ``sim.py`` turns it into sampler readings over time.
"""
from __future__ import annotations

from dataclasses import dataclass

from keck_tui.hierarchy.types import GroupLevel, GroupPath

# Load profiles (see sim.load_factor): the shape of a process's CPU use over the day.
DAY = "day"  # web traffic: low at night, peaks mid-afternoon
NIGHT = "night"  # batch jobs: 01:00–05:00
FLAT = "flat"  # daemons
SPIKY = "spiky"  # CI builds: bursts
OFFICE = "office"  # a laptop: working hours, lunch dip, idle at night


@dataclass(frozen=True)
class ProcSpec:
    pid: int
    name: str
    cmd: str
    cores: float  # mean busy cores at full load
    profile: str
    group: GroupPath = ()
    gpu: int | None = None  # GPU index it runs on
    gpu_share: float = 0.0  # SM share at full load
    pss_mb: int = 200
    kernel: bool = False


@dataclass(frozen=True)
class NodeSpec:
    name: str
    cluster: str
    kind: str  # "intel" (RAPL packages + DRAM), "amd" (package only), "apple" (powermetrics)
    cores: int
    sockets: int
    idle_w: float  # CPU package idle watts (all sockets)
    max_w: float  # CPU package watts at full load
    dram_w: float | None  # DRAM watts at idle (None: not measured)
    base_mhz: float
    max_mhz: float
    procs: tuple[ProcSpec, ...]
    gpus: int = 0
    gpu_idle_w: float = 0.0
    gpu_max_w: float = 0.0
    bmc: bool = False  # a Redfish-like wall-power reading


def ns(name: str) -> GroupLevel:
    return GroupLevel(level="namespace", id=name, name=name, namespace=name)


def pod(namespace: str, name: str, uid: str) -> GroupPath:
    return (ns(namespace),
            GroupLevel(level="pod", id=f"pod-{uid}", name=name, pod_uid=uid, namespace=namespace))


def service(name: str) -> GroupPath:
    return (GroupLevel(level="slice", id="system.slice", name="system.slice"),
            GroupLevel(level="service", id=name, name=name))


def _k8s_base(pid0: int, node: str) -> tuple[ProcSpec, ...]:
    """Node services and the DaemonSet pods every Kubernetes node runs (one pod per node)."""
    tag = node.rsplit("-", 2)[-2][:3] + node[-1]  # "eu-cpu-1" → "cpu1": per-node pod names
    return (
        ProcSpec(pid0, "kubelet", "/usr/bin/kubelet --config=/var/lib/kubelet/config.yaml", 0.08, FLAT,
                 service("kubelet.service"), pss_mb=120),
        ProcSpec(pid0 + 1, "containerd", "/usr/bin/containerd", 0.05, FLAT, service("containerd.service"),
                 pss_mb=80),
        ProcSpec(pid0 + 2, "kube-proxy", "/usr/local/bin/kube-proxy --config=/var/lib/kube-proxy/config.conf",
                 0.02, FLAT, pod("kube-system", f"kube-proxy-{tag}", f"6b1f0c2e-{tag}-01"), pss_mb=40),
        ProcSpec(pid0 + 3, "keck-top", "keck-top serve --listen 0.0.0.0:9464", 0.02, FLAT,
                 pod("monitoring", f"keck-top-agent-{tag}", f"6b1f0c2e-{tag}-02"), pss_mb=60),
        ProcSpec(pid0 + 4, "kworker/u16:2", "[kworker/u16:2]", 0.03, FLAT, kernel=True, pss_mb=0),
    )


def demo_nodes() -> tuple[NodeSpec, ...]:
    web = "web"
    return (
        NodeSpec(
            name="eu-cpu-1", cluster="prod-eu", kind="intel", cores=16, sockets=2, idle_w=38.0, max_w=230.0,
            dram_w=9.0, base_mhz=2100.0, max_mhz=3500.0,
            procs=_k8s_base(800, "eu-cpu-1") + (
                ProcSpec(1101, "nginx", "nginx: worker process", 1.2, DAY, pod(web, "frontend-7d9f-abcde", "a1-01")),
                ProcSpec(1102, "nginx", "nginx: worker process", 1.0, DAY, pod(web, "frontend-7d9f-abcde", "a1-01")),
                ProcSpec(1201, "gunicorn", "gunicorn api.wsgi -w 3", 2.5, DAY, pod(web, "api-5c4b-fghij", "a1-02"),
                         pss_mb=450),
                ProcSpec(1202, "gunicorn", "gunicorn api.wsgi -w 3", 2.2, DAY, pod(web, "api-5c4b-fghij", "a1-02"),
                         pss_mb=430),
                ProcSpec(1301, "java", "java -Xmx24g org.apache.spark.executor.CoarseGrainedExecutorBackend", 9.0,
                         NIGHT, pod("batch", "etl-nightly-28312", "a1-03"), pss_mb=9000),
                ProcSpec(1401, "prometheus", "/bin/prometheus --storage.tsdb.path=/prometheus", 0.6, FLAT,
                         pod("monitoring", "prometheus-0", "a1-04"), pss_mb=2500),
                ProcSpec(1402, "postgres", "postgres: writer process", 0.8, DAY,
                         pod(web, "postgres-0", "a1-05"), pss_mb=3000),
            )),
        NodeSpec(
            name="eu-gpu-1", cluster="prod-eu", kind="intel", cores=16, sockets=1, idle_w=30.0, max_w=190.0,
            dram_w=7.0, base_mhz=2400.0, max_mhz=3800.0, gpus=2, gpu_idle_w=72.0, gpu_max_w=680.0, bmc=True,
            procs=_k8s_base(900, "eu-gpu-1") + (
                ProcSpec(2101, "python3", "python3 -m vllm.entrypoints.openai.api_server --model llama-3-8b", 1.5,
                         DAY, pod("ml-serving", "llm-0", "b2-01"), gpu=0, gpu_share=0.85, pss_mb=6000),
                ProcSpec(2201, "python3", "python3 -m vllm.entrypoints.openai.api_server --model llama-3-8b", 1.3,
                         DAY, pod("ml-serving", "llm-1", "b2-02"), gpu=1, gpu_share=0.6, pss_mb=6000),
                ProcSpec(2301, "torchrun", "torchrun --nproc-per-node 1 train.py --epochs 3", 3.0, NIGHT,
                         pod("ml-training", "finetune-job-4kq8", "b2-03"), gpu=1, gpu_share=0.95, pss_mb=12000),
                ProcSpec(2401, "dcgm-exporter", "/usr/bin/dcgm-exporter", 0.05, FLAT,
                         pod("monitoring", "dcgm-exporter-m2x7", "b2-04"), pss_mb=90),
            )),
        NodeSpec(
            name="eu-amd-1", cluster="prod-eu", kind="amd", cores=8, sockets=1, idle_w=22.0, max_w=120.0,
            dram_w=None, base_mhz=2900.0, max_mhz=4400.0,
            procs=_k8s_base(700, "eu-amd-1") + (
                ProcSpec(3101, "gunicorn", "gunicorn api.wsgi -w 2", 1.8, DAY, pod(web, "api-5c4b-klmno", "c3-01"),
                         pss_mb=440),
                ProcSpec(3201, "redis-server", "redis-server *:6379", 0.4, DAY, pod(web, "redis-0", "c3-02"),
                         pss_mb=1200),
                ProcSpec(3301, "python3", "python3 etl/aggregate.py --date yesterday", 4.0, NIGHT,
                         pod("batch", "etl-aggregate-28312", "c3-03"), pss_mb=2500),
            )),
        NodeSpec(
            name="lab-ci-1", cluster="lab", kind="intel", cores=8, sockets=1, idle_w=12.0, max_w=95.0,
            dram_w=3.0, base_mhz=3000.0, max_mhz=4700.0,
            procs=_k8s_base(600, "lab-ci-1") + (
                ProcSpec(4101, "cc1plus", "/usr/lib/gcc/x86_64-linux-gnu/12/cc1plus -O2 src/engine.cc", 3.0,
                         SPIKY, pod("ci", "runner-build-7x2c", "d4-01"), pss_mb=700),
                ProcSpec(4102, "ld", "/usr/bin/ld -o build/engine", 0.8, SPIKY,
                         pod("ci", "runner-build-7x2c", "d4-01"), pss_mb=900),
                ProcSpec(4201, "jupyter-lab", "python3 -m jupyterlab --ip 0.0.0.0", 0.5, OFFICE,
                         pod("dev", "jupyter-alice", "d4-02"), pss_mb=800),
            )),
        NodeSpec(
            name="mbp-m3", cluster="lab", kind="apple", cores=12, sockets=1, idle_w=0.6, max_w=28.0,
            dram_w=None, base_mhz=2750.0, max_mhz=4050.0,
            procs=(
                ProcSpec(501, "WindowServer", "/System/Library/PrivateFrameworks/SkyLight.framework/WindowServer",
                         0.25, OFFICE, pss_mb=400),
                ProcSpec(612, "Safari", "/Applications/Safari.app/Contents/MacOS/Safari", 0.6, OFFICE, pss_mb=900),
                ProcSpec(640, "Code Helper (Renderer)", "/Applications/Visual Studio Code.app/Code Helper (Renderer)",
                         0.5, OFFICE, pss_mb=700),
                ProcSpec(701, "python3", "python3 analysis.py", 2.5, SPIKY, pss_mb=1500),
                ProcSpec(100, "kernel_task", "[kernel_task]", 0.15, FLAT, kernel=True, pss_mb=0),
            )),
    )
