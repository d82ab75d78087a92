"""The local JWT authorizer accepts what API Gateway's would and refuses the rest."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from crmsync_local.auth import LocalJwtKeys, TokenRejected


@pytest.fixture(scope="module")
def other_keys() -> LocalJwtKeys:
    return LocalJwtKeys.generate()


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def forge(header: dict[str, Any], claims: dict[str, Any], sign: Callable[[bytes], bytes]) -> str:
    signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(claims).encode())}"
    return f"{signing_input}.{b64url(sign(signing_input.encode()))}"


def valid_claims(keys: LocalJwtKeys) -> dict[str, Any]:
    now = int(time.time())
    return {
        "iss": keys.issuer,
        "aud": keys.audience,
        "sub": "u1",
        "company_id": "c1",
        "role": "admin",
        "iat": now,
        "nbf": now,
        "exp": now + 600,
    }


def test_minted_token_verifies_to_its_claims(jwt_keys: LocalJwtKeys) -> None:
    token = jwt_keys.mint("u1", "c1", role="admin", email="u1@example.com")

    claims = jwt_keys.verify(f"Bearer {token}")

    assert {k: claims[k] for k in ("sub", "company_id", "role", "email")} == {
        "sub": "u1",
        "company_id": "c1",
        "role": "admin",
        "email": "u1@example.com",
    }
    assert (claims["iss"], claims["aud"]) == (jwt_keys.issuer, jwt_keys.audience)


def test_bearer_scheme_is_case_insensitive(jwt_keys: LocalJwtKeys) -> None:
    assert jwt_keys.verify(f"bearer {jwt_keys.mint('u1', 'c1')}")["sub"] == "u1"


def test_expired_token_is_rejected(jwt_keys: LocalJwtKeys) -> None:
    token = jwt_keys.mint("u1", "c1", ttl_seconds=-60)

    with pytest.raises(TokenRejected):
        jwt_keys.verify(f"Bearer {token}")


def test_token_not_yet_valid_is_rejected(jwt_keys: LocalJwtKeys) -> None:
    claims = {**valid_claims(jwt_keys), "nbf": int(time.time()) + 600}
    token = jwt.encode(claims, jwt_keys.private_pem, algorithm="RS256")

    with pytest.raises(TokenRejected):
        jwt_keys.verify(f"Bearer {token}")


def test_token_without_expiry_is_rejected(jwt_keys: LocalJwtKeys) -> None:
    claims = {k: v for k, v in valid_claims(jwt_keys).items() if k != "exp"}
    token = jwt.encode(claims, jwt_keys.private_pem, algorithm="RS256")

    with pytest.raises(TokenRejected):
        jwt_keys.verify(f"Bearer {token}")


def test_token_for_another_audience_is_rejected(jwt_keys: LocalJwtKeys) -> None:
    elsewhere = LocalJwtKeys(private_pem=jwt_keys.private_pem, audience="another-api")

    with pytest.raises(TokenRejected):
        jwt_keys.verify(f"Bearer {elsewhere.mint('u1', 'c1')}")


def test_token_from_another_issuer_is_rejected(jwt_keys: LocalJwtKeys) -> None:
    elsewhere = LocalJwtKeys(private_pem=jwt_keys.private_pem, issuer="https://evil.example/")

    with pytest.raises(TokenRejected):
        jwt_keys.verify(f"Bearer {elsewhere.mint('u1', 'c1')}")


def test_token_signed_by_another_key_is_rejected(
    jwt_keys: LocalJwtKeys, other_keys: LocalJwtKeys
) -> None:
    with pytest.raises(TokenRejected):
        jwt_keys.verify(f"Bearer {other_keys.mint('u1', 'c1')}")


def test_unsigned_alg_none_token_is_rejected(jwt_keys: LocalJwtKeys) -> None:
    token = forge({"alg": "none", "typ": "JWT"}, valid_claims(jwt_keys), lambda _: b"")

    with pytest.raises(TokenRejected):
        jwt_keys.verify(f"Bearer {token}")


def test_hs256_token_keyed_with_the_public_key_is_rejected(jwt_keys: LocalJwtKeys) -> None:
    public_pem = jwt_keys.public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    token = forge(
        {"alg": "HS256", "typ": "JWT"},
        valid_claims(jwt_keys),
        lambda data: hmac.new(public_pem, data, hashlib.sha256).digest(),
    )

    with pytest.raises(TokenRejected):
        jwt_keys.verify(f"Bearer {token}")


def test_forged_tokens_differ_from_a_genuine_one_only_in_the_signature(
    jwt_keys: LocalJwtKeys,
) -> None:
    """Guards the two tests above: the claims they forge would otherwise pass."""
    genuine = jwt.encode(valid_claims(jwt_keys), jwt_keys.private_pem, algorithm="RS256")

    assert jwt_keys.verify(f"Bearer {genuine}")["sub"] == "u1"


@pytest.mark.parametrize("scheme", ["Basic", "Token", "Bearer:"])
def test_token_under_another_scheme_is_rejected(jwt_keys: LocalJwtKeys, scheme: str) -> None:
    with pytest.raises(TokenRejected):
        jwt_keys.verify(f"{scheme} {jwt_keys.mint('u1', 'c1')}")


@pytest.mark.parametrize("authorization", [None, "", "Bearer", "Bearer "])
def test_missing_bearer_token_is_rejected(
    jwt_keys: LocalJwtKeys, authorization: str | None
) -> None:
    with pytest.raises(TokenRejected):
        jwt_keys.verify(authorization)


def test_a_bare_token_without_scheme_is_accepted_like_api_gateway(jwt_keys: LocalJwtKeys) -> None:
    assert jwt_keys.verify(jwt_keys.mint("u1", "c1"))["sub"] == "u1"
