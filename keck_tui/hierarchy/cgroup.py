"""Parse ``/proc/<pid>/cgroup`` into pod UID, container ID, QoS class and runtime.

Handles cgroup v1 (``N:controllers:/path``) and v2 (``0::/path``) lines, bare
paths, and whole multi-line files; the systemd cgroup driver
(``kubepods-burstable-pod<uid with _>.slice/cri-containerd-<id>.scope``, also the
v1 ``<slice>:cri-containerd:<id>`` form) and the cgroupfs driver
(``/kubepods/burstable/pod<uid>/<id>``); containerd, CRI-O (``crio-``,
``crio-conmon-``), docker and cri-dockerd (``docker-``), podman (``libpod-``);
kind/minikube nodes nested inside a docker container (the innermost pod wins).
Pure functions, no I/O.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

#: QoS classes spelled as in a pod's ``status.qosClass``.
QOS_GUARANTEED = "Guaranteed"
QOS_BURSTABLE = "Burstable"
QOS_BESTEFFORT = "BestEffort"

_QOS_WORDS = {"burstable": QOS_BURSTABLE, "besteffort": QOS_BESTEFFORT}

# A container id: 64 hex chars (docker, containerd, CRI-O), or a UUID (some
# runtimes / Fargate-style ids).
_ID = r"(?:[0-9a-f]{64}|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})"
_ID_RE = re.compile(rf"^{_ID}$")
# Pod UIDs: dashed UUID, systemd-escaped UUID (_), or a 32-hex static-pod hash.
_UID = r"[0-9a-f]{8}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{12}|[0-9a-f]{32}"
# systemd driver: ...kubepods[-qos]-pod<uid>.slice (prefix may be kubelet-kubepods)
_SYSTEMD_POD_RE = re.compile(rf"^(?:[a-z]+-)?kubepods(?:-(burstable|besteffort))?-pod({_UID})\.slice$")
# cgroupfs driver: pod<uid> as its own component
_CGROUPFS_POD_RE = re.compile(rf"^pod({_UID})$")
# Runtime prefixes of a systemd scope (or of the v1 "slice:prefix:id" form).
_RUNTIME_PREFIXES = (
    ("cri-containerd", "containerd"),
    ("crio-conmon", "crio"),
    ("crio", "crio"),
    ("docker", "docker"),
    ("libpod-conmon", "podman"),
    ("libpod", "podman"),
    ("containerd", "containerd"),
)
_SCOPE_RE = re.compile(rf"^([a-z-]+?)-({_ID})(?:\.scope)?$")
_V1_SYSTEMD_CONTAINER_RE = re.compile(rf"^.*\.slice:([a-z-]+):({_ID})$")


@dataclass(frozen=True)
class CgroupInfo:
    """What a cgroup path says about the container around a process."""

    pod_uid: str | None = None  # dashed (systemd's '_' turned back into '-')
    container_id: str | None = None  # full id as the runtime prints it
    qos: str | None = None  # Guaranteed | Burstable | BestEffort
    runtime: str | None = None  # containerd | crio | docker | podman (None: not in the path)
    conmon: bool = False  # CRI-O/podman's monitor process of that container, not the container
    path: str = ""  # the cgroup path the answer came from

    def to_json(self) -> dict[str, str | None]:
        return {"pod_uid": self.pod_uid, "container_id": self.container_id,
                "qos": self.qos, "runtime": self.runtime}


def cgroup_path_of(line: str) -> str:
    """The path of one ``/proc/<pid>/cgroup`` line (``N:ctrl:/path``), or the text itself."""
    line = line.strip()
    m = re.match(r"^\d+:[^:]*:(.*)$", line)
    return m.group(1) if m else line


def _runtime_of(prefix: str) -> tuple[str | None, bool]:
    for known, runtime in _RUNTIME_PREFIXES:
        if prefix == known:
            return runtime, known.endswith("-conmon")
    return None, False


def _dash_uid(uid: str) -> str:
    return uid.replace("_", "-")


def parse_cgroup_path(path: str) -> CgroupInfo:
    """Parse one cgroup path. Non-pod paths give the container (if any) only."""
    parts = [p for p in path.strip().split("/") if p]
    # A node inside a container (kind, minikube) shows the outer container's
    # path first: the innermost kubepods part describes this process.
    start = 0
    for i, part in enumerate(parts):
        if part == "kubepods" or part.startswith(("kubepods", "kubelet-kubepods")) or \
                _SYSTEMD_POD_RE.match(part.split(":", 1)[0]):
            start = i
            break
    else:
        start = len(parts)
    pod_uid: str | None = None
    qos: str | None = None
    container_id: str | None = None
    runtime: str | None = None
    conmon = False
    in_kubepods = start < len(parts)
    for part in parts[start:]:
        head = part.split(":", 1)[0]
        m = _SYSTEMD_POD_RE.match(head)
        if m:
            pod_uid = _dash_uid(m.group(2))
            qos = _QOS_WORDS.get(m.group(1) or "", QOS_GUARANTEED)
            v1 = _V1_SYSTEMD_CONTAINER_RE.match(part)
            if v1:  # "kubepods-...-pod<uid>.slice:cri-containerd:<id>"
                runtime, conmon = _runtime_of(v1.group(1))
                container_id = v1.group(2)
                break
            continue
        if part.startswith(("kubepods-", "kubelet-kubepods-")) and part.endswith(".slice"):
            word = part[:-len(".slice")].rsplit("-", 1)[-1]
            qos = _QOS_WORDS.get(word, qos)
            continue
        if part in ("kubepods", "kubepods.slice", "kubelet.slice", "kubelet-kubepods.slice", "kubelet"):
            continue
        if part in ("burstable", "besteffort") and pod_uid is None:
            qos = _QOS_WORDS[part]
            continue
        m = _CGROUPFS_POD_RE.match(part)
        if m:
            pod_uid = _dash_uid(m.group(1))
            qos = qos or QOS_GUARANTEED
            continue
        if pod_uid is not None:
            cid, rt, cm = _container_of(part)
            if cid:
                container_id, runtime, conmon = cid, rt, cm
            break  # anything below the container (e.g. "/kube-proxy", "/container") is inside it
    if pod_uid is None:
        if not in_kubepods:
            # Not a pod: a plain container (docker, podman, containerd) anywhere in the path,
            # innermost first.
            for part in reversed(parts):
                cid, rt, cm = _container_of(part)
                if cid and (rt or _parent_is_runtime(parts, part)):
                    return CgroupInfo(container_id=cid, runtime=rt, conmon=cm, path=path)
            return CgroupInfo(path=path)
        return CgroupInfo(qos=qos, path=path)
    return CgroupInfo(pod_uid=pod_uid, container_id=container_id, qos=qos, runtime=runtime,
                      conmon=conmon, path=path)


def _parent_is_runtime(parts: list[str], part: str) -> bool:
    """A bare id is a container only under a runtime's folder (``/docker/<id>``)."""
    i = parts.index(part)
    return i > 0 and parts[i - 1] in ("docker", "lxc", "libpod_parent", "default", "containerd")


def _container_of(part: str) -> tuple[str | None, str | None, bool]:
    """(container id, runtime, conmon) of one path component, or Nones."""
    if _ID_RE.match(part):
        return part, None, False
    m = _SCOPE_RE.match(part)
    if m:
        runtime, conmon = _runtime_of(m.group(1))
        if runtime:
            return m.group(2), runtime, conmon
    return None, None, False


def _better(a: CgroupInfo, b: CgroupInfo) -> bool:
    """Is ``a`` more informative than ``b``?"""
    def score(i: CgroupInfo) -> tuple[int, int, int, int]:
        return (i.pod_uid is not None, i.container_id is not None, i.runtime is not None, i.qos is not None)
    return score(a) > score(b)


def parse_cgroup(text: str) -> CgroupInfo:
    """Parse one line, one path, or a whole ``/proc/<pid>/cgroup`` file.

    For several lines (cgroup v1) the most informative answer wins: a pod beats a
    bare container, which beats nothing; ties keep the v2 ``0::`` line, then the
    first line.
    """
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if not lines:
        return CgroupInfo()
    if len(lines) == 1:
        return parse_cgroup_path(cgroup_path_of(lines[0]))
    # v2 line first so that it wins ties.
    lines.sort(key=lambda ln: not ln.startswith("0::"))
    best = parse_cgroup_path(cgroup_path_of(lines[0]))
    for line in lines[1:]:
        info = parse_cgroup_path(cgroup_path_of(line))
        if _better(info, best):
            best = info
    return best


def unified_path(text: str) -> str:
    """The v2 path of a ``/proc/<pid>/cgroup`` file, else (or when the v2 path is just "/",
    as on hybrid hosts) the name=systemd path, else the first line's path."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    v2 = next((ln[3:] for ln in lines if ln.startswith("0::")), None)
    if v2 is not None and v2 != "/":
        return v2
    systemd = next((cgroup_path_of(ln) for ln in lines if ":name=systemd:" in ln), None)
    if systemd is not None:
        return systemd
    if v2 is not None:
        return v2
    return cgroup_path_of(lines[0]) if lines else ""
