"""Account credentials at rest: KMS envelope encryption bound to the account they belong to.

Each seal asks KMS for a fresh AES-256 data key, encrypts with AES-GCM and keeps only the
KMS-encrypted copy of that key. The encryption context (company and account ids) is bound
twice: as the KMS EncryptionContext (KMS will not decrypt the data key for another
context, and CloudTrail records it) and as AES-GCM associated data (the ciphertext itself
does not open elsewhere). A sealed record copied onto another account therefore fails.
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
from typing import TYPE_CHECKING, Literal, Protocol

from botocore.exceptions import ClientError
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from crmsync.errors import CrmSyncError

if TYPE_CHECKING:
    from mypy_boto3_kms import KMSClient

_B64 = r"^[A-Za-z0-9+/]*={0,2}$"
_NONCE_BYTES = 12
_AAD_PREFIX = b"crmsync.credentials.v1\n"
# KMS answers these when the data key was altered, or was sealed under another context/key.
_TAMPER_CODES = frozenset({"InvalidCiphertextException", "IncorrectKeyException"})


class Credentials(BaseModel):
    """What logs in to a mailbox. The secrets print as '**********' everywhere.

    `hide_input_in_errors`: a validation error must not echo a password (e.g. one passed
    under a misspelt field name) into a log.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)

    password: SecretStr
    oauth_refresh_token: SecretStr | None = None


class SealedCredentials(BaseModel):
    """Credentials as stored (DynamoDB): ciphertext and a KMS-encrypted data key, base64."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    version: Literal[1] = 1
    key_id: str = Field(min_length=1)
    encrypted_data_key: str = Field(min_length=1, pattern=_B64)
    nonce: str = Field(min_length=1, pattern=_B64)
    ciphertext: str = Field(min_length=1, pattern=_B64)


class CredentialsTamperedError(CrmSyncError):
    """Stored credentials do not open: altered, or sealed for another account or key.

    Never a reason to retry; the user has to enter the password again.
    """

    status = 500
    title = "Stored credentials failed their integrity check"

    def __init__(self) -> None:
        super().__init__(
            "The stored credentials failed their integrity check (altered, or sealed for "
            "another account); the password has to be entered again."
        )


class CredentialCipher(Protocol):
    """Seals credentials for storage; only the worker that logs in opens them."""

    def seal(self, secret: Credentials, context: dict[str, str]) -> SealedCredentials: ...

    def open(self, sealed: SealedCredentials, context: dict[str, str]) -> Credentials: ...


class KmsEnvelopeCipher:
    """CredentialCipher on AWS KMS (moto's KMS locally); one data key per seal."""

    def __init__(self, kms_client: KMSClient, key_id: str) -> None:
        self._kms = kms_client
        self._key_id = key_id

    def seal(self, secret: Credentials, context: dict[str, str]) -> SealedCredentials:
        _require_context(context)
        reply = self._kms.generate_data_key(
            KeyId=self._key_id, KeySpec="AES_256", EncryptionContext=context
        )
        nonce = secrets.token_bytes(_NONCE_BYTES)
        ciphertext = AESGCM(reply["Plaintext"]).encrypt(
            nonce, _plaintext(secret), _associated_data(context)
        )
        return SealedCredentials(
            key_id=reply["KeyId"],
            encrypted_data_key=_b64(reply["CiphertextBlob"]),
            nonce=_b64(nonce),
            ciphertext=_b64(ciphertext),
        )

    def open(self, sealed: SealedCredentials, context: dict[str, str]) -> Credentials:
        _require_context(context)
        try:
            encrypted_key = base64.b64decode(sealed.encrypted_data_key, validate=True)
            nonce = base64.b64decode(sealed.nonce, validate=True)
            ciphertext = base64.b64decode(sealed.ciphertext, validate=True)
        except binascii.Error as exc:
            raise CredentialsTamperedError() from exc
        if len(nonce) != _NONCE_BYTES:
            raise CredentialsTamperedError()
        try:
            reply = self._kms.decrypt(
                CiphertextBlob=encrypted_key, EncryptionContext=context, KeyId=sealed.key_id
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in _TAMPER_CODES:
                raise CredentialsTamperedError() from exc
            raise
        try:
            plaintext = AESGCM(reply["Plaintext"]).decrypt(
                nonce, ciphertext, _associated_data(context)
            )
        except InvalidTag as exc:
            raise CredentialsTamperedError() from exc
        return Credentials.model_validate_json(plaintext)


def _require_context(context: dict[str, str]) -> None:
    """An unbound ciphertext could be moved between accounts unnoticed; refuse to make one."""
    if not context:
        raise ValueError("credentials must be sealed with an encryption context")


def _associated_data(context: dict[str, str]) -> bytes:
    canonical = json.dumps(context, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return _AAD_PREFIX + canonical.encode()


def _plaintext(secret: Credentials) -> bytes:
    token = secret.oauth_refresh_token
    return json.dumps(
        {
            "password": secret.password.get_secret_value(),
            "oauth_refresh_token": token.get_secret_value() if token is not None else None,
        }
    ).encode()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
