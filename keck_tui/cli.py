"""The ``keck-top`` entry point: builds the parser from :mod:`keck_tui.commands` and dispatches.

The default mode (no subcommand) is ``commands/local.py``; each subcommand is a
module listed in ``keck_tui.commands.COMMANDS``. Errors a user causes (any
``UsageError``: a bad flag value, config file, URL, token file …) are one line on
stderr and exit status 2.
"""
from __future__ import annotations

import argparse
import importlib
import sys
from typing import Sequence

from keck_tui import __version__
from keck_tui.commands import COMMANDS, local
from keck_tui.commands.base import Parser
from keck_tui.common.errors import UsageError


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="keck-top",
        description="keck-top shows where a machine's power goes: node → group → process → core, "
                    "with watts, frequency and an error bound on every row. With no command it "
                    "starts the live TUI on this node.",
        epilog="Commands have their own --help. Docs: README.md; design: docs/design.md.",
    )
    parser.add_argument("--version", action="version", version=f"keck-top {__version__}")
    local.configure(parser)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    for name, (module_name, help_text) in COMMANDS.items():
        module = importlib.import_module(module_name)
        p = sub.add_parser(name, help=help_text, description=help_text)
        module.configure(p)
        p.set_defaults(_module=module_name)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # a bad flag: its one line is printed; --help and --version exit 0
        if exc.code == 2:
            return 2
        raise
    try:
        module = importlib.import_module(args._module) if args.command else local
        return int(module.run(args) or 0)
    except UsageError as exc:  # CliError, ConfigError and every library's own usage error
        print(f"keck-top: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `keck-top --batch | head`: the reader left; exit quietly.
        try:
            sys.stdout = None  # type: ignore[assignment]
        finally:
            return 0


if __name__ == "__main__":  # pragma: no cover - `python -m keck_tui.cli`
    # Run the package's module, not this __main__ copy, so exception classes are shared.
    from keck_tui.cli import main as _main

    sys.exit(_main())
