"""deploy/: the manifests parse, hold the hardening they claim, and call real keck-top flags."""
from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from keck_tui.cli import build_parser

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"
K8S = DEPLOY / "kubernetes"
UNIT = DEPLOY / "systemd" / "keck-top.service"
EBPF = DEPLOY / "systemd" / "keck-top.service.d" / "ebpf.conf"


def docs(name: str) -> list[dict]:
    return [d for d in yaml.safe_load_all((K8S / name).read_text()) if d]


def by_kind(kind: str) -> dict:
    found = [d for f in sorted(K8S.glob("*.yaml")) for d in docs(f.name) if d.get("kind") == kind]
    assert found, kind
    return found[0]


def test_every_manifest_parses_with_metadata() -> None:
    files = sorted(K8S.glob("*.yaml"))
    assert {f.name for f in files} >= {"namespace.yaml", "rbac.yaml", "daemonset.yaml", "servicemonitor.yaml",
                                        "kustomization.yaml"}
    for f in files:
        for d in docs(f.name):
            assert d["apiVersion"] and d["kind"], f
            if d["kind"] != "Kustomization":
                assert d["metadata"]["name"].startswith("keck-top"), f
                assert d["metadata"]["labels"]["app.kubernetes.io/name"] == "keck-top", f
    kust = docs("kustomization.yaml")[0]
    assert all((K8S / r).exists() for r in kust["resources"])
    assert "rbac-legacy-nodes-proxy.yaml" not in kust["resources"]  # opt-in only


def container() -> dict:
    ds = by_kind("DaemonSet")
    (c,) = ds["spec"]["template"]["spec"]["containers"]
    return c


def test_daemonset_pod_spec() -> None:
    ds = by_kind("DaemonSet")
    assert ds["apiVersion"] == "apps/v1" and ds["metadata"]["namespace"] == "keck-top"
    spec = ds["spec"]
    assert spec["selector"]["matchLabels"].items() <= spec["template"]["metadata"]["labels"].items()
    pod = spec["template"]["spec"]
    assert pod["hostPID"] is True  # sees every process
    assert pod["hostNetwork"] is False and pod["hostIPC"] is False
    assert pod["serviceAccountName"] == "keck-top"
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    assert {"operator": "Exists"} in pod["tolerations"]
    vols = {v["name"]: v for v in pod["volumes"]}
    assert vols["host-sys"]["hostPath"]["path"] == "/sys"
    assert vols["token"]["secret"]["secretName"] == "keck-top-token"
    assert set(vols) == {"host-sys", "token", "tmp"}  # no other host paths


def test_container_security_context() -> None:
    sc = container()["securityContext"]
    assert sc["privileged"] is False
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["capabilities"] == {"drop": ["ALL"]}  # and nothing added
    assert sc["runAsUser"] == 0 and sc["runAsNonRoot"] is False  # root uid, no capabilities (see comment)
    assert sc["seccompProfile"]["type"] == "RuntimeDefault"
    mounts = {m["name"]: m for m in container()["volumeMounts"]}
    assert mounts["host-sys"]["readOnly"] is True and mounts["token"]["readOnly"] is True


def test_container_probes_ports_resources() -> None:
    c = container()
    port = c["ports"][0]
    assert port == {"name": "http-metrics", "containerPort": 9464, "protocol": "TCP"}
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        get = c[probe]["httpGet"]
        assert get["path"] == "/healthz" and get["port"] == "http-metrics"  # /healthz needs no token
    res = c["resources"]
    assert set(res) == {"requests", "limits"} and res["limits"]["cpu"] and res["limits"]["memory"]
    env = {e["name"]: e["valueFrom"]["fieldRef"]["fieldPath"] for e in c["env"]}
    assert env == {"NODE_NAME": "spec.nodeName", "KECK_NODE_IP": "status.hostIP"}


def test_container_args_are_real_flags() -> None:
    """The DaemonSet's args parse with keck-top's own CLI parser."""
    args = build_parser().parse_args([a.replace("$(NODE_NAME)", "node-1") for a in container()["args"]])
    assert args.command == "serve" and args.listen == "0.0.0.0:9464"
    assert args.token_file == "/etc/keck-top/token/token" and args.sysfs_root == "/host/sys"
    assert args.probes == "procfs" and args.host_name == "node-1"
    mounts = {m["mountPath"] for m in container()["volumeMounts"]}
    assert str(Path(args.token_file).parent) in mounts and args.sysfs_root in mounts


def test_service_and_servicemonitor_match() -> None:
    svc = by_kind("Service")
    sm = by_kind("ServiceMonitor")
    assert svc["spec"]["clusterIP"] == "None"
    assert svc["spec"]["ports"][0]["name"] == "http-metrics"
    assert sm["apiVersion"] == "monitoring.coreos.com/v1"
    assert sm["spec"]["selector"]["matchLabels"].items() <= svc["metadata"]["labels"].items()
    (ep,) = sm["spec"]["endpoints"]
    assert ep["port"] == "http-metrics" and ep["path"] == "/metrics"
    assert ep["authorization"]["type"] == "Bearer"
    assert ep["authorization"]["credentials"] == {"name": "keck-top-token", "key": "token"}


def test_rbac_least_privilege() -> None:
    role = docs("rbac.yaml")[1]
    assert role["kind"] == "ClusterRole"
    assert role["rules"] == [{"apiGroups": [""], "resources": ["nodes/pods"], "verbs": ["get"]}]
    binding = docs("rbac.yaml")[2]
    assert binding["roleRef"]["name"] == "keck-top"
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "keck-top", "namespace": "keck-top"}]
    legacy = docs("rbac-legacy-nodes-proxy.yaml")[0]
    assert legacy["rules"][0]["resources"] == ["nodes/proxy"] and legacy["rules"][0]["verbs"] == ["get"]
    assert "exec" in (K8S / "rbac-legacy-nodes-proxy.yaml").read_text()  # the warning is there


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl not installed")
def test_kustomize_builds() -> None:
    out = subprocess.run(["kubectl", "kustomize", str(K8S)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    kinds = [d["kind"] for d in yaml.safe_load_all(out.stdout) if d]
    assert sorted(kinds) == sorted(["Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding",
                                    "DaemonSet", "Service", "ServiceMonitor"])


def unit_settings(path: Path) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";", "[")):
            continue
        key, _, value = line.partition("=")
        out.setdefault(key, []).append(value)
    return out


def test_systemd_unit_hardening() -> None:
    s = unit_settings(UNIT)
    assert s["User"] == ["keck-top"] and s["NoNewPrivileges"] == ["yes"]
    assert s["CapabilityBoundingSet"] == [""] and s["AmbientCapabilities"] == [""]
    for key, value in {"ProtectSystem": "strict", "ProtectHome": "yes", "PrivateTmp": "yes",
                       "ProtectKernelTunables": "yes", "ProtectKernelModules": "yes",
                       "ProtectControlGroups": "yes", "RestrictSUIDSGID": "yes",
                       "MemoryDenyWriteExecute": "yes", "LockPersonality": "yes",
                       "SystemCallArchitectures": "native"}.items():
        assert s[key] == [value], key
    assert s["LoadCredential"] == ["token:/etc/keck-top/token"]
    pre = s["ExecStartPre"][0]
    assert pre.startswith("+") and "energy_uj" in pre and "chmod g+r" in pre


def test_systemd_execstart_flags_are_real() -> None:
    for path in (UNIT, EBPF):
        start = [v for v in unit_settings(path)["ExecStart"] if v][-1]
        argv = shlex.split(start.replace("${CREDENTIALS_DIRECTORY}", "/run/credentials/keck-top.service"))
        assert argv[0] == "/usr/local/bin/keck-top"
        args = build_parser().parse_args(argv[1:])
        assert args.command == "serve" and args.token_file.endswith("/token")
    assert "--probes ebpf" in unit_settings(EBPF)["ExecStart"][-1]


def test_ebpf_dropin_capabilities() -> None:
    s = unit_settings(EBPF)
    assert s["CapabilityBoundingSet"] == ["CAP_BPF CAP_PERFMON"]
    assert s["AmbientCapabilities"] == ["CAP_BPF CAP_PERFMON"]
    assert "CAP_SYS_ADMIN" not in " ".join(s["CapabilityBoundingSet"])
    assert s["LimitMEMLOCK"] == ["infinity"] and s["ExecStart"][0] == ""  # reset, then replace


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_systemd_analyze_verify_and_security(tmp_path: Path) -> None:
    text = UNIT.read_text().replace("/usr/local/bin/keck-top", shutil.which("true") or "/bin/true")
    unit = tmp_path / "keck-top.service"
    unit.write_text(text)
    verify = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60)
    problems = [l for l in verify.stderr.splitlines() if "keck-top.service" in l]
    assert verify.returncode == 0 and not problems, verify.stderr
    sec = subprocess.run(["systemd-analyze", "security", "--offline=true", str(unit)],
                         capture_output=True, text=True, timeout=60)
    if sec.returncode != 0 and "offline" in sec.stderr:
        pytest.skip("this systemd-analyze has no --offline")
    m = re.search(r"Overall exposure level for keck-top.service: ([0-9.]+)", sec.stdout)
    assert m, sec.stdout[-500:]
    assert float(m.group(1)) <= 3.0  # "OK"; root with no hardening scores 9.6
