"""Issue 9: fuzzing in the repository. Hypothesis builds letters from hostile headers, MIME
structures and bodies, and mutates the shared corpora; every input must parse without raising,
and every input fed to intake must end with a recorded disposition. The number of examples is
bounded so CI stays in its time; how long each kind of input takes is measured by
`benchmarks/hostile.py`, not here.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from inboxdesk.app import App
from inboxdesk.domain import DISPOSITIONS
from inboxdesk.form_check import check_request
from inboxdesk.settings import load_settings
from mailflow.parsing import parse_message
from tests.story import maildir_settings

CORPORA = Path(__file__).resolve().parents[1].parent / "shared" / "corpora"
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                          HealthCheck.function_scoped_fixture])

_HEADER_NAMES = ["From", "To", "Cc", "Reply-To", "Subject", "Message-ID", "In-Reply-To", "References", "Date",
                 "Content-Type", "Content-Transfer-Encoding", "Content-Disposition", "MIME-Version",
                 "Auto-Submitted", "Precedence", "List-Id", "Return-Path", "X-Inboxdesk-Loop"]
_TRICKY = ["", " ", "\t", ":", ";", ",", "<", ">", "\"", "=?", "?=", "=?utf-8?b?", "=?koi8-r?q?", "@", "\\",
           "(", ")", "[", "]", "\r", "\n", "\r\n", "\r\n ", "boundary=", "charset=", "multipart/mixed",
           "text/html", "message/rfc822", "base64", "quoted-printable", "sev.gov.ru", "Петрова", "--",
           "\x00", "\xff", "[HD-2026-000001]"]
_chunks = st.one_of(st.sampled_from(_TRICKY), st.text(max_size=40), st.binary(max_size=40).map(
    lambda b: b.decode("latin-1")))
_header_value = st.lists(_chunks, max_size=12).map("".join)
_headers = st.lists(st.tuples(st.sampled_from(_HEADER_NAMES), _header_value), max_size=12)
_body = st.one_of(st.binary(max_size=2000), st.lists(_chunks, max_size=60).map(
    lambda parts: "".join(parts).encode("utf-8", "surrogateescape")))


@st.composite
def letters(draw: st.DrawFn) -> bytes:
    """Headers in any order and shape over a flat, multipart or nested body."""
    head = "".join(f"{name}: {value}\r\n" for name, value in draw(_headers))
    depth = draw(st.integers(0, 4))
    body = draw(_body)
    for level in range(depth):
        boundary = draw(st.sampled_from(["b", f"b{level}", "", "b b", "=_x"]))
        inner = draw(st.sampled_from(["text/plain", "text/html", "message/rfc822", "application/pdf"]))
        body = (f'--{boundary}\r\nContent-Type: {inner}\r\n\r\n'.encode() + body
                + f"\r\n--{boundary}{draw(st.sampled_from(['--', '', '-']))}\r\n".encode())
        head_type = f'Content-Type: multipart/{draw(st.sampled_from(["mixed", "alternative", "digest"]))}; '
        body = (head_type + f'boundary="{boundary}"\r\n\r\n').encode() + body
    separator = draw(st.sampled_from([b"\r\n", b"\n", b"", b"\r"]))
    return head.encode("utf-8", "surrogateescape") + separator + body


@FUZZ
@given(raw=letters())
def test_any_letter_parses_without_raising(raw: bytes) -> None:
    msg = parse_message(raw)
    assert isinstance(msg.subject, str) and isinstance(msg.text, str)
    check_request(msg.subject, msg.text, [(a.filename, a.content_type) for a in msg.attachments])


def _corpus_files() -> list[Path]:
    return sorted(p for p in CORPORA.rglob("*") if p.is_file() and p.suffix in (".eml", ".txt", ".msg", ""))


def _mutate(raw: bytes, rnd: random.Random) -> bytes:
    data = bytearray(raw)
    for _ in range(rnd.randint(1, 8)):
        op = rnd.randrange(4)
        at = rnd.randrange(len(data) + 1)
        if op == 0 and data:  # flip a byte
            data[min(at, len(data) - 1)] = rnd.randrange(256)
        elif op == 1:  # insert something a parser may choke on
            data[at:at] = rnd.choice([b"\r\n", b"\r\n\r\n", b"--", b"=?utf-8?b?", b"<" * 50, b" " * 300,
                                      b"\n" * 200, b"\x00", b"Content-Type: multipart/mixed\r\n"])
        elif op == 2:  # cut
            del data[at:at + rnd.randint(1, 200)]
        else:  # repeat a slice
            data[at:at] = data[max(0, at - 100):at] * rnd.randint(1, 5)
    return bytes(data)


@pytest.mark.corpora
@pytest.mark.skipif(not CORPORA.is_dir(), reason=f"corpora not present at {CORPORA}")
def test_mutated_corpora_parse_without_raising() -> None:
    rnd = random.Random(9)
    files = _corpus_files()
    assert files
    for path in files:
        raw = path.read_bytes()
        for _ in range(3):
            parse_message(_mutate(raw, rnd))


@pytest.fixture(scope="module")
def desk(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fuzz")
    config = maildir_settings(folder, f"sqlite:///{folder / 'db.sqlite3'}")
    app = App(load_settings(config))
    yield app
    app.close()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(raws=st.lists(letters(), min_size=1, max_size=4))
def test_every_fuzzed_letter_gets_a_disposition(desk, raws: list[bytes]) -> None:
    """Fed through intake in one batch: a record for each, each with a disposition (none of them
    `error`, which would be an exception inside processing), never an exception out of intake."""
    stats = desk.intake.ingest(desk.settings.mailbox("help"), raws)
    assert stats.recorded == len(raws)
    assert stats.processed == len(raws)
    assert set(stats.dispositions) <= set(DISPOSITIONS)
    assert "error" not in stats.dispositions  # a failure inside processing is a bug, not a verdict
