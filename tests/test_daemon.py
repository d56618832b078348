"""The running daemon (issue 2): IMAP IDLE picks mail up without waiting for a poll, processed mail
moves to the processed folder, and a stop request ends the loop cleanly."""

from __future__ import annotations

import asyncio

from tests.story import cli_json, imap_box, letter, smtp_out, write_settings
from tests.test_outages import ENV, start, stop, until


def test_idle_mailbox_turns_new_mail_into_a_ticket_and_moves_it(tmp_path, dovecot, imap_account, smtp_server,
                                                                 monkeypatch):
    """With `idle = true` and a long poll interval, a request appended while the daemon waits in
    IDLE becomes a ticket and is acknowledged; the request is moved to `Processed`, \\Seen."""
    monkeypatch.setenv(ENV, imap_account.password)
    config = write_settings(tmp_path, f"sqlite:///{tmp_path / 'db.sqlite3'}",
                            [imap_box(dovecot, imap_account, ENV, idle=True, poll_seconds=3600,
                                      processed_folder="Processed")],
                            smtp_out(smtp_server))

    async def story():
        daemon, task = start(config)
        await asyncio.sleep(1.0)  # the watcher is now waiting in IDLE
        await asyncio.to_thread(dovecot.append, imap_account.address, letter(subject="Пришло во время IDLE"))
        await until(lambda: len(smtp_server.messages) == 1, timeout=20)
        await stop(daemon, task)
        assert task.done() and task.exception() is None

    asyncio.run(story())
    [ticket] = cli_json(config, "tickets", "list")
    assert ticket["subject"] == "Пришло во время IDLE"
    assert dovecot.folder_messages(imap_account.address) == []
    [(_, flags, _)] = dovecot.folder_messages(imap_account.address, "Processed")
    assert b"\\Seen" in flags


def test_imaps_and_smtp_starttls_with_login(tmp_path, dovecot, imap_account, monkeypatch):
    """Production shape: IMAP over implicit TLS, SMTP with STARTTLS and a login; passwords come
    from environment variables; self-signed certificates accepted only with tls_verify = false."""
    from tests.servers.smtp import SmtpServer
    from tests.story import cli

    monkeypatch.setenv(ENV, imap_account.password)
    monkeypatch.setenv("T_SMTP_PW", "smtp-secret")
    with SmtpServer(tls="starttls", auth=("help@miac.test", "smtp-secret")) as smtp:
        box = imap_box(dovecot, imap_account, ENV, security="ssl", port=dovecot.ssl_port, tls_verify=False)
        out = smtp_out(smtp, security="starttls", username="help@miac.test", password_env="T_SMTP_PW",
                       tls_verify=False)
        config = write_settings(tmp_path, f"sqlite:///{tmp_path / 'db.sqlite3'}", [box], out)
        dovecot.append(imap_account.address, letter(subject="По защищённому каналу"))

        assert cli(config, "run", "--once")[0] == 0

        [ack] = smtp.messages
        assert ack.auth_login == "help@miac.test"
        assert "По защищённому каналу" in ack.message["Subject"]
