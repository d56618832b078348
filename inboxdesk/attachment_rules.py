"""Regulation 003 §3.5 (MAIL-9) on what a request's files should be: screenshots as JPG, GIF or
PNG, and more than 5 images packed into one ZIP, 7z or RAR archive. (The 10 MB limit is
mailflow.rules.size_limit.)

A request that breaks a rule is registered all the same; these are the sentences its
acknowledgement adds, each naming the rule and what to do. A file is judged by its own
signature (the `filetype` library reads the first bytes), then by its content type, and only
then by its name, so `screen.png` that is really a BMP counts as a BMP, and an image sent as
`application/octet-stream` still counts as an image. Pure functions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import filetype

from mailflow.message import MailAttachment

SCREENSHOT_FORMATS = ("jpg", "gif", "png")  # §3.5: *.JPG, *.GIF, *.PNG
ARCHIVE_FORMATS = ("zip", "7z", "rar")  # §3.5: *.zip, *.7z, *.rar
MAX_LOOSE_IMAGES = 5  # §3.5: more than 5 graphic files come archived
_SAME = {"jpeg": "jpg", "jpe": "jpg", "tiff": "tif", "apng": "png"}
_IMAGE_NAMES = {"jpg", "gif", "png", "bmp", "tif", "webp", "heic", "heif", "avif", "ico", "psd", "jxr"}


@dataclass(frozen=True)
class FileKind:
    """What a file is: its format (`png`, `bmp`, `zip`, ...; "" unknown) and whether it is a picture."""

    format: str
    image: bool
    named: str  # the format its name claims ("" without an extension)

    @property
    def misnamed(self) -> bool:
        return bool(self.format and self.named and self.format != self.named)


def kind_of(file: MailAttachment) -> FileKind:
    named = _SAME.get(ext := file.filename.rpartition(".")[2].lower() if "." in file.filename else "", ext)
    guessed = filetype.guess(file.content[:8192]) if file.content else None
    if guessed is not None:
        fmt = _SAME.get(guessed.extension, guessed.extension)
        return FileKind(fmt, guessed.mime.startswith("image/"), named)
    ctype = file.content_type.lower()
    if ctype.startswith("image/"):
        return FileKind(_SAME.get(sub := ctype.partition("/")[2], sub), True, named)
    return FileKind("", named in _IMAGE_NAMES, named)


def advice(files: Sequence[MailAttachment]) -> list[str]:
    """One Russian sentence per rule the files break (empty: all is as §3.5 asks)."""
    said: list[str] = []
    kinds = [(f, kind_of(f)) for f in files if not f.inline]
    images = [(f, k) for f, k in kinds if k.image]
    wrong = [(f, k) for f, k in images if k.format not in SCREENSHOT_FORMATS]
    for f, k in wrong:
        fmt = (k.format or k.named or "неизвестном").upper()
        said.append(f"изображение «{_name(f)}» в формате {fmt}: скриншоты принимаются в форматах JPG, GIF "
                    "или PNG (п. 3.5 Регламента) — сохраните его в одном из них и пришлите ответом на это "
                    "письмо")
    for f, k in kinds:
        if k.misnamed and (f, k) not in wrong and (
                k.image or k.format in ARCHIVE_FORMATS or k.named in SCREENSHOT_FORMATS + ARCHIVE_FORMATS):
            said.append(f"файл «{_name(f)}» назван как {k.named.upper()}, а по содержимому это "
                        f"{k.format.upper()}: проверьте, тот ли файл приложен")
    if len(images) > MAX_LOOSE_IMAGES:
        said.append(f"приложено изображений: {len(images)}; если их больше {MAX_LOOSE_IMAGES}, упакуйте их "
                    "в один архив ZIP, 7z или RAR (п. 3.5 Регламента)")
    return said


def _name(file: MailAttachment) -> str:
    return file.filename or "без имени"
