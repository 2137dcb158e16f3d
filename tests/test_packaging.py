"""The BPF C programs live in the top-level probes/ folder and ship inside the wheel
(setup.py maps them in as keck_tui/probes/bpf/); the loader finds them in a checkout
and in an installed wheel. The wheel is built from exactly the files the container
image's Dockerfile copies, so that build is checked too."""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from keck_tui.probes import loader

REPO = Path(__file__).resolve().parents[1]
DOCKERFILE = REPO / "deploy" / "container" / "Dockerfile"


def test_the_loader_finds_the_program_in_this_checkout() -> None:
    assert loader.SOURCE == REPO / "probes" / "oncpu.bpf.c"
    assert loader.SOURCE.is_file()
    assert not (REPO / "keck_tui" / "probes" / "oncpu.bpf.c").exists()


def test_program_path_prefers_the_installed_copy(tmp_path: Path) -> None:
    pkg = tmp_path / "site" / "keck_tui" / "probes"
    (pkg / "bpf").mkdir(parents=True)
    assert loader.program_path("x.bpf.c", pkg) == pkg / "bpf" / "x.bpf.c"  # neither: wheel path
    (tmp_path / "site" / "probes").mkdir()
    (tmp_path / "site" / "probes" / "x.bpf.c").write_text("checkout")
    assert loader.program_path("x.bpf.c", pkg) == tmp_path / "site" / "probes" / "x.bpf.c"
    (pkg / "bpf" / "x.bpf.c").write_text("wheel")
    assert loader.program_path("x.bpf.c", pkg) == pkg / "bpf" / "x.bpf.c"


def _dockerfile_sources() -> list[str]:
    """What the image's build stage copies from the repository (``COPY a b ./``)."""
    names: list[str] = []
    for line in DOCKERFILE.read_text().splitlines():
        m = re.match(r"COPY\s+(?!--)(.+)\s+\S+$", line.strip())
        if m:
            names.extend(m.group(1).split())
    return names


@pytest.mark.slow
def test_the_wheel_ships_the_program_and_the_installed_loader_finds_it(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    sources = _dockerfile_sources()
    assert {"pyproject.toml", "setup.py", "keck_tui", "probes"} <= set(sources)
    for name in sources:
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, src / name,
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(REPO / name, src / name)
    wheels = tmp_path / "wheels"
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q",
                            "-w", str(wheels), str(src)], capture_output=True, text=True,
                           timeout=240)
    assert built.returncode == 0, built.stdout + built.stderr
    (wheel,) = wheels.glob("keck_top-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "keck_tui/probes/bpf/oncpu.bpf.c" in names
    assert "keck_tui/ui/app.tcss" in names
    assert "keck_tui/probes/loader.py" in names
    # the estimate's data tables and their sources (keck_tui/data/SOURCES.md)
    assert {"keck_tui/data/cpu_tdp.csv", "keck_tui/data/cpu_classes.csv", "keck_tui/data/estimates.toml",
            "keck_tui/data/SOURCES.md"} <= set(names)
    assert not [n for n in names if n.startswith("probes/")]  # nothing at the top level

    site = tmp_path / "site"
    done = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q",
                           "--target", str(site), str(wheel)], capture_output=True, text=True,
                          timeout=240)
    assert done.returncode == 0, done.stdout + done.stderr
    found = subprocess.run(
        [sys.executable, "-c", "from keck_tui.probes import loader; print(loader.SOURCE)"],
        capture_output=True, text=True, cwd=tmp_path, timeout=60,
        env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"})
    assert found.returncode == 0, found.stderr
    path = Path(found.stdout.strip())
    assert path == site / "keck_tui" / "probes" / "bpf" / "oncpu.bpf.c"
    assert path.read_bytes() == (REPO / "probes" / "oncpu.bpf.c").read_bytes()
