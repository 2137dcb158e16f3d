"""Group paths for processes: Kubernetes pods, containers, systemd units.

Contract used by the collector: ``make_grouper(kubelet_config, procfs_root)``
returns a Grouper whose ``group_of(process)`` never blocks.

- A process in a pod: namespace → pod → container (→ process). Ids are stable
  across kubelet outages: namespace id = namespace name, pod id = ``pod-<uid>``,
  container id = the first 12 characters of the container id. Names come from the
  kubelet's ``/pods`` when reachable; without it the namespace level is
  ``unknown.namespace`` (shown as "(unknown namespace)"; a dot cannot occur in a
  real namespace name) and pods/containers are named by UID / short id.
  The pod sandbox (``pause``) is a container named "(sandbox)".
- A process in a plain container (docker, podman, containerd outside Kubernetes):
  its systemd slice (if any) → container.
- Anything else: systemd slice → service/scope, from the cgroup path.
- A virtual machine's processes (QEMU/KVM, KubeVirt, Firecracker, cloud-hypervisor, and any
  process in a libvirt/Proxmox/jailer VM cgroup; see hierarchy/vms.py) get a ``vm`` level just
  above the process: it takes the place of the VM's own systemd scope, and sits below the
  pod/container for KubeVirt. The row carries ``"vm": {"kind", "name", ...}``.
"""
from __future__ import annotations

import os
from typing import Mapping

from keck_tui.hierarchy.cgroup import CgroupInfo, parse_cgroup, unified_path
from keck_tui.hierarchy.kubelet import (KubeletClient, KubeletConfig, KubeletEndpoint, endpoints_from_env,
                                       normalize_url)
from keck_tui.hierarchy.types import GroupLevel, GroupPath, Grouper
from keck_tui.hierarchy.vms import VmIdentity, VmNames, detect_vm, vm_row_id
from keck_tui.model import SourceStatus
from keck_tui.samplers.types import ProcessSample

UNKNOWN_NAMESPACE_ID = "unknown.namespace"
UNKNOWN_NAMESPACE_NAME = "(unknown namespace)"
_CACHE_MAX = 4096


def short_id(container_id: str) -> str:
    return container_id.replace("-", "")[:12]


def systemd_levels(path: str) -> list[GroupLevel]:
    """slice → service/scope from a cgroup path (innermost slice above the first unit)."""
    levels: list[GroupLevel] = []
    for part in (p for p in path.split("/") if p):
        if part.endswith(".slice"):
            levels = [GroupLevel(level="slice", id=part, name=part)]
        elif part.endswith((".service", ".scope")):
            levels.append(GroupLevel(level="service", id=part, name=part))
            break
    return levels


class KubernetesGrouper:
    """Pods, containers and systemd units from ``/proc/<pid>/cgroup``; names from the kubelet."""

    def __init__(self, kubelet: KubeletClient | None = None, procfs_root: str = "/proc") -> None:
        self.kubelet = kubelet
        self._procfs_root = procfs_root
        self._cache: dict[str, CgroupInfo] = {}
        self._vm_cache: dict[tuple[str, str, str], VmIdentity | None] = {}
        self._vm_names = VmNames()
        self._paths: dict[tuple[str, str], GroupPath] = {}

    def status(self) -> SourceStatus | None:
        """The kubelet's status (for doctor), or None when no kubelet is configured."""
        return self.kubelet.status() if self.kubelet else None

    def wait_for_first(self, timeout: float) -> bool:
        """Let the kubelet answer once (one-shot modes: --once, doctor); True when it did."""
        return self.kubelet.wait_for_first(timeout) if self.kubelet else True

    def stop(self) -> None:
        if self.kubelet:
            self.kubelet.stop()

    def _cgroup_text(self, process: ProcessSample) -> str:
        if process.cgroup_line:
            return process.cgroup_line
        if process.cgroup:
            return process.cgroup
        try:
            with open(os.path.join(self._procfs_root, str(process.pid), "cgroup"), encoding="utf-8") as fh:
                return fh.read()
        except OSError:
            return ""

    def info_of(self, text: str) -> CgroupInfo:
        info = self._cache.get(text)
        if info is None:
            if len(self._cache) >= _CACHE_MAX:
                self._cache.clear()
            info = self._cache[text] = parse_cgroup(text)
        return info

    def group_of(self, process: ProcessSample) -> GroupPath:
        text = self._cgroup_text(process)
        levels = self._groups(process, text)
        if process.kernel:
            return levels
        vm = self.vm_of(process, unified_path(text) if text and not process.cgroup else process.cgroup)
        return with_vm_level(levels, vm) if vm is not None else levels

    def vm_of(self, process: ProcessSample, cgroup_path: str) -> VmIdentity | None:
        """The VM a process belongs to (cached by command line and cgroup), or None."""
        key = (process.cmd, process.name, cgroup_path)
        if key in self._vm_cache:
            vm = self._vm_cache[key]
        else:
            if len(self._vm_cache) >= _CACHE_MAX:
                self._vm_cache.clear()
            vm = self._vm_cache[key] = detect_vm(process.cmd, process.name, cgroup_path, process.pid)
        return self._vm_names.resolve(vm) if vm is not None else None

    def _groups(self, process: ProcessSample, text: str) -> GroupPath:
        if not text:
            return ()
        info = self.info_of(text)
        if info.pod_uid:
            return self._pod_path(info, process)
        key = (text, process.cgroup)
        cached = self._paths.get(key)
        if cached is None:  # the same few cgroups every second: worked out once each
            if len(self._paths) >= _CACHE_MAX:
                self._paths.clear()
            cached = self._paths[key] = self._plain_path(info, text, process.cgroup)
        return cached

    def _plain_path(self, info: CgroupInfo, text: str, cgroup: str) -> GroupPath:
        """slice → service, or slice → container, of a process outside any pod."""
        path = cgroup or unified_path(text)
        levels = systemd_levels(path)
        if info.container_id and not info.conmon:
            if levels and levels[-1].level == "service":
                levels.pop()  # docker-<id>.scope becomes the container row
            runtime = info.runtime or "container"
            levels.append(GroupLevel(level="container", id=f"{runtime}-{short_id(info.container_id)}",
                                     name=f"{runtime} {short_id(info.container_id)}",
                                     container_id=info.container_id))
        return tuple(levels)

    def _pod_path(self, info: CgroupInfo, process: ProcessSample) -> GroupPath:
        uid = info.pod_uid or ""
        pods = self.kubelet.pods() if self.kubelet else {}
        pod = pods.get(uid)
        if self.kubelet and pod is None:
            self.kubelet.request_refresh()
        ns = pod.namespace if pod else None
        labels: Mapping[str, str] = pod.labels if pod else {}
        levels = [
            GroupLevel(level="namespace", id=ns or UNKNOWN_NAMESPACE_ID, name=ns or UNKNOWN_NAMESPACE_NAME,
                       namespace=ns),
            GroupLevel(level="pod", id=f"pod-{uid}", name=pod.name if pod else uid, pod_uid=uid,
                       namespace=ns, labels=labels),
        ]
        if info.container_id:
            cid = info.container_id
            if process.name == "pause":
                name = "(sandbox)"
            elif pod and cid in pod.containers:
                name = pod.containers[cid]
            else:
                name = short_id(cid)
                if pod and self.kubelet:
                    self.kubelet.request_refresh()  # a new container of a known pod
            levels.append(GroupLevel(level="container", id=short_id(cid), name=name, pod_uid=uid,
                                     namespace=ns, container_id=cid))
        return tuple(levels)


def with_vm_level(levels: GroupPath, vm: VmIdentity) -> GroupPath:
    """``levels`` with the VM's level added just above the process; the VM replaces a systemd
    scope/service of its own (libvirt's machine-qemu…scope, Proxmox's <vmid>.scope)."""
    out = list(levels)
    if out and out[-1].level == "service":
        out.pop()
    out.append(GroupLevel(level="vm", id=vm_row_id(vm), name=vm.name if not vm.namespace else
                          f"{vm.namespace}/{vm.name}", namespace=vm.namespace, extra={"vm": vm.to_json()}))
    return tuple(out)


def make_grouper(kubelet: KubeletConfig | None = None, procfs_root: str = "/proc",
                 *, env: Mapping[str, str] | None = None) -> Grouper:
    """The grouper for this node: the kubelet at ``kubelet.url``, else auto-detected on a
    Kubernetes node (``KUBERNETES_SERVICE_HOST``), else UIDs only."""
    env = os.environ if env is None else env
    config = kubelet or KubeletConfig()
    if config.url:
        url = normalize_url(config.url)
        https = url.startswith("https:")
        token = config.token_file
        if https and token is None and os.path.exists(os.path.join("/var/run/secrets/kubernetes.io/serviceaccount", "token")):
            token = "/var/run/secrets/kubernetes.io/serviceaccount/token"
        endpoints = [KubeletEndpoint(url, token_file=token if https else None,
                                     ca_file=config.ca_file, verify_tls=not config.insecure)]
    else:
        endpoints = endpoints_from_env(env, config)
    client = KubeletClient(endpoints, refresh_s=config.refresh_s) if endpoints else None
    return KubernetesGrouper(client, procfs_root=procfs_root)
