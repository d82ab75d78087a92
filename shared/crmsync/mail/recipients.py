"""Recipient validation before anything is queued (SPEC I3).

Two checks, both offline (no DNS in the request path): the characters the help article
names as invalid in an address (backslash, slash, double quote, colon, angle brackets,
pipe, asterisk, acute accent U+00B4, backtick, tilde, caret), then RFC 5321/5322 syntax with
email-validator. The first failing address is named in the error, so the user can fix it.
"""

from __future__ import annotations

from collections.abc import Iterable

from email_validator import EmailNotValidError, validate_email

INVALID_CHARACTERS = frozenset('\\/":<>|*`~^\u00b4')


class InvalidRecipientError(ValueError):
    def __init__(self, address: str, reason: str) -> None:
        super().__init__(f"{address!r} is not a valid recipient: {reason}")
        self.address = address
        self.reason = reason


def checked_address(address: str, *, test_domains: bool = False) -> str:
    """The address as it will be sent (domain lower-cased, IDN as Unicode), or an error.

    `test_domains` admits the reserved `.test` names (RFC 2606), for the local stack only."""
    candidate = address.strip()
    if not candidate:
        raise InvalidRecipientError(address, "the address is empty")
    bad = sorted({c for c in candidate if c in INVALID_CHARACTERS})
    if bad:
        shown = " ".join(bad)
        raise InvalidRecipientError(address, f"it contains characters not allowed: {shown}")
    if any(c.isspace() for c in candidate):
        raise InvalidRecipientError(address, "it contains a space")
    try:
        valid = validate_email(candidate, check_deliverability=False, test_environment=test_domains)
    except EmailNotValidError as exc:
        raise InvalidRecipientError(address, str(exc)) from exc
    return valid.normalized


def checked_recipients(*groups: Iterable[str], test_domains: bool = False) -> list[list[str]]:
    """Each group checked; an address repeated across groups is kept in the first only."""
    seen: set[str] = set()
    checked: list[list[str]] = []
    for group in groups:
        kept: list[str] = []
        for address in group:
            normalised = checked_address(address, test_domains=test_domains)
            if normalised.lower() not in seen:
                seen.add(normalised.lower())
                kept.append(normalised)
        checked.append(kept)
    return checked
