"""One exception type for mistakes a user can fix.

The CLI prints a :class:`MnasError` as one line and exits with code 2; anything
else is a bug and keeps its traceback.
"""

from __future__ import annotations


class MnasError(Exception):
    """Bad input: the message names what is wrong and, where possible, how to fix it."""

    exit_code = 2
