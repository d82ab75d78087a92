"""Host name syntax, checked before a name from a user or a DNS record is used anywhere."""

from __future__ import annotations

import re

_HOSTNAME = re.compile(
    r"^(?=.{1,253}$)(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+"
    r"(?!\d+$)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$"
)


def normalise_hostname(name: str) -> str | None:
    """The lower-case ASCII (IDNA) form of a dotted DNS host name, or None if it is not one.

    IP literals and single-label names are refused: discovery only follows real domains,
    so a user cannot point it at `127.0.0.1` or `localhost` through an e-mail address.
    """
    candidate = name.strip().rstrip(".").lower()
    try:
        candidate = candidate.encode("idna").decode("ascii")
    except UnicodeError:
        return None
    return candidate if _HOSTNAME.match(candidate) else None
