"""The estimate's data tables, shipped in keck_tui/data/ (sources and licences: SOURCES.md there).

* ``cpu_tdp.csv``: CPU model → TDP per socket (codecarbon's table);
* ``cpu_classes.csv``: watts per thread at idle and at full load by CPU class and cloud provider
  (Cloud Carbon Footprint's coefficients), with the spread of the SPECpower results behind them;
* ``estimates.toml``: the utilisation curve (Teads) and the DRAM watts per GB (CCF).

:func:`load_estimate_data` reads them once; the result is immutable and passed around.
"""
from __future__ import annotations

import csv
import io
import math
import tomllib
from dataclasses import dataclass
from importlib import resources
from typing import Mapping

from keck_tui.estimate.classes import normalise_model_name


@dataclass(frozen=True)
class WattsBand:
    """Watts at idle and at full load, each with the lowest and highest figure the data allows."""

    idle_w: float
    max_w: float
    idle_lo: float
    idle_hi: float
    max_lo: float
    max_hi: float

    def figures(self) -> tuple[float, float, float, float, float, float]:
        """The six figures in field order (idle, max, idle lo, idle hi, max lo, max hi)."""
        return self.idle_w, self.max_w, self.idle_lo, self.idle_hi, self.max_lo, self.max_hi

    def scaled(self, k: float) -> WattsBand:
        """Every figure times ``k`` (per thread → per machine)."""
        return WattsBand(*(x * k for x in self.figures()))

    def ordered(self) -> bool:
        """lo <= value <= hi, at idle and at full load."""
        return self.idle_lo <= self.idle_w <= self.idle_hi and self.max_lo <= self.max_w <= self.max_hi


@dataclass(frozen=True)
class ClassCoefficients(WattsBand):
    """Watts per thread of one CPU class on one provider, with the dataset's spread."""

    provider: str
    cls: str
    spec_results: int


class TdpTable:
    """CPU model → TDP, indexed on first use (4,900 names: only bare metal needs them)."""

    def __init__(self, csv_text: str) -> None:
        self._text = csv_text
        self._by_key: dict[str, tuple[str, float]] | None = None
        self._tokens: dict[str, tuple[str, ...]] = {}

    def _index(self) -> dict[str, tuple[str, float]]:
        if self._by_key is None:
            by_key: dict[str, tuple[str, float]] = {}
            tokens: dict[str, list[str]] = {}
            for row in _csv_rows(self._text):
                name = row["name"].strip()
                key = normalise_model_name(name).replace("-", " ")
                if not key or key in by_key:
                    continue
                by_key[key] = (name, _finite(row["tdp_w"]))
                # Index by the SKU-ish words (with a digit): a name matches when its SKU does.
                for word in key.split():
                    if any(ch.isdigit() for ch in word):
                        tokens.setdefault(word, []).append(key)
            self._tokens = {k: tuple(v) for k, v in tokens.items()}
            self._by_key = by_key
        return self._by_key

    def __len__(self) -> int:
        return len(self._index())

    def get(self, key: str) -> tuple[str, float] | None:
        return self._index().get(key)

    def candidates(self, word: str) -> tuple[str, ...]:
        self._index()
        return self._tokens.get(word, ())


@dataclass(frozen=True)
class EstimateData:
    tdp: TdpTable  # normalised model name -> (name as listed, TDP W)
    classes: Mapping[tuple[str, str], ClassCoefficients]  # (provider, class) -> coefficients
    curve_u: tuple[float, ...]
    curve_factor: tuple[float, ...]  # share of TDP at curve_u
    curve_source: str
    memory_w_per_gb: float
    memory_lo: float
    memory_hi: float
    memory_source: str

    def lookup_tdp(self, model_name: str) -> tuple[str, float] | None:
        """(listed name, TDP) for a /proc/cpuinfo model name, or None.

        Exact match of the normalised names first; else the listed model whose words all
        occur in the name and whose last word (the SKU number) does, longest match first.
        """
        key = normalise_model_name(model_name).replace("-", " ")
        hit = self.tdp.get(key)
        if hit is not None:
            return hit
        words = set(key.split())
        best: tuple[int, str] | None = None
        for word in words:
            for cand in self.tdp.candidates(word):
                cand_words = cand.split()
                if all(w in words for w in cand_words) and (best is None or len(cand) > best[0]):
                    best = (len(cand), cand)
        return self.tdp.get(best[1]) if best else None

    def class_coefficients(self, cls: str, provider: str = "aws") -> ClassCoefficients | None:
        return self.classes.get((provider, cls)) or self.classes.get(("aws", cls))

    def all_classes(self, provider: str = "aws") -> list[ClassCoefficients]:
        rows = [c for (p, _), c in self.classes.items() if p == provider]
        return rows or [c for (p, _), c in self.classes.items() if p == "aws"]


def _csv_rows(text: str) -> list[dict[str, str]]:
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]
    return list(csv.DictReader(io.StringIO("\n".join(lines))))


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"not a finite non-negative number: {text!r}")
    return value


def parse_estimate_data(tdp_csv: str, classes_csv: str, toml_text: str) -> EstimateData:
    """The tables from their text; the TDP table is checked when first used."""
    classes: dict[tuple[str, str], ClassCoefficients] = {}
    for row in _csv_rows(classes_csv):
        c = ClassCoefficients(provider=row["provider"], cls=row["class"],
                              idle_w=_finite(row["idle_w"]), max_w=_finite(row["max_w"]),
                              idle_lo=_finite(row["idle_lo"]), idle_hi=_finite(row["idle_hi"]),
                              max_lo=_finite(row["max_lo"]), max_hi=_finite(row["max_hi"]),
                              spec_results=int(row["spec_results"]))
        if not c.ordered():
            raise ValueError(f"cpu_classes.csv: {c.provider}/{c.cls}: lo <= value <= hi does not hold")
        classes[(c.provider, c.cls)] = c
    doc = tomllib.loads(toml_text)
    curve, memory = doc["curve"], doc["memory"]
    u = tuple(float(x) for x in curve["utilisation"])
    f = tuple(float(x) for x in curve["tdp_factor"])
    if len(u) != len(f) or len(u) < 2 or u[0] != 0.0 or u[-1] != 1.0 or list(u) != sorted(u):
        raise ValueError("estimates.toml: [curve] utilisation must rise from 0 to 1, one factor each")
    return EstimateData(
        tdp=TdpTable(tdp_csv), classes=classes, curve_u=u, curve_factor=f, curve_source=str(curve["source"]),
        memory_w_per_gb=float(memory["watts_per_gb"]), memory_lo=float(memory["watts_per_gb_lo"]),
        memory_hi=float(memory["watts_per_gb_hi"]), memory_source=str(memory["source"]),
    )


def load_estimate_data() -> EstimateData:
    """The tables shipped with keck-top."""
    pkg = resources.files("keck_tui") / "data"
    return parse_estimate_data((pkg / "cpu_tdp.csv").read_text(encoding="utf-8"),
                               (pkg / "cpu_classes.csv").read_text(encoding="utf-8"),
                               (pkg / "estimates.toml").read_text(encoding="utf-8"))
