"""The tracking key set, kept in SSM Parameter Store as a SecureString:

    {"current": "k2", "keys": {"k1": "<base64 of 32 random bytes>", "k2": "<base64>"}}

`ParameterKeys` reads it through Powertools Parameters (cached for `max_age` seconds, so a
rotation reaches every warm function within that time). Rotating: add a key and make it
current (`rotated`); keep the old keys as long as mail signed with them should still count
and redirect, then drop them (`retired`). From a shell:

    aws ssm get-parameter --name "$P" --with-decryption --query Parameter.Value --output text \
      | python -m crmsync.tracking.keys rotate \
      | aws ssm put-parameter --name "$P" --type SecureString --overwrite \
          --key-id alias/crmsync-<stage>-tracking --value file:///dev/stdin
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
import sys
from collections.abc import Mapping
from typing import Any

from crmsync.tracking.tokens import KEY_ID, TokenSigner

KEY_BYTES = 32
DEFAULT_MAX_AGE_SECONDS = 300


class TrackingKeysError(ValueError):
    """The key set parameter is missing, unreadable or malformed."""


def signer_from_parameter(value: Mapping[str, Any]) -> TokenSigner:
    current = value.get("current")
    entries = value.get("keys")
    if not isinstance(current, str) or not isinstance(entries, Mapping) or not entries:
        raise TrackingKeysError('the key set needs "current" and a non-empty "keys" object')
    keys: dict[str, bytes] = {}
    for key_id, encoded in entries.items():
        if not isinstance(encoded, str):
            raise TrackingKeysError(f"tracking key {key_id} is not a base64 string")
        try:
            keys[str(key_id)] = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise TrackingKeysError(f"tracking key {key_id} is not valid base64") from exc
    try:
        return TokenSigner(keys, current)
    except ValueError as exc:
        raise TrackingKeysError(str(exc)) from exc


def _new_key() -> str:
    return base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode("ascii")


def new_key_set(key_id: str = "k1") -> dict[str, Any]:
    return {"current": key_id, "keys": {key_id: _new_key()}}


def rotated(value: Mapping[str, Any], key_id: str | None = None) -> dict[str, Any]:
    """The key set with a fresh key that becomes current; the old keys keep verifying."""
    keys = dict(value.get("keys") or {})
    if key_id is None:
        number = len(keys) + 1
        while f"k{number}" in keys:
            number += 1
        key_id = f"k{number}"
    if key_id in keys or not KEY_ID.fullmatch(key_id):
        raise TrackingKeysError(f"{key_id!r} is taken or not a valid key id")
    keys[key_id] = _new_key()
    return {"current": key_id, "keys": keys}


def retired(value: Mapping[str, Any], key_id: str) -> dict[str, Any]:
    """The key set without `key_id`: tokens signed with it stop counting and redirecting."""
    if value.get("current") == key_id:
        raise TrackingKeysError("the current key cannot be retired; rotate first")
    keys = {k: v for k, v in dict(value.get("keys") or {}).items() if k != key_id}
    return {"current": value.get("current"), "keys": keys}


class ParameterKeys:
    """The key set from SSM (SecureString, decrypted), cached by Powertools Parameters."""

    def __init__(self, name: str, max_age: int = DEFAULT_MAX_AGE_SECONDS) -> None:
        self._name = name
        self._max_age = max_age
        self._raw: str | None = None
        self._signer: TokenSigner | None = None

    def signer(self) -> TokenSigner:
        # Imported here: Powertools Parameters pulls in boto3, which the public tracking
        # function should only pay for when a request needs it.
        from aws_lambda_powertools.utilities.parameters import get_parameter
        from aws_lambda_powertools.utilities.parameters.exceptions import GetParameterError

        try:
            raw = get_parameter(self._name, decrypt=True, max_age=self._max_age)
        except GetParameterError as exc:
            raise TrackingKeysError(f"parameter {self._name} could not be read: {exc}") from exc
        if not isinstance(raw, str):
            raise TrackingKeysError(f"parameter {self._name} holds no string")
        if raw != self._raw or self._signer is None:
            try:
                value = json.loads(raw)
            except json.JSONDecodeError as exc:
                raise TrackingKeysError(f"parameter {self._name} is not JSON") from exc
            if not isinstance(value, Mapping):
                raise TrackingKeysError(f"parameter {self._name} is not a JSON object")
            self._signer = signer_from_parameter(value)
            self._raw = raw
        return self._signer


def main(argv: list[str]) -> int:
    """`new` prints a fresh key set; `rotate` and `retire KEY_ID` read one on stdin."""
    if argv[:1] == ["new"]:
        result = new_key_set()
    elif argv[:1] == ["rotate"]:
        result = rotated(json.load(sys.stdin))
    elif argv[:1] == ["retire"] and len(argv) == 2:
        result = retired(json.load(sys.stdin), argv[1])
    else:
        sys.stderr.write("usage: python -m crmsync.tracking.keys new | rotate | retire KEY_ID\n")
        return 2
    signer_from_parameter(result)
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
