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
from datetime import datetime
from pathlib import Path

import pytest

from inboxdesk.cli import main
from inboxdesk.settings import load_settings
from tests.bot_world import STAFF_CHAT, STRANGER, bot_said, daemon_running, until
from tests.botapi import BotApiServer
from tests.desk_world import APPEALS, World, body_lines
from tests.story import cli, cli_json, letter, maildir_settings, write_settings

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
        "ПРОБЛЕМА: mailbox[0].kind: must be one of tickets, appeals, got 'support'",
        "ПРОБЛЕМА: mailbox[0].port: expected an integer, got '993'",
        "ПРОБЛЕМА: outbound.pasword_env: unknown key",
        'ПРОБЛЕМА: outbound.host: required when transport = "smtp"',
        "ПРОБЛЕМА: desk.reopen_days: must not be negative",
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
    assert out.startswith("ПРОБЛЕМА: institution.id: empty") and len(out.splitlines()) == 1


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
            "ПРОБЛЕМА: telegram.token_env: Telegram does not accept the token in $T_BOT_TOKEN"])
        assert "999:wrong" not in out  # never echo a secret

        config = _telegram_settings(tmp_path, api, monkeypatch, api.token, -100404)
        status, out = cli(config, "check-config")
        assert status == 1 and out.startswith("ПРОБЛЕМА: telegram.staff_chat_id: chat -100404 cannot be used")
        assert "chat not found" in out.lower()

        api.bot_status = "left"
        config = _telegram_settings(tmp_path, api, monkeypatch, api.token, -100500)
        status, out = cli(config, "check-config")
        assert status == 1 and "is not a member of chat -100500" in out

        api.bot_status = "administrator"
        assert cli(config, "check-config") == (0, "настройки и все серверы в порядке\n")
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
    assert cli(config, "check-config") == (0, "настройки и все серверы в порядке\n")


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
        assert status == 1 and f"ПРОБЛЕМА: templates: {broken / 'email' / 'ack.txt'}: not found" in out
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


# -- times people read ------------------------------------------------------------------------------

@pytest.fixture
def world(tmp_path, db_url, dovecot, smtp_server, monkeypatch) -> World:
    return World(tmp_path, db_url, dovecot, smtp_server, monkeypatch)


def test_times_people_read_are_local_labelled_and_to_the_minute(world, smtp_server):
    """MAIL-7, APL-6: `tickets show` gives the acceptance deadline in Moscow time with its label and
    the appeal's answer term as the same day the applicant's letter names; JSON keeps ISO 8601 with
    the local offset, to the second."""
    world.send_help(letter(subject="Не открывается расписание врача"))
    world.send_appeal(letter(sender="ivanov@mail.example", name="Иванов Иван Иванович", to=APPEALS,
                             subject="Запись к врачу", body="Прошу помочь с записью к врачу."))
    world.run_once()
    ticket, appeal = sorted(world.tickets(), key=lambda t: t["kind"], reverse=True)

    shown = world.ok("tickets", "show", ticket["id"])
    due = datetime.fromisoformat(shown["accept_due_at"])
    assert shown["accept_due_at"].endswith("+03:00") and due.microsecond == 0
    assert all("." not in e["at"] for e in shown["events"])  # no microseconds anywhere
    status, text, _ = world.run("tickets", "show", ticket["id"])
    assert status == 0
    assert f"срок принятия в работу: {due:%d.%m.%Y %H:%M} MSK" in text.splitlines()
    assert f"получено: {datetime.fromisoformat(shown['created_at']):%d.%m.%Y %H:%M} MSK" in text

    [ack] = [m for m in world.letters_to("ivanov@mail.example")]
    [promised] = [line for line in body_lines(ack.message) if line.startswith("Срок ответа: до ")]
    day = promised.removeprefix("Срок ответа: до ").split()[0]
    status, text, _ = world.run("tickets", "show", appeal["id"])
    assert f"срок ответа: до {day}" in text.splitlines()
    assert "T21:00" not in text and "+00:00" not in text


# -- surprises at the desk ------------------------------------------------------------------------------

def _new_ticket(world: World, subject: str = "Не открывается расписание врача") -> str:
    world.send_help(letter(subject=subject))
    world.run_once()
    return world.tickets()[-1]["id"]


def test_taking_a_ticket_someone_else_holds_needs_force(world):
    """MAIL-5: `ticket take` of a ticket a colleague holds is refused with how to insist; with
    `--force` ivanova takes it, audited as a change of assignee."""
    world.configure('\n[[staff]]\nname = "sidorov"\nrole = "operator"\n')
    tid = _new_ticket(world)
    world.ok("ticket", "take", tid, "--as", "sidorov")

    refusal = world.refused("ticket", "take", tid, "--as", "ivanova")
    assert refusal == (f"{tid} у sidorov (статус «Рассматривается»); забрать себе можно только явно: "
                       f"ticket take {tid} --as ivanova --force")
    assert world.ticket(tid)["assignee"] == "sidorov"

    taken = world.ok("ticket", "take", tid, "--as", "ivanova", "--force")
    assert taken["assignee"] == "ivanova"
    assert ("ivanova", "assigned", "sidorov", "ivanova") in [
        (e["actor"], e["action"], e["from"], e["to"]) for e in world.ticket(tid)["events"]]


def test_completing_a_new_appeal_says_it_passed_through_review(world):
    """APL-5: `ticket complete` on a `Новое` appeal records `На рассмотрении` on the way and says so;
    the CLI speaks of an appeal in the neuter (обращение взято, зарегистрировано)."""
    world.send_appeal(letter(sender="ivanov@mail.example", name="Иванов Иван Иванович", to=APPEALS,
                             subject="Запись к врачу", body="Прошу помочь с записью к врачу."))
    world.run_once()
    [appeal] = world.tickets()
    status, out, _ = world.run("ticket", "complete", appeal["id"], "--as", "ivanova", "--answer", "Записали.")
    assert status == 0
    assert out == (f"{appeal['id']}: статус изменён: «Новое» → «На рассмотрении» → «Выполнено»; "
                   "статус «Выполнено», исполнитель ivanova\n")

    status, out, _ = world.run("ticket", "new", "--as", "ivanova", "--mailbox", "appeals", "--name",
                               "Сидорова Анна", "--phone", "+7 978 000-00-01", "--subject", "Звонок",
                               "--text", "Жалоба на запись")
    assert status == 0 and "зарегистрировано по звонку" in out
    phoned = world.tickets()[-1]["id"]
    status, out, _ = world.run("ticket", "take", phoned, "--as", "petrov")
    assert status == 0 and "взято на рассмотрение" in out


def test_taken_into_work_is_told_once_per_round(world, smtp_server):
    """OUT-2, MAIL-5: handed between staff, asked a question and answered, a ticket sends
    "Заявка принята в работу" once; after it is resolved and reopened, once more."""
    world.configure('\n[[staff]]\nname = "sidorov"\nrole = "operator"\n')
    tid = _new_ticket(world)
    world.ok("ticket", "take", tid, "--as", "ivanova")
    world.ok("ticket", "assign", tid, "sidorov", "--as", "ivanova")
    world.ok("ticket", "take", tid, "--as", "sidorov")
    world.ok("ticket", "status", tid, "Обратная связь", "--as", "sidorov", "--comment", "Какой кабинет?")
    world.ok("ticket", "status", tid, "Рассматривается", "--as", "sidorov")
    world.ok("ticket", "status", tid, "Решена", "--as", "sidorov", "--answer", "Готово.")
    world.ok("ticket", "status", tid, "Рассматривается", "--as", "sidorov")  # reopened: news again
    world.run_once()
    subjects = [m.message["Subject"].split("]", 1)[1].split(":")[0].strip() for m in smtp_server.messages]
    assert subjects == ["Заявка зарегистрирована", "Заявка принята в работу", "Нужен ваш ответ по заявке",
                        "Заявка решена", "Заявка принята в работу"]


def test_impact_is_typed_in_any_case_and_listed_in_help(world, capsys):
    """MAIL-6: `--impact большое` is the regulation's «Большое»; --help lists every pair."""
    tid = _new_ticket(world)
    changed = world.ok("ticket", "priority", tid, "2", "--impact", "большое", "--as", "ivanova")
    assert changed["impact"] == "Большое"
    with pytest.raises(SystemExit):
        main(["ticket", "priority", "--help"])
    helped = " ".join(capsys.readouterr().out.split())
    assert "2 Высокий: Малое, Большое" in helped
    assert "4 Низкий: Текст/опечатка, Нововведение, Настройка" in helped


def test_find_matches_what_people_wrote_not_our_form_letters(world):
    """`ticket find` looks in the senders' mail and staff answers; the words of our own
    acknowledgement (sent on every ticket) find nothing."""
    tid = _new_ticket(world)
    world.ok("ticket", "reply", tid, "--as", "ivanova", "--text", "Проверяем шаблон кабинета 214.")
    assert world.ok("ticket", "find", "кабинета 214") and world.ok("ticket", "find", "Сидорова")
    assert world.ok("ticket", "find", "сформировано автоматически") == []  # the ack's footer


def test_lists_read_as_tables(world):
    """`inbound list` and `staff list` have headers, no Python reprs, and cut long cells at a word
    with "…"; a phone ticket without an address shows the phone, never `<>`; `ingest` into the
    appeals mailbox speaks of an appeal; `--version` answers."""
    world.send_help(letter(subject="Очень длинная тема письма, " * 6))
    world.send_help(letter(sender="x@evil.example", subject="Спам"))
    world.run_once()
    status, out, _ = world.run("inbound", "list")
    header, *rows = out.splitlines()
    assert header.split() == ["id", "mailbox", "received_at", "disposition", "ticket_id", "from", "subject",
                              "reasons"]
    assert "['" not in out and "…" in out
    assert any("filtered" in r and "sev.gov.ru" in r for r in rows)

    status, out, _ = world.run("staff", "list")
    assert out.splitlines()[0].split() == ["name", "role", "telegram_id", "email", "full_name", "source"]
    assert "ivanova" in out.splitlines()[1]

    phoned = world.ok("ticket", "new", "--as", "ivanova", "--mailbox", "help", "--name", "Сидорова Анна",
                      "--phone", "+7 978 000-00-01", "--subject", "Звонок", "--text", "Не печатает")["id"]
    status, out, _ = world.run("tickets", "show", phoned)
    assert "от: Сидорова Анна тел. +7 978 000-00-01" in out and "<>" not in out

    request = world.tmp / "appeal.eml"
    request.write_bytes(letter(sender="ivanov@mail.example", to=APPEALS, subject="Запись",
                               body="Прошу записать к врачу."))
    status, out, _ = world.run("ingest", "--mailbox", "appeals", str(request))
    assert (status, out) == (0, "записано писем: 1 (обращение 1)\n")
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0


def test_check_config_before_the_first_start_does_not_stop_letters_leaving(tmp_path):
    """Issue 13, the service install tried on Debian 12: `check-config` (which proves the
    outbound Maildir folder writable) made the folder empty; the daemon's Maildir then refused to
    add letters ("No such file or directory: …/tmp/…") and they waited forever. A folder that
    exists without tmp/new/cur is a Maildir to set up, not an outage."""
    db_url = f"sqlite:///{tmp_path / 'db.sqlite3'}"
    config = maildir_settings(tmp_path, db_url)
    assert cli(config, "check-config")[0] == 0
    assert (tmp_path / "out").is_dir() and not any((tmp_path / "out").iterdir())
    (tmp_path / "mail" / "new").mkdir(parents=True, exist_ok=True)
    (tmp_path / "mail" / "new" / "1.a.host").write_bytes(letter(subject="Первая заявка на сервере"))
    assert cli(config, "run", "--once")[0] == 0
    assert [o["status"] for o in cli_json(config, "outbox", "list")] == ["sent"]
    assert len(list((tmp_path / "out" / "new").iterdir())) == 1
