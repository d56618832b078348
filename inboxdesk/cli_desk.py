"""`inboxdesk ticket …` and `inboxdesk staff …`: the desk's operations from the command line.

Each command is one transaction through the desk service, the same calls the chatbot makes; a
refusal prints one line and exits with status 1.
"""

from __future__ import annotations

import argparse
import getpass
import json
import mimetypes
import os
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from inboxdesk import domain, views, workflow
from inboxdesk.app import App
from inboxdesk.letters import OutgoingFile
from inboxdesk.staff import STAFF_ACTIONS, StaffMember, add_member, remove_member
from inboxdesk.workflow import HeldByOther, Refused
from storage.models import AuditEvent, Ticket


def _read_text(args: argparse.Namespace, inline: str, path: str) -> str | None:
    value, file = getattr(args, inline, None), getattr(args, path, None)
    if file is None:
        return value
    try:
        return Path(file).read_text(encoding="utf-8")
    except OSError as exc:
        raise Refused(f"Не удалось прочитать {file}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise Refused(f"{file}: текст должен быть в UTF-8") from None


def _files(paths: list[str] | None) -> list[OutgoingFile]:
    files = []
    for name in paths or ():
        try:
            content = Path(name).read_bytes()
        except OSError as exc:
            raise Refused(f"Не удалось прочитать {name}: {exc.strerror}") from None
        ctype = mimetypes.guess_type(name)[0] or "application/octet-stream"
        files.append(OutgoingFile(Path(name).name, ctype, content))
    return files


def _ticket(app: App, s: Session, public_id: str) -> Ticket:
    ticket = app.desk.ticket_by_public_id(s, public_id)
    if ticket is None:
        raise Refused(f"Записи {public_id} нет")
    return ticket


def _act(app: App, args: argparse.Namespace) -> int:
    """Run one desk operation for `args.op` as staff member `args.actor`, committed at once."""
    with app.db.transaction() as s:
        ticket, what = _operate(app, s, args)
    # Printed after the commit: what the user reads has happened.
    if args.json:
        print(json.dumps(views.ticket_summary(ticket, app.zone), ensure_ascii=False, indent=2))
    else:
        who = f", исполнитель {ticket.assignee}" if ticket.assignee else ""
        print(f"{ticket.public_id}: {what}; статус «{ticket.status}»{who}")
    return 0


def _said(ticket: Ticket, feminine: str, neuter: str) -> str:
    """The past participle that agrees with the record: заявка взята, обращение взято."""
    return neuter if ticket.kind == domain.APPEAL else feminine


def _operate(app: App, s: Session, args: argparse.Namespace) -> tuple[Ticket, str]:
    desk = app.desk
    actor = desk.staff(s).get(args.actor)
    if args.op == "new":
        text = _read_text(args, "text", "text_file") or ""
        ticket = desk.register_phone_request(s, actor, args.mailbox, args.name, args.email or "",
                                             args.phone or "", args.subject, text)
        return ticket, _said(ticket, "зарегистрирована по звонку", "зарегистрировано по звонку")
    ticket = _ticket(app, s, args.id)
    if args.op == "take":
        try:
            desk.take(s, ticket, actor, force=args.force)
        except HeldByOther as exc:
            raise Refused(f"{exc}: ticket take {ticket.public_id} --as {actor.name} --force") from None
        return ticket, _said(ticket, "взята в работу", "взято на рассмотрение")
    if args.op == "assign":
        desk.assign(s, ticket, actor, args.assignee)
        return ticket, _said(ticket, "назначена на ", "назначено на ") + args.assignee
    if args.op == "reply":
        desk.reply(s, ticket, actor, _read_text(args, "text", "text_file") or "", _files(args.attach))
        return ticket, "ответ поставлен в очередь отправки"
    if args.op == "note":
        desk.note(s, ticket, actor, _read_text(args, "text", "text_file") or "")
        return ticket, "заметка добавлена"
    if args.op in ("status", "complete"):
        status = args.status if args.op == "status" else domain.APPEAL_DONE
        before = ticket.status
        desk.change_status(s, ticket, actor, status, comment=getattr(args, "comment", None),
                           answer_text=_read_text(args, "answer", "answer_file"),
                           answer_files=_files(args.attach))
        if before == domain.APPEAL_NEW and ticket.status == domain.APPEAL_DONE:
            # APL-5: the department's letter is about the step from `На рассмотрении`, so it was
            # recorded on the way; the person should know it happened.
            return ticket, f"статус изменён: «{before}» → «{domain.APPEAL_IN_REVIEW}» → «{ticket.status}»"
        return ticket, f"статус изменён: «{before}» → «{ticket.status}»"
    if args.op == "priority":
        desk.set_priority(s, ticket, actor, args.priority, args.impact)
        return ticket, f"приоритет {workflow.priority_label(ticket.priority)}, влияние «{ticket.impact}»"
    if args.op == "deescalate":
        desk.deescalate(s, ticket, actor, args.comment)
        return ticket, "возвращена на первую линию"
    if args.op == "organisation":
        desk.set_organisation(s, ticket, actor, args.name)
        return ticket, f"организация: {ticket.organisation}"
    if args.op == "escalate":
        desk.escalate(s, ticket, actor, args.comment)
        return ticket, "эскалирована на вторую линию"
    if args.op == "extend":
        desk.extend_deadline(s, ticket, actor, args.days, args.reason)
        return ticket, f"срок ответа продлён до {desk.local_date(ticket.answer_due_at)}"
    raise Refused(f"Неизвестная операция {args.op}")  # argparse allows only the ones above


def cmd_find(app: App, args: argparse.Namespace) -> int:
    with app.db.sessions() as s:
        rows = [views.ticket_summary(t, app.zone) for t in app.desk.find(s, args.text)]
    if args.json:
        print(json.dumps(rows, ensure_ascii=False, indent=2))
    else:
        print(views.table(rows, ["id", "status", "requester_email", "subject"], empty="(ничего не найдено)"))
    return 0


def _member_view(m: StaffMember, source: str) -> dict[str, Any]:
    return {"name": m.name, "role": m.role, "telegram_id": m.telegram_id, "email": m.email,
            "full_name": m.full_name, "source": source}


def _machine_user() -> str:
    """Who changes the staff directory from the command line: the account on the server."""
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):  # no name for this uid
        return f"cli:uid {os.getuid()}"


def cmd_staff(app: App, args: argparse.Namespace) -> int:
    configured = app.settings.staff
    with app.db.transaction() as s:
        if args.op == "add":
            member = StaffMember(args.name, args.role, args.telegram_id, (args.email or "").strip(),
                                 (args.full_name or "").strip())
            add_member(s, member, configured, _machine_user())
            print(f"{member.name}: {member.role} добавлен")
            return 0
        if args.op == "remove":
            remove_member(s, args.name, configured, _machine_user())
            print(f"{args.name}: удалён")
            return 0
        if args.op == "log":
            events = s.scalars(select(AuditEvent).where(AuditEvent.action.in_(STAFF_ACTIONS))
                               .order_by(AuditEvent.id))
            log_rows = [views.audit_view(e, app.zone) for e in events]
            print(json.dumps(log_rows, ensure_ascii=False, indent=2) if args.json else views.table(
                log_rows, ["at", "actor", "action", "from", "to"], empty="(изменений не было)"))
            return 0
        names = {m.name for m in configured}
        rows = [_member_view(m, "settings" if m.name in names else "db") for m in app.desk.staff(s).all()]
    if args.json:
        print(json.dumps(rows, ensure_ascii=False, indent=2))
    else:
        print(views.table(rows, ["name", "role", "telegram_id", "email", "full_name", "source"],
                          empty="(нет сотрудников)"))
    return 0


def _text_options(p: argparse.ArgumentParser, required: bool) -> None:
    group = p.add_mutually_exclusive_group(required=required)
    group.add_argument("--text")
    group.add_argument("--text-file", help="UTF-8 text file")


def _answer_options(p: argparse.ArgumentParser) -> None:
    group = p.add_mutually_exclusive_group()
    group.add_argument("--answer", help="answer text for the sender (APL-5: required for Выполнено "
                                        "unless --attach gives a paper answer's copy)")
    group.add_argument("--answer-file", help="the answer text from a UTF-8 file")
    p.add_argument("--attach", nargs="+", metavar="FILE", help="files for the sender (a paper answer's copy)")


def register(sub: argparse._SubParsersAction) -> None:
    """Add `ticket`, `tickets find` and `staff` to the top-level parser's subcommands."""
    ticket = sub.add_parser("ticket", help="act on a ticket or appeal as a staff member").add_subparsers(
        dest="op", required=True)

    def op(name: str, help_text: str, with_id: bool = True) -> argparse.ArgumentParser:
        p = ticket.add_parser(name, help=help_text)
        if with_id:
            p.add_argument("id")
        p.add_argument("--as", dest="actor", required=True, metavar="NAME", help="staff member acting")
        p.add_argument("--json", action="store_true")
        p.set_defaults(func=_act)
        return p

    op("take", "assign to yourself and take into work").add_argument(
        "--force", action="store_true", help="take it even though another staff member holds it")
    op("assign", "assign to a staff member").add_argument("assignee")
    p = op("reply", "email the sender, threaded to the ticket")
    _text_options(p, required=True)
    p.add_argument("--attach", nargs="+", metavar="FILE")
    _text_options(op("note", "internal note, never emailed"), required=True)
    p = op("status", "change the status (MAIL-5, APL-4)")
    p.add_argument("status")
    p.add_argument("--comment", help="shown to the sender in the status letter")
    _answer_options(p)
    _answer_options(op("complete", "complete an appeal: Выполнено (APL-5)"))
    p = op("priority", "set priority 1-4 and impact (MAIL-6)")
    p.add_argument("priority", type=int, choices=sorted(workflow.PRIORITIES))
    p.add_argument("--impact", required=True, help=f"any case; by priority: {workflow.pairs_text()}")
    op("escalate", "hand to the second line (MAIL-10)").add_argument("--comment")
    op("deescalate", "hand an escalated ticket back to the first line").add_argument("--comment")
    op("organisation", "correct the organisation the request came from").add_argument("name")
    p = op("new", "register a request taken by phone (MAIL-11)", with_id=False)
    p.add_argument("--mailbox", required=True, help="mailbox name: help, appeals, ...")
    p.add_argument("--name", required=True, help="caller's full name")
    p.add_argument("--email", help="caller's email for letters")
    p.add_argument("--phone", help="caller's phone")
    p.add_argument("--subject", required=True)
    _text_options(p, required=True)
    p = op("extend", "extend an appeal's answer deadline once (APL-6)")
    p.add_argument("--days", type=int, required=True)
    p.add_argument("--reason", required=True)
    p = ticket.add_parser("find", help="search by ID, subject, requester and text")
    p.add_argument("text")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_find)

    staff = sub.add_parser("staff", help="the staff directory").add_subparsers(dest="op", required=True)
    p = staff.add_parser("add", help="add or update a staff member")
    p.add_argument("name")
    p.add_argument("--role", required=True, choices=workflow.ROLES)
    p.add_argument("--telegram-id", type=int)
    p.add_argument("--email")
    p.add_argument("--full-name")
    p.set_defaults(func=cmd_staff)
    p = staff.add_parser("list")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_staff)
    p = staff.add_parser("remove")
    p.add_argument("name")
    p.set_defaults(func=cmd_staff)
    p = staff.add_parser("log", help="who changed the staff directory, when (AUD-1)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_staff)
