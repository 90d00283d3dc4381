"""Errors a user can fix: what went wrong, and what to do about it.

``dkt-stack`` prints every expected failure as one line,
``dkt-stack <command>: <what> — <fix>`` (see :mod:`dkt_stack.cli`). Library code
raises :class:`UserError` (or a subclass, e.g. ``BagError``, ``WeightsError``)
with the fix as a separate argument, so the message stays one line and the
fix is never lost when the error is re-raised with more context.
"""

from __future__ import annotations

#: separates what went wrong from the fix in one-line messages
FIX_SEPARATOR = " — "


class UserError(ValueError):
    """An expected failure: ``what`` went wrong (one line) and the ``fix`` (a command, an option, a path).

    A ValueError, so code that already catches ValueError for bad input keeps working.
    """

    def __init__(self, what: str, fix: str = ""):
        self.what, self.fix = str(what), str(fix)
        super().__init__(f"{self.what}{FIX_SEPARATOR}{self.fix}" if self.fix else self.what)


def one_line(text: str) -> str:
    """``text`` with its lines joined by '; ' (multi-line library messages on one stderr line)."""
    return "; ".join(line.strip() for line in str(text).splitlines() if line.strip())
