"""Tracking tokens (SPEC T1, T2): signed, rotatable, and nothing but an exact token verifies."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crmsync.tracking.tokens import TAG_BYTES, TokenPayload, TokenSigner

K1 = b"k1-secret-0123456789abcdef-0123456789"
K2 = b"k2-secret-fedcba9876543210-9876543210"
URL = "https://acme.example/pricing?plan=pro&ref=mail#top"


def signer(current: str = "k1", **keys: bytes) -> TokenSigner:
    return TokenSigner(keys or {"k1": K1}, current)


def raw(token: str) -> bytes:
    return base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))


def encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


# -- round trips --------------------------------------------------------------------------


def test_open_token_round_trip() -> None:
    s = signer()
    token = s.open_token("acme", "m-42", "ann@customer.example")

    assert s.verify(token) == TokenPayload(
        kind="open",
        company_id="acme",
        message_key="m-42",
        recipient="ann@customer.example",
        url=None,
        key_id="k1",
    )


def test_click_token_round_trip_keeps_the_url_exactly() -> None:
    s = signer()
    token = s.click_token("acme", "m-42", "ann@customer.example", URL)

    payload = s.verify(token)
    assert payload is not None
    assert (payload.kind, payload.url, payload.recipient) == ("click", URL, "ann@customer.example")


def test_tokens_are_url_safe_and_unpadded() -> None:
    token = signer().click_token("acme", "m", "ünïcode@例え.jp", "https://x.example/ä?q=1 2")

    assert set(token) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    assert signer().verify(token) is not None


def test_only_web_urls_are_signed() -> None:
    for url in ("javascript:alert(1)", "mailto:a@b.example", "//evil.example", "ftp://x"):
        with pytest.raises(ValueError, match="http"):
            signer().click_token("acme", "m", "a@b.example", url)


def test_empty_ids_are_refused_when_signing() -> None:
    with pytest.raises(ValueError, match="empty"):
        signer().open_token("acme", "", "a@b.example")


# -- rotation -----------------------------------------------------------------------------


def test_rotation_old_key_still_verifies_new_tokens_use_the_current_key() -> None:
    old = signer("k1", k1=K1)
    token_k1 = old.open_token("acme", "m", "a@b.example")
    rotated = signer("k2", k1=K1, k2=K2)

    token_k2 = rotated.open_token("acme", "m", "a@b.example")
    assert rotated.verify(token_k1) is not None
    assert rotated.verify(token_k1).key_id == "k1"  # type: ignore[union-attr]
    assert rotated.verify(token_k2).key_id == "k2"  # type: ignore[union-attr]
    assert old.verify(token_k2) is None  # k2 unknown to the old set


def test_retired_key_no_longer_verifies() -> None:
    token = signer("k1", k1=K1).open_token("acme", "m", "a@b.example")

    assert signer("k2", k2=K2).verify(token) is None


def test_same_key_id_with_another_secret_fails() -> None:
    token = signer("k1", k1=K1).open_token("acme", "m", "a@b.example")

    assert signer("k1", k1=K2).verify(token) is None


def test_key_set_is_validated() -> None:
    with pytest.raises(ValueError, match="current"):
        TokenSigner({"k1": K1}, "k9")
    with pytest.raises(ValueError, match="shorter"):
        TokenSigner({"k1": b"short"}, "k1")
    with pytest.raises(ValueError, match="key id"):
        TokenSigner({"k 1": K1}, "k 1")


# -- tampering ----------------------------------------------------------------------------


@pytest.fixture
def click_token() -> str:
    return signer().click_token("acme", "m-42", "ann@customer.example", URL)


def test_every_flipped_byte_fails(click_token: str) -> None:
    data = raw(click_token)
    for index in range(len(data)):
        for bit in (0x01, 0x80):
            mutated = bytearray(data)
            mutated[index] ^= bit
            assert signer().verify(encode(bytes(mutated))) is None, (index, bit)


def test_every_truncation_fails(click_token: str) -> None:
    for length in range(len(click_token)):
        assert signer().verify(click_token[:length]) is None, length


def test_dropping_bytes_of_the_decoded_token_fails(click_token: str) -> None:
    data = raw(click_token)
    for length in range(len(data)):
        assert signer().verify(encode(data[:length])) is None


def test_trailing_bytes_fail(click_token: str) -> None:
    assert signer().verify(encode(raw(click_token) + b"\x00")) is None
    assert signer().verify(click_token + "A") is None
    assert signer().verify(click_token + "AA") is None


def test_changed_url_with_the_old_tag_fails() -> None:
    s = signer()
    token = s.click_token("acme", "m-42", "ann@customer.example", "https://good.example/")
    evil = s.click_token("acme", "m-42", "ann@customer.example", "https://evil.example/")
    # the evil body with the good token's tag
    forged = raw(evil)[:-TAG_BYTES] + raw(token)[-TAG_BYTES:]

    assert s.verify(encode(forged)) is None


def test_swapped_recipient_fails() -> None:
    s = signer()
    token = s.open_token("acme", "m-42", "ann@customer.example")
    data = raw(token)
    swapped = data.replace(b"ann@customer.example", b"bob@customer.example")

    assert swapped != data
    assert s.verify(encode(swapped)) is None


def test_open_token_is_not_a_click_token() -> None:
    s = signer()
    data = bytearray(raw(s.open_token("acme", "m", "a@b.example")))
    data[1] = ord("c")

    assert s.verify(encode(bytes(data))) is None


def test_unknown_key_id_fails(click_token: str) -> None:
    data = raw(click_token)
    renamed = data[:3] + b"k9" + data[5:]  # key id "k1" -> "k9", tag unchanged

    assert signer().verify(encode(renamed)) is None


@pytest.mark.parametrize(
    "garbage",
    [
        "",
        " ",
        "A",
        "AAAA",
        "not a token",
        "../../etc/passwd",
        "%2e%2e",
        "a.gif",
        "🙂",
        "A" * 9000,
        "AQAA" * 10,
    ],
)
def test_garbage_fails(garbage: str) -> None:
    assert signer().verify(garbage) is None


def test_padding_and_other_alphabets_fail(click_token: str) -> None:
    padded = base64.urlsafe_b64encode(raw(click_token)).decode()
    standard = base64.b64encode(raw(click_token)).decode().rstrip("=")

    if padded != click_token:
        assert signer().verify(padded) is None
    if standard != click_token:
        assert signer().verify(standard) is None
    assert signer().verify(click_token + "=") is None
    assert signer().verify(click_token + "==") is None


def test_non_canonical_last_character_fails() -> None:
    """Base64 characters carry spare low bits at the end; a token that only differs there
    decodes to the same bytes and must still be refused."""
    s = signer()
    for recipient in ("a@b.example", "ab@b.example", "abc@b.example"):
        token = s.open_token("acme", "m", recipient)
        if len(token) % 4 == 0:
            continue
        alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
        same_bytes = [
            token[:-1] + c for c in alphabet if c != token[-1] and raw(token[:-1] + c) == raw(token)
        ]
        assert same_bytes, "expected spare bits in the last character"
        for variant in same_bytes:
            assert s.verify(variant) is None


def test_non_string_input_fails() -> None:
    assert signer().verify(None) is None  # type: ignore[arg-type]
    assert signer().verify(b"AAAA") is None  # type: ignore[arg-type]


# -- property: no mutation of a valid token verifies --------------------------------------

_SIGNER = signer("k2", k1=K1, k2=K2)
_TOKENS = [
    _SIGNER.open_token("acme", "m-1", "ann@customer.example"),
    _SIGNER.click_token("acme", "m-1", "ann@customer.example", URL),
    signer().click_token("globex", "m-2", "bob@x.example", "http://x.example/"),
]
ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_=.+/ %"


@st.composite
def mutated(draw: st.DrawFn) -> tuple[str, str]:
    token = draw(st.sampled_from(_TOKENS))
    chars = list(token)
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        op = draw(st.sampled_from(["replace", "insert", "delete"]))
        at = draw(st.integers(min_value=0, max_value=max(0, len(chars) - 1)))
        if op == "replace" and chars:
            chars[at] = draw(st.sampled_from(ALPHABET))
        elif op == "insert":
            chars.insert(at, draw(st.sampled_from(ALPHABET)))
        elif chars:
            del chars[at]
    return token, "".join(chars)


@settings(max_examples=600, deadline=None)
@given(mutated())
def test_no_mutated_token_verifies(case: tuple[str, str]) -> None:
    original, candidate = case
    result = _SIGNER.verify(candidate)
    if candidate == original:
        assert result is not None
    else:
        assert result is None


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes_never_verify(data: bytes) -> None:
    assert _SIGNER.verify(encode(data)) is None


@settings(max_examples=200, deadline=None)
@given(
    company=st.text(min_size=1, max_size=40),
    key=st.text(min_size=1, max_size=80),
    recipient=st.emails(),
    path=st.text(max_size=60),
)
def test_any_fields_round_trip(company: str, key: str, recipient: str, path: str) -> None:
    url = "https://example.com/" + path
    try:
        token = _SIGNER.click_token(company, key, recipient, url)
    except UnicodeEncodeError:
        return  # lone surrogates are not text a message can carry
    payload = _SIGNER.verify(token)
    assert payload is not None
    assert (payload.company_id, payload.message_key, payload.recipient, payload.url) == (
        company,
        key,
        recipient,
        url,
    )
