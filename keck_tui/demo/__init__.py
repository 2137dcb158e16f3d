"""A deterministic simulated fleet for trying keck-top out, screenshots and UI tests.

``demo_snapshots(seed, count, start_time)`` returns fleet → cluster → node
snapshots built by the production Collector and fleet merge from synthetic
sampler readings (see ``sim.py``). Same arguments, same snapshots.
"""
from __future__ import annotations

from keck_tui.demo.sim import DemoFleet, demo_snapshots, iter_demo_snapshots

__all__ = ["DemoFleet", "demo_snapshots", "iter_demo_snapshots"]
