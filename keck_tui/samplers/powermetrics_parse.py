"""Parser for ``powermetrics --samplers cpu_power,gpu_power`` text output (Apple Silicon).

A sample starts at ``*** Sampled system activity (...) (N ms elapsed) ***`` and is
complete at its ``Combined Power (CPU + GPU + ANE): N mW`` line. Quirks from real
output: "GPU Power" appears twice per sample (the "Processor usage" summary and again
in "GPU usage"; the first is taken); a sample cut off before its Combined line is
never emitted; anything unrecognised is ignored. Incremental (``feed`` one line at
a time) so the live sampler and ``keck-top debug parse-powermetrics`` share it.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable, Iterator

_HEADER_RE = re.compile(r"^\*\*\* Sampled system activity \((?P<when>[^)]*)\)\s*\((?P<ms>[0-9.]+)\s*ms elapsed\)")
_POWER_RE = re.compile(r"^(?P<what>CPU|GPU|ANE) Power:\s*(?P<mw>[0-9.]+)\s*mW\s*$")
_COMBINED_RE = re.compile(r"^Combined Power \(CPU \+ GPU \+ ANE\):\s*(?P<mw>[0-9.]+)\s*mW\s*$")


@dataclass(frozen=True)
class PowermetricsSample:
    elapsed_s: float  # the sample's own interval, as powermetrics measured it
    cpu_watts: float | None
    gpu_watts: float | None
    ane_watts: float | None
    combined_watts: float
    when: str = ""  # the header's timestamp text

    def to_json(self) -> dict[str, object]:
        return {"elapsed_s": self.elapsed_s, "cpu_watts": self.cpu_watts, "gpu_watts": self.gpu_watts,
                "ane_watts": self.ane_watts, "combined_watts": self.combined_watts, "when": self.when}


class PowermetricsParser:
    """Feed lines; ``feed`` returns a sample when its Combined Power line arrives."""

    def __init__(self) -> None:
        self._in_sample = False
        self._elapsed_s = 0.0
        self._when = ""
        self._values: dict[str, float] = {}
        self._emitted = False

    def feed(self, line: str) -> PowermetricsSample | None:
        line = line.strip()
        m = _HEADER_RE.match(line)
        if m:
            try:
                self._elapsed_s = float(m.group("ms")) / 1000.0
            except ValueError:  # pragma: no cover - regex guarantees digits
                self._elapsed_s = 0.0
            self._when = m.group("when")
            self._in_sample = True
            self._values = {}
            self._emitted = False
            return None
        if not self._in_sample or self._emitted:
            return None  # before the first header, or the sample's tail (second "GPU Power")
        m = _POWER_RE.match(line)
        if m:
            self._values.setdefault(m.group("what"), _mw(m.group("mw")))
            return None
        m = _COMBINED_RE.match(line)
        if m and self._elapsed_s > 0:
            self._emitted = True
            v = self._values
            return PowermetricsSample(
                elapsed_s=self._elapsed_s, cpu_watts=v.get("CPU"), gpu_watts=v.get("GPU"),
                ane_watts=v.get("ANE"), combined_watts=_mw(m.group("mw")), when=self._when)
        return None


def _mw(text: str) -> float:
    return float(text) / 1000.0


def parse_lines(lines: Iterable[str]) -> Iterator[PowermetricsSample]:
    parser = PowermetricsParser()
    for line in lines:
        sample = parser.feed(line)
        if sample is not None:
            yield sample
