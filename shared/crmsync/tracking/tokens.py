"""Signed tracking tokens: what the pixel and click URLs carry (SPEC T1, T2).

A token is one base64url string (no padding) of these bytes:

    version (1) | kind (1: "o" open, "c" click) | key id length (1) | key id (ASCII)
    | fields: each a 2-byte big-endian length and UTF-8 bytes
      (company id, message key, recipient, and for a click the target URL)
    | tag (16): HMAC-SHA256 of everything before it, with the key named by the key id,
      truncated to 128 bits

The key id travels in the token, so keys rotate without breaking mail already sent: new
tokens use the current key, old keys keep verifying until they are dropped from the key
set. Verification refuses anything that is not exactly what `open_token`/`click_token`
produce: bad characters, padding, non-canonical base64, an unknown key, a wrong tag
(constant-time compare), truncated or trailing bytes, a URL that is not http(s). Nothing
about a refused token is reported but `None`: the caller answers 404 and redirects nowhere.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

VERSION = 1
TAG_BYTES = 16
MIN_KEY_BYTES = 16
MAX_TOKEN_CHARS = 8192
MAX_FIELD_BYTES = 0xFFFF
KEY_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
_TOKEN_CHARS = re.compile(r"[A-Za-z0-9_-]+")
_KINDS: dict[bytes, Literal["open", "click"]] = {b"o": "open", b"c": "click"}
_KIND_BYTES = {kind: code for code, kind in _KINDS.items()}
_FIELDS = {"open": 3, "click": 4}

TokenKind = Literal["open", "click"]


@dataclass(frozen=True)
class TokenPayload:
    """What a verified token says. The company and message come only from here."""

    kind: TokenKind
    company_id: str
    message_key: str
    recipient: str
    url: str | None
    key_id: str


def _b64encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _b64decode(token: str) -> bytes | None:
    """Strict base64url: the alphabet only, no padding, and the canonical encoding (a
    token differing only in the unused low bits of its last character is refused)."""
    if not token or len(token) > MAX_TOKEN_CHARS or len(token) % 4 == 1:
        return None
    if not _TOKEN_CHARS.fullmatch(token):
        return None
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (binascii.Error, ValueError):
        return None
    return raw if _b64encode(raw) == token else None


def _is_web_url(url: str) -> bool:
    lowered = url[:8].lower()
    return lowered.startswith(("http://", "https://"))


class TokenSigner:
    """Signs and verifies tracking tokens with a rotatable key set."""

    def __init__(self, keys: Mapping[str, bytes], current: str) -> None:
        if current not in keys:
            raise ValueError("the current tracking key is not in the key set")
        for key_id, key in keys.items():
            if not KEY_ID.fullmatch(key_id):
                raise ValueError(f"tracking key id {key_id!r} must match {KEY_ID.pattern}")
            if len(key) < MIN_KEY_BYTES:
                raise ValueError(f"tracking key {key_id} is shorter than {MIN_KEY_BYTES} bytes")
        self._keys = dict(keys)
        self._current = current

    @property
    def current(self) -> str:
        return self._current

    @property
    def key_ids(self) -> frozenset[str]:
        return frozenset(self._keys)

    def open_token(self, company_id: str, message_key: str, recipient: str) -> str:
        return self._sign("open", (company_id, message_key, recipient))

    def click_token(self, company_id: str, message_key: str, recipient: str, url: str) -> str:
        if not _is_web_url(url):
            raise ValueError("only http(s) links are tracked")
        return self._sign("click", (company_id, message_key, recipient, url))

    def verify(self, token: str) -> TokenPayload | None:
        raw = _b64decode(token) if isinstance(token, str) else None
        if raw is None or len(raw) < 3 + 1 + TAG_BYTES or raw[0] != VERSION:
            return None
        kind = _KINDS.get(raw[1:2])
        key_id_end = 3 + raw[2]
        if kind is None or raw[2] == 0 or key_id_end > len(raw) - TAG_BYTES:
            return None
        try:
            key_id = raw[3:key_id_end].decode("ascii")
        except UnicodeDecodeError:
            return None
        key = self._keys.get(key_id)
        if key is None:
            return None
        body, tag = raw[:-TAG_BYTES], raw[-TAG_BYTES:]
        if not hmac.compare_digest(tag, _tag(key, body)):
            return None
        fields = _read_fields(body[key_id_end:])
        if fields is None or len(fields) != _FIELDS[kind] or not all(fields[:3]):
            return None
        url = fields[3] if kind == "click" else None
        if url is not None and not _is_web_url(url):
            return None
        return TokenPayload(kind, fields[0], fields[1], fields[2], url, key_id)

    def ip_hash(self, company_id: str, ip: str | None) -> str | None:
        """A keyed hash of the client address: hits from one address group together
        within a company, and the address itself is never stored."""
        if not ip:
            return None
        mac = hmac.new(
            self._keys[self._current], f"ip\x00{company_id}\x00{ip}".encode(), hashlib.sha256
        )
        return mac.hexdigest()[:32]

    def _sign(self, kind: TokenKind, fields: tuple[str, ...]) -> str:
        if not all(fields[:3]):
            raise ValueError("company id, message key and recipient must not be empty")
        key_id = self._current.encode("ascii")
        body = bytearray((VERSION, _KIND_BYTES[kind][0], len(key_id)))
        body += key_id
        for value in fields:
            data = value.encode("utf-8")
            if len(data) > MAX_FIELD_BYTES:
                raise ValueError("a tracking token field is too long")
            body += len(data).to_bytes(2, "big") + data
        return _b64encode(bytes(body) + _tag(self._keys[self._current], bytes(body)))


def _tag(key: bytes, body: bytes) -> bytes:
    return hmac.new(key, body, hashlib.sha256).digest()[:TAG_BYTES]


def _read_fields(data: bytes) -> list[str] | None:
    fields: list[str] = []
    at = 0
    while at < len(data):
        if at + 2 > len(data):
            return None
        size = int.from_bytes(data[at : at + 2], "big")
        at += 2
        if at + size > len(data):
            return None
        try:
            fields.append(data[at : at + size].decode("utf-8"))
        except UnicodeDecodeError:
            return None
        at += size
    return fields
