"""The headless agent: JSON query API, history and Prometheus /metrics (the `keck-top serve`
command itself is keck_tui/commands/serve.py)."""
