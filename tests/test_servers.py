"""The test servers themselves work: IMAP round trip, UIDVALIDITY change, SMTP capture, PostgreSQL."""

from __future__ import annotations

import smtplib

import psycopg
import pytest
from imapclient import IMAPClient

from tests.servers import unavailable
from tests.servers.dovecot import DovecotServer, ImapAccount
from tests.servers.postgres import PostgresServer
from tests.servers.smtp import SmtpServer

RAW = b"From: a@example.test\r\nTo: help@example.test\r\nSubject: hello\r\nMessage-ID: <m1@x>\r\n\r\nbody\r\n"


def test_dovecot_append_and_read_back(dovecot: DovecotServer, imap_account: ImapAccount) -> None:
    user = imap_account.address
    uid = dovecot.append(user, RAW, flags=[b"\\Flagged"])
    uids = dovecot.append_many(user, [RAW.replace(b"m1", f"m{i}".encode()) for i in range(2, 12)])
    assert uid == 1 and uids == list(range(2, 12))
    messages = dovecot.folder_messages(user)
    assert [m[0] for m in messages] == list(range(1, 12))
    assert messages[0][2] == RAW and b"\\Flagged" in messages[0][1]
    assert all(b"\\Seen" not in flags for _uid, flags, _raw in messages)
    dovecot.append(user, RAW, folder="Archive")
    assert [m[2] for m in dovecot.folder_messages(user, "Archive")] == [RAW]
    assert dovecot.folder_messages(user, "Missing") == []


def test_dovecot_tls_ports(dovecot: DovecotServer, imap_account: ImapAccount) -> None:
    for security in ("starttls", "ssl"):
        client = dovecot.client(imap_account.address, security=security)
        assert client.select_folder("INBOX")[b"EXISTS"] == 0
        client.logout()


def test_dovecot_recreate_changes_uidvalidity(dovecot: DovecotServer, imap_account: ImapAccount) -> None:
    user = imap_account.address
    dovecot.append_many(user, [RAW, RAW])
    old = dovecot.uidvalidity(user)
    watcher = dovecot.client(user)
    watcher.select_folder("INBOX")
    new = dovecot.recreate_folder(user)
    assert new != old
    assert dovecot.uidvalidity(user) == new
    assert [m[0] for m in dovecot.folder_messages(user)] == [1, 2]  # renumbered, kept
    with pytest.raises((IMAPClient.AbortError, OSError)):
        watcher.noop()  # sessions are dropped, as a real migration would
    dovecot.append(user, RAW, folder="Other")
    other = dovecot.uidvalidity(user, "Other")
    assert dovecot.recreate_folder(user, "Other", keep_messages=False) != other
    assert dovecot.folder_messages(user, "Other") == []


def test_dovecot_restart_same_port(dovecot_factory) -> None:
    server = dovecot_factory()
    user = server.new_user().address
    server.append(user, RAW)
    port = server.port
    server.stop()
    with pytest.raises(OSError):
        IMAPClient(server.host, port=port, ssl=False, timeout=2)
    server.start()
    assert server.port == port and len(server.folder_messages(user)) == 1
    late = server.add_user("late@example.test", "pw")  # passwd-file is reread while running
    server.append(late.address, RAW)


def test_smtp_capture_and_refusals(smtp_server: SmtpServer) -> None:
    with smtplib.SMTP(smtp_server.host, smtp_server.port, timeout=5) as client:
        client.sendmail("bot@example.test", ["a@example.test", "b@example.test"],
                        "Subject: =?utf-8?b?0J/RgNC40LLQtdGC?=\r\n\r\nтекст\r\n".encode())
        smtp_server.fail_next(1, "tempfail")
        with pytest.raises(smtplib.SMTPDataError) as temp:
            client.sendmail("bot@example.test", ["a@example.test"], b"Subject: x\r\n\r\ny\r\n")
        assert temp.value.smtp_code == 451
        smtp_server.mode = "permfail"
        with pytest.raises(smtplib.SMTPDataError) as perm:
            client.sendmail("bot@example.test", ["a@example.test"], b"Subject: x\r\n\r\ny\r\n")
        assert perm.value.smtp_code == 550
    (msg,) = smtp_server.wait_for(1)
    assert msg.mail_from == "bot@example.test" and msg.rcpt_tos == ["a@example.test", "b@example.test"]
    assert msg.message["Subject"] == "Привет" and "текст".encode() in msg.raw
    assert smtp_server.attempts == 3


def test_smtp_auth_tls_and_restart() -> None:
    with SmtpServer(auth=("bot", "secret"), tls="starttls") as server:
        with smtplib.SMTP(server.host, server.port, timeout=5) as client:
            client.starttls()
            with pytest.raises(smtplib.SMTPSenderRefused):
                client.sendmail("bot@example.test", ["a@example.test"], b"Subject: x\r\n\r\ny\r\n")
            with pytest.raises(smtplib.SMTPAuthenticationError):
                client.login("bot", "wrong")
            client.login("bot", "secret")
            client.sendmail("bot@example.test", ["a@example.test"], b"Subject: x\r\n\r\ny\r\n")
        assert server.wait_for(1)[0].auth_login == "bot"
        server.stop()
        with pytest.raises(OSError):
            smtplib.SMTP(server.host, server.port, timeout=2)
        server.start()
        with smtplib.SMTP(server.host, server.port, timeout=5) as client:
            client.starttls()
            client.login("bot", "secret")
            client.sendmail("bot@example.test", ["a@example.test"], b"Subject: x\r\n\r\ny\r\n")
        assert len(server.wait_for(2)) == 2


@pytest.mark.postgres
def test_postgres_database_is_fresh(postgres_url: str, _pg_session_db: tuple[PostgresServer, str]) -> None:
    server, name = _pg_session_db
    assert postgres_url.endswith("/" + name) and name.startswith("inboxdesk_test_")
    with psycopg.connect(host=server.host, port=server.port, user=server.user, dbname=name) as conn:
        conn.execute("CREATE TABLE t (x int)")
        conn.commit()
    server.reset_database(name)
    with psycopg.connect(host=server.host, port=server.port, user=server.user, dbname=name) as conn:
        assert conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").fetchone() == (0,)


def test_db_url_is_empty(db_url: str) -> None:
    from sqlalchemy import create_engine, inspect

    engine = create_engine(db_url)
    try:
        assert inspect(engine).get_table_names() == []
    finally:
        engine.dispose()


def test_missing_server_skips_locally_and_fails_under_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="install-test-servers"):
        unavailable("dovecot binary not found")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI: dovecot binary not found"):
        unavailable("dovecot binary not found")
