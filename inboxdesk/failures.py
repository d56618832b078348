"""One line for a failure, the same in the daemon's log, `check-config` and `/readyz`: what
failed and the first line of why (a driver's own exception for the database; never a password)."""

from __future__ import annotations

from sqlalchemy.exc import DBAPIError

from mailflow.sources import SourceError


def failure_text(exc: BaseException) -> str:
    """One line for a failure: what failed and the first line of why (never a password)."""
    if isinstance(exc, SourceError):
        return str(exc)
    if isinstance(exc, DBAPIError):
        cause = exc.orig if exc.orig is not None else exc
        first = (str(cause).strip().splitlines() or [""])[0]
        return f"database: {type(cause).__name__}: {first}"
    first = (str(exc).strip().splitlines() or [""])[0]
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__
