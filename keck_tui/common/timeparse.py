"""Times given on the command line: unix seconds or ISO 8601, one rule for all of them.

The rule: a time without a zone (``2026-06-15T14:00``) is **local time**, like ``date``
and ``ls -l`` show it; give ``Z`` or an offset (``2026-06-15T14:00Z``, ``…+02:00``) for
anything else. Unix seconds must be finite and within the calendar (years 1–9999):
``nan`` used to mean "no limit" in one place and ``inf`` crashed another.
"""
from __future__ import annotations

import math
from datetime import datetime, timezone, tzinfo

from keck_tui.common.errors import UsageError

#: For --help texts: the accepted forms and the rule for naive times.
TIME_FORMS = "unix seconds or ISO 8601 like 2026-06-15T14:00 (local time unless it has a zone: Z, +02:00)"


class TimeParseError(UsageError):
    """One line naming the text that is not a usable time."""


def parse_time(text: str, tz: tzinfo | None = None) -> float:
    """Unix seconds from ``text`` (unix seconds or ISO 8601; naive: ``tz``, else local time)."""
    text = str(text).strip()
    try:
        value = float(text)
    except ValueError:
        return _parse_iso(text, tz)
    if not math.isfinite(value):
        raise TimeParseError(f"not a unix time or ISO 8601 date: {text!r}")
    check_unix_time(value, text)
    return value


def parse_time_flag(text: str | None, flag: str, tz: tzinfo | None = None) -> float | None:
    """A time flag's value (None when not given); the error names the flag (``--since: …``)."""
    if text is None:
        return None
    try:
        return parse_time(text, tz)
    except TimeParseError as exc:
        raise TimeParseError(f"{flag}: {exc}") from None


def check_unix_time(value: float, text: str | None = None) -> float:
    """``value`` if a calendar holds it, else :class:`TimeParseError`."""
    shown = text if text is not None else repr(value)
    try:
        if not math.isfinite(value):
            raise ValueError
        datetime.fromtimestamp(value, timezone.utc)
    except (ValueError, OverflowError, OSError):
        raise TimeParseError(f"not a usable unix time: {shown!r} (outside the years 1-9999)") from None
    return value


def _parse_iso(text: str, tz: tzinfo | None) -> float:
    try:
        d = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text)
    except ValueError:
        raise TimeParseError(f"not a unix time or ISO 8601 date: {text!r}") from None
    if d.tzinfo is None:
        d = d.replace(tzinfo=tz) if tz is not None else d.astimezone()  # astimezone: naive = local
    try:
        return d.timestamp()
    except (OverflowError, OSError, ValueError):
        raise TimeParseError(f"not a usable time: {text!r}") from None
