"""`keck-top serve`: the headless agent (JSON query API, history, Prometheus /metrics)."""
