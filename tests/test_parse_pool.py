"""Parsing in worker processes (DESIGN §6) gives what parsing in the daemon gives, in order, and
survives a dying worker; the intake's batched duplicate check still catches every duplicate."""

from __future__ import annotations

import os
import signal

import pytest
from sqlalchemy import select

from inboxdesk.desk import Desk
from inboxdesk.settings import parse_settings
from mailflow import parse_pool
from mailflow.intake import GROUP, Intake
from mailflow.parse_pool import ParsePool, default_workers
from mailflow.parsing import parse_message
from storage.db import Database
from storage.models import InboundMessage, Ticket
from tests.story import letter


def _mails(n: int) -> list[bytes]:
    return [letter(sender=f"user{i}@sev.gov.ru", subject=f"Заявка {i}", message_id=f"<m{i}@sev.gov.ru>",
                   body=f"Текст заявки номер {i}.\n", charset="windows-1251" if i % 2 else "utf-8")
            for i in range(n)]


def test_workers_parse_like_the_daemon_in_order():
    raws = _mails(40)
    raws[7] = b"\x00\xff not a message at all"
    big = os.urandom(parse_pool.MAX_SHIPPED_BYTES)  # base64 makes the message bigger still: parsed here
    raws[20] = letter(subject="Большое", files=[("big.bin", "application/octet-stream", big)])
    pool = ParsePool(2, min_batch=4, chunk=3)
    try:
        assert list(pool.parse(raws)) == [parse_message(r) for r in raws]
        assert pool._executor is not None  # it really ran in workers
        assert list(pool.parse(raws[:3])) == [parse_message(r) for r in raws[:3]]  # small: here
    finally:
        pool.close()


def test_a_dying_worker_loses_nothing():
    raws = _mails(30)
    pool = ParsePool(2, min_batch=4, chunk=2)
    try:
        executor = pool._pool()
        assert executor is not None
        first = list(pool.parse(raws))
        for pid in list(executor._processes):
            os.kill(pid, signal.SIGKILL)
        again = list(pool.parse(raws))  # the broken pool's chunks are parsed here, then it restarts
        assert again == first == [parse_message(r) for r in raws]
        assert list(pool.parse(raws)) == first
    finally:
        pool.close()


def test_a_hung_worker_is_replaced(monkeypatch):
    raws = _mails(20)
    pool = ParsePool(2, min_batch=4, chunk=2)
    monkeypatch.setattr(parse_pool, "RESULT_TIMEOUT", 1.0)
    try:
        executor = pool._pool()
        assert list(pool.parse(raws[:4])) == [parse_message(r) for r in raws[:4]]  # workers up
        for pid in list(executor._processes):
            os.kill(pid, signal.SIGSTOP)
        assert list(pool.parse(raws)) == [parse_message(r) for r in raws]
        assert pool._executor is not executor
        assert list(pool.parse(raws)) == [parse_message(r) for r in raws]  # a new pool works
    finally:
        pool.close()


def test_no_workers_parses_here(monkeypatch):
    pool = ParsePool(0)
    monkeypatch.setattr(parse_pool, "ProcessPoolExecutor", None)  # would fail if it were used
    assert list(pool.parse(_mails(20))) == [parse_message(r) for r in _mails(20)]
    assert 0 <= default_workers() <= 2


@pytest.mark.parametrize("workers", [0, 2])
def test_duplicates_in_the_same_batch_and_group_are_recognised(tmp_path, workers):
    settings = parse_settings({
        "database": {"url": f"sqlite:///{tmp_path / 'db.sqlite3'}"}, "intake": {"workers": workers},
        "mailbox": [{"name": "help", "kind": "tickets", "address": "help@miac.test", "source": "maildir",
                     "path": "mail", "allowed_domains": ["sev.gov.ru"]}]}, tmp_path)
    db = Database(settings.database_url)
    db.migrate()
    intake = Intake(db, settings, Desk(settings), workers=workers)
    try:
        raws = _mails(GROUP + 10)
        # the same mail twice in one group, once more in the next group, and again in a later call
        raws = [*raws[:5], raws[2], *raws[5:], raws[1]]
        stats = intake.ingest(settings.mailboxes[0], raws)
        assert stats.dispositions == {"ticket": GROUP + 10, "duplicate": 2}
        assert intake.ingest(settings.mailboxes[0], raws[:3]).dispositions == {"duplicate": 3}
        with db.sessions() as s:
            assert len(s.scalars(select(Ticket)).all()) == GROUP + 10
            dups = s.scalars(select(InboundMessage).where(InboundMessage.disposition == "duplicate")).all()
            assert {d.message_id for d in dups} == {"<m0@sev.gov.ru>", "<m1@sev.gov.ru>", "<m2@sev.gov.ru>"}
            assert all(d.ticket_id is not None for d in dups)
    finally:
        intake.close()
        db.dispose()


def test_intake_workers_setting_is_strict(tmp_path):
    from inboxdesk.settings import SettingsError

    assert parse_settings({}, tmp_path).intake.workers is None
    assert parse_settings({"intake": {"workers": "auto"}}, tmp_path).intake.workers is None
    assert parse_settings({"intake": {"workers": 1}}, tmp_path).intake.workers == 1
    for bad in ("two", -1, True, 1.5):
        with pytest.raises(SettingsError, match=r"intake\.workers"):
            parse_settings({"intake": {"workers": bad}}, tmp_path)
    with pytest.raises(SettingsError, match=r"intake\.threads: unknown key"):
        parse_settings({"intake": {"threads": 2}}, tmp_path)


def test_form_checks_worked_out_by_the_workers_decide_as_the_desk_would(tmp_path, monkeypatch):
    import inboxdesk.desk
    from inboxdesk import form_check
    from tests.test_form_check import CASES

    cases = [c for c in CASES if not c.attachments] * 2  # letter() here sends no files
    raws = [letter(sender=f"u{i}@sev.gov.ru", subject=c.subject, body=c.body, message_id=f"<f{i}@sev.gov.ru>")
            for i, c in enumerate(cases)]
    answered_ahead: list[bool] = []

    def spy(*args, **kwargs):
        answered_ahead.append(form_check.ahead_key(*args, **kwargs) in form_check.AHEAD)
        return form_check.check_request(*args, **kwargs)

    monkeypatch.setattr(inboxdesk.desk, "check_request", spy)
    outcome = {}
    for workers in (0, 2):
        settings = parse_settings({
            "database": {"url": f"sqlite:///{tmp_path / f'w{workers}.sqlite3'}"},
            "mailbox": [{"name": "help", "kind": "tickets", "address": "help@miac.test", "source": "maildir",
                         "path": "mail", "allowed_domains": ["sev.gov.ru"]}]}, tmp_path)
        db = Database(settings.database_url)
        db.migrate()
        intake = Intake(db, settings, Desk(settings), workers=workers)
        answered_ahead.clear()
        try:
            intake.ingest(settings.mailboxes[0], raws)
        finally:
            intake.close()
        with db.sessions() as s:
            tickets = s.scalars(select(Ticket).order_by(Ticket.id))
            outcome[workers] = [(t.status, t.missing_fields) for t in tickets]
        db.dispose()
        # every distinct request was checked ahead (a repeated one is checked again by the desk)
        assert len(answered_ahead) == len(cases)
        assert sum(answered_ahead) == (len(cases) // 2 if workers else 0)
    assert outcome[0] == outcome[2] and len(outcome[0]) == len(cases)
    assert {status for status, _ in outcome[0]} == {"Новая", "Обратная связь"}
    assert not form_check.AHEAD  # nothing left behind
