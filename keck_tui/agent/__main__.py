"""``python -m keck_tui.agent [serve flags]``: the agent without the rest of the CLI."""
from __future__ import annotations

import sys

from keck_tui.cli import CliError, _Parser
from keck_tui.config import ConfigError


def main(argv: list[str] | None = None) -> int:
    from keck_tui.agent import command
    parser = _Parser(prog="keck-top serve")
    command.configure(parser)
    args = parser.parse_args(argv)
    try:
        return command.run(args)
    except (CliError, ConfigError) as exc:
        print(f"keck-top: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
