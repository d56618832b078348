"""MAIL-8: does a new support request carry the Appendix-1 parts (regulation 3.1, 3.2, 3.4)?

`check_request(subject, text, attachments)` answers with the parts found and the mandatory parts
missing, by their Russian names, for the "please add" letter and the `Обратная связь` status.

People do not fill forms: they write prose, paste the form as a Word table (tabs, runs of spaces,
`|`, or one cell per line), put ФИО/должность/МО/телефон into a signature, write labels in any
case with or without colons. So each part is recognised by its value (a phone number, a Latin
login, a Russian full name, an organisation name) and labels only help to find and classify the
values. The measured accuracy on realistic requests is in tests/test_form_check.py.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from inboxdesk import form_patterns as P

# Russian names of the Appendix-1 parts, in the form's order (the email lists them in this order).
PARTS: dict[str, str] = {
    "subject": "заголовок заявки (тема письма), отражающий суть проблемы",
    "applicant_name": "ФИО заявителя",
    "position": "должность заявителя",
    "organization": "наименование медицинской организации",
    "phone": "контактный номер телефона",
    "user_name": "ФИО пользователя",
    "login": "логин, под которым воспроизводится ошибка",
    "patient": "фамилия и инициалы пациента",
    "card": "номер карты пациента",
    "steps": "последовательность действий, приводящих к проблеме (или суть запроса)",
    "error_text": "текст ошибки (по кнопке «Подробнее»)",
    "screenshot": "скриншот",
    "error_evidence": "текст ошибки (по кнопке «Подробнее») или скриншот с ошибкой",
}

# The mandatory set, the one place that decides which letters go to `Обратная связь`.
# Regulation 3.4 says a request "should include" all Appendix-1 parts but makes only the title
# explicitly obligatory; 3.1 and 3.4 add the sequence of actions. We require what first line cannot
# get elsewhere and needs to act: who asks and where (ФИО, МО), how to reach them (phone: 2.9 makes
# the sender answer questions promptly), under which login the error reproduces, and what happens.
# Optional, so as not to bounce good requests: должность (does not change the work), ФИО
# пользователя (usually the applicant), patient data (many problems have no patient, and personal
# data should not travel by email unless needed). When an error is described, its text or a
# screenshot is needed (either is enough: the regulation wants both, staff can work with one).
# A request for a new account has no login yet; the new user's ФИО is needed instead.
MANDATORY: dict[str, tuple[str, ...]] = {
    "problem": ("subject", "applicant_name", "organization", "phone", "login", "steps"),
    "new_account": ("subject", "applicant_name", "organization", "phone", "user_name", "steps"),
}
ERROR_EVIDENCE = "error_evidence"  # mandatory only when an error is described

MAX_CHARS = 50_000
OWN_PHONES = ("8692417222",)  # the desk's own number (regulation 2.8), seen in quoted replies
IMAGE_EXT = {"jpg", "jpeg", "png", "gif", "bmp", "tif", "tiff", "webp", "heic"}
ARCHIVE_EXT = {"zip", "7z", "rar"}  # 3.5: more than 5 screenshots come archived
WORD_EXT = {"doc", "docx"}
VIDEO_EXT = {"mp4", "avi", "mov", "mkv", "wmv", "3gp", "webm", "flv", "mpg", "mpeg", "m4v"}


@dataclass(frozen=True)
class FormCheck:
    kind: str  # problem | new_account
    present: tuple[str, ...]  # part keys found, PARTS order
    missing: tuple[str, ...]  # mandatory part keys not found: non-empty means `Обратная связь`
    absent: tuple[str, ...]  # optional parts not found (for staff; never asked for by email)
    attachments_only: bool  # 3.1: only .doc/.docx/video attachments, no description
    error_described: bool
    found: dict[str, str] = field(default_factory=dict)  # extracted values, e.g. phone, login

    @property
    def complete(self) -> bool:
        return not self.missing

    @property
    def missing_names(self) -> list[str]:
        return [PARTS[k] for k in self.missing]

    @property
    def present_names(self) -> list[str]:
        return [PARTS[k] for k in self.present]


# Checks computed ahead for exact arguments (by the intake's parse workers, on another core):
# `check_request` is pure, so answering from here changes nothing but where the time is spent.
# The intake adds a batch's entries and removes what the batch did not use.
AHEAD: dict[tuple[str, str, tuple[tuple[str, str], ...], tuple[str, ...]], FormCheck] = {}


def ahead_key(subject: str, text: str, attachments: list[tuple[str, str]],
              ignore_phones: tuple[str, ...] = OWN_PHONES) -> tuple:
    return subject, text, tuple(attachments), ignore_phones


def check_request(subject: str, text: str, attachments: list[tuple[str, str]],
                  *, ignore_phones: tuple[str, ...] = OWN_PHONES) -> FormCheck:
    """Appendix-1 parts of a request. `attachments` are (filename, content type) pairs; pass the
    whole text the sender wrote (for a completed ticket: the request and the answers joined)."""
    if AHEAD:
        done = AHEAD.pop(ahead_key(subject, text, attachments, ignore_phones), None)
        if done is not None:
            return done
    # A request fits in a few kilobytes; the rest of a huge letter is logs or old chains.
    body = P.FORM_HINTS.sub(" ", _normalise(text[:MAX_CHARS]))
    found: dict[str, str] = {}
    present: set[str] = set()

    titles = [_subject(subject)] + [_subject(m.group(1)) for m in P.TITLE_LINE.finditer(body)]
    if any(titles):
        present.add("subject")
        found["subject"] = next(t for t in titles if t)

    names = _names(body)
    applicant = [n for n, role in names if role == "applicant"]
    users = [n for n, role in names if role == "user"]
    others = [n for n, role in names if role == "other"]
    patients = [n for n, role in names if role == "patient"]
    kind = "new_account" if P.NEW_ACCOUNT.search(body) else "problem"
    if applicant or users:
        present.add("applicant_name")
        found["applicant_name"] = (applicant or users)[-1]
    # The user is usually the applicant; for a new account, the person the account is for.
    candidates = users + others if kind == "new_account" else users or applicant
    if kind == "new_account" and not candidates and re.search(r"\bмне\b|для меня|моей|мою", body, re.I):
        candidates = applicant
    if candidates:
        present.add("user_name")
        found["user_name"] = candidates[0]
    if patients:
        present.add("patient")
        found["patient"] = patients[0]

    login = _login(body)
    if not login and attachments and P.LOGINS_ATTACHED.search(body):
        login = "в приложенном списке"  # 3.4: lists of users come as files, logins inside
    for key, value in (("phone", _phone(body, ignore_phones)), ("login", login),
                       ("organization", _organization(body)), ("card", _card(body))):
        if value:
            present.add(key)
            found[key] = value
    if P.POSITION.search(body):
        present.add("position")

    has_error_text = _error_text(body)
    # The form's label "Описание ошибки" is not an error report; the subject may be one.
    error_described = has_error_text or bool(P.ERROR.search(P.ERROR_LABELS.sub(" ", f"{subject}\n{body}")))
    has_steps = bool(P.STEP_SIGNS.search(body) or P.STEPS_LABEL.search(body)
                     or len(P.NUMBERED.findall(body)) >= 2)
    if has_steps or (not error_described and P.SERVICE.search(body)):
        present.add("steps")
    if has_error_text:
        present.add("error_text")
    exts = [_ext(name, ctype) for name, ctype in attachments]
    if any(e in IMAGE_EXT | ARCHIVE_EXT for e in exts):
        present.add("screenshot")
    if present & {"error_text", "screenshot"}:
        present.add(ERROR_EVIDENCE)

    attachments_only = bool(exts) and all(e in WORD_EXT | VIDEO_EXT for e in exts) \
        and "steps" not in present and _description_words(body) < 6
    mandatory = MANDATORY[kind] + ((ERROR_EVIDENCE,) if error_described else ())
    order = list(PARTS)
    return FormCheck(
        kind=kind,
        present=tuple(k for k in order if k in present and k != ERROR_EVIDENCE),
        missing=tuple(k for k in order if k in mandatory and k not in present),
        absent=tuple(k for k in order if k not in present and k not in mandatory and k != ERROR_EVIDENCE),
        attachments_only=attachments_only, error_described=error_described, found=found)


# -- helpers ----------------------------------------------------------------------------------

def _normalise(text: str) -> str:
    """One cell separator, no quote markers, label-only lines joined with their value line."""
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\u00a0", " ").replace("\u200b", "")
    lines = []
    for line in text.split("\n"):
        line = re.sub(r"^(?:\s*>)+ ?", "", line)  # quoted or forwarded text still carries the request
        line = re.sub(r"\t+|\s*\|\s*|\s{3,}", " | ", line).strip(" |")
        lines.append(line)
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if P.LABEL_ONLY.match(line):
            j = i + 1
            while j < len(lines) and not lines[j].strip():
                j += 1
            if j < len(lines) and not P.LABEL_ONLY.match(lines[j]) and not P.LABEL_START.match(lines[j]):
                out.append(f"{line.rstrip(' :|')}: {lines[j]}")
                i = j + 1
                continue
        out.append(line)
        i += 1
    return "\n".join(out)


def _subject(subject: str) -> str:
    s = subject or ""
    while True:
        stripped = P.SUBJECT_PREFIX.sub("", s, count=1)
        if stripped == s:
            break
        s = stripped
    words = re.findall(r"[\wА-Яа-яЁё]+", s.lower())
    return s.strip() if any(w not in P.GENERIC for w in words) else ""


def _names(body: str) -> list[tuple[str, str]]:
    """(name, role) with role applicant | user | other (a third party) | patient."""
    spans: list[tuple[int, int]] = []
    for pattern in P.NAME_PATTERNS:
        spans += [(m.start(), m.end()) for m in pattern.finditer(body)]
    for m in P.NAME_LABEL.finditer(body):
        if not P.NOT_NAME.match(m.group(1)) and len(m.group(1).split()) >= 2:
            spans.append((m.start(1), m.end(1)))
    out: list[tuple[str, str]] = []
    taken_until = -1
    for start, end in sorted(spans, key=lambda s: (s[0], -s[1])):
        if start < taken_until:
            continue  # overlaps a longer match already taken ("Иванова Мария Петровна" vs "Мария ...")
        taken_until = end
        line_start = body.rfind("\n", 0, start) + 1
        context = body[max(line_start, start - 40):start]
        cues = list(P.ROLE_CTX.finditer(context))
        role = cues[-1].lastgroup if cues else "applicant"
        if role == "org" and context.rstrip().endswith((".", "имени")):
            continue  # "им. Н.И. Пирогова" is part of a hospital's name
        out.append((body[start:end].strip(), "applicant" if role == "org" else str(role)))
    return out


def _phone(body: str, ignore: tuple[str, ...]) -> str:
    for m in P.PHONE_RUN.finditer(body):
        raw = m.group(1).strip()
        digits = re.sub(r"\D", "", raw)
        if P.SNILS.fullmatch(raw):
            continue
        national = digits[1:] if len(digits) == 11 and digits[0] in "78" else digits
        if national in ignore:
            continue
        before = body[max(body.rfind("\n", 0, m.start()) + 1, m.start() - 30):m.start()]
        labelled = bool(P.PHONE_LABEL.search(before[-25:]))
        if not labelled and P.NUMBER_CTX.search(before):
            continue
        if len(national) == 10 and national[0] in "3489" and (len(digits) == 10 or digits[0] in "78"):
            return raw
        if labelled and 5 <= len(digits) <= 7:  # a local number: "тел. 55-12-34"
            return raw
    return ""


def _login(body: str) -> str:
    for m in P.LOGIN_LABEL.finditer(body):
        rest = body[m.end():].split("\n", 1)[0][:60]
        for t in P.LOGIN_TOKEN.finditer(rest):
            token = t.group(1).rstrip(".-")
            between = rest[:t.start()]
            if len(re.findall(r"[А-Яа-яЁё]+", between)) > 3 or P.NEGATION.search(between):
                break
            if token.lower() in P.LOGIN_STOP or not re.search(r"[A-Za-z]", token) or len(token) < 3:
                continue
            return token
    for m in P.FALLBACK_LOGIN.finditer(body):
        if not P.FILE_OR_HOST.search(m.group(1)):
            return m.group(1)
    return ""


def _organization(body: str) -> str:
    """The sender's organisation. A letter may name others ("направления из ГБ №1"), so a name on
    a line that also holds a person, a phone or a label wins; else the last one (signatures end
    letters)."""
    candidates: list[tuple[bool, str]] = []
    for pattern, from_match in ((P.ORG, True), (P.ORG_WORDS, False)):
        for m in pattern.finditer(body):
            line_start = body.rfind("\n", 0, m.start()) + 1
            line = body[line_start:].split("\n", 1)[0]
            if "МИАЦ" in line or "информационно-аналитическ" in line.lower():
                continue  # the desk itself, quoted from its own letters
            own = bool(len(line) < 80 or P.PHONE_LABEL.search(line) or P.POSITION.search(line)
                       or re.search(r"заявител|организаци|учреждени|^\s*мо\b", line, re.I)
                       or any(p.search(line) for p in P.NAME_PATTERNS))
            candidates.append((own, _cell(line, m.start() - line_start, from_match)))
        if candidates:
            break
    for own, name in candidates:
        if own:
            return name
    if candidates:
        return candidates[-1][1]
    m = P.ORG_LABEL.search(body)
    return m.group(1).strip() if m else ""


def _cell(line: str, at: int, from_match: bool) -> str:
    """The organisation's name in its line: from its abbreviation (ГБУЗС ...) or the start of its
    cell, to the next comma or cell outside «» (names hold commas only inside quotes)."""
    if from_match:
        start = at
    else:
        start = max(line.rfind(sep, 0, at) for sep in (",", "|", ":", ".")) + 1
        words = list(re.finditer(r"\S+", line[start:at]))
        if len(words) > 3:
            start += words[-3].start()
    depth, end = 0, len(line)
    for i in range(at, len(line)):
        ch = line[i]
        depth += ch == "«"
        depth -= ch == "»" and depth > 0
        if not depth and (ch in ",|" or line.startswith((" тел", " +7", " 8 ", " 8-", " 8("), i)
                          or (ch == "." and line[i - 1:i] in "»\"" and i > at)):
            end = i
            break
    name = line[start:end].strip(" .;")
    return name if len(name) <= 100 else name[:100].rsplit(" ", 1)[0]


def _card(body: str) -> str:
    m = re.search(r"(?:№\s*(?:мед\w*\s+|амбулаторной\s+)?карты|номер\w*\s+(?:мед\w*\s+)?карты|"
                  r"карт[аы]\s*(?:пациента\s*)?№?|№\s*мк|мк\s*№|иб\s*№)\s*[:\-]?\s*(\d[\d/\-]*)", body, re.I)
    return m.group(1) if m else ""


def _error_text(body: str) -> bool:
    """Is the error message itself given (Appendix 1: "текст из ошибки по кнопке «Подробнее»")?"""
    if P.TECHNICAL.search(body):
        return True
    for m in P.ERROR_LABEL.finditer(body):
        if len(m.group(1).split()) >= 2:
            return True
    lines = body.split("\n")
    for i, line in enumerate(lines):
        if not P.ERROR_CUE.search(line):
            continue
        if any(len(q.split()) >= 2 and not P.ORG.search(q) for q in P.QUOTED.findall(line)):
            return True  # выходит ошибка «Сертификат не найден»
        m = P.ERROR_SAYS.search(line)
        if m and len((m.group(1) or m.group(2) or "").split()) >= 2:
            return True  # ошибка: Шаблон не найден
        following = lines[i + 1] if i + 1 < len(lines) else ""
        if line.rstrip().endswith(":") and len(following.split()) >= 2 and not P.LABEL_START.match(following):
            return True  # ... по кнопке «Подробнее»:\n<copied text>
        if P.ERROR_RETOLD.search(line):
            return True  # выходит ошибка нет остатков препарата на складе
    return False


def _description_words(body: str) -> int:
    """Words of description, signature lines and pointers to attachments left out (3.1)."""
    count = 0
    for line in body.split("\n"):
        signature = (P.PHONE_RUN.search(line) or P.ORG.search(line) or P.ORG_WORDS.search(line)
                     or any(p.search(line) for p in P.NAME_PATTERNS)
                     or (P.POSITION.search(line) and len(line.split()) <= 4))
        if signature:
            continue
        line = P.POINTER.sub(" ", line)
        count += len(re.findall(r"[A-Za-zА-Яа-яЁё]{3,}", line))
    return count


def _ext(filename: str, content_type: str) -> str:
    ext = filename.rsplit(".", 1)[-1].lower() if "." in filename else ""
    ctype = (content_type or "").lower()
    if ext in IMAGE_EXT | ARCHIVE_EXT | WORD_EXT | VIDEO_EXT:
        return ext
    if ctype.startswith("image/"):
        return "png"
    if ctype.startswith("video/"):
        return "mp4"
    if ctype in ("application/msword",
                 "application/vnd.openxmlformats-officedocument.wordprocessingml.document"):
        return "docx"
    return ext or ctype
