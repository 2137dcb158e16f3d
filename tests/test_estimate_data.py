"""Estimates from data: CPU model → class/TDP, the curve, the bound, DRAM per GB; fake /proc and /sys trees."""
from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest

from conftest import shared_fixture
from keck_tui.estimate.classes import class_from_cpuid, class_from_model_name
from keck_tui.estimate.cpuinfo import parse_cpuinfo_identity
from keck_tui.estimate.data import load_estimate_data, parse_estimate_data
from keck_tui.estimate.profile import PlatformFacts, choose_cpu_profile, memory_estimate
from keck_tui.samplers.platform import read_platform_facts

DATA = load_estimate_data()

# Real model strings (tests/../shared/fixtures/cpus and public /proc/cpuinfo samples) →
# (TDP entry expected, TDP W) and the class expected. None: not in that table / no class.
EXPECTED = {
    "Intel(R) Xeon(R) Platinum 8259CL CPU @ 2.50GHz": (("Intel Xeon Platinum 8259CL", 210.0), "Cascade Lake"),
    "Intel(R) Xeon(R) Platinum 8272CL CPU @ 2.60GHz": (("Intel Xeon Platinum 8272CL", 195.0), "Cascade Lake"),
    "Intel(R) Xeon(R) Platinum 8370C CPU @ 2.80GHz": (("Intel Xeon Platinum 8370C", 205.0), "Ice Lake"),
    "Intel(R) Xeon(R) Platinum 8360Y CPU @ 2.40GHz": (("Intel Xeon Platinum 8360Y", 250.0), "Ice Lake"),
    "Intel(R) Xeon(R) Platinum 8481C CPU @ 2.70GHz": (None, "Sapphire Rapids"),
    "Intel(R) Xeon(R) CPU E5-2680 v3 @ 2.50GHz": (("Intel Xeon E5-2680 v3", 120.0), "Haswell"),
    "Intel(R) Xeon(R) Gold 5120 CPU @ 2.20GHz": (("Intel Xeon Gold 5120", 105.0), "Skylake"),
    "Intel(R) Xeon(R) CPU           E5620  @ 2.40GHz": (("Intel Xeon E5620", 80.0), None),
    "Intel(R) Xeon(R) CPU           X7550  @ 2.00GHz": (("Intel Xeon X7550", 130.0), None),
    "Intel(R) Core(TM) i7-6700 CPU @ 3.40GHz": (("Intel Core i7-6700", 65.0), "Skylake"),
    "Intel(R) Core(TM) i7-8705G CPU @ 3.10GHz": (("Intel Core i7-8705G", 65.0), "Coffee Lake"),
    "Intel(R) Core(TM) i5-3317U CPU @ 1.70GHz": (("Intel Core i5-3317U", 17.0), "Ivy Bridge"),
    "11th Gen Intel(R) Core(TM) i7-1165G7 @ 2.80GHz": (("Intel Core i7-1165G7", 28.0), None),
    "Intel(R) Core(TM) i7 CPU         870  @ 2.93GHz": (("Intel Core i7-870", 95.0), None),
    "Intel(R) Pentium(R) CPU G640 @ 2.80GHz": (("Intel Pentium G640", 65.0), None),
    "AMD EPYC 7451 24-Core Processor": (("AMD EPYC 7451", 180.0), "EPYC 1st Gen"),
    "AMD EPYC 7453 28-Core Processor": (("AMD EPYC 7453", 225.0), "EPYC 3rd Gen"),
    "AMD EPYC 7763 64-Core Processor": (("AMD EPYC 7763", 280.0), "EPYC 3rd Gen"),
    "AMD EPYC 74F3 24-Core Processor": (("AMD EPYC 74F3", 240.0), "EPYC 3rd Gen"),
    "AMD EPYC 8434P 48-Core Processor": (("AMD EPYC 8434P", 200.0), "EPYC 4th Gen"),
    "AMD EPYC 9354 32-Core Processor": (("AMD EPYC 9354", 280.0), "EPYC 4th Gen"),
    "AMD EPYC 9645 96-Core Processor": (("AMD EPYC 9645", 320.0), "EPYC 5th Gen"),
    "AMD Ryzen 7 2700X Eight-Core Processor": (("AMD Ryzen 7 2700X", 105.0), None),
    "AMD Opteron(tm) Processor 6328": (("AMD Opteron 6328", 115.0), None),
    # Masked / QEMU model names: no TDP; the class where the name says it.
    "Intel(R) Xeon(R) Processor": (None, None),
    "Intel(R) Xeon(R) CPU @ 2.20GHz": (None, None),
    "AMD EPYC-Rome Processor": (None, "EPYC 2nd Gen"),
    "Intel Xeon E312xx (Sandy Bridge)": (None, "Sandy Bridge"),
    "Intel Xeon Processor (Cascadelake)": (None, "Cascade Lake"),
    "Intel Xeon Processor (Skylake, IBRS)": (None, "Skylake"),
    "Intel Core Processor (Broadwell, IBRS)": (None, "Broadwell"),
    "QEMU Virtual CPU version 2.5+": (None, None),
    "Common KVM processor": (None, None),
    "Neoverse-N1": (None, "Graviton2"),
    "Neoverse-V2": (None, "Graviton4"),
    # More public /proc/cpuinfo model names (cloud instance docs, bug reports)
    "Intel(R) Xeon(R) Platinum 8175M CPU @ 2.50GHz": (("Intel Xeon Platinum 8175M", 240.0), "Skylake"),
    "Intel(R) Xeon(R) Platinum 8375C CPU @ 2.90GHz": (("Intel Xeon Platinum 8375C", 300.0), "Ice Lake"),
    "Intel(R) Xeon(R) Platinum 8488C": (None, "Sapphire Rapids"),
    "Intel(R) Xeon(R) CPU E5-2676 v3 @ 2.40GHz": (None, "Haswell"),
    "Intel(R) Xeon(R) CPU E5-2686 v4 @ 2.30GHz": (("Intel Xeon E5-2686 v4", 145.0), "Broadwell"),
    "Intel(R) Xeon(R) CPU E5-2670 0 @ 2.60GHz": (("Intel Xeon E5-2670", 115.0), "Sandy Bridge"),
    "Intel(R) Xeon(R) CPU E5-2650 v2 @ 2.60GHz": (("Intel Xeon E5-2650 v2", 95.0), "Ivy Bridge"),
    "Intel(R) Xeon(R) Gold 6248R CPU @ 3.00GHz": (("Intel Xeon Gold 6248R", 205.0), "Cascade Lake"),
    "Intel(R) Xeon(R) Gold 6338 CPU @ 2.00GHz": (("Intel Xeon Gold 6338", 205.0), "Ice Lake"),
    "Intel(R) Xeon(R) Platinum 8592+": (("Intel Xeon Platinum 8592+", 350.0), "Emerald Rapids"),
    "Intel(R) Xeon(R) 6787P": (("Intel Xeon 6787P", 350.0), "Granite Rapids"),
    "Intel(R) Xeon(R) E-2288G CPU @ 3.70GHz": (("Intel Xeon E-2288G", 95.0), "Coffee Lake"),
    "Intel(R) Xeon(R) CPU E3-1240 v5 @ 3.50GHz": (("Intel Xeon E3-1240 v5", 80.0), "Skylake"),
    "AMD EPYC 7R13 Processor": (("AMD EPYC 7R13", 225.0), "EPYC 3rd Gen"),
    "AMD EPYC 7571": (None, "EPYC 1st Gen"),
    "AMD EPYC 7B12": (("AMD EPYC 7B12", 240.0), "EPYC 2nd Gen"),
    "AMD EPYC 9R14 96-Core Processor": (None, "EPYC 4th Gen"),
    "AMD EPYC 7742 64-Core Processor": (("AMD EPYC 7742", 225.0), "EPYC 2nd Gen"),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_model_name_lookup(name: str) -> None:
    want_tdp, want_class = EXPECTED[name]
    assert DATA.lookup_tdp(name) == want_tdp
    found = class_from_model_name(name)
    assert (found[0] if found else None) == want_class


def test_fixture_model_names_all_answer_without_error() -> None:
    path = shared_fixture("cpus", "cpu-model-names.tsv")
    with path.open(encoding="utf-8") as fh:
        names = [row["model_name"] for row in csv.DictReader(fh, delimiter="\t")]
    assert len(names) >= 50
    covered = [n for n in names if n in EXPECTED]
    assert len(covered) >= 30  # most of the fixture is checked against an expected answer above
    for name in names:
        DATA.lookup_tdp(name)  # never raises
        class_from_model_name(name)


@pytest.mark.parametrize("vendor,family,model,stepping,want", [
    ("GenuineIntel", 6, 207, 2, "Emerald Rapids"),  # this development VM (masked name)
    ("GenuineIntel", 6, 143, 8, "Sapphire Rapids"),
    ("GenuineIntel", 6, 85, 4, "Skylake"),
    ("GenuineIntel", 6, 85, 7, "Cascade Lake"),
    ("GenuineIntel", 6, 106, 6, "Ice Lake"),
    ("GenuineIntel", 6, 63, 2, "Haswell"),
    ("AuthenticAMD", 23, 49, 0, "EPYC 2nd Gen"),
    ("AuthenticAMD", 23, 1, 2, "EPYC 1st Gen"),
    ("AuthenticAMD", 25, 1, 1, "EPYC 3rd Gen"),
    ("AuthenticAMD", 25, 17, 1, "EPYC 4th Gen"),
    ("AuthenticAMD", 26, 2, 1, "EPYC 5th Gen"),
    ("GenuineIntel", 15, 6, 1, None),
])
def test_class_from_cpuid(vendor: str, family: int, model: int, stepping: int, want: str | None) -> None:
    found = class_from_cpuid(vendor, family, model, stepping)
    assert (found[0] if found else None) == want


def _cpuinfo(name: str, n: int = 2, *, family: int = 6, model: int = 207, vendor: str = "GenuineIntel",
             flags: str = "fpu sse2 hypervisor avx2", sockets: int = 1) -> str:
    blocks = []
    for i in range(n):
        blocks.append(f"processor\t: {i}\nvendor_id\t: {vendor}\ncpu family\t: {family}\nmodel\t\t: {model}\n"
                      f"model name\t: {name}\nstepping\t: 2\nphysical id\t: {i * sockets // n}\n"
                      f"siblings\t: {n // sockets}\ncpu cores\t: {n // sockets}\nflags\t\t: {flags}\n")
    return "\n".join(blocks) + "\n"


def _tree(tmp_path: Path, cpuinfo: str, *, mem_kib: int = 24683600, dmi: dict[str, str] | None = None,
          online: str | None = None) -> tuple[Path, Path]:
    proc, sys_ = tmp_path / "proc", tmp_path / "sys"
    proc.mkdir()
    (proc / "cpuinfo").write_text(cpuinfo)
    (proc / "meminfo").write_text(f"MemTotal:       {mem_kib} kB\nMemFree:  1000 kB\n")
    for key, value in (dmi or {}).items():
        p = sys_ / "class" / "dmi" / "id" / key
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(value + "\n")
    if online is not None:
        p = sys_ / "devices" / "system" / "cpu" / "online"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(online + "\n")
    sys_.mkdir(exist_ok=True)
    return proc, sys_


def test_masked_cloud_path_like_this_vm(tmp_path: Path) -> None:
    """A 2-vCPU KVM guest whose model name is masked: cpuid → Emerald Rapids → CCF per vCPU."""
    proc, sys_ = _tree(tmp_path, _cpuinfo("Intel(R) Xeon(R) Processor"))
    facts = read_platform_facts(proc, sys_, dev_root=None)
    assert facts.virtual and "hypervisor" in facts.virtual_why
    assert facts.logical_cpus == 2 and facts.identity.masked
    p = choose_cpu_profile(facts, DATA)
    c = DATA.class_coefficients("Emerald Rapids")
    assert p.method == "class" and p.entry.startswith("Emerald Rapids")
    assert p.idle_w == pytest.approx(2 * c.idle_w) and p.max_w == pytest.approx(2 * c.max_w)
    # CCF: ~0.81 W idle and ~4.48 W at full load per vCPU (output/coefficients-aws-use.csv)
    assert p.at(0.0)[0] == pytest.approx(1.628, abs=0.01)
    assert p.at(1.0)[0] == pytest.approx(8.964, abs=0.01)
    # The bound spans the class's spread in the data, not ±40 %.
    w, lo, hi = p.at(1.0)
    assert lo == pytest.approx(2 * c.max_lo) and hi == pytest.approx(2 * c.max_hi)
    assert any("masked" in why for why in p.why)
    mem = memory_estimate(facts, DATA)
    assert mem is not None and mem.gib == pytest.approx(24683600 / 1024 ** 2)
    assert mem.watts == pytest.approx(mem.gib * 0.392)
    assert mem.lo < mem.watts < mem.hi


def test_curve_is_not_linear_and_the_bound_covers_a_straight_line(tmp_path: Path) -> None:
    proc, sys_ = _tree(tmp_path, _cpuinfo("Intel(R) Xeon(R) Processor"))
    p = choose_cpu_profile(read_platform_facts(proc, sys_, dev_root=None), DATA)
    w10, lo10, hi10 = p.at(0.10)
    linear10 = p.idle_w + 0.10 * (p.max_w - p.idle_w)
    teads10 = p.idle_w + (0.32 - 0.12) / (1.02 - 0.12) * (p.max_w - p.idle_w)
    assert w10 == pytest.approx(teads10)
    assert w10 > linear10 * 1.3  # the data's curve rises fast at low load
    assert lo10 <= linear10 <= hi10  # CCF's straight line lies inside the bound
    ws = [p.at(u / 20)[0] for u in range(21)]
    assert ws == sorted(ws)  # monotone


def test_bare_metal_tdp_path(tmp_path: Path) -> None:
    name = "Intel(R) Xeon(R) CPU E5-2680 v3 @ 2.50GHz"
    proc, sys_ = _tree(tmp_path, _cpuinfo(name, n=48, family=6, model=63, flags="fpu sse2 avx2", sockets=2))
    facts = read_platform_facts(proc, sys_, dev_root=None)
    assert not facts.virtual and facts.identity.sockets == 2
    p = choose_cpu_profile(facts, DATA)
    assert p.method == "tdp"
    assert p.at(1.0)[0] == pytest.approx(2 * 120 * 1.02)
    assert p.at(0.0)[0] == pytest.approx(2 * 120 * 0.12)
    assert p.at(0.5)[0] == pytest.approx(2 * 120 * 0.75)
    w, lo, hi = p.at(1.0)
    assert lo < w <= hi  # the Haswell class's spread, as a ratio (CCF's mean is its highest full-load figure)


def test_cloud_provider_from_dmi_and_gcp_coefficients(tmp_path: Path) -> None:
    proc, sys_ = _tree(tmp_path, _cpuinfo("Intel(R) Xeon(R) CPU @ 2.20GHz", n=4, model=85, flags="hypervisor"),
                       dmi={"sys_vendor": "Google", "product_name": "Google Compute Engine"})
    facts = read_platform_facts(proc, sys_, dev_root=None)
    assert facts.provider == "gcp" and facts.virtual
    p = choose_cpu_profile(facts, DATA)
    c = DATA.class_coefficients("Skylake", "gcp")
    assert c.provider == "gcp" and p.max_w == pytest.approx(4 * c.max_w)


def test_unknown_cpu_uses_the_average_over_all_classes(tmp_path: Path) -> None:
    proc, sys_ = _tree(tmp_path, _cpuinfo("Zhaoxin YongFeng Processor", n=8, vendor="CentaurHauls",
                                          family=7, model=91))
    p = choose_cpu_profile(read_platform_facts(proc, sys_, dev_root=None), DATA)
    rows = DATA.all_classes()
    assert p.method == "average"
    assert p.idle_w == pytest.approx(8 * math.fsum(c.idle_w for c in rows) / len(rows))
    assert p.idle_lo == pytest.approx(8 * min(c.idle_lo for c in rows))
    assert p.max_hi == pytest.approx(8 * max(c.max_hi for c in rows))


def test_tdp_and_idle_overrides_still_win(tmp_path: Path) -> None:
    proc, sys_ = _tree(tmp_path, _cpuinfo("Intel(R) Xeon(R) Processor"))
    facts = read_platform_facts(proc, sys_, dev_root=None)
    p = choose_cpu_profile(facts, DATA, tdp=50.0, idle_watts=5.0)
    assert p.method == "configured" and p.at(0.0)[0] == pytest.approx(5.0) and p.at(1.0)[0] == pytest.approx(50.0)
    q = choose_cpu_profile(facts, DATA, tdp=50.0)
    c = DATA.class_coefficients("Emerald Rapids")
    assert q.at(0.0)[0] == pytest.approx(50.0 * c.idle_w / c.max_w)


def test_arm_identity_from_implementer_and_part() -> None:
    text = ("processor\t: 0\nBogoMIPS\t: 243.75\nFeatures\t: fp asimd\nCPU implementer\t: 0x41\n"
            "CPU architecture: 8\nCPU variant\t: 0x3\nCPU part\t: 0xd0c\nCPU revision\t: 1\n\n")
    ident = parse_cpuinfo_identity(text)
    assert ident.arm_implementer == 0x41 and ident.arm_part == 0xD0C and ident.masked
    facts = PlatformFacts(identity=ident, logical_cpus=4, virtual=True, virtual_why="test")
    p = choose_cpu_profile(facts, DATA)
    assert p.entry.startswith("Graviton2")


def test_inner_blanks_of_brand_strings_are_kept() -> None:
    ident = parse_cpuinfo_identity(_cpuinfo("Intel(R) Xeon(R) CPU           E5620  @ 2.40GHz", n=1))
    assert ident.model_name == "Intel(R) Xeon(R) CPU           E5620  @ 2.40GHz"


def test_data_tables_are_valid_and_bad_tables_are_refused() -> None:
    assert len(DATA.tdp) > 4000 and len(DATA.classes) >= 20
    for c in DATA.classes.values():
        assert 0 <= c.idle_lo <= c.idle_w <= c.idle_hi and 0 <= c.max_lo <= c.max_w <= c.max_hi
    bad = "provider,class,idle_w,max_w,idle_lo,idle_hi,max_lo,max_hi,spec_results\naws,X,1,2,1.5,2,1,3,0\n"
    with pytest.raises(ValueError):
        parse_estimate_data("name,tdp_w\n", bad, "[curve]\nsource='s'\nutilisation=[0,1]\ntdp_factor=[0.1,1]\n"
                                                  "[memory]\nsource='m'\nwatts_per_gb=0.4\nwatts_per_gb_lo=0.2\n"
                                                  "watts_per_gb_hi=0.6\n")
    ok_toml = ("[curve]\nsource='s'\nutilisation=[0,1]\ntdp_factor=[0.1,1]\n[memory]\nsource='m'\n"
               "watts_per_gb=0.4\nwatts_per_gb_lo=0.2\nwatts_per_gb_hi=0.6\n")
    lazy = parse_estimate_data("name,tdp_w\nX 1,nan\n", "provider,class,idle_w,max_w,idle_lo,idle_hi,max_lo,max_hi,"
                               "spec_results\n", ok_toml)
    with pytest.raises(ValueError):
        lazy.lookup_tdp("X 1")  # a bad TDP figure is refused when the table is first used


def test_regeneration_script_reproduces_the_shipped_classes(tmp_path: Path) -> None:
    """scripts/build_estimate_data.py from the stated inputs gives the shipped cpu_classes.csv spreads."""
    import subprocess
    import sys

    repo = Path(__file__).resolve().parents[1]
    shipped = {(r["provider"], r["class"]): r for r in csv.DictReader(
        ln for ln in (repo / "keck_tui" / "data" / "cpu_classes.csv").read_text().splitlines() if not ln.startswith("#"))}
    aws = tmp_path / "aws.csv"
    aws.write_text(",Architecture,Min Watts,Max Watts,GB/Chip\n" + "".join(
        f"{i},{cls},{r['idle_w']},{r['max_w']},1\n" for i, ((p, cls), r) in enumerate(sorted(shipped.items()))
        if p == "aws"))
    tdp = tmp_path / "tdp.csv"
    tdp.write_text("Name,TDP\nIntel Xeon Gold 5120,105\n")
    out = tmp_path / "out"
    out.mkdir()
    subprocess.run([sys.executable, str(repo / "scripts" / "build_estimate_data.py"), "--codecarbon", str(tdp),
                    "--ccf-aws", str(aws), "--specpower", str(repo / "scripts" / "estimate_data" /
                                                              "specpower-sample.csv"), "--out", str(out)],
                   check=True, capture_output=True)
    rebuilt = {(r["provider"], r["class"]): r for r in csv.DictReader(
        ln for ln in (out / "cpu_classes.csv").read_text().splitlines() if not ln.startswith("#"))}
    for key, row in rebuilt.items():
        for col in ("idle_lo", "idle_hi", "max_lo", "max_hi", "spec_results"):
            assert float(row[col]) == pytest.approx(float(shipped[key][col]), abs=1e-3), (key, col)
