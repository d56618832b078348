"""MAIL-2: is the sender of an allowed domain who they claim to be? (issue 10)

The From header alone can be forged. Our own receiving server checks SPF, DKIM and DMARC and
writes the verdict into `Authentication-Results` (RFC 8601); `authres` parses it. Only a header
whose authserv-id is one of ours counts, and only the topmost such header: our server prepends
its own (and, as RFC 8601 section 5 asks, removes copies claiming its id that came with the mail),
so one further down was written by the sender.

A sender is confirmed by DMARC `pass` for the From domain, or an SPF or DKIM `pass` for a domain
aligned with it (the same domain, or one a subdomain of the other); DMARC `fail` is never
confirmed, whatever else passed.
"""

from __future__ import annotations

from dataclasses import dataclass

import authres

from mailflow.message import ParsedMessage


@dataclass(frozen=True)
class SenderCheck:
    confirmed: bool
    reason: str  # why not, in Russian for staff; "" when confirmed


def check_sender(msg: ParsedMessage, trusted_ids: tuple[str, ...]) -> SenderCheck:
    """The verdict of our own server on `msg`'s From domain."""
    header = _our_header(msg.headers.get("authentication-results", []), trusted_ids)
    if header is None:
        ids = ", ".join(trusted_ids) or "не настроены"
        return SenderCheck(False, f"нет заголовка Authentication-Results нашего сервера ({ids})")
    domain = msg.from_domain
    results = {(r.method or "").lower(): r for r in header.results}
    if _verdict(results.get("dmarc")) == "fail":
        return SenderCheck(False, f"DMARC fail для домена {domain}")
    for method, prop in (("dmarc", "from"), ("dkim", "d"), ("spf", "mailfrom")):
        result = results.get(method)
        if _verdict(result) == "pass" and _aligned(_prop(result, prop), domain):
            return SenderCheck(True, "")
    seen = ", ".join(f"{m}={(r.result or '').lower()}" for m, r in results.items()) or "нет результатов"
    return SenderCheck(False, f"нет подтверждённой SPF/DKIM для домена {domain} ({seen})")


def _verdict(result: object) -> str:
    return (getattr(result, "result", None) or "").lower()


def _our_header(values: list[str],
                trusted_ids: tuple[str, ...]) -> authres.AuthenticationResultsHeader | None:
    trusted = {t.lower() for t in trusted_ids}
    for value in values:  # top first
        try:
            header = authres.AuthenticationResultsHeader.parse_value(" ".join(value.split()))
        except Exception:  # authres raises its own errors for malformed headers: not ours then
            continue
        if (header.authserv_id or "").lower() in trusted:
            return header
    return None


def _prop(result: object, name: str) -> str:
    for prop in getattr(result, "properties", None) or ():
        if (prop.name or "").lower() == name:
            value = (prop.value or "").strip().lower()
            return value.rpartition("@")[2]  # smtp.mailfrom may be a whole address
    return ""


def _aligned(domain: str, from_domain: str) -> bool:
    """Relaxed alignment (RFC 7489 3.1): the same domain, or one within the other."""
    a, b = domain.strip(".").lower(), from_domain.strip(".").lower()
    return bool(a and b) and (a == b or a.endswith("." + b) or b.endswith("." + a))
