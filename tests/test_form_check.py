"""MAIL-8 request-form check on realistic requests (tests/fixtures/requests/*.txt).

Each fixture: a header (subject, attachments "name type; ...", missing: mandatory part keys or "-",
optional attachments_only: yes, expect: key=value; ..., note), a line "---", then the body.
The test prints the measured accuracy and asserts every fixture is classified as written.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from inboxdesk.form_check import MANDATORY, PARTS, check_request
from inboxdesk.templating import render_email

FIXTURES = Path(__file__).parent / "fixtures" / "requests"


@dataclass
class Fixture:
    name: str
    subject: str
    attachments: list[tuple[str, str]]
    missing: tuple[str, ...]
    attachments_only: bool
    expect: dict[str, str]
    body: str


def _load(path: Path) -> Fixture:
    head, body = path.read_text(encoding="utf-8").split("\n---\n", 1)
    meta: dict[str, str] = {}
    for line in head.splitlines():
        key, _, value = line.partition(":")
        meta[key.strip()] = value.strip()
    attachments = []
    for item in filter(None, (a.strip() for a in meta.get("attachments", "").split(";"))):
        name, _, ctype = item.rpartition(" ")
        attachments.append((name, ctype))
    missing = tuple(k.strip() for k in meta["missing"].split(",") if k.strip() not in ("", "-"))
    expect = dict(p.strip().split("=", 1) for p in meta.get("expect", "").split(";") if "=" in p)
    return Fixture(path.stem, meta.get("subject", ""), attachments, missing,
                   meta.get("attachments_only") == "yes", expect, body)


CASES = [_load(p) for p in sorted(FIXTURES.glob("*.txt"))]


def _digits(phone: str) -> str:
    d = re.sub(r"\D", "", phone)
    return "7" + d[1:] if len(d) == 11 and d[0] == "8" else d


def test_fixture_set_is_big_and_varied() -> None:
    assert len(CASES) >= 30
    known = set(PARTS)
    for case in CASES:
        assert set(case.missing) <= known, case.name
    assert sum(not c.missing for c in CASES) >= 15  # complete requests: the false-request rate
    assert sum(bool(c.missing) for c in CASES) >= 15


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_fixture(case: Fixture) -> None:
    got = check_request(case.subject, case.body, case.attachments)
    assert got.missing == tuple(k for k in PARTS if k in case.missing), got
    assert got.attachments_only == case.attachments_only
    for key, value in case.expect.items():
        if key == "phone":
            assert _digits(got.found.get("phone", "")) == _digits(value)
        else:
            assert got.found.get(key) == value, (key, got.found)


def test_measured_accuracy(capsys: pytest.CaptureFixture[str]) -> None:
    complete = [c for c in CASES if not c.missing]
    incomplete = [c for c in CASES if c.missing]
    exact = flagged_complete = passed_incomplete = 0
    for case in CASES:
        got = check_request(case.subject, case.body, case.attachments)
        expected = tuple(k for k in PARTS if k in case.missing)
        exact += got.missing == expected and got.attachments_only == case.attachments_only
        flagged_complete += not case.missing and bool(got.missing)
        passed_incomplete += bool(case.missing) and not got.missing
    accuracy = exact / len(CASES)
    false_request = flagged_complete / len(complete)
    missed = passed_incomplete / len(incomplete)
    with capsys.disabled():
        print(f"\nform check on {len(CASES)} requests "
              f"({len(complete)} complete, {len(incomplete)} incomplete): "
              f"exact {exact}/{len(CASES)} = {accuracy:.0%}; false-request rate "
              f"{flagged_complete}/{len(complete)} = {false_request:.0%}; missed-incomplete rate "
              f"{passed_incomplete}/{len(incomplete)} = {missed:.0%}")
    assert accuracy == 1.0 and false_request == 0 and missed == 0


def test_issue_example_names_exactly_phone_and_login() -> None:
    case = next(c for c in CASES if c.name.startswith("04_"))
    got = check_request(case.subject, case.body, case.attachments)
    assert got.missing_names == [PARTS["phone"], PARTS["login"]]
    subject, body = render_email("form_incomplete", ticket=_Ticket(), name="Кравченко Елена Николаевна",
                                 missing=got.missing_names, attachments_only=False)
    assert "[HD-2026-000123]" in subject
    listed = [line.strip()[2:] for line in body.splitlines() if line.startswith("  - ")]
    assert listed == got.missing_names
    # The Appendix-1 form is reproduced to fill in.
    for label in ("Данные о заявителе", "ФИО пользователя, логин", "Данные пациента",
                  "Последовательность выполняемых действий", "Описание ошибки", "Скриншоты"):
        assert label in body


def test_attachments_only_letter_explains_3_1() -> None:
    case = next(c for c in CASES if c.name.startswith("07_"))
    got = check_request(case.subject, case.body, case.attachments)
    _, body = render_email("form_incomplete", ticket=_Ticket(), name="", missing=got.missing_names,
                           attachments_only=got.attachments_only)
    assert "3.1" in body and ".doc" in body


def test_answer_completes_the_request() -> None:
    case = next(c for c in CASES if c.name.startswith("04_"))
    answer = "Телефон: 8 (8692) 33-44-55\nЛогин: kravchenko_en"
    got = check_request(case.subject, case.body + "\n" + answer, case.attachments)
    assert got.complete and got.found["login"] == "kravchenko_en"


def test_mandatory_set_is_data() -> None:
    assert {"phone", "login"} <= set(MANDATORY["problem"])
    assert "login" not in MANDATORY["new_account"]
    assert all(k in PARTS for kind in MANDATORY.values() for k in kind)


class _Ticket:
    public_id = "HD-2026-000123"
    status = "Обратная связь"
    subject = "Ошибка при открытии журнала направлений"


def test_unfilled_form_fills_nothing() -> None:
    # The form from our own letter pasted back (or quoted under an answer) without values.
    _, letter = render_email("form_incomplete", ticket=_Ticket(), name="", missing=["x"])
    form = letter[letter.index("Данные о заявителе"):letter.index("В одной заявке")]
    got = check_request("Ошибка при открытии журнала направлений", form, [])
    assert set(got.missing) >= {"applicant_name", "organization", "phone", "login", "steps"}
    assert "error_text" not in got.present


def test_title_from_a_reply() -> None:
    body = "Логин: ivanova_mp. Иванова Мария Петровна, ГБУЗС «Городская больница №5», тел. 55-12-34. " \
           "Прошу сбросить пароль."
    # Replying to our own letters does not make a title ...
    ours = "Re: [HD-2026-000123] Заявка требует дополнения"
    assert "subject" in check_request(ours, body, []).missing
    ack = "RE: [HD-2026-000123] Заявка зарегистрирована: заявка"
    assert "subject" in check_request(ack, body, []).missing
    # ... a changed subject or a "Тема:" line in the answer does.
    assert check_request("Re: [HD-2026-000123] Сброс пароля к МИС", body, []).complete
    got = check_request(ours, "Тема: Сброс пароля к МИС\n" + body, [])
    assert got.complete and got.found["subject"] == "Сброс пароля к МИС"
