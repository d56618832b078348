"""`check-config`: try every part the settings name and say plainly what is wrong."""

from __future__ import annotations

import asyncio
import os

from sqlalchemy import text

from inboxdesk.app import App
from mailflow.delivery import DeliveryError, SmtpTransport
from mailflow.sources import SourceError


def check_everything(app: App) -> list[str]:
    """One line per problem; an empty list means everything answered."""
    settings = app.settings
    problems: list[str] = []
    try:
        with app.db.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:  # any driver error is a problem to report, not a crash
        problems.append(f"database: {type(exc).__name__}: {str(exc).splitlines()[0]}")
    for i, box in enumerate(settings.mailboxes):
        if box.password_env and box.password_env not in os.environ:
            problems.append(f"mailbox[{i}].password_env: environment variable {box.password_env} is not set")
        source = app.source(box)
        try:
            source.open()
        except SourceError as exc:
            problems.append(f"mailbox {box.name}: {exc}")
        finally:
            source.close()
    out = settings.outbound
    if out.password_env and out.password_env not in os.environ:
        problems.append(f"outbound.password_env: environment variable {out.password_env} is not set")
    if out.transport == "smtp":
        problems += asyncio.run(_check_smtp(app))
    else:
        path = settings.resolve(out.path)
        try:
            path.mkdir(parents=True, exist_ok=True)
            probe = path / ".inboxdesk-write-test"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            problems.append(f"outbound.path: cannot write to {path}: {exc.strerror}")
    return problems


async def _check_smtp(app: App) -> list[str]:
    try:
        async with SmtpTransport(app.settings.outbound):
            return []
    except DeliveryError as exc:
        return [f"outbound: {exc}"]
