"""User-facing errors: what was wrong, where, and what is allowed."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class SpecError(Exception):
    """A problem with user input found before any trial starts.

    The CLI prints it as one message and exits with code 2, without a traceback.
    """

    def __init__(self, message: str, *, field: str | None = None, file: str | None = None):
        super().__init__(message)
        self.message = message
        self.field = field
        self.file = file

    def __str__(self) -> str:
        where = ": ".join(p for p in (self.file, self.field) if p)
        return f"{where}: {self.message}" if where else self.message


def did_you_mean(name: str, options: Iterable[str]) -> str:
    """' Did you mean `x`?' for the closest option (a prefix match first), or ''."""
    opts = list(options)
    prefix = [o for o in opts if o.startswith(str(name)) or str(name).startswith(o)]
    close = prefix or difflib.get_close_matches(str(name), opts, n=1, cutoff=0.6)
    return f" Did you mean `{close[0]}`?" if close else ""


def unknown_name(kind: str, name: object, options: Iterable[str]) -> str:
    """The message for a name that is not one of `options`."""
    opts = sorted(options)
    return f"unknown {kind} `{name}`.{did_you_mean(str(name), opts)} Allowed: {', '.join(opts)}."
