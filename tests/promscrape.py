"""Test helpers: what a Prometheus server does with a scrape before keck-top queries it —
the text exposition parsed into samples (prometheus-client's parser), counters turned
into per-second rates. The tests feed the result to keck_tui.sources.promdata."""
from __future__ import annotations

from keck_tui.sources.promdata import Sample


def samples_from_text(text: str) -> list[Sample]:
    """Every sample of a Prometheus text exposition (prometheus-client's parser)."""
    from prometheus_client.parser import text_string_to_metric_families
    return [Sample(s.name, dict(s.labels), float(s.value))
            for fam in text_string_to_metric_families(text) for s in fam.samples]


def rates_between(before: list[Sample], after: list[Sample], seconds: float) -> list[Sample]:
    """Counters (``*_total``) as per-second rates between two scrapes; gauges from ``after``.

    A counter that went down was reset: its rate is its new value over the interval
    (what Prometheus' rate() assumes). Series missing from ``before`` are skipped.
    """
    if seconds <= 0:
        raise ValueError("scrapes must be apart in time")
    prev = {(s.name, tuple(sorted(s.labels.items()))): s.value for s in before}
    out = []
    for s in after:
        if not s.name.endswith("_total"):
            out.append(s)
            continue
        old = prev.get((s.name, tuple(sorted(s.labels.items()))))
        if old is None:
            continue
        delta = s.value - old if s.value >= old else s.value
        out.append(Sample(s.name, s.labels, delta / seconds))
    return out
