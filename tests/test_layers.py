"""The import layers in pyproject.toml ([tool.importlinter]) hold, and they can fail.

The contracts: the layer order (commands → ui / agent → … → model / clock / common),
textual and rich only in keck_tui.ui, argparse only in the command line, and no import
cycles. The second test plants one violation of each in a copy of the package and
checks that every contract reports it.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("importlinter", reason="import-linter is in the [test] extra")

REPO = Path(__file__).resolve().parents[1]
LINT = "import sys; from importlinter.cli import lint_imports_command; sys.exit(lint_imports_command())"


def lint(root: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(root))
    return subprocess.run([sys.executable, "-c", LINT, "--no-cache", "pyproject.toml"], cwd=root, env=env,
                          capture_output=True, text=True, timeout=120)


def test_import_contracts_hold() -> None:
    r = lint(REPO)
    assert r.returncode == 0, r.stdout[-6000:] + r.stderr[-2000:]
    assert "4 kept, 0 broken" in r.stdout, r.stdout[-2000:]


def test_contracts_fail_on_a_violation(tmp_path: Path) -> None:
    shutil.copytree(REPO / "keck_tui", tmp_path / "keck_tui", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    pkg = tmp_path / "keck_tui"
    # a sampler that reaches up into the command line (layers) with argparse (argparse contract)
    (pkg / "samplers" / "upward.py").write_text("import argparse\n\nfrom keck_tui.commands.base import CliError\n")
    # drawing outside ui/ (textual contract)
    (pkg / "attribution" / "draws.py").write_text("from rich.text import Text\n")
    # two siblings that import each other (cycles contract)
    (pkg / "hierarchy" / "cyc_a.py").write_text("from keck_tui.hierarchy import cyc_b\n")
    (pkg / "hierarchy" / "cyc_b.py").write_text("from keck_tui.hierarchy import cyc_a\n")
    r = lint(tmp_path)
    assert r.returncode != 0
    out = r.stdout
    assert "0 kept, 4 broken" in out, out[-3000:]
    assert "keck_tui.samplers.upward -> keck_tui.commands.base" in out
    assert "keck_tui.attribution.draws -> rich" in out
    assert "keck_tui.samplers.upward -> argparse" in out
    assert "No cycles are allowed in keck_tui.hierarchy" in out and (".cyc_b -> .cyc_a" in out or ".cyc_a -> .cyc_b" in out)


def test_a_new_top_level_module_must_be_placed_in_a_layer(tmp_path: Path) -> None:
    shutil.copytree(REPO / "keck_tui", tmp_path / "keck_tui", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    (tmp_path / "keck_tui" / "stray.py").write_text("")
    r = lint(tmp_path)
    assert r.returncode != 0 and "stray" in r.stdout + r.stderr, r.stdout[-3000:] + r.stderr[-2000:]


def test_help_imports_no_textual_aiohttp_or_bcc() -> None:
    """`keck-top --help` (and every command's) builds the parser without the heavy libraries."""
    code = ("import sys; from keck_tui.cli import build_parser; build_parser(); "
            "bad = [m for m in ('textual', 'rich', 'aiohttp', 'bcc', 'prometheus_client', 'pynvml', 'psutil') "
            "if m in sys.modules]; print(bad); sys.exit(1 if bad else 0)")
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
