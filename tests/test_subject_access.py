"""Issue 13: a subject-access request. `export-data --requester EMAIL` holds every record the
person requested (messages, attachments byte for byte, events, letters), every letter of theirs
we received — also one that was filtered — and every letter we wrote to them; nobody else's."""

from __future__ import annotations

import base64
import json

from tests.story import cli, letter, maildir_settings

PERSON = "i.petrova@sev.gov.ru"


def test_everything_held_about_one_person(tmp_path, db_url):
    config = maildir_settings(tmp_path, db_url)
    scan = b"%PDF-1.4 scan of the order"
    raws = [letter(sender=PERSON, subject="Первая заявка", files=[("приказ.pdf", "application/pdf", scan)]),
            letter(sender=PERSON, subject="Вторая заявка"),
            letter(sender=PERSON, subject="Рассылка", headers={"List-Id": "<news.sev.gov.ru>"}),
            letter(sender="o.sidorov@sev.gov.ru", subject="Чужая заявка")]
    files = []
    for n, raw in enumerate(raws):
        files.append(tmp_path / f"{n}.eml")
        files[-1].write_bytes(raw)
    assert cli(config, "ingest", "--mailbox", "help", *map(str, files))[0] == 0

    out = tmp_path / "petrova.json"
    status, said = cli(config, "export-data", "--requester", PERSON.upper(), "--out", str(out))
    assert (status, said) == (0, f"записей: 2, полученных писем: 3, отправленных им: 2 — {out}\n")
    data = json.loads(out.read_text(encoding="utf-8"))
    assert [r["subject"] for r in data["records"]] == ["Первая заявка", "Вторая заявка"]
    [pdf] = data["records"][0]["files"]
    assert (pdf["filename"], base64.b64decode(pdf["content_base64"])) == ("приказ.pdf", scan)
    assert [r["disposition"] for r in data["received_letters"]] == ["ticket", "ticket", "filtered"]
    assert base64.b64decode(data["received_letters"][0]["raw_base64"]) == raws[0]
    assert all(o["to"] == [PERSON] for o in data["letters_to_them"])
    assert "sidorov" not in out.read_text(encoding="utf-8") and "Чужая" not in out.read_text(encoding="utf-8")
