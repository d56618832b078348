"""The inbound rules one by one, on hand-built messages: the boolean and the reason staff will read."""

from __future__ import annotations

import pytest

from inboxdesk.domain import DISPOSITIONS
from mailflow.chain import AUTOREPLY, BOUNCE, CHAIN, FILTERED, Decision, decide
from mailflow.message import BounceInfo, MailAttachment, ParsedMessage
from mailflow.rules.allowed_domain import AllowedDomainRule
from mailflow.rules.auto_reply import AutoReplyRule
from mailflow.rules.base import RuleContext
from mailflow.rules.bounce import BounceRule
from mailflow.rules.mailing_list import MailingListRule
from mailflow.rules.own_mail import LOOP_HEADER, OwnMailRule
from mailflow.rules.size_limit import SizeLimit, size_split

HELP = "help@miac.sev.gov.ru"
SUPPORT = RuleContext(mailbox_address=HELP, allowed_domains=("sev.gov.ru",),
                      own_addresses=frozenset({HELP, "obr@miac.sev.gov.ru"}))
APPEALS = RuleContext(mailbox_address="obr@miac.sev.gov.ru", mailbox_kind="appeals",
                      own_addresses=SUPPORT.own_addresses)


def mail(from_addr: str = "ivanova@gb1.sev.gov.ru", subject: str = "Не открывается ЕМИАС",
         headers: dict[str, str] | None = None, **fields: object) -> ParsedMessage:
    """A parsed letter as the parser would hand it over; `headers` are single-valued for brevity."""
    return ParsedMessage(message_id="<1@gb1.sev.gov.ru>", subject=subject, from_addr=from_addr,
                         from_name="Иванова Мария", to=(HELP,),
                         headers={k.lower(): [v] for k, v in (headers or {}).items()},
                         text="Добрый день! После обновления не открывается расписание.", **fields)


# -- LOOP-1: our own mail ----------------------------------------------------------------------


def test_own_mailbox_address_is_own_mail() -> None:
    """A forward rule sends our acknowledgement back to help@: it must not open a ticket (LOOP-1)."""
    hit = OwnMailRule().check(mail(from_addr=HELP), SUPPORT)
    assert hit is not None
    assert hit.rule == "own-mail" and HELP in hit.reason


def test_loop_header_marks_own_mail_even_from_a_foreign_address() -> None:
    """A list or a mis-set alias rewrites From, but our X-Inboxdesk-Loop header survives (LOOP-1)."""
    msg = mail(from_addr="list@lists.sev.gov.ru", headers={LOOP_HEADER: HELP})
    hit = OwnMailRule().check(msg, SUPPORT)
    assert hit is not None and LOOP_HEADER in hit.reason
    assert LOOP_HEADER == "X-Inboxdesk-Loop"


def test_another_inboxdesk_installation_is_not_our_mail() -> None:
    """A vendor's helpdesk also runs inboxdesk: a person answering from there stamps *its* address."""
    msg = mail(from_addr="engineer@vendor.ru", headers={LOOP_HEADER: "support@vendor.ru"})
    assert OwnMailRule().check(msg, SUPPORT) is None


def test_our_message_id_marks_own_mail_when_the_domain_is_known() -> None:
    ctx = RuleContext(mailbox_address=HELP, own_message_id_domain="miac.sev.gov.ru")
    ours = ParsedMessage(message_id="<172.1.2.inboxdesk@miac.sev.gov.ru>", subject="Заявка принята",
                         from_addr="relay@y.ru", from_name="")
    assert OwnMailRule().check(ours, ctx) is not None
    assert OwnMailRule().check(mail(), ctx) is None


def test_a_colleagues_letter_is_not_own_mail() -> None:
    assert OwnMailRule().check(mail(), SUPPORT) is None


# -- LOOP-1: bounces -----------------------------------------------------------------------------


def test_bounce_rule_reports_recipients_and_kind() -> None:
    """A DSN for our answer to ivanova@: staff see who did not get it and that it is final (LOOP-1)."""
    bounce = BounceInfo(recipients=("ivanova@gb1.sev.gov.ru",), original_message_ids=("<a@b>",))
    hit = BounceRule().check(mail(from_addr="mailer-daemon@sev.gov.ru", bounce=bounce), SUPPORT)
    assert hit is not None
    assert "ivanova@gb1.sev.gov.ru" in hit.reason and "не доставлено" in hit.reason
    assert hit.details["original_message_ids"] == ["<a@b>"]


def test_delay_warning_is_told_apart() -> None:
    hit = BounceRule().check(mail(bounce=BounceInfo(recipients=("a@b.ru",), temporary=True)), SUPPORT)
    assert hit is not None and "задержка" in hit.reason


def test_ordinary_mail_is_not_a_bounce() -> None:
    assert BounceRule().check(mail(), SUPPORT) is None


# -- LOOP-1: auto-replies ------------------------------------------------------------------------


@pytest.mark.parametrize(("headers", "subject", "reason_part"), [
    ({"Auto-Submitted": "auto-replied"}, "Re: заявка", "Auto-Submitted: auto-replied"),
    ({"Auto-Submitted": "auto-generated"}, "Отчёт", "Auto-Submitted"),
    ({"Auto-Submitted": "auto-replied (zimbra; vacation)"}, "Lorem", "zimbra"),
    ({"X-Autoreply": "yes"}, "Lorem", "x-autoreply"),
    ({"X-Autorespond": "Out of office"}, "Lorem", "x-autorespond"),
    ({"Precedence": "auto_reply"}, "Lorem", "auto_reply"),
    ({"X-MS-Exchange-Inbox-Rules-Loop": "a@b.ru", "X-Auto-Response-Suppress": "All"}, "Lorem",
     "Exchange"),
    ({}, "Автоматический ответ: Не открывается ЕМИАС", "по теме"),
    ({}, "Automatic reply: [HD-2026-000123] Принтер", "по теме"),
    ({}, "Out of Office AutoReply: отчёт", "по теме"),
    ({}, "Автоответ: Re: заявка", "по теме"),
    ({}, "Ivan Petrov is out of the office.", "по теме"),
])
def test_auto_replies_are_recognised(headers: dict[str, str], subject: str, reason_part: str) -> None:
    """Out-of-office notes never open tickets and are never answered (LOOP-1, OUT-1)."""
    hit = AutoReplyRule().check(mail(subject=subject, headers=headers), SUPPORT)
    assert hit is not None
    assert hit.rule == "auto-reply" and reason_part in hit.reason


@pytest.mark.parametrize(("headers", "subject"), [
    ({"Auto-Submitted": "no"}, "Заявка"),
    # Exchange puts this on a person's letter redirected by an inbox rule.
    ({"X-MS-Exchange-Inbox-Rules-Loop": "a@b.ru"}, "Заявка"),
    # A request not to be answered, not a statement of being an answer (meeting requests carry it).
    ({"X-Auto-Response-Suppress": "All"}, "Приглашение: совещание"),
    ({"X-Mailer": "Zimbra 7.1.3_GA_3346"}, "Lorem"),
    ({"X-Autoreply": "no"}, "Lorem"),
    ({}, "Не работает автоответ в почте"),
    ({}, "Re: Автоматический ответ включить на время отпуска"),
    ({}, "Fwd: Автоматический ответ: заявка"),
    ({"Precedence": "bulk"}, "Новости"),  # a list, not an auto-reply: the mailing-list rule's
])
def test_look_alikes_are_not_auto_replies(headers: dict[str, str], subject: str) -> None:
    """People write about autoresponders; only the mail programs' own marks count (LOOP-1)."""
    assert AutoReplyRule().check(mail(subject=subject, headers=headers), SUPPORT) is None


def test_read_receipt_is_an_automatic_report() -> None:
    msg = mail(subject="Прочитано: заявка", content_type="multipart/report",
               headers={"Content-Type": 'multipart/report; report-type=disposition-notification; b="x"'})
    hit = AutoReplyRule().check(msg, SUPPORT)
    assert hit is not None and "о прочтении" in hit.reason


# -- LOOP-1: mailing lists -----------------------------------------------------------------------


@pytest.mark.parametrize(("headers", "reason_part"), [
    ({"List-Id": "Новости МИАЦ <news.miac.sev.gov.ru>"}, "list-id"),
    ({"List-Unsubscribe": "<mailto:unsub@news.ru>"}, "list-unsubscribe"),
    ({"List-Post": "<mailto:all@miac.sev.gov.ru>"}, "list-post"),
    ({"X-Mailing-List": "all@miac"}, "x-mailing-list"),
    ({"Precedence": "bulk"}, "Precedence: bulk"),
    ({"Precedence": "List"}, "Precedence: list"),
    ({"Precedence": "junk"}, "Precedence: junk"),
])
def test_list_mail_is_filtered(headers: dict[str, str], reason_part: str) -> None:
    """A newsletter sent to help@ is kept for staff but is no request (LOOP-1)."""
    hit = MailingListRule().check(mail(headers=headers), SUPPORT)
    assert hit is not None and reason_part in hit.reason


def test_mass_mailer_feedback_id_alone_is_not_a_list() -> None:
    """Transactional mail from real organisations carries Feedback-ID too."""
    msg = mail(headers={"Feedback-ID": "1:2:3:yandex", "Precedence": "first-class"})
    assert MailingListRule().check(msg, SUPPORT) is None


# -- MAIL-1: allowed senders ---------------------------------------------------------------------


def test_allowed_domain_accepts_exact_domain() -> None:
    """MAIL-1: staff of sev.gov.ru write to help@ and get tickets."""
    assert AllowedDomainRule().check(mail(from_addr="petrov@sev.gov.ru"), SUPPORT) is None
    assert AllowedDomainRule().check(mail(from_addr="Petrov@SEV.GOV.RU"), SUPPORT) is None


def test_subdomain_needs_the_subdomain_setting() -> None:
    """MAIL-1: exact domain match unless a subdomain rule is configured."""
    msg = mail(from_addr="ivanova@gb1.sev.gov.ru")
    hit = AllowedDomainRule().check(msg, SUPPORT)
    assert hit is not None and "gb1.sev.gov.ru" in hit.reason and "sev.gov.ru" in hit.reason
    relaxed = RuleContext(mailbox_address=HELP, allowed_domains=("Sev.Gov.Ru.",), allow_subdomains=True)
    assert AllowedDomainRule().check(msg, relaxed) is None


def test_lookalike_domains_are_refused() -> None:
    """MAIL-1: `evilsev.gov.ru` and `sev.gov.ru.attacker.com` are not `sev.gov.ru`."""
    relaxed = RuleContext(mailbox_address=HELP, allowed_domains=("sev.gov.ru",), allow_subdomains=True)
    for sender in ("x@evilsev.gov.ru", "x@sev.gov.ru.attacker.com", "x@gmail.com"):
        assert AllowedDomainRule().check(mail(from_addr=sender), relaxed) is not None, sender


def test_empty_list_accepts_everyone_but_not_a_missing_sender() -> None:
    """Citizens write to the appeals mailbox from any address; an empty or broken From is refused."""
    assert AllowedDomainRule().check(mail(from_addr="citizen@mail.ru"), APPEALS) is None
    for broken in ("", "not-an-address", "a@b", "@sev.gov.ru", "a b@sev.gov.ru"):
        hit = AllowedDomainRule().check(mail(from_addr=broken), APPEALS)
        assert hit is not None and "некорректен" in hit.reason, broken


def test_cyrillic_domains_compare_in_either_form() -> None:
    ctx = RuleContext(mailbox_address=HELP, allowed_domains=("минздрав.рф",))
    assert AllowedDomainRule().check(mail(from_addr="a@xn--80aeelexi0a.xn--p1ai"), ctx) is None
    assert AllowedDomainRule().check(mail(from_addr="a@минздрав.рф"), ctx) is None


# -- the chain -----------------------------------------------------------------------------------


def test_chain_order_is_data_and_dispositions_are_known() -> None:
    assert [rule.name for rule, _ in CHAIN] == ["own-mail", "bounce", "auto-reply", "mailing-list",
                                                "ambiguous-sender", "allowed-domain"]
    assert {outcome for _, outcome in CHAIN} <= set(DISPOSITIONS)


def test_a_colleagues_request_is_accepted() -> None:
    """A sev.gov.ru colleague writes to help@: no rule fires, the message becomes a ticket."""
    decision = decide(mail(from_addr="petrov@sev.gov.ru"), SUPPORT)
    assert decision == Decision(disposition=None, hits=(), misses=tuple(r.name for r, _ in CHAIN))
    assert decision.accepted and decision.reasons == []


def test_first_matching_rule_decides_and_every_hit_is_kept() -> None:
    """A Gmail vacation note from outside: auto-reply decides; list and domain hits are recorded too."""
    msg = mail(from_addr="me@gmail.com", subject="vacation: Заявка",
               headers={"Auto-Submitted": "auto-replied", "Precedence": "bulk", "X-Autoreply": "yes"})
    decision = decide(msg, SUPPORT)
    assert decision.disposition == AUTOREPLY
    assert [h.rule for h in decision.hits] == ["auto-reply", "mailing-list", "allowed-domain"]
    assert decision.misses == ("own-mail", "bounce", "ambiguous-sender")
    assert decision.reasons[0].startswith("автоматическое письмо")


def test_bounce_beats_list_headers() -> None:
    """A DSN relayed by a list still links to the letter it is about (LOOP-1)."""
    msg = mail(from_addr="mailer-daemon@mail.ru", headers={"List-Id": "x"},
               bounce=BounceInfo(recipients=("a@mail.ru",)))
    assert decide(msg, SUPPORT).disposition == BOUNCE


def test_stranger_is_filtered_with_the_domain_reason() -> None:
    """MAIL-1: a request from gmail.com is kept for staff, filtered, with the reason to show."""
    decision = decide(mail(from_addr="someone@gmail.com"), SUPPORT)
    assert decision.disposition == FILTERED
    assert decision.reasons == ["домен отправителя gmail.com не входит в разрешённые: sev.gov.ru"]


def test_own_mail_decides_before_anything_else() -> None:
    msg = mail(from_addr=HELP, headers={"Auto-Submitted": "auto-replied"})
    decision = decide(msg, SUPPORT)
    assert decision.disposition == FILTERED and decision.hits[0].rule == "own-mail"


# -- MAIL-9: attachment size ---------------------------------------------------------------------


def _file(name: str, size: int) -> MailAttachment:
    return MailAttachment(filename=name, content_type="image/png", content=b"x" * size)


def test_size_split_keeps_files_in_order_within_the_limit() -> None:
    """MAIL-9: 10 MB per message; the files that fit are stored, the rest are refused."""
    files = (_file("1.png", 4), _file("2.png", 4), _file("3.png", 4), _file("4.png", 1))
    kept, refused = size_split(files, 10)
    assert [f.filename for f in kept] == ["1.png", "2.png"]
    assert [f.filename for f in refused] == ["3.png", "4.png"]
    assert size_split(files, 13) == (files, ())
    assert size_split(files, None) == (files, ())
    assert size_split((), 10) == ((), ())


def test_size_limit_annotates_without_filtering() -> None:
    """MAIL-9: over-limit mail still becomes a ticket; the reason names the refused files."""
    ctx = RuleContext(mailbox_address=HELP, allowed_domains=("sev.gov.ru",),
                      max_attachment_bytes=10 * 1024 * 1024)
    msg = mail(from_addr="petrov@sev.gov.ru", attachments=(
        _file("скрин.png", 1024), _file("видео.mp4", 12 * 1024 * 1024)))
    hit = SizeLimit().check(msg, ctx)
    assert hit is not None and "10 МБ" in hit.reason and "видео.mp4" in hit.reason
    assert hit.details["kept"] == ["скрин.png"]
    assert decide(msg, ctx).accepted
    assert SizeLimit().check(mail(attachments=(_file("a.png", 10),)), ctx) is None
