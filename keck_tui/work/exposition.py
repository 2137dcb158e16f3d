"""Counter values out of a Prometheus text exposition (prometheus_client's own parser).

A counter is found by its sample name. prometheus_client names a counter family without
``_total`` and may add ``_total`` to a counter's samples, so for counter families the
names are compared with ``_total`` taken off both sides; ``<name>_created`` (a separate
gauge family next to a counter, a ~1.7e9 timestamp) never matches. Every series that
carries the filter's labels (exact values; other labels free) is summed: vLLM with
several engines gives one ``vllm:generation_tokens_total`` per ``engine``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, Mapping

from keck_tui.work.spec import CounterSpec


@dataclass(frozen=True)
class CounterValue:
    """One counter's value in one scrape, or why there is none."""

    value: float | None
    series: int = 0  # how many series were summed
    why: str = ""  # when value is None


class ExpositionError(ValueError):
    """The body is not a Prometheus text exposition."""


def _strip_total(name: str) -> str:
    return name[:-6] if name.endswith("_total") else name


def parse(text: str) -> list:
    """The metric families of ``text`` (ExpositionError when it does not parse)."""
    from prometheus_client.parser import text_string_to_metric_families

    try:
        return list(text_string_to_metric_families(text))
    except Exception as exc:  # noqa: BLE001 - the parser raises ValueError, IndexError, ...
        first = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
        raise ExpositionError(f"not a Prometheus text exposition: {first}") from None


def counter_values(families: Iterable, specs: Iterable[CounterSpec]) -> dict[CounterSpec, CounterValue]:
    """The value of each counter in the parsed families (see the module docstring)."""
    wanted = list(specs)
    sums: dict[CounterSpec, float] = {s: 0.0 for s in wanted}
    counts: dict[CounterSpec, int] = {s: 0 for s in wanted}
    named: dict[CounterSpec, int] = {s: 0 for s in wanted}  # series with the name, any labels
    bad: dict[CounterSpec, str] = {}
    bare = {s: _strip_total(s.counter) for s in wanted}
    for fam in families:
        is_counter = fam.type == "counter"
        for sample in fam.samples:
            for s in wanted:
                if sample.name != s.counter and not (is_counter and _strip_total(sample.name) == bare[s]
                                                      and not sample.name.endswith("_created")):
                    continue
                named[s] += 1
                if not _has_labels(sample.labels, s.labels):
                    continue
                v = float(sample.value)
                if not math.isfinite(v) or v < 0:
                    bad[s] = f"{s.counter} is {v}: not a counter value"
                    continue
                sums[s] += v
                counts[s] += 1
    out: dict[CounterSpec, CounterValue] = {}
    for s in wanted:
        if s in bad:
            out[s] = CounterValue(None, counts[s], bad[s])
        elif counts[s]:
            out[s] = CounterValue(sums[s], counts[s])
        elif named[s]:
            want = ", ".join(f'{k}="{v}"' for k, v in s.labels)
            out[s] = CounterValue(None, 0, f"{s.counter} has {named[s]} series, none with {{{want}}}")
        else:
            out[s] = CounterValue(None, 0, f"no series {s.counter} in the exposition")
    return out


def _has_labels(labels: Mapping[str, str], want: tuple[tuple[str, str], ...]) -> bool:
    return all(labels.get(k) == v for k, v in want)


def read_counters(body: bytes | str, specs: Iterable[CounterSpec]) -> dict[CounterSpec, CounterValue]:
    """Parse ``body`` and pick the counters; ExpositionError when the body is not an exposition."""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    return counter_values(parse(text), specs)
