"""Issue 18: a newcomer's first hour, tried from the README in a fresh checkout.

Each story is one thing a new user or administrator did and what they must see.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from inboxdesk.settings import load_settings
from tests.bot_world import STAFF_CHAT, STRANGER, bot_said, daemon_running, until
from tests.botapi import BotApiServer
from tests.story import cli, cli_json, write_settings

ROOT = Path(__file__).resolve().parent.parent


def _checkout(tmp_path: Path) -> Path:
    work = tmp_path / "checkout"
    work.mkdir()
    shutil.copy(ROOT / "settings.toml", work)
    shutil.copytree(ROOT / "samples", work / "samples")
    return work


def _copy_samples(work: Path) -> None:
    """`cp -r samples/mail var/` (into an existing var/mail on the second run, as cp does)."""
    shutil.copytree(work / "samples" / "mail", work / "var" / "mail", dirs_exist_ok=True)


def _waiting(work: Path) -> list[Path]:
    return [p for box in ("help", "appeals") for p in (work / "var" / "mail" / box / "new").iterdir()
            if not p.name.startswith(".")]


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _daemon(work: Path) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "inboxdesk.cli", "run"], cwd=work,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=dict(os.environ, INBOXDESK_CONFIG=""))


def _until_mailboxes_empty(daemon: subprocess.Popen[str], work: Path) -> None:
    deadline = time.monotonic() + 60
    while _waiting(work):
        assert daemon.poll() is None, daemon.stdout.read()
        assert time.monotonic() < deadline, f"still in new/: {_waiting(work)}"
        time.sleep(0.2)


def _stop(daemon: subprocess.Popen[str]) -> str:
    daemon.send_signal(signal.SIGTERM)
    output, _ = daemon.communicate(timeout=30)
    assert daemon.returncode == 0, output
    return output


def test_readme_first_command_twice_sees_duplicates_and_the_daemon_goes_idle(tmp_path):
    """The README's first command run twice (MAIL-3, LOOP-1, DESIGN §4 "nothing twice"): the copies
    carry the same Maildir names as the finished originals; they are recorded as `duplicate`, leave
    new/, make no ticket or letter, and the daemon then sleeps instead of re-fetching them."""
    work = _checkout(tmp_path)
    _copy_samples(work)
    daemon = _daemon(work)
    try:
        _until_mailboxes_empty(daemon, work)
    finally:
        _stop(daemon)
    config = work / "settings.toml"
    first_tickets = cli_json(config, "tickets", "list")
    letters = sorted(p.name for p in (work / "var" / "outbound" / "new").iterdir())

    _copy_samples(work)  # the README's command again
    assert len(_waiting(work)) == 5
    daemon = _daemon(work)
    try:
        _until_mailboxes_empty(daemon, work)
        time.sleep(1.0)  # let the pass that finished them return
        before = _cpu_seconds(daemon.pid)
        time.sleep(3.0)
        busy = _cpu_seconds(daemon.pid) - before
    finally:
        output = _stop(daemon)

    assert busy < 1.0, f"daemon busy for {busy:.2f} s of 3 s while nothing arrived:\n{output}"
    assert output.count("5 fetched") + output.count("4 fetched") + output.count("1 fetched") <= 2, output
    inbound = cli_json(config, "inbound", "list")
    assert [r["disposition"] for r in inbound[5:]] == ["duplicate"] * 5
    assert all("уже получено как входящее" in r["reasons"][0] for r in inbound[5:])
    assert cli_json(config, "tickets", "list") == first_tickets
    assert sorted(p.name for p in (work / "var" / "outbound" / "new").iterdir()) == letters
    # The originals stay in cur/ beside the copies: a copy never overwrites the first message.
    assert len(list((work / "var" / "mail" / "help" / "cur").glob("*:2,*S*"))) == 8

    _copy_samples(work)  # and `run --once` returns on copies too
    done = subprocess.run([sys.executable, "-m", "inboxdesk.cli", "run", "--once"], cwd=work, timeout=120,
                          capture_output=True, text=True, env=dict(os.environ, INBOXDESK_CONFIG=""))
    assert done.returncode == 0, done.stderr
    assert not _waiting(work)
    assert [r["disposition"] for r in cli_json(config, "inbound", "list")[10:]] == ["duplicate"] * 5


# -- check-config tells the whole truth ------------------------------------------------------------

def test_check_config_lists_every_settings_problem_one_line_each(tmp_path):
    """Three mistakes in three places are three lines, and check-config exits 1 (the README's
    promise); any other command refuses to start and names them all too."""
    config = tmp_path / "settings.toml"
    config.write_text('[[mailbox]]\nname = "help"\nkind = "support"\naddress = "help@x.ru"\n'
                      'source = "maildir"\npath = "m"\nport = "993"\n'
                      '[outbound]\ntransport = "smtp"\npasword_env = "X"\n'
                      '[desk]\nreopen_days = -1\n', encoding="utf-8")

    status, out = cli(config, "check-config")

    assert status == 1
    assert out.splitlines() == [
        "PROBLEM: mailbox[0].kind: must be one of tickets, appeals, got 'support'",
        "PROBLEM: mailbox[0].port: expected an integer, got '993'",
        "PROBLEM: outbound.pasword_env: unknown key",
        'PROBLEM: outbound.host: required when transport = "smtp"',
        "PROBLEM: desk.reopen_days: must not be negative",
    ]
    status, _ = cli(config, "tickets", "list")
    assert status == 2


def test_check_config_wants_the_institution_id_for_the_department_letters(tmp_path):
    """APL-5: the department's completion letter carries `[institution] id`; empty, it is a problem."""
    config = write_settings(tmp_path, f"sqlite:///{tmp_path / 'db.sqlite3'}",
                            [{"name": "appeals", "kind": "appeals", "address": "appeals@miac.test",
                              "source": "maildir", "path": str(tmp_path / "mail")}],
                            {"transport": "maildir", "path": str(tmp_path / "out")},
                            institution={"name": "ГБУЗС «МИАЦ»", "id": " "})
    status, out = cli(config, "check-config")
    assert status == 1
    assert out.startswith("PROBLEM: institution.id: empty") and len(out.splitlines()) == 1


def _telegram_settings(tmp_path: Path, api: BotApiServer, monkeypatch, token: str, chat: int) -> Path:
    monkeypatch.setenv("T_BOT_TOKEN", token)
    config = write_settings(tmp_path, f"sqlite:///{tmp_path / 'db.sqlite3'}", [],
                            {"transport": "maildir", "path": str(tmp_path / "out")})
    with config.open("a", encoding="utf-8") as f:
        f.write(f'\n[telegram]\ntoken_env = "T_BOT_TOKEN"\nbase_url = "{api.base_url}"\n'
                f'base_file_url = "{api.base_file_url}"\nstaff_chat_id = {chat}\n'
                "request_timeout_seconds = 5\n")
    return config


def test_check_config_tries_the_telegram_bot_and_its_staff_chat(tmp_path, monkeypatch):
    """With a token set, check-config asks Telegram (our Bot API server): a token it refuses, a
    staff chat the bot cannot see, a chat the bot was removed from are one line each; fixed, OK."""
    with BotApiServer(unknown_chats=frozenset({-100404})) as api:
        config = _telegram_settings(tmp_path, api, monkeypatch, "999:wrong", -100500)
        status, out = cli(config, "check-config")
        assert (status, out.splitlines()) == (1, [
            "PROBLEM: telegram.token_env: Telegram does not accept the token in $T_BOT_TOKEN"])
        assert "999:wrong" not in out  # never echo a secret

        config = _telegram_settings(tmp_path, api, monkeypatch, api.token, -100404)
        status, out = cli(config, "check-config")
        assert status == 1 and out.startswith("PROBLEM: telegram.staff_chat_id: chat -100404 cannot be used")
        assert "chat not found" in out.lower()

        api.bot_status = "left"
        config = _telegram_settings(tmp_path, api, monkeypatch, api.token, -100500)
        status, out = cli(config, "check-config")
        assert status == 1 and "is not a member of chat -100500" in out

        api.bot_status = "administrator"
        assert cli(config, "check-config") == (0, "settings and every server OK\n")
        assert {c.method for c in api.calls} >= {"getMe", "getChat", "getChatMember"}


# -- secrets and first steps ---------------------------------------------------------------------------

def test_the_database_url_can_come_from_the_environment(tmp_path, monkeypatch, postgres_url):
    """A PostgreSQL password never has to sit in settings.toml: `[database] url_env` names the
    variable holding the URL; unset with no `url` beside it, start-up names the variable."""
    config = tmp_path / "settings.toml"
    config.write_text('[database]\nurl_env = "T_DATABASE_URL"\n', encoding="utf-8")
    monkeypatch.delenv("T_DATABASE_URL", raising=False)
    status, out = cli(config, "check-config")
    assert status == 1 and "database.url_env: environment variable T_DATABASE_URL is not set" in out

    monkeypatch.setenv("T_DATABASE_URL", postgres_url)
    assert load_settings(config).database_url == postgres_url
    assert cli(config, "check-config") == (0, "settings and every server OK\n")


def test_anyone_can_ask_the_bot_for_their_ids_and_nothing_else(desk_config, api):
    """README's first steps: a stranger's /whoami and /chatid (also as /chatid@bot in the group)
    answer only the user's and the chat's IDs; anything else stays refused (BOT-1)."""
    config = desk_config()

    async def story() -> None:
        async with daemon_running(config):
            api.send(STRANGER, STRANGER["id"], "/whoami")
            api.send(STRANGER, STAFF_CHAT, "/chatid@inboxdesk_bot")
            api.send(STRANGER, STRANGER["id"], "/list")
            await until(lambda: len(bot_said(api, STRANGER["id"])) == 2 and bot_said(api, STAFF_CHAT))
            whoami, refusal = bot_said(api, STRANGER["id"])
            you = f"Ваш Telegram ID: {STRANGER['id']}\nID этого чата: "
            assert whoami == f"{you}{STRANGER['id']}"
            assert bot_said(api, STAFF_CHAT) == [f"{you}{STAFF_CHAT}"]
            assert "только для сотрудников" in refusal

    asyncio.run(story())


# -- a normal install -----------------------------------------------------------------------------------

def test_a_missing_template_stops_start_up_loudly(tmp_path, monkeypatch):
    """A desk that cannot write its letters must not start and then fail every message."""
    from inboxdesk import templating

    broken = tmp_path / "templates"
    shutil.copytree(templating.TEMPLATES, broken)
    (broken / "email" / "ack.txt").unlink()
    monkeypatch.setattr(templating, "TEMPLATES", broken)
    templating.environment.cache_clear()
    try:
        work = _checkout(tmp_path)
        status, _ = cli(work / "settings.toml", "run", "--once")
        assert status == 2
        status, out = cli(work / "settings.toml", "check-config")
        assert status == 1 and f"PROBLEM: templates: {broken / 'email' / 'ack.txt'}: not found" in out
    finally:
        templating.environment.cache_clear()


def test_an_installed_wheel_carries_its_templates_and_runs_the_samples(tmp_path):
    """`pip install .` (a wheel), not the checkout: the daemon finds its letters and the samples
    become tickets with acknowledgements. Built from a copy of the sources, installed into a
    folder of its own, and run with this interpreter's libraries but not the checkout's code."""
    source = tmp_path / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source)
    for name in ("inboxdesk", "mailflow", "bot", "storage", "templates"):
        shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
    wheels, target = tmp_path / "wheels", tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(wheels), str(source)],
                   check=True, timeout=300)
    [wheel] = wheels.glob("inboxdesk-*.whl")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target),
                    str(wheel)], check=True, timeout=300)

    work = _checkout(tmp_path)
    _copy_samples(work)
    env = dict(os.environ, INBOXDESK_CONFIG="", PYTHONPATH=str(target))
    where = subprocess.run([sys.executable, "-c", "import inboxdesk, sys; print(inboxdesk.__file__)"],
                           cwd=work, env=env, capture_output=True, text=True, check=True)
    assert where.stdout.startswith(str(target)), where.stdout  # the wheel's code, not the checkout's
    done = subprocess.run([sys.executable, "-m", "inboxdesk.cli", "run", "--once"], cwd=work, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr

    config = work / "settings.toml"
    assert sorted(r["disposition"] for r in cli_json(config, "inbound", "list")) == [
        "autoreply", "filtered", "ticket", "ticket", "ticket"]
    letters = cli_json(config, "outbox", "list")
    assert sorted(o["purpose"] for o in letters) == ["ack", "ack", "ack", "department_new"]
    assert {o["status"] for o in letters} == {"sent"}
    assert len(list((work / "var" / "outbound" / "new").iterdir())) == 4


def test_the_wheel_lists_every_package_and_the_start_up_check_every_letter():
    """What keeps the wheel whole: pyproject's explicit package list holds every package of the
    tree, and the start-up template check knows every letter in templates/email."""
    import tomllib

    from setuptools import find_packages

    from inboxdesk.templating import EMAILS

    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = set(find_packages(ROOT, include=["inboxdesk*", "mailflow*", "bot*", "storage*"]))
    assert listed == found | {"inboxdesk.templates"}
    letters = {p.name.split(".")[0] for p in (ROOT / "templates" / "email").glob("*.txt")
               if not p.name.startswith("_")}
    assert set(EMAILS) == letters
