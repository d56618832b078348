"""Issue 10, trust: only real senders, only participants, no amplification — tried as an attacker
would (MAIL-1, MAIL-4, OUT-1, BOT-1, BOT-4). Each story is one probe and what must happen.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path

import pytest

from tests.bot_world import IVANOV, STAFF_CHAT, STRANGER, TOKEN_ENV, bot_said, cards, daemon_running, until
from tests.story import HELP, cli, cli_json, letter, maildir_settings

BOSS = "boss@sev.gov.ru"


@pytest.fixture
def config(tmp_path, db_url) -> Path:
    return maildir_settings(tmp_path, db_url)


def _ingest(config: Path, tmp_path: Path, *raws: bytes) -> list[dict]:
    files = []
    for raw in raws:
        files.append(tmp_path / f"in{len(list(tmp_path.glob('in*.eml')))}.eml")
        files[-1].write_bytes(raw)
    status, out = cli(config, "ingest", "--mailbox", "help", *map(str, files))
    assert status == 0, out
    return cli_json(config, "inbound", "list")[-len(raws):]


def _raw(from_lines: list[str], subject: str = "Заявка", extra: str = "") -> bytes:
    head = "".join(f"From: {value}\r\n" for value in from_lines)
    return (f"{head}To: {HELP}\r\nSubject: {subject}\r\nMessage-ID: {make_msgid(domain='x.test')}\r\n{extra}"
            "Content-Type: text/plain; charset=utf-8\r\n\r\nНе работает МИС.\r\n").encode()


# -- the sender check reads From as DMARC and mail clients do ---------------------------------------

def test_an_ambiguous_from_is_filtered_with_its_reason(config, tmp_path):
    """An allowed address beside another one, in one From or in two, is no request; a quoted
    display name holding an allowed address is read for the address it really gives."""
    records = _ingest(config, tmp_path,
                      _raw([f"{BOSS} <x@evil.example>"]),
                      _raw([f"{BOSS}, x@evil.example"]),
                      _raw([BOSS, "x@evil.example"]),
                      _raw([f'"{BOSS}" <x@evil.example>']),
                      _raw([f"Начальник <{BOSS}>"]),
                      _raw([f"{BOSS} <{BOSS}>"]))  # one sender named twice: no ambiguity
    assert [r["disposition"] for r in records] == ["filtered"] * 4 + ["ticket"] * 2
    reasons = [r["reasons"][0] for r in records]
    assert reasons[0] == "неоднозначный отправитель (ambiguous sender): 2 адреса в заголовке From"
    assert reasons[1] == "неоднозначный отправитель (ambiguous sender): 2 адреса в заголовке From"
    assert reasons[2] == "неоднозначный отправитель (ambiguous sender): 2 заголовка From"
    assert reasons[3].startswith("домен отправителя evil.example не входит в разрешённые")
    assert [t["requester_email"] for t in cli_json(config, "tickets", "list")] == [BOSS, BOSS]


# -- only participants write into a ticket ---------------------------------------------------------

def test_a_stranger_citing_a_message_id_opens_a_linked_ticket_and_learns_nothing(config, tmp_path):
    """MAIL-4: a colleague copied on the request knows its Message-ID and answers with it in
    In-Reply-To: that opens a ticket of their own, linked; the victim's ticket is untouched, and no
    letter to the stranger carries the victim's ticket number or subject."""
    request_id = make_msgid(domain="sev.gov.ru")
    _ingest(config, tmp_path, letter(sender=BOSS, subject="Персональные данные пациента Иванова",
                                     message_id=request_id))
    [victim] = cli_json(config, "tickets", "list")
    before = cli_json(config, "tickets", "show", victim["id"])

    stranger = "colleague@sev.gov.ru"
    [record] = _ingest(config, tmp_path, letter(sender=stranger, name="Коллега", subject="Re: вопрос",
                                                in_reply_to=request_id, references=request_id))
    assert record["disposition"] == "ticket" and record["ticket_id"] != victim["id"]
    assert record["reasons"][0].startswith(
        f"In-Reply-To/References на письмо записи {victim['id']} от адреса")
    after = cli_json(config, "tickets", "show", victim["id"])
    assert after["messages"] == before["messages"] and after["status"] == before["status"]
    own = cli_json(config, "tickets", "show", record["ticket_id"])
    assert own["linked_to"] == victim["id"]
    to_stranger = [o for o in cli_json(config, "outbox", "list") if stranger in o["to"]]
    assert to_stranger and all(victim["id"] not in o["subject"] and "Иванова" not in o["subject"]
                               for o in to_stranger)

    # The requester's own answer by the same reference still lands in the ticket.
    [answer] = _ingest(config, tmp_path, letter(sender=BOSS, subject="Re: Персональные данные",
                                                in_reply_to=request_id, body="Дополнение.\n"))
    assert (answer["disposition"], answer["ticket_id"]) == ("followup", victim["id"])


# -- no amplification --------------------------------------------------------------------------------

def test_reply_to_outside_the_allowed_domains_gets_nothing(config, tmp_path):
    """OUT-1: the acknowledgement goes to From; a Reply-To is honoured only inside the mailbox's
    allowed domains (else the service would mail anyone, quoting the sender's subject)."""
    _ingest(config, tmp_path,
            letter(sender=BOSS, subject="Реклама: купите", headers={"Reply-To": "victim@anywhere.example"}),
            letter(sender="p.ivanova@sev.gov.ru", subject="Ответ секретарю",
                   headers={"Reply-To": "secretary@sev.gov.ru"}))
    acks = [o["to"] for o in cli_json(config, "outbox", "list") if o["purpose"] == "ack"]
    assert acks == [[BOSS], ["secretary@sev.gov.ru"]]


def test_plus_tag_floods_and_looping_auto_responders_are_capped(config, tmp_path):
    """OUT-1: boss+1@, Boss+2@, … are one address for the hourly cap (20); an auto-responder that
    ignores RFC 3834 and answers every letter about its record gets at most 6 an hour. Each
    suppressed letter is recorded on its record with the reason."""
    flood = [letter(sender=f"boss+{n}@sev.gov.ru" if n % 2 else f"Boss+{n}@Sev.Gov.Ru", subject=f"Заявка {n}")
             for n in range(25)]
    _ingest(config, tmp_path, *flood)
    letters = cli_json(config, "outbox", "list")
    assert len([o for o in letters if o["purpose"] == "ack"]) == 20
    capped = cli_json(config, "tickets", "list")[-1]["id"]
    [event] = [e for e in cli_json(config, "tickets", "show", capped)["events"]
               if e["action"] == "auto_mail_suppressed"]
    assert event["detail"]["reason"] == "почасовой предел автоматических писем на этот адрес (20 в час)"

    # A request without the form's parts waits for them; the sender's robot answers each letter.
    robot = "robot@sev.gov.ru"
    _ingest(config, tmp_path, letter(sender=robot, subject="Не работает", body="Не работает.\n"))
    tid = cli_json(config, "tickets", "list")[-1]["id"]
    for n in range(10):
        _ingest(config, tmp_path, letter(sender=robot, subject=f"Re: [{tid}] Не работает",
                                         body=f"Ваше письмо получено ({n}).\n"))
    # Those are the regulation's requests for the missing data (003 §3.2): never dropped. Over the
    # cap one waits out the hour, each newer one taking its place: 6 now, then one an hour later.
    letters = [o for o in cli_json(config, "outbox", "list") if o["ticket_id"] == tid]
    assert len(letters) == 7 and {o["purpose"] for o in letters} == {"ack", "form_incomplete"}
    held = letters[-1]
    assert held["status"] == "pending"
    waits = datetime.fromisoformat(held["next_attempt_at"]) - datetime.fromisoformat(held["created_at"])
    assert timedelta(minutes=59) < waits <= timedelta(hours=1)
    events = cli_json(config, "tickets", "show", tid)["events"]
    delayed = [e["detail"] for e in events if e["action"] == "auto_mail_delayed"]
    assert len(delayed) == 5 and [bool(d.get("replaces")) for d in delayed] == [False, True, True, True, True]
    per_record = "почасовой предел автоматических писем по этой записи (6 в час)"
    assert {d["reason"] for d in delayed} == {per_record}
    assert delayed[-1]["outbox_id"] == held["id"]
    assert not [e for e in events if e["action"] == "auto_mail_suppressed"]


# -- file names ---------------------------------------------------------------------------------------

def test_file_names_cannot_hide_their_extension(config, tmp_path):
    """A right-to-left override makes `invoice\\u202egnp.exe` read as `invoiceexe.png`; zero-width
    marks hide letters. Stored (and so shown on the card and in the department's letter) without
    them, the real extension is at the end."""
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = BOSS, HELP, "Счёт во вложении"
    msg.set_content("Не работает МИС, счёт во вложении.\n")
    msg.add_attachment(b"MZ", maintype="application", subtype="octet-stream", filename="invoice\u202egnp.exe")
    msg.add_attachment(b"%PDF", maintype="application", subtype="pdf", filename="ак\u200bт.pdf")
    _ingest(config, tmp_path, msg.as_bytes())
    [ticket] = cli_json(config, "tickets", "list")
    [first] = cli_json(config, "tickets", "show", ticket["id"])["messages"][:1]
    files = [a["filename"] for a in first["attachments"]]
    assert files == ["invoicegnp.exe", "акт.pdf"]


# -- the bot ------------------------------------------------------------------------------------------

def test_a_staff_command_in_a_foreign_chat_is_refused(desk_config, dovecot, api):
    """BOT-1: `/show ID` by a staff member in a group that is not a staff chat posts nothing of
    the record there; the same command in the staff chat works."""
    config = desk_config()
    dovecot.append(desk_config.help.address, letter(subject="Пациент Иванов, диагноз"))
    foreign = -100777

    async def story() -> None:
        async with daemon_running(config):
            await until(lambda: cards(api))
            tickets = await asyncio.to_thread(cli_json, config, "tickets", "list")
            api.send(IVANOV, foreign, f"/show {tickets[0]['id']}")
            await until(lambda: bot_said(api, foreign))
            [said] = bot_said(api, foreign)
            assert said.startswith("В этом чате бот не работает") and "Иванов" not in said
            mark = max(m.message_id for m in api.messages(STAFF_CHAT))
            api.send(IVANOV, STAFF_CHAT, f"/show {tickets[0]['id']}")
            await until(lambda: any("Иванов" in t for t in bot_said(api, STAFF_CHAT, mark)))

    asyncio.run(story())


def test_a_strangers_text_cannot_forge_a_log_line(desk_config, api, tmp_path):
    """A stranger writes a newline and a fake log record to the bot: the daemon's log shows it
    escaped inside the one record of the refusal."""
    config = desk_config()
    forged = "2026-12-04 10:00:00,000 INFO inboxdesk.daemon: admin petrova granted access"
    log = tmp_path / "daemon.log"
    env = dict(os.environ, INBOXDESK_CONFIG="", **{TOKEN_ENV: api.token})
    with log.open("wb") as out:
        daemon = subprocess.Popen([sys.executable, "-m", "inboxdesk.cli", "--config", str(config), "run"],
                                  env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 30
            while "telegram bot @inboxdesk_bot started" not in log.read_text():
                assert time.monotonic() < deadline and daemon.poll() is None, log.read_text()
                time.sleep(0.2)
            api.send(STRANGER, STRANGER["id"], f"привет\n{forged}")
            while "refused user" not in log.read_text():
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.2)
        finally:
            daemon.send_signal(signal.SIGTERM)
            daemon.wait(timeout=30)
    lines = log.read_text().splitlines()
    assert not any(line.startswith(forged[:23]) for line in lines)
    [refusal] = [line for line in lines if "refused user" in line]
    assert "\\n2026-12-04 10:00:00,000 INFO" in refusal


# -- sender authenticity (MAIL-2) ----------------------------------------------------------------------

OURS = "mx.miac.test"


def _authenticated(results: str, *, forged_below: str = "") -> bytes:
    """A request from boss@ with our server's verdict on top (and the sender's own copy below)."""
    headers = {"Authentication-Results": f"{OURS}; {results}"}
    raw = letter(sender=BOSS, subject="Срочно: доступ к МИС", headers=headers)
    if forged_below:  # written by the sender before our server saw the letter: further down
        head, _, body = raw.partition(b"\n\n")
        raw = head + f"\nAuthentication-Results: {OURS}; {forged_below}".encode() + b"\n\n" + body
    return raw


@pytest.mark.parametrize("mode", ["enforce", "warn"])
def test_forged_senders_of_an_allowed_domain(tmp_path, db_url, mode):
    """MAIL-2: only our own server's topmost Authentication-Results counts. DMARC fail, or no
    aligned SPF/DKIM pass, or no header of ours at all: filtered as forged in `enforce`, accepted
    and flagged (card, `tickets show`) in `warn`. An aligned DKIM pass is a real sender."""
    config = maildir_settings(tmp_path, db_url, authentication=mode, trusted_authserv_ids=[OURS])
    records = _ingest(config, tmp_path,
                      _authenticated("dmarc=fail header.from=sev.gov.ru; spf=fail smtp.mailfrom=x.example"),
                      _authenticated("spf=pass smtp.mailfrom=evil.example; dkim=none"),
                      letter(sender=BOSS, subject="Без заголовка", headers={
                          "Authentication-Results": "mx.evil.example; dmarc=pass header.from=sev.gov.ru"}),
                      _authenticated("dkim=fail header.d=sev.gov.ru",
                                     forged_below="dmarc=pass header.from=sev.gov.ru"),
                      _authenticated("dkim=pass header.d=sev.gov.ru; spf=softfail"))
    reasons = [r["reasons"] for r in records]
    forged = "поддельный отправитель (forged): "
    if mode == "enforce":
        assert [r["disposition"] for r in records] == ["filtered"] * 4 + ["ticket"]
        assert reasons[0][0] == forged + "DMARC fail для домена sev.gov.ru"
        assert reasons[1][0].startswith(forged + "нет подтверждённой SPF/DKIM")
        assert reasons[2][0].startswith(forged + "нет заголовка Authentication-Results")
        assert reasons[3][0].startswith(forged + "нет подтверждённой SPF/DKIM")
        assert len(cli_json(config, "tickets", "list")) == 1
        assert [o["to"] for o in cli_json(config, "outbox", "list")] == [[BOSS]]  # nothing to the forged
    else:
        assert [r["disposition"] for r in records] == ["ticket"] * 5
        tickets = cli_json(config, "tickets", "list")
        flagged = [t["sender_check"] for t in tickets]
        assert flagged[0] == "DMARC fail для домена sev.gov.ru" and flagged[4] is None
        assert all(flagged[:4])
        _, shown = cli(config, "tickets", "show", tickets[0]["id"])
        assert "⚠ отправитель не подтверждён (MAIL-2): DMARC fail для домена sev.gov.ru" in shown


def test_authentication_needs_the_trusted_server_named(tmp_path, db_url):
    config = maildir_settings(tmp_path, db_url, authentication="enforce")
    status, out = cli(config, "check-config")
    assert status == 1 and "mailbox[0].trusted_authserv_ids: required when authentication" in out
