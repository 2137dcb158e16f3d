"""Text from outside made safe to print on a terminal.

Names, commands, labels and error messages come from remote agents, BMCs,
recordings and other users' processes. An escape sequence in one of them would
be interpreted by the terminal that shows it (recolouring, moving the cursor,
rewriting the title, hiding text), and bidirectional overrides reorder what is
shown. Every such string passes through :func:`terminal_safe` where it enters
keck-top, so every later consumer (TUI, tables, JSON printed by a user) gets
text without them.
"""
from __future__ import annotations

import unicodedata

REPLACEMENT = "\N{REPLACEMENT CHARACTER}"


def terminal_safe(text: str, limit: int | None = None) -> str:
    """``text`` with control and format characters replaced, cut to at most ``limit``
    characters (the last one an ellipsis when cut).

    Tabs, newlines and other line or paragraph separators become one space (a
    command line's arguments stay readable); C0/C1 controls, DEL, format
    characters (bidirectional overrides, zero-width marks) and lone surrogates
    become U+FFFD. Other characters, unassigned ones included, are kept.
    """
    if limit is not None and len(text) > limit:
        text = text[:max(0, limit - 1)] + "…"
    if text.isprintable():  # the common case, in C
        return text
    return "".join(_safe_char(ch) for ch in text)


def _safe_char(ch: str) -> str:
    if ch.isprintable():
        return ch
    category = unicodedata.category(ch)
    if category in _SPACES or ch in "\t\n\r\v\f":
        return " "
    return REPLACEMENT if category in _UNSAFE else ch


_SPACES = frozenset({"Zs", "Zl", "Zp"})
_UNSAFE = frozenset({"Cc", "Cf", "Cs"})
