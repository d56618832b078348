"""Issue 17, regulation 003 §3.5 (MAIL-9): screenshots come as JPG, GIF or PNG, and more than 5
images come packed in one ZIP, 7z or RAR archive. A request that breaks a rule is registered all
the same, its files kept; the acknowledgement says which rule and what to do, and the record's
history says so to staff. Files are judged by their own bytes, not by their names.
SQLite and PostgreSQL."""

from __future__ import annotations

import io
import zipfile

import pytest

from tests.clock_world import HELP, World, msk
from tests.story import letter

PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + b"\x00" * 64
JPG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"\x00" * 64
GIF = b"GIF89a" + b"\x00" * 64
BMP = b"BM" + b"\x00" * 64
PDF = b"%PDF-1.4\n" + b"\x00" * 64
RULE = "скриншоты принимаются в форматах JPG, GIF или PNG (п. 3.5 Регламента)"


@pytest.fixture
def world(tmp_path, db_url, smtp_server):
    w = World(tmp_path, db_url, smtp_server)
    w.at(msk(2026, 11, 16, 10))
    yield w
    w.close()


def acknowledgement(world: World, files: list[tuple[str, str, bytes]]) -> str:
    """A complete request with `files` arrives; the one letter its sender gets back, as text."""
    before = len(world.smtp.messages)
    world.ingest(letter(subject=f"Ошибка в расписании, {len(files)} файл(ов)", files=files))
    world.run_once()
    [ack] = [m for m in world.smtp.messages[before:] if "i.petrova@sev.gov.ru" in m.rcpt_tos]
    assert ack.mail_from == HELP
    return ack.message.get_body(("plain",)).get_content()


def latest(world: World) -> dict:
    return world.ticket(max(t["id"] for t in world.tickets()))


def test_screenshots_as_the_regulation_asks_get_a_plain_acknowledgement(world):
    text = acknowledgement(world, [("экран.png", "image/png", PNG), ("ошибка.jpg", "image/jpeg", JPG),
                                   ("анимация.gif", "image/gif", GIF), ("акт.pdf", "application/pdf", PDF)])
    assert "Ваше обращение зарегистрировано" in text
    assert "О вложениях" not in text
    assert [e for e in latest(world)["events"] if e["action"] == "files_advice"] == []


def test_a_bmp_screenshot_is_kept_and_the_sender_is_told_to_send_png_jpg_or_gif(world):
    text = acknowledgement(world, [("экран.bmp", "image/bmp", BMP)])
    assert "Ваше обращение зарегистрировано" in text
    assert f"  - изображение «экран.bmp» в формате BMP: {RULE}" in text
    record = latest(world)
    assert record["status"] == "Новая"
    [message] = [m for m in record["messages"] if m["direction"] == "in"]
    assert [(a["filename"], a["stored"]) for a in message["attachments"]] == [("экран.bmp", True)]
    [event] = [e for e in record["events"] if e["action"] == "files_advice"]
    assert event["detail"]["advice"][0].startswith("изображение «экран.bmp» в формате BMP")


def test_a_file_is_judged_by_its_bytes_not_its_name(world):
    """`screen.png` that is a BMP is a BMP; a JPEG sent as application/octet-stream without an
    extension is still a picture, and counts towards the five."""
    text = acknowledgement(world, [("screen.png", "image/png", BMP)])
    assert f"изображение «screen.png» в формате BMP: {RULE}" in text
    text = acknowledgement(world, [(f"снимок{i}", "application/octet-stream", JPG) for i in range(6)])
    assert ("  - приложено изображений: 6; если их больше 5, упакуйте их в один архив ZIP, 7z или RAR "
            "(п. 3.5 Регламента).") in text
    text = acknowledgement(world, [("отчёт.zip", "application/zip", PDF)])
    assert "файл «отчёт.zip» назван как ZIP, а по содержимому это PDF" in text


def test_more_than_five_images_should_come_archived_and_an_archive_of_them_is_fine(world):
    text = acknowledgement(world, [(f"шаг{i}.png", "image/png", PNG) for i in range(1, 8)])
    assert "приложено изображений: 7; если их больше 5, упакуйте их в один архив ZIP, 7z или RAR" in text
    five = acknowledgement(world, [(f"шаг{i}.png", "image/png", PNG) for i in range(1, 6)])
    assert "О вложениях" not in five
    packed = io.BytesIO()
    with zipfile.ZipFile(packed, "w") as archive:
        for i in range(1, 8):
            archive.writestr(f"шаг{i}.png", PNG)
    text = acknowledgement(world, [("скриншоты.zip", "application/zip", packed.getvalue())])
    assert "О вложениях" not in text


def test_an_incomplete_request_is_asked_for_its_data_and_told_about_its_files_in_one_letter(world):
    """§3.2 and §3.5 together: one letter, the missing parts and the file rule."""
    before = len(world.smtp.messages)
    world.ingest(letter(subject="Не работает", body="Не работает, срочно.",
                        files=[("экран.bmp", "image/bmp", BMP)]))
    world.run_once()
    [sent] = [m for m in world.smtp.messages[before:] if "i.petrova@sev.gov.ru" in m.rcpt_tos]
    text = sent.message.get_body(("plain",)).get_content()
    assert "Пожалуйста, укажите:" in text
    assert f"изображение «экран.bmp» в формате BMP: {RULE}" in text
