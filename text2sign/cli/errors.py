"""How an entry point ends on an error: a mistake in what the user gave (a value, a path, a
file, a run directory in use) in one line on stderr, a bug with its traceback."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

from text2sign.run.preflight import reason, user_error


@contextmanager
def one_line_errors(program: str, status: int = 2) -> Iterator[None]:
    try:
        yield
    except Exception as err:
        if not user_error(err):
            raise
        print(f"{program}: error: {reason(err)}", file=sys.stderr)
        raise SystemExit(status) from None
