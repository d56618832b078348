"""`inboxdesk` command line: the daemon, imports, and views of tickets, inbound mail and outbox."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from collections.abc import Callable, Sequence
from datetime import datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select

from inboxdesk import cli_desk, localtime, logs, views
from inboxdesk.app import App
from inboxdesk.daemon import Daemon
from inboxdesk.settings import SettingsError, load_settings
from inboxdesk.templating import missing_templates
from inboxdesk.timers import missed_deadline, overdue_condition
from inboxdesk.workflow import Refused
from storage import outbox
from storage.db import SchemaMismatch, contains_text
from storage.models import InboundMessage, OutboxItem, Ticket

log = logging.getLogger("inboxdesk")


class CommandError(Exception):
    """A refused or impossible command: printed as one line, exit status 1."""


def _print(data: Any, as_json: bool, table: Callable[[Any], str]) -> None:
    if as_json:
        print(json.dumps(data, ensure_ascii=False, indent=2))
    else:
        print(table(data))


# -- commands -----------------------------------------------------------------------------------

def cmd_run(app: App, args: argparse.Namespace) -> int:
    app.prepare()  # refuse to start on a schema this code was not written for (one clear line)
    daemon = Daemon(app)
    asyncio.run(daemon.run_once() if args.once else daemon.run_forever())
    return 0


def cmd_ingest(app: App, args: argparse.Namespace) -> int:
    box = app.settings.mailbox(args.mailbox)
    if args.files == ["-"]:
        raws = [sys.stdin.buffer.read()]
    else:
        try:
            raws = [Path(f).read_bytes() for f in args.files]
        except OSError as exc:
            raise CommandError(f"не удаётся прочитать {exc.filename}: {exc.strerror}") from None
    stats = app.intake.ingest(box, raws)
    print(f"записано писем: {stats.recorded} ({views.dispositions_text(stats.dispositions, box.kind)})")
    return 0


def cmd_inbound_retry(app: App, args: argparse.Namespace) -> int:
    if not args.ids and not args.errors:
        raise CommandError("укажите записи (inbound retry ID …) или --errors для всех записей с ошибкой")
    with app.db.sessions() as s:
        query = select(InboundMessage.id, InboundMessage.mailbox, InboundMessage.disposition)
        if args.ids:
            query = query.where(InboundMessage.id.in_(args.ids))
        rows = s.execute(query.where(InboundMessage.disposition == "error") if args.errors else query).all()
    unknown = sorted(set(args.ids or ()) - {r.id for r in rows})
    if unknown:
        raise CommandError(f"входящих записей нет: {', '.join(map(str, unknown))}")
    if not_errors := [r.id for r in rows if r.disposition != "error"]:
        raise CommandError(f"снова обрабатываются только записи с ошибкой (error); не такие: "
                           f"{', '.join(map(str, not_errors))}")
    for name in sorted({r.mailbox for r in rows}):
        box = app.settings.mailbox(name)
        stats = app.intake.retry(box, [r.id for r in rows if r.mailbox == name])
        if stats.busy:
            raise CommandError(f"ящик {name} сейчас обрабатывает другой экземпляр; повторите позже")
        done = views.dispositions_text(stats.dispositions, box.kind)
        print(f"{name}: обработано снова: {stats.processed} ({done})")
    if not rows:
        print("записей с ошибкой нет")
    return 0


def cmd_inbound_accept(app: App, args: argparse.Namespace) -> int:
    from mailflow.intake import accept_filtered

    with app.db.transaction() as s:
        ticket = accept_filtered(s, app.desk, args.id, app.desk.staff(s).get(args.actor))
        public_id, status = ticket.public_id, ticket.status
    print(f"#{args.id} принято: {public_id}, статус «{status}»")
    return 0


def cmd_tickets_list(app: App, args: argparse.Namespace) -> int:
    with app.db.sessions() as s:
        query = select(Ticket).order_by(Ticket.id)
        if args.status:
            query = query.where(Ticket.status == args.status)
        if args.kind:
            query = query.where(Ticket.kind == args.kind)
        if args.assignee:
            query = query.where(Ticket.assignee == args.assignee)
        if args.organisation:  # any part of the name, in any case
            query = query.where(contains_text(Ticket.organisation, args.organisation.strip()))
        columns = ["id", "status", "requester_email", "organisation", "subject"]
        if args.overdue:  # MAIL-7, APL-6: past a deadline now
            now = app.desk.clock()
            query = query.where(overdue_condition(now))
            columns = ["id", "status", "overdue_since", "requester_email", "organisation", "subject"]
        rows = []
        for t in s.scalars(query):
            rows.append(views.ticket_summary(t, app.zone))
            if args.overdue:
                rows[-1]["overdue_since"] = localtime.iso(missed_deadline(t, now), app.zone)
    _print(rows, args.json, lambda r: views.table(_readable(r, app.zone), columns))
    return 0


def cmd_tickets_show(app: App, args: argparse.Namespace) -> int:
    with app.db.sessions() as s:
        ticket = s.scalar(select(Ticket).where(Ticket.public_id == args.id))
        if ticket is None:
            raise CommandError(f"Записи {args.id} нет")
        view = views.ticket_detail(s, ticket, app.zone)
    _print(view, args.json, lambda v: _ticket_text(v, app.zone))
    return 0


def _readable(rows: list[dict[str, Any]], zone: ZoneInfo) -> list[dict[str, Any]]:
    """Rows with their times as a person reads them (the JSON keeps ISO 8601)."""
    times = ("created_at", "sent_at", "received_at", "overdue_since", "accept_due_at")
    return [{k: views.shown(v, zone) if k in times and v else v for k, v in r.items()} for r in rows]


def _ticket_text(v: dict[str, Any], zone: ZoneInfo) -> str:
    lines = [f"{v['id']}  {views.KIND_NAMES.get(v['kind'], v['kind'])}  «{v['status']}»  {v['subject']}",
             f"от: {views.requester(v)}", f"получено: {views.shown(v['created_at'], zone)}"]
    lines += views.detail_lines(v, zone)
    for m in v["messages"]:
        lines += ["", f"--- {m['direction']} {views.shown(m['at'], zone)} {m['from']}: {m['subject']}",
                  m["body"].rstrip()]
        lines += [f"  [файл] {a['filename']} ({a['size']} B){'' if a['stored'] else ' — не сохранён'}"
                  for a in m["attachments"]]
    lines += ["", "письма:"] + [f"  #{o['id']} {o['purpose']} -> {', '.join(o['to'])}: {o['status']}"
                               + (f" ({o['last_error']})" if o["last_error"] else "") for o in v["outbox"]]
    lines += ["", "события:"]
    lines += [f"  {views.shown(e['at'], zone)} {e['actor']} {e['action']} "
              f"{e['from'] or ''} -> {e['to'] or ''}" for e in v["events"]]
    return "\n".join(lines)


def cmd_inbound_list(app: App, args: argparse.Namespace) -> int:
    with app.db.sessions() as s:
        ids = views.public_ids(s)
        query = select(InboundMessage).order_by(InboundMessage.id)
        if args.disposition:
            query = query.where(InboundMessage.disposition == args.disposition)
        rows = [views.inbound_view(r, app.zone, ids) for r in s.scalars(query)]
    _print(rows, args.json, lambda r: views.table(_readable(r, app.zone), [
        "id", "mailbox", "received_at", "disposition", "ticket_id", "from", "subject", "reasons"]))
    return 0


def cmd_outbox_list(app: App, args: argparse.Namespace) -> int:
    with app.db.sessions() as s:
        ids = views.public_ids(s)
        query = select(OutboxItem).order_by(OutboxItem.id)
        if args.status:
            query = query.where(OutboxItem.status == args.status)
        rows = [views.outbox_view(o, app.zone, ids) for o in s.scalars(query)]
    _print(rows, args.json, lambda r: views.table(_readable(r, app.zone), [
        "id", "channel", "purpose", "status", "attempts", "to", "subject", "last_error"]))
    return 0


def cmd_outbox_retry(app: App, args: argparse.Namespace) -> int:
    if not args.ids and not args.failed:
        raise CommandError("укажите письма (outbox retry ID …) или --failed для всех неотправленных")
    with app.db.transaction() as s:
        ids = list(args.ids)
        if args.failed:
            query = select(OutboxItem.id).where(OutboxItem.status == outbox.FAILED)
            if args.since:
                query = query.where(OutboxItem.created_at >= _local_time(args.since, app.zone))
            ids += list(s.scalars(query))
        items = app.desk.retry_letters(s, app.desk.staff(s).get(args.actor), sorted(set(ids)))
        done = [f"#{i.id}" for i in items]
    print(f"снова в очереди писем: {len(done)} ({', '.join(done)})" if done else "неотправленных писем нет")
    return 0


def _local_time(text: str, zone: ZoneInfo) -> datetime:
    """`2026-12-04` or `2026-12-04 10:00` as a local time (an offset in the text wins)."""
    try:
        at = datetime.fromisoformat(text.strip())
    except ValueError:
        raise CommandError(f"--since: нужна дата вида 2026-12-04 или 2026-12-04T10:00, "
                           f"а не {text!r}") from None
    return at if at.tzinfo else at.replace(tzinfo=zone)


def cmd_status(app: App, args: argparse.Namespace) -> int:
    from inboxdesk.status import summary, summary_text

    view = summary(app.db, app.settings, app.zone, now=app.desk.clock())
    _print(view, args.json, summary_text)
    return 0 if not view["problems"] else 1


def cmd_db_upgrade(app: App, args: argparse.Namespace) -> int:
    from storage.db import Database, head_revision

    db = Database(app.settings.database_url)  # not app.db: that one refuses an old schema
    try:
        db.migrate()
    finally:
        db.dispose()
    print(f"схема базы данных: {head_revision()}")
    return 0


def cmd_export_data(app: App, args: argparse.Namespace) -> int:
    from inboxdesk.subject_access import export_requester

    with app.db.sessions() as s:
        data = export_requester(s, args.requester, app.zone)
    text = json.dumps(data, ensure_ascii=False, indent=2)
    if args.out:
        Path(args.out).write_text(text + "\n", encoding="utf-8")
        print(f"записей: {len(data['records'])}, полученных писем: {len(data['received_letters'])}, "
              f"отправленных им: {len(data['letters_to_them'])} — {args.out}")
    else:
        print(text)
    return 0


def cmd_retention(app: App, args: argparse.Namespace) -> int:
    if app.settings.retention.keeps_everything:
        print("[retention] не задан: всё хранится")
        return 0
    now = app.desk.clock()
    if args.dry_run:
        with app.db.sessions() as s:
            done = app.retention.due(s, now)
    else:
        done = app.retention.run(now)
    print(f"{'к выполнению' if args.dry_run else 'выполнено'}: {done.text()}")
    return 0


def cmd_backup(app: App, args: argparse.Namespace) -> int:
    from storage.backup import BackupError, backup

    app.prepare()  # a backup of a schema this release cannot read would not restore into it
    try:
        backup(app.settings.database_url, Path(args.path))
    except BackupError as exc:
        raise CommandError(str(exc)) from None
    print(f"резервная копия записана: {args.path} ({Path(args.path).stat().st_size} байт)")
    return 0


def cmd_restore(app: App, args: argparse.Namespace) -> int:
    from storage.backup import BackupError, restore

    try:
        restore(app.settings.database_url, Path(args.path), replace=args.replace)
    except BackupError as exc:
        raise CommandError(str(exc)) from None
    app.prepare()  # an older backup's schema says so now: `db upgrade` next
    print(f"база данных восстановлена из {args.path}")
    return 0


def cmd_check_config(app: App, args: argparse.Namespace) -> int:
    from inboxdesk.checks import check_everything

    problems = check_everything(app)
    for line in problems:
        print(f"ПРОБЛЕМА: {line}")
    if not problems:
        print("настройки и все серверы в порядке")
    return 1 if problems else 0


# -- wiring -------------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="inboxdesk", description=__doc__)
    p.add_argument("--config", help="settings file (default: $INBOXDESK_CONFIG, else ./settings.toml)")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    p.add_argument("--version", action="version", version=f"inboxdesk {version('inboxdesk')}")
    sub = p.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="the daemon")
    run.add_argument("--once", action="store_true", help="poll every mailbox once, deliver the outbox, exit")
    run.set_defaults(func=cmd_run)

    ingest = sub.add_parser("ingest", help="feed raw messages as if they arrived")
    ingest.add_argument("--mailbox", required=True)
    ingest.add_argument("files", nargs="+", help="message files, or - for standard input")
    ingest.set_defaults(func=cmd_ingest)

    tickets = sub.add_parser("tickets", help="list and show tickets and appeals").add_subparsers(
        dest="action", required=True)
    tl = tickets.add_parser("list")
    tl.add_argument("--status")
    tl.add_argument("--kind", choices=["ticket", "appeal"])
    tl.add_argument("--assignee")
    tl.add_argument("--organisation", help="any part of the organisation's name")
    tl.add_argument("--overdue", action="store_true",
                    help="only records past a deadline: not taken into work in time (MAIL-7), "
                         "appeals past their 59-FZ terms (APL-6)")
    tl.add_argument("--json", action="store_true")
    tl.set_defaults(func=cmd_tickets_list)
    ts = tickets.add_parser("show")
    ts.add_argument("id")
    ts.add_argument("--json", action="store_true")
    ts.set_defaults(func=cmd_tickets_show)

    inbound = sub.add_parser("inbound", help="every recorded inbound message").add_subparsers(
        dest="action", required=True)
    il = inbound.add_parser("list")
    il.add_argument("--disposition")
    il.add_argument("--json", action="store_true")
    il.set_defaults(func=cmd_inbound_list)
    ir = inbound.add_parser("retry", help="process `error` records again (after a fix or an outage)")
    ir.add_argument("ids", nargs="*", type=int, metavar="ID")
    ir.add_argument("--errors", action="store_true", help="every `error` record")
    ir.set_defaults(func=cmd_inbound_retry)
    ia = inbound.add_parser("accept", help="take a wrongly filtered message in as a request (audited)")
    ia.add_argument("id", type=int)
    ia.add_argument("--as", dest="actor", required=True, metavar="NAME", help="staff member deciding")
    ia.set_defaults(func=cmd_inbound_accept)

    out = sub.add_parser("outbox", help="letters and messages waiting or sent").add_subparsers(
        dest="action", required=True)
    ol = out.add_parser("list")
    ol.add_argument("--status")
    ol.add_argument("--json", action="store_true")
    ol.set_defaults(func=cmd_outbox_list)
    orr = out.add_parser("retry", help="send failed or bounced letters again (admin; audited)")
    orr.add_argument("ids", nargs="*", type=int, metavar="ID")
    orr.add_argument("--failed", action="store_true", help="every failed letter")
    orr.add_argument("--since", metavar="T", help="with --failed: only letters written since T (local time)")
    orr.add_argument("--as", dest="actor", required=True, metavar="NAME", help="the admin who decides")
    orr.set_defaults(func=cmd_outbox_retry)

    cli_desk.register(sub)

    status = sub.add_parser("status", help="how the desk is doing: database, mailboxes read, outbox, "
                                           "open and overdue records (exit 1 when not ready)")
    status.add_argument("--json", action="store_true")
    status.set_defaults(func=cmd_status)

    export = sub.add_parser("export-data", help="everything held about one person (subject-access request)")
    export.add_argument("--requester", required=True, metavar="EMAIL")
    export.add_argument("--out", metavar="FILE", help="write the JSON here instead of standard output")
    export.set_defaults(func=cmd_export_data)

    db = sub.add_parser("db", help="the database's schema").add_subparsers(dest="action", required=True)
    db.add_parser("upgrade", help="upgrade the schema to this release's (back the database up first)"
                  ).set_defaults(func=cmd_db_upgrade)

    keep = sub.add_parser("retention", help="delete and anonymise what [retention] says is due now "
                          "(the daemon does it every hour)")
    keep.add_argument("--dry-run", action="store_true", help="only count what is due")
    keep.set_defaults(func=cmd_retention)

    bk = sub.add_parser("backup", help="a consistent copy of the database while the desk runs")
    bk.add_argument("path", help="the new backup file (SQLite file, or pg_dump's custom format)")
    bk.set_defaults(func=cmd_backup)
    rs = sub.add_parser("restore", help="replace the database with a backup (stop every instance first)")
    rs.add_argument("path")
    rs.add_argument("--replace", action="store_true", help="even when the database holds data")
    rs.set_defaults(func=cmd_restore)

    check = sub.add_parser("check-config", help="validate settings and try every server")
    check.set_defaults(func=cmd_check_config)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logs.configure(args.verbose)
    checking = args.func is cmd_check_config
    try:
        settings = load_settings(args.config)
    except SettingsError as exc:
        # check-config reports like every other problem it finds (exit 1); any other command
        # cannot start (exit 2). Either way every problem, one line each.
        for line in exc.problems:
            print(f"ПРОБЛЕМА: {line}" if checking else f"inboxdesk: settings: {line}",
                  file=sys.stdout if checking else sys.stderr)
        return 1 if checking else 2
    logs.configure(args.verbose, settings.log.format)
    if not checking and (missing := missing_templates()):
        for line in missing:  # a desk that cannot write its letters must not start
            print(f"inboxdesk: {line}", file=sys.stderr)
        return 2
    app = App(settings)
    try:
        return args.func(app, args)
    except (CommandError, SettingsError, Refused) as exc:
        print(f"inboxdesk: {exc}", file=sys.stderr)
        return 1
    except SchemaMismatch as exc:  # the daemon and every command refuse to work on it
        print(f"inboxdesk: {exc}", file=sys.stderr)
        return 2
    finally:
        app.close()


if __name__ == "__main__":
    sys.exit(main())
