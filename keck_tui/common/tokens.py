"""Bearer tokens from files: the agent's own (``serve --token-file``) and the ones clients send
(``attach --token-file``, fleet files). The content is never echoed in a message."""
from __future__ import annotations

import os
from pathlib import Path

from keck_tui.common.bounded import SMALL_FILE, BoundedInputError, read_file
from keck_tui.common.errors import UsageError


class TokenError(UsageError):
    """The token file is unusable (reported in one line by the command)."""


def load_token(path: str | os.PathLike[str]) -> str:
    """The token in ``path`` (surrounding whitespace stripped); never echoes its content."""
    p = Path(path)
    try:
        text = read_file(p, SMALL_FILE, "token file").decode("utf-8")
    except FileNotFoundError:
        raise TokenError(f"token file {p} does not exist") from None
    except BoundedInputError as exc:
        raise TokenError(str(exc)) from None
    except UnicodeDecodeError:
        raise TokenError(f"token file {p} is not UTF-8 text") from None
    except OSError as exc:
        raise TokenError(f"cannot read token file {p}: {exc.strerror or exc}") from None
    token = text.strip()
    if not token:
        raise TokenError(f"token file {p} is empty")
    if any(c.isspace() for c in token):
        raise TokenError(f"token file {p} holds whitespace inside the token")
    return token
