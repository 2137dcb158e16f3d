"""The one base class of the errors a user's own input causes.

Library modules raise their own subclasses (``ConfigError`` for the config file,
``FleetError`` for a fleet file, ``SourceConfigError`` for a source's options, …)
with a message that names what is wrong. The command line reports any of them
as one line, ``keck-top: error: …``, and exit status 2; nothing below
``keck_tui.commands`` knows about argparse or exit codes.
"""
from __future__ import annotations


class UsageError(ValueError):
    """Something the user gave (a flag, a config or fleet file, a URL, a token file) is unusable."""


class SourceConfigError(UsageError):
    """A source's options are unusable: a URL, a root directory, a credentials file."""
