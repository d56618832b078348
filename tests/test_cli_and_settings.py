"""The administrator's side (issue 2): settings that fail loudly, `check-config`, `ingest`, and the
README's first command on the embedded defaults."""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from inboxdesk.settings import SettingsError, load_settings
from tests.story import HELP, cli, cli_json, imap_box, letter, smtp_out, write_settings

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(("toml", "message"), [
    ('[[mailbox]]\nname="h"\nkind="tickets"\naddress="h@x.ru"\nsource="imap"\nhost="x"\nusername="u"\n'
     'port="993"\n', "mailbox[0].port: expected an integer"),
    ('[[mailbox]]\nname="h"\nkind="support"\naddress="h@x.ru"\nsource="maildir"\npath="m"\n',
     "mailbox[0].kind: must be one of tickets, appeals"),
    ('[[mailbox]]\nname="h"\nkind="tickets"\naddress="h@x.ru"\nsource="imap"\n',
     "mailbox[0].host: required"),
    ('[outbound]\ntransport="smtp"\n', "outbound.host: required"),
    ('[outbound]\npasword_env="X"\n', "outbound.pasword_env: unknown key"),
    ('[database]\nurl=5\n', "database.url: expected a string"),
    ("[database\n", "not valid TOML"),
])
def test_bad_settings_stop_start_up_with_the_key_named(tmp_path, toml, message):
    """Issue 2: bad settings stop start-up with a message naming the key."""
    path = tmp_path / "settings.toml"
    path.write_text(toml)
    with pytest.raises(SettingsError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load_settings(path)
    status, _ = cli(path, "tickets", "list")
    assert status == 2


def test_shipped_settings_hold_no_secrets_and_load():
    """Security by default: the shipped file loads and names environment variables, never secrets."""
    settings = load_settings(ROOT / "settings.toml")
    assert [b.name for b in settings.mailboxes] == ["help", "appeals"]
    text = (ROOT / "settings.toml").read_text()
    assert "password =" not in text and "token =" not in text


def test_check_config_names_every_problem(tmp_path, dovecot, imap_account, smtp_server, monkeypatch):
    """`check-config` tries every server: a wrong IMAP password, a missing environment variable and
    an SMTP server that is down each give one line; exit 1. Fixed, it exits 0."""
    monkeypatch.setenv("T_IMAP_PW", "wrong")
    boxes = [imap_box(dovecot, imap_account, "T_IMAP_PW"),
             imap_box(dovecot, imap_account, "T_MISSING_PW", name="second", address="second@miac.test")]
    config = write_settings(tmp_path, f"sqlite:///{tmp_path / 'db.sqlite3'}", boxes, smtp_out(smtp_server))
    smtp_server.stop()

    status, out = cli(config, "check-config")

    assert status == 1
    problems = [line for line in out.splitlines() if line.startswith("ПРОБЛЕМА")]
    assert any("mailbox help" in p and "login failed" in p.lower() for p in problems)
    assert any("T_MISSING_PW" in p for p in problems)
    assert any(p.startswith("ПРОБЛЕМА: outbound") for p in problems)
    assert all("wrong" not in p.split(":", 1)[1] for p in problems)  # never echo a password

    monkeypatch.setenv("T_IMAP_PW", imap_account.password)
    smtp_server.start()
    db = f"sqlite:///{tmp_path / 'db.sqlite3'}"
    config = write_settings(tmp_path, db, boxes[:1], smtp_out(smtp_server))
    assert cli(config, "check-config") == (0, "настройки и все серверы в порядке\n")


def test_ingest_feeds_files_and_stdin_and_never_makes_a_ticket_twice(tmp_path, monkeypatch):
    """`ingest` records messages as if they arrived; feeding the same file again is `duplicate`."""
    config = write_settings(tmp_path, f"sqlite:///{tmp_path / 'db.sqlite3'}",
                            [{"name": "help", "kind": "tickets", "address": HELP, "source": "maildir",
                              "path": str(tmp_path / "mail"), "allowed_domains": ["sev.gov.ru"]}],
                            {"transport": "maildir", "path": str(tmp_path / "out")})
    request = tmp_path / "request.eml"
    request.write_bytes(letter(subject="Заявка через конвейер почтового сервера"))

    assert cli(config, "ingest", "--mailbox", "help", str(request))[0] == 0
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(request.read_bytes())))
    status, out = cli(config, "ingest", "--mailbox", "help", "-")

    assert status == 0 and out == "записано писем: 1 (повтор 1)\n"
    assert len(cli_json(config, "tickets", "list")) == 1
    assert [r["disposition"] for r in cli_json(config, "inbound", "list")] == ["ticket", "duplicate"]
    assert cli(config, "ingest", "--mailbox", "nope", str(request))[0] == 1


def test_readme_first_command_turns_the_samples_into_tickets_within_seconds(tmp_path):
    """README command 1 (after the install step): the daemon on the embedded defaults makes the
    sample requests tickets and writes the acknowledgements to var/outbound; SIGTERM stops it."""
    work = tmp_path / "checkout"
    work.mkdir()
    shutil.copy(ROOT / "settings.toml", work)
    shutil.copytree(ROOT / "samples", work / "samples")
    shutil.copytree(work / "samples" / "mail", work / "var" / "mail")  # `cp -r samples/mail var/`

    daemon = subprocess.Popen([sys.executable, "-m", "inboxdesk.cli", "run"], cwd=work,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              env=dict(os.environ, INBOXDESK_CONFIG=""))
    try:
        deadline = time.monotonic() + 60
        outbound = work / "var" / "outbound" / "new"
        while not (outbound.is_dir() and len(list(outbound.iterdir())) >= 3):
            assert daemon.poll() is None, daemon.stdout.read()
            assert time.monotonic() < deadline, "no acknowledgements written"
            time.sleep(0.2)
    finally:
        daemon.send_signal(signal.SIGTERM)
        output, _ = daemon.communicate(timeout=30)
    assert daemon.returncode == 0, output

    config = work / "settings.toml"
    tickets = cli_json(config, "tickets", "list")
    assert sorted(t["id"].split("-")[0] for t in tickets) == ["HD", "HD", "OBR"]
    dispositions = sorted(r["disposition"] for r in cli_json(config, "inbound", "list"))
    assert dispositions == ["autoreply", "filtered", "ticket", "ticket", "ticket"]
    assert "stopped" in output
    letters = [p.read_bytes() for p in (work / "var" / "outbound" / "new").iterdir()]
    assert all(b"[HD-" in m or b"[OBR-" in m for m in letters)
    assert json.loads(json.dumps(tickets))  # the JSON view is plain data
