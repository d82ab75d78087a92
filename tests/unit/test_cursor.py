"""Opaque pagination cursors: they round-trip and never open another partition."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crmsync.errors import ValidationFailedError
from crmsync.store.cursor import decode_cursor, encode_cursor
from crmsync.store.keys import account_pk

PK = account_pk("c1", "a1")
KEY = {"PK": PK, "SK": "RUN#2025-03-03T09:00:00.000000Z#a1:job"}


def test_cursor_round_trips_the_last_evaluated_key() -> None:
    assert decode_cursor(encode_cursor(KEY), PK) == KEY


def test_cursor_is_url_safe_without_padding() -> None:
    cursor = encode_cursor(KEY)

    assert cursor is not None
    assert set(cursor) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def test_no_last_key_means_no_cursor() -> None:
    assert encode_cursor(None) is None
    assert encode_cursor({}) is None
    assert decode_cursor(None, PK) is None
    assert decode_cursor("", PK) is None


def test_cursor_of_another_partition_is_refused() -> None:
    cursor = encode_cursor({**KEY, "PK": account_pk("other-company", "a1")})

    with pytest.raises(ValidationFailedError):
        decode_cursor(cursor, PK)


def encoded(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@pytest.mark.parametrize(
    "cursor",
    [
        "not a cursor!",
        "%%%",
        encoded(b"not json"),
        encoded(b"\xff\xfe\x00garbage"),
        encoded(json.dumps(["PK", PK]).encode()),
        encoded(json.dumps({"SK": "RUN#x"}).encode()),
    ],
)
def test_garbage_cursor_is_refused(cursor: str) -> None:
    with pytest.raises(ValidationFailedError):
        decode_cursor(cursor, PK)


key_values = st.one_of(st.text(), st.integers(), st.booleans(), st.none())


@given(st.dictionaries(st.text(), key_values))
def test_any_key_of_the_right_partition_round_trips(extra: dict[str, Any]) -> None:
    key = {**extra, "PK": PK}

    assert decode_cursor(encode_cursor(key), PK) == key


@given(st.text())
def test_any_text_decodes_to_a_key_of_the_partition_or_is_refused(cursor: str) -> None:
    try:
        key = decode_cursor(cursor, PK)
    except ValidationFailedError:
        return
    assert key is None or key["PK"] == PK
