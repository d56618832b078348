"""Jinja2 templates: emails come as `email/<template>.subject.txt` + `email/<template>.txt`.

The templates live in the repository's `templates/` and ship inside the package as
`inboxdesk/templates` (pyproject's package-dir), so a checkout and an installed wheel find them
the same way. `missing_templates()` is asked at start-up: a letter that cannot be written must
stop the daemon, not turn every message into an error.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, TemplateError, TemplateNotFound

_HERE = Path(__file__).resolve().parent
# Installed from a wheel: inside the package; in a checkout (or an editable install): beside it.
TEMPLATES = next((p for p in (_HERE / "templates", _HERE.parent / "templates") if p.is_dir()),
                 _HERE / "templates")

# Every email the desk writes (each is a subject and a body template).
EMAILS = ("ack", "appeal_ack", "appeal_answer", "appeal_extended", "appeal_in_review", "auto_closed",
          "department_done", "department_new", "feedback_reminder", "form_incomplete",
          "refused_attachments", "reply", "status_changed", "status_closed", "status_feedback",
          "status_in_work", "status_resolved")


@lru_cache(maxsize=1)
def environment() -> Environment:
    # Plain-text email: no HTML autoescaping; StrictUndefined makes a missing variable an error
    # in tests rather than a silently empty line in a letter.
    return Environment(loader=FileSystemLoader(TEMPLATES), undefined=StrictUndefined,
                       keep_trailing_newline=True, trim_blocks=True, lstrip_blocks=True)


def render(path: str, **context: Any) -> str:
    """Render `templates/<path>`."""
    return environment().get_template(path).render(**context)


def render_email(template: str, **context: Any) -> tuple[str, str]:
    """(subject, body) of the email template `templates/email/<template>`."""
    subject = " ".join(render(f"email/{template}.subject.txt", **context).split())
    return subject, render(f"email/{template}.txt", **context)


def missing_templates() -> list[str]:
    """One line per template that cannot be loaded (absent or broken); empty when all load."""
    problems = []
    for name in EMAILS:
        for path in (f"email/{name}.subject.txt", f"email/{name}.txt"):
            try:
                environment().get_template(path)
            except TemplateError as exc:
                problems.append(f"templates: {TEMPLATES / path}: "
                                f"{'not found' if isinstance(exc, TemplateNotFound) else exc}")
    return problems
