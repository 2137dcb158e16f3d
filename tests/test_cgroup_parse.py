"""parse_cgroup against every real line of ../shared/fixtures/cgroups/real-lines.tsv."""
from __future__ import annotations

import csv
import json
import subprocess
import sys

import pytest

from keck_tui.hierarchy.cgroup import parse_cgroup, unified_path
from tests.conftest import REPO, shared_fixture

CLI = "import sys; from keck_tui.cli import main; sys.exit(main())"
G, B, BE = "Guaranteed", "Burstable", "BestEffort"
# n -> (pod_uid, container_id prefix (12 chars), qos, runtime)
EXPECTED: dict[int, tuple[str | None, str | None, str | None, str | None]] = {
    1: ("6a4ce4a0-ba47-11ea-b2a7-0cc47ac5979e", "17db96a24ae1", B, None),
    2: ("f6adb0af-0855-4bab-b25b-c853f18d0ce2", "35b97177dada", B, None),
    3: ("fd52ef25-a87d-11e9-9423-0800271a638e", "8c046cb0b72c", B, None),
    4: ("3d274242-8ee0-11e9-a8a6-1e68d864ef1a", "3e74d3fd9db4", BE, None),
    5: ("e9b90526-f47d-11e8-b2a5-080027b9f4fb", "15aa6e53-b09", BE, None),
    6: ("a38c12e8-255a-11e9-8cd9-0007cb0b2cc8", "32c562ed81a2", G, None),
    7: ("0d08203e-255a-11e9-8cd9-0007cb0b2cc8", "671a50f5d605", BE, None),
    8: ("9729a196c4723b60ab401eaff722982d", "d166c6190614", B, None),  # static pod: hash UID
    9: ("fc060df5-82a2-4a5e-86c0-40aec54b2a09", "e3e0fc65ca5a", G, None),
    10: ("d0511cd2-29d2-4215-be0f-f77bc0609d99", "f93ee491b8ed", B, "crio"),
    11: ("90d81341-92de-11e7-8cf2-507b9d4141fa", "2227daf62df6", B, "crio"),
    12: ("22949dce-fd8b-11ea-8ede-98f2b32c645c", "b15a5bdedd2e", G, "docker"),
    13: ("2d3da189-6407-48e3-9ab6-78188d75e609", "7b8952daecf4", B, "docker"),
    14: ("f57400dc-94ce-4806-a52e-d2726f448f15", "44f639a16a22", G, "containerd"),
    15: ("97f1ae73-7ad9-11ec-b4a7-9a35488b4fab", "3291bfddf3f3", G, None),
    16: ("b8a21eda-8c00-4101-b28f-134ea0449719", "c6757375573c", G, "containerd"),
    17: ("74298416-16b6-47bb-ae8f-01ee4f91c525", "4a839ac8074c", G, "crio"),
    18: ("9692aa0e-748e-11e8-8dfa-76d458035df6", "f58c1c55e72c", BE, "docker"),
    19: ("9692aa0e-748e-11e8-8dfa-76d458035df6", "abddff03dfd7", BE, "docker"),
    20: ("0043435f-1854-4327-b76b-730f681a781d", "01fd96f7ad29", BE, "containerd"),
    21: ("a3b200c9-db51-40b4-9d2d-53f8fdf80d7f", "286b15051ec4", B, "containerd"),
    22: ("3e61c214bc3ed9ff81e21474dd6cba17", "c74b0f5062f0", B, "containerd"),
    23: ("2c9f8a79-5391-454b-88cb-86190881cb96", "a09343ca9790", B, "crio"),
    24: ("121157b5-c67d-4c3e-9052-cb27bbb711fb", "1cd3449e930b", B, "containerd"),
    25: ("8712f785-1a3e-41ec-a00b-e2dcc77431cb", "73051af27110", BE, "docker"),
    26: ("ea19ff5d-943a-4466-a07e-a71e9e50cc62", "21572039dd83", B, "crio"),
    27: ("207aaad1-659f-4db8-88e0-46e0cdcc3004", "32da98c85220", B, "crio"),  # crio-conmon
    28: ("c8bad552-5c99-4d4f-b71c-c426c0cde014", "d61328552873", BE, "crio"),
    29: ("2cde702b-a0cf-438d-a228-fb164e54434b", "6cfac3ddc07e", BE, "crio"),  # minikube in docker
    30: ("3cae2e45-052c-4b11-80d3-4d7b2d2d3464", "2b1801045111", B, "containerd"),
    31: ("eab5a334-93fe-48a8-b139-9e8079c1f163", "99f3a16ea25b", BE, "containerd"),  # kind
    32: ("8d5b5c5e-497f-477d-bb4f-37defe6c04b2", "a952de73dbb6", B, "containerd"),
    33: ("bdd4097d-6795-404e-9bd8-6a1383386198", "c79788e0da15", BE, None),
    34: ("0ec90011-b5ae-4efc-8a54-d9fc34119605", "6c1a643f9a1a", BE, None),
    35: ("0ec90011-b5ae-4efc-8a54-d9fc34119605", "f5cfbbf0ab83", BE, None),
    36: ("46dac9a538838115821dfd9559149484", "972055640bc6", B, None),
    37: ("c3c1764b-d331-4401-bec0-19ad8cdc8656", "1d783b070199", G, None),
    38: ("1f7ef46a-2bfb-4fd3-ae62-bfd74a3f6b8f", None, B, None),  # pod-level cgroup
    39: (None, None, B, None),  # QoS-level cgroup, no pod
    40: (None, None, None, None),
    41: (None, None, None, None),
    42: (None, None, None, None),
    43: (None, None, None, None),
    44: (None, None, None, None),  # vte-spawn-<uuid>.scope is not a container
    45: (None, None, None, None),
    46: (None, None, None, None),
    47: (None, None, None, None),
    48: (None, None, None, None),
    49: (None, "c055fa05e5c1", None, "crio"),  # conmon outside a pod
    50: (None, "2fa3e04b676d", None, "docker"),
    51: (None, "69e8ded3c33c", None, "containerd"),
}


def _rows() -> list[dict[str, str]]:
    path = shared_fixture("cgroups", "real-lines.tsv")
    with open(path, encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh, delimiter="\t"))


def test_every_real_line_is_covered():
    rows = _rows()
    assert sorted(int(r["n"]) for r in rows) == sorted(EXPECTED)


def test_every_real_line():
    wrong = []
    for row in _rows():
        info = parse_cgroup(row["cgroup_line"])
        got = (info.pod_uid, info.container_id[:12] if info.container_id else None, info.qos, info.runtime)
        if got != EXPECTED[int(row["n"])]:
            wrong.append((row["n"], got, EXPECTED[int(row["n"])]))
    assert wrong == []


def test_full_container_ids_and_conmon_flag():
    info = parse_cgroup("0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod2c9f8a79_5391_454b_88cb_"
                        "86190881cb96.slice/crio-a09343ca97901516c25036e2b954421254f8c68b384b536064e8999f0c4ed18d.scope")
    assert info.container_id == "a09343ca97901516c25036e2b954421254f8c68b384b536064e8999f0c4ed18d"
    assert not info.conmon
    conmon = parse_cgroup("/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod207aaad1_659f_4db8_88e0_"
                          "46e0cdcc3004.slice/crio-conmon-32da98c8522068be05a7510a3eddb09cad6ed2f03286180d0e931d0d0b6224a6.scope")
    assert conmon.conmon


def test_multi_line_v1_file_picks_the_pod_line():
    text = ("12:cpuset:/\n"
            "11:blkio:/kubepods/burstable/podf6adb0af-0855-4bab-b25b-c853f18d0ce2/"
            "35b97177dada20362ab90d90ac63cd54e8a41cf87bea34f270631b6da17f4a93\n"
            "1:name=systemd:/user.slice/user-0.slice/session-14.scope\n")
    info = parse_cgroup(text)
    assert info.pod_uid == "f6adb0af-0855-4bab-b25b-c853f18d0ce2"
    assert info.qos == "Burstable"
    assert unified_path(text) == "/user.slice/user-0.slice/session-14.scope"
    assert unified_path("0::/system.slice/x.service\n") == "/system.slice/x.service"
    hybrid = "1:name=systemd:/system.slice/cron.service\n0::/\n"
    assert unified_path(hybrid) == "/system.slice/cron.service"
    assert unified_path("0::/\n4:memory:/process_api/49c65c5b8efb18cb9902647833ed2136\n") == "/"
    assert unified_path("") == ""


def test_empty_and_garbage():
    assert parse_cgroup("").to_json() == {"pod_uid": None, "container_id": None, "qos": None, "runtime": None}
    assert parse_cgroup("not a cgroup at all\n\x00").pod_uid is None


def test_debug_parse_cgroup_cli_prints_one_object_per_line():
    rows = _rows()
    stdin = "".join(r["cgroup_line"] + "\n" for r in rows)
    proc = subprocess.run([sys.executable, "-c", CLI, "debug", "parse-cgroup"], input=stdin,
                          capture_output=True, text=True, cwd=REPO, timeout=60)
    assert proc.returncode == 0, proc.stderr
    out = [json.loads(line) for line in proc.stdout.splitlines()]
    assert len(out) == len(rows)
    for row, obj in zip(rows, out):
        assert set(obj) == {"pod_uid", "container_id", "qos", "runtime"}
        pod, cid, qos, runtime = EXPECTED[int(row["n"])]
        assert (obj["pod_uid"], obj["container_id"][:12] if obj["container_id"] else None,
                obj["qos"], obj["runtime"]) == (pod, cid, qos, runtime)


@pytest.mark.parametrize("line", ["", "   "])
def test_debug_parse_cgroup_blank_lines(line):
    proc = subprocess.run([sys.executable, "-c", CLI, "debug", "parse-cgroup"], input=line + "\n",
                          capture_output=True, text=True, cwd=REPO, timeout=60)
    assert proc.returncode == 0
    assert json.loads(proc.stdout) == {"pod_uid": None, "container_id": None, "qos": None, "runtime": None}
