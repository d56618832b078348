"""Issue 9, letters built to hurt: each is handled in time close to linear in its size and gets
a disposition, at its size as found and at 10 MB; a letter with a part the parser cannot take
apart keeps its sender, subject and text. (How long each takes is measured by
`benchmarks/hostile.py`, not asserted here.)
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.story import HELP, cli, cli_json, maildir_settings

MB10 = 10 * 1024 * 1024
SENDER = "i.petrova@sev.gov.ru"


def hostile_letters(big: int | None = None) -> dict[str, bytes]:
    """The inputs of issue 9 (`big`: their 10 MB variants), as raw mail to the support mailbox."""
    def raw(from_header: str, body: str, ctype: str = "text/plain") -> bytes:
        return (f"From: {from_header}\r\nTo: {HELP}\r\nSubject: Заявка\r\n"
                f"Content-Type: {ctype}; charset=utf-8\r\n\r\n").encode() + body.encode()
    return {
        "html_lt": raw(SENDER, "<" * (big or 1_100_000), "text/html"),
        "from_spaces": raw("x" + " " * (big or 100_000) + "y", "Текст"),
        "blank_lines": raw(SENDER, "Не работает печать\n" + "\n" * (big or 50_000) + "Петрова, 55-12-34"),
    }


def nested(depth: int) -> bytes:
    body = "Content-Type: text/plain; charset=utf-8\r\n\r\nНе открывается расписание врача\r\n"
    for i in range(depth):
        body = f'Content-Type: multipart/mixed; boundary="b{i}"\r\n\r\n--b{i}\r\n{body}\r\n--b{i}--\r\n'
    return (f"From: Петрова <{SENDER}>\r\nTo: {HELP}\r\nSubject: Глубокая вложенность\r\n"
            f"MIME-Version: 1.0\r\n{body}").encode()


@pytest.fixture
def config(tmp_path, db_url) -> Path:
    return maildir_settings(tmp_path, db_url)


@pytest.mark.parametrize("big", [None, MB10], ids=["as-found", "10MB"])
def test_hostile_letters_each_get_a_disposition(tmp_path, config, big):
    files = []
    for name, raw in hostile_letters(big).items():
        files.append(tmp_path / f"{name}.eml")
        files[-1].write_bytes(raw)
    status, out = cli(config, "ingest", "--mailbox", "help", *map(str, files))
    assert status == 0, out
    inbound = {r["id"]: r for r in cli_json(config, "inbound", "list")}
    html, spaces, blanks = (inbound[i] for i in (1, 2, 3))
    assert html["disposition"] == "ticket"  # an allowed sender; the text is what could be read
    assert spaces["disposition"] == "filtered"  # no mail client writes such a From
    assert spaces["reasons"][0].endswith("заголовок From длиннее 4096 символов")
    assert blanks["disposition"] == "ticket"


def test_a_part_the_parser_cannot_take_apart_keeps_sender_subject_and_text(tmp_path, config):
    """1,000 nested multiparts: the stdlib parser gives up (RecursionError); the letter is still
    the sender's ticket with its text, and the record says it was read only in part."""
    path = tmp_path / "nested.eml"
    path.write_bytes(nested(1000))
    assert cli(config, "ingest", "--mailbox", "help", str(path))[0] == 0
    [record] = cli_json(config, "inbound", "list")
    assert record["disposition"] == "ticket" and record["from"] == SENDER
    assert record["reasons"][-1] == "письмо разобрано не полностью: unparseable-body:RecursionError"
    [ticket] = cli_json(config, "tickets", "list")
    assert ticket["subject"] == "Глубокая вложенность"
    body = cli_json(config, "tickets", "show", ticket["id"])["messages"][0]["body"]
    assert "Не открывается расписание врача" in body and "Content-Type" not in body


def test_a_letter_over_the_parse_budget_is_read_for_its_headers(tmp_path, config, monkeypatch):
    """Issue 9: the parse stage has a budget per message (64 MB; 1 MB here): a bigger letter is
    recorded whole, read for its sender and subject, and its record says why the body was not."""
    from mailflow import parsing

    monkeypatch.setattr(parsing, "MAX_PARSE_BYTES", 1024 * 1024)
    path = tmp_path / "big.eml"
    path.write_bytes((f"From: {SENDER}\r\nTo: {HELP}\r\nSubject: Большой архив\r\n"
                      "Content-Type: text/plain; charset=utf-8\r\n\r\n").encode() + b"x" * (3 * 1024 * 1024))
    assert cli(config, "ingest", "--mailbox", "help", str(path))[0] == 0
    [record] = cli_json(config, "inbound", "list")
    assert record["disposition"] == "ticket" and record["subject"] == "Большой архив"
    assert record["reasons"][-1] == "письмо разобрано не полностью: unparseable-body:MessageTooBig 3 MB"
