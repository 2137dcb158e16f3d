"""Row ids: one mapping from arbitrary text (host, cgroup, pod, cluster names) to an id.

Ids are joined with ``/`` into paths (the agent's ``?path=``, the energy ledger, the
UI's zoom), so an id must not contain ``/``: it becomes ``∕`` (U+2215 DIVISION SLASH),
which reads the same and is no separator. Surrounding white space is dropped and an
empty text becomes ``(unnamed)``.
"""
from __future__ import annotations

SLASH_STANDIN = "\u2215"
UNNAMED = "(unnamed)"


def safe_id(text: object) -> str:
    """A row id from arbitrary text (``rack/1`` → ``rack∕1``)."""
    out = str(text).strip() or UNNAMED
    return out.replace("/", SLASH_STANDIN)
