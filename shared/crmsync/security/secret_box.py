"""The accounts' SecretBox port on top of KMS envelope encryption."""

from __future__ import annotations

from typing import Any

from pydantic import SecretStr

from crmsync.security.credentials import CredentialCipher, Credentials, SealedCredentials


class SealedSecretBox:
    def __init__(self, cipher: CredentialCipher) -> None:
        self._cipher = cipher

    def seal(self, password: str, context: dict[str, str]) -> dict[str, Any]:
        sealed = self._cipher.seal(Credentials(password=SecretStr(password)), context)
        return sealed.model_dump(mode="json")

    def open(self, sealed: dict[str, Any], context: dict[str, str]) -> str:
        opened = self._cipher.open(SealedCredentials.model_validate(sealed), context)
        return opened.password.get_secret_value()
