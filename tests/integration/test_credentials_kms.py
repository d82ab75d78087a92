"""KMS envelope encryption of account credentials, against moto server's real KMS API."""

from __future__ import annotations

import base64
from typing import Any

import boto3
import pytest
from pydantic import SecretStr

from crmsync.security.credentials import (
    Credentials,
    CredentialsTamperedError,
    KmsEnvelopeCipher,
    SealedCredentials,
)
from crmsync_local.emulators import aws_environment
from crmsync_local.stack import Emulators

pytestmark = pytest.mark.integration

PASSWORD = "correct horse battery staple"
TOKEN = "1//0refresh-token-for-oauth"
CONTEXT = {"company_id": "co-1", "account_id": "acc-1"}


@pytest.fixture
def kms(aws_emulators: Emulators, monkeypatch: pytest.MonkeyPatch) -> Any:
    for key, value in aws_environment(
        aws_emulators.dynamodb_endpoint, aws_emulators.moto_endpoint
    ).items():
        monkeypatch.setenv(key, value)
    return boto3.client("kms", endpoint_url=aws_emulators.moto_endpoint, region_name="us-east-1")


@pytest.fixture
def cipher(kms: Any) -> KmsEnvelopeCipher:
    key_id = kms.create_key(Description="crmsync credentials (test)")["KeyMetadata"]["KeyId"]
    return KmsEnvelopeCipher(kms, key_id)


def _flip_last_byte(b64: str) -> str:
    raw = bytearray(base64.b64decode(b64))
    raw[-1] ^= 0x01
    return base64.b64encode(bytes(raw)).decode()


def test_round_trip(cipher: KmsEnvelopeCipher) -> None:
    creds = Credentials(password=SecretStr(PASSWORD), oauth_refresh_token=SecretStr(TOKEN))
    sealed = cipher.seal(creds, CONTEXT)
    opened = cipher.open(sealed, dict(CONTEXT))
    assert opened.password.get_secret_value() == PASSWORD
    assert opened.oauth_refresh_token is not None
    assert opened.oauth_refresh_token.get_secret_value() == TOKEN


def test_sealed_record_holds_no_plaintext(cipher: KmsEnvelopeCipher) -> None:
    sealed = cipher.seal(Credentials(password=SecretStr(PASSWORD)), CONTEXT)
    stored = sealed.model_dump_json()
    decoded = b"".join(
        base64.b64decode(v) for v in (sealed.encrypted_data_key, sealed.nonce, sealed.ciphertext)
    )
    assert PASSWORD not in stored
    assert PASSWORD.encode() not in decoded
    assert sealed.version == 1
    assert sealed.key_id.startswith("arn:aws:kms:")
    assert len(base64.b64decode(sealed.nonce)) == 12
    assert SealedCredentials.model_validate_json(stored) == sealed


def test_every_seal_uses_a_fresh_data_key_and_nonce(cipher: KmsEnvelopeCipher) -> None:
    creds = Credentials(password=SecretStr(PASSWORD))
    first, second = cipher.seal(creds, CONTEXT), cipher.seal(creds, CONTEXT)
    assert first.encrypted_data_key != second.encrypted_data_key
    assert first.nonce != second.nonce
    assert first.ciphertext != second.ciphertext


@pytest.mark.parametrize(
    "other",
    [
        {"company_id": "co-1", "account_id": "acc-2"},
        {"company_id": "co-2", "account_id": "acc-1"},
        {"company_id": "co-1"},
        {**CONTEXT, "extra": "x"},
    ],
)
def test_other_context_does_not_open(cipher: KmsEnvelopeCipher, other: dict[str, str]) -> None:
    sealed = cipher.seal(Credentials(password=SecretStr(PASSWORD)), CONTEXT)
    with pytest.raises(CredentialsTamperedError) as caught:
        cipher.open(sealed, other)
    assert PASSWORD not in str(caught.value)


@pytest.mark.parametrize("field", ["ciphertext", "nonce", "encrypted_data_key"])
def test_tampered_record_does_not_open(cipher: KmsEnvelopeCipher, field: str) -> None:
    sealed = cipher.seal(Credentials(password=SecretStr(PASSWORD)), CONTEXT)
    tampered = sealed.model_copy(update={field: _flip_last_byte(getattr(sealed, field))})
    with pytest.raises(CredentialsTamperedError):
        cipher.open(tampered, CONTEXT)


def test_record_of_another_account_swapped_in_does_not_open(cipher: KmsEnvelopeCipher) -> None:
    """Copying account B's ciphertext next to account A's data key must not open either."""
    other_context = {"company_id": "co-1", "account_id": "acc-2"}
    mine = cipher.seal(Credentials(password=SecretStr(PASSWORD)), CONTEXT)
    theirs = cipher.seal(Credentials(password=SecretStr("their password")), other_context)
    mixed = mine.model_copy(update={"ciphertext": theirs.ciphertext, "nonce": theirs.nonce})
    with pytest.raises(CredentialsTamperedError):
        cipher.open(mixed, CONTEXT)


def test_sealing_without_context_is_refused(cipher: KmsEnvelopeCipher) -> None:
    with pytest.raises(ValueError, match="encryption context"):
        cipher.seal(Credentials(password=SecretStr(PASSWORD)), {})
