"""File names as people will see them (issue 10): one rule for names from mail, the CLI and the
bot, wherever a name is stored or shown.

NFC-normalised; control and format characters dropped (a right-to-left override turns
`invoice\\u202egnp.exe` into what reads as `invoiceexe.png`; zero-width marks hide letters); no
path; characters that file systems refuse replaced; at most 200 characters with the real
extension kept at the end.
"""

from __future__ import annotations

import re
import unicodedata

MAX_LENGTH = 200
_UNSAFE = re.compile(r'[<>:"|?*]')
_WHITESPACE = re.compile(r"\s+")


def clean_filename(name: str) -> str:
    """The name to store and show for `name` ("" when nothing is left of it)."""
    name = unicodedata.normalize("NFC", name)
    name = "".join(c for c in name if unicodedata.category(c) not in ("Cc", "Cf", "Cs", "Co"))
    name = re.split(r"[\\/]", name)[-1]  # Windows clients send full paths
    name = _WHITESPACE.sub(" ", _UNSAFE.sub("_", name)).strip(" .")
    if len(name) <= MAX_LENGTH:
        return name
    stem, dot, ext = name.rpartition(".")
    if dot and 0 < len(ext) <= 16:
        return stem[:MAX_LENGTH - len(ext) - 1].rstrip(" .") + "." + ext
    return name[:MAX_LENGTH]
