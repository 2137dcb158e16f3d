"""Command placeholder until its issue lands."""
from __future__ import annotations

import argparse

from keck_tui.cli import CliError


def configure(parser: argparse.ArgumentParser) -> None:
    pass


def run(args: argparse.Namespace) -> int:
    raise CliError("not implemented yet")
