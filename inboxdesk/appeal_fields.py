"""APL-1: the fields of a citizen's appeal, read from a web form's `Поле: значение` lines or, for
a letter written by hand, from the From display name, the address, the subject and the body.

Pure functions: bytes were parsed already, nothing here touches the database.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from email_validator import EmailNotValidError, validate_email

# The regulation's fields, in its order (seed 000, item 1).
SURNAME, NAME, PATRONYMIC = "Фамилия", "Имя", "Отчество"
ADDRESS, EMAIL, TOPIC, CONTENT, FILE = ("Адрес", "Адрес электронной почты", "Тема вопроса",
                                        "Содержание обращения", "Файл")
FIELDS = (SURNAME, NAME, PATRONYMIC, ADDRESS, EMAIL, TOPIC, CONTENT, FILE)
MANDATORY = (SURNAME, NAME, EMAIL, TOPIC, CONTENT)

FULL_NAME = "ФИО"  # forms that ask for the name in one box
# Labels forms use for the same fields; matched case-insensitively, the longest first so that
# "Адрес электронной почты" is never read as "Адрес".
_ALIASES = {
    SURNAME: (SURNAME,), NAME: (NAME,), PATRONYMIC: (PATRONYMIC,),
    ADDRESS: (ADDRESS, "Почтовый адрес", "Адрес проживания"),
    EMAIL: (EMAIL, "Электронная почта", "E-mail", "Email", "Эл. почта", "Е-mail"),
    TOPIC: (TOPIC, "Тема обращения", "Тема"),
    CONTENT: (CONTENT, "Текст обращения", "Текст вопроса", "Сообщение", "Вопрос"),
    FILE: (FILE, "Файлы", "Прикреплённый файл", "Прикрепленный файл"),
    FULL_NAME: (FULL_NAME, "Ф.И.О.", "Ф.И.О"),
}
_LABELS = sorted(((alias, field) for field, aliases in _ALIASES.items() for alias in aliases),
                 key=lambda pair: -len(pair[0]))
_LINE = re.compile(
    # "3. Тема вопроса*: …": an optional item number, the label, a required-field star, a colon.
    r"^\s*(?:\d+(?:\.\d+)*\.?\s*)?(" + "|".join(re.escape(a) for a, _ in _LABELS)
    + r")\s*\*?\s*[:：]\s?(.*)$",
    re.IGNORECASE)
_BY_LOWER = {alias.lower(): field for alias, field in _LABELS}
_SIGNATURE = re.compile(r"^(--\s*|—+|_{3,})$")
# A letter with at least this many labelled lines came from a form, not from a person.
FORM_MIN_LABELS = 3


@dataclass(frozen=True)
class AppealFields:
    """The appeal's fields in the regulation's order, what is missing, and where they came from."""

    values: dict[str, str]
    missing: tuple[str, ...]
    source: str  # form | letter

    @property
    def full_name(self) -> str:
        return " ".join(v for v in (self.values[SURNAME], self.values[NAME], self.values[PATRONYMIC]) if v)


def labelled_lines(text: str) -> dict[str, str]:
    """`Поле: значение` lines of `text`; lines without a label continue the text field above."""
    found: dict[str, str] = {}
    current: str | None = None
    for raw in text.splitlines():
        match = _LINE.match(raw)
        if match:
            current = _BY_LOWER[match.group(1).lower()]
            if found.get(current):  # a repeated label: keep the first answer
                current = None
                continue
            found[current] = match.group(2).strip()
        elif _SIGNATURE.match(raw.strip()):
            current = None  # a signature or footer ends the form's last field
        elif current == CONTENT:
            found[current] = f"{found[current]}\n{raw.rstrip()}" if found[current] else raw.strip()
    if CONTENT in found:
        found[CONTENT] = found[CONTENT].strip()
    return found


def split_full_name(full: str) -> tuple[str, str, str]:
    """`Фамилия Имя Отчество` (DESIGN APL-1 order); a longer patronymic like `Оглы` stays whole."""
    parts = full.replace(",", " ").split()
    surname = parts[0] if parts else ""
    name = parts[1] if len(parts) > 1 else ""
    return surname, name, " ".join(parts[2:])


def valid_email(address: str) -> bool:
    """Syntax only: deliverability is the mail server's question (a bounce shows on the record).
    `test_environment` admits the reserved `.test` domain that lab and staging mail systems use."""
    try:
        validate_email(address, check_deliverability=False, test_environment=True)
    except EmailNotValidError:
        return False
    return True


def extract(*, from_name: str, from_addr: str, reply_to: Sequence[str], subject: str, body: str,
            filenames: Sequence[str]) -> AppealFields:
    """The appeal's fields from one message (APL-1). Nothing is ever dropped for being missing."""
    labelled = labelled_lines(body)
    is_form = len(labelled) >= FORM_MIN_LABELS
    values = dict.fromkeys(FIELDS, "")
    if is_form:
        # The From of a form letter is the site's robot: the applicant is only in the fields and,
        # on well-made forms, in Reply-To.
        values.update({k: v for k, v in labelled.items() if k in values})
        if not values[EMAIL] and reply_to:
            values[EMAIL] = reply_to[0]
    else:
        values[SURNAME], values[NAME], values[PATRONYMIC] = split_full_name(from_name)
        values[EMAIL] = from_addr
        values[TOPIC] = subject.strip()
        values[CONTENT] = body.strip()
        # A person may still write "Адрес: …" in the letter; such lines fill only empty fields.
        for key in (ADDRESS, PATRONYMIC):
            if not values[key] and labelled.get(key):
                values[key] = labelled[key]
    if labelled.get(FULL_NAME):  # one "ФИО" box fills whatever the separate fields left empty
        for key, part in zip((SURNAME, NAME, PATRONYMIC), split_full_name(labelled[FULL_NAME]), strict=True):
            values[key] = values[key] or part
    if filenames:
        values[FILE] = ", ".join(filenames)
    values = {k: " ".join(v.split()) if k != CONTENT else v for k, v in values.items()}
    values[EMAIL] = values[EMAIL].lower()
    missing = [k for k in MANDATORY if not values[k]]
    if values[EMAIL] and not valid_email(values[EMAIL]):
        missing.append(EMAIL)
    return AppealFields(values=values, missing=tuple(dict.fromkeys(missing)),
                        source="form" if is_form else "letter")
