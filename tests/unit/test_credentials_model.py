"""Credentials never show their secrets unless a caller asks for them by name."""

from __future__ import annotations

import pytest
from pydantic import SecretStr, ValidationError

from crmsync.security.credentials import Credentials, SealedCredentials

PASSWORD = "hunter2-Very-Secret"
TOKEN = "1//refresh-token-Very-Secret"


def renderings(creds: Credentials) -> list[str]:
    return [
        repr(creds),
        str(creds),
        f"{creds}",
        f"{creds!r}",
        creds.model_dump_json(),
        str(creds.model_dump()),
        repr(creds.password),
        str(creds.password),
    ]


def test_password_never_rendered() -> None:
    creds = Credentials(password=SecretStr(PASSWORD))
    for text in renderings(creds):
        assert PASSWORD not in text
    assert "**********" in creds.model_dump_json()


def test_refresh_token_never_rendered() -> None:
    creds = Credentials.model_validate({"password": PASSWORD, "oauth_refresh_token": TOKEN})
    for text in renderings(creds):
        assert PASSWORD not in text
        assert TOKEN not in text


def test_secrets_available_when_revealed_explicitly() -> None:
    creds = Credentials.model_validate({"password": PASSWORD, "oauth_refresh_token": TOKEN})
    assert creds.password.get_secret_value() == PASSWORD
    assert creds.oauth_refresh_token is not None
    assert creds.oauth_refresh_token.get_secret_value() == TOKEN


def test_validation_error_does_not_echo_a_misplaced_secret() -> None:
    with pytest.raises(ValidationError) as caught:
        Credentials.model_validate({"pasword": PASSWORD})
    assert PASSWORD not in str(caught.value)
    assert PASSWORD not in repr(caught.value)


def test_credentials_are_immutable() -> None:
    creds = Credentials(password=SecretStr(PASSWORD))
    with pytest.raises(ValidationError):
        creds.password = SecretStr("other")  # type: ignore[misc]


def test_sealed_model_accepts_only_base64_fields() -> None:
    with pytest.raises(ValidationError):
        SealedCredentials(
            key_id="k", encrypted_data_key="not base64!", nonce="AAAA", ciphertext="AAAA"
        )
