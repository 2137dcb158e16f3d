"""The command line: every ``keck-top`` subcommand and every option parser lives here.

Adding to the command line:

- **a subcommand**: a module ``commands/<name>.py`` with ``configure(parser)`` (add its
  flags) and ``run(args) -> int`` (exit status), registered in :data:`COMMANDS` below.
- **a flag of the default mode** (``keck-top`` on this node): ``commands/local.py``'s
  ``configure``; a flag every sampling command shares (``keck-top``, ``serve``, ``record``,
  ``doctor``): ``add_sampling_options`` in ``commands/base.py``, turned into typed
  configuration in ``settings_from_args`` / ``local_sources_from_args`` there.
- A numeric flag takes ``type=ranged("name")`` (``commands/base.py``) with its range in
  ``keck_tui/common/ranges.RANGES`` and README's ranges table (tests/test_ranges.py checks all three).
- Flags become typed configuration objects (frozen dataclasses) *here*; the library below
  never sees argparse. Library errors subclass ``keck_tui.common.errors.UsageError`` and
  are reported by ``keck_tui.cli.main`` as one line, exit 2; ``CliError`` is the commands'
  own.

Modules here must stay cheap to import (no textual, aiohttp or bcc at import time:
import them inside ``run``) so that ``--help`` is instant.
"""
from __future__ import annotations

# name -> (module, one-line help), in the order --help lists them
COMMANDS: dict[str, tuple[str, str]] = {
    "doctor": ("keck_tui.commands.doctor", "which power sources work here, which don't, why, and how to fix"),
    "serve": ("keck_tui.commands.serve", "headless agent: JSON query API and Prometheus /metrics"),
    "attach": ("keck_tui.commands.attach", "the TUI over remote agents, a fleet file, a Keck controller or Prometheus"),
    "record": ("keck_tui.commands.record", "record snapshots to a JSON Lines file (.gz/.zst by suffix)"),
    "replay": ("keck_tui.commands.replay", "replay a recording in the TUI (or print one instant)"),
    "run": ("keck_tui.commands.run", "run a command and measure the energy of its process tree (like time/perf stat)"),
    "report": ("keck_tui.commands.report", "energy, mean/peak watts, cost and CO2e per group over a recording"),
    "demo": ("keck_tui.commands.demo", "a simulated fleet, for trying keck-top out"),
    "debug": ("keck_tui.commands.debug", "support tools: parse powermetrics output or cgroup lines"),
}
