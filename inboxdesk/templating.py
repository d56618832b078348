"""Jinja2 templates under `templates/`: emails come as `<template>.subject.txt` + `<template>.txt`."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"


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
