"""Local stand-in for the HTTP API's JWT authorizer: its own RSA key, same checks.

API Gateway's JWT authorizer verifies the signature against the issuer's keys, `iss`, `aud`,
`exp` and `nbf`, then hands the claims to the function. The local runner does the same with a
key pair kept in `.local/jwt/`; `make token` signs with it.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

LOCAL_ISSUER = "https://auth.crmsync.local/"
LOCAL_AUDIENCE = "crmsync-local"


class TokenRejected(Exception):
    """The bearer token would not pass the authorizer."""


@dataclass(frozen=True)
class LocalJwtKeys:
    private_pem: bytes
    issuer: str = LOCAL_ISSUER
    audience: str = LOCAL_AUDIENCE

    @classmethod
    def generate(cls, issuer: str = LOCAL_ISSUER, audience: str = LOCAL_AUDIENCE) -> LocalJwtKeys:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        return cls(private_pem=pem, issuer=issuer, audience=audience)

    @classmethod
    def load_or_create(cls, directory: Path) -> LocalJwtKeys:
        """The key `make run` and `make token` share; created once, never committed."""
        path = directory / "private.pem"
        if not path.exists():
            directory.mkdir(parents=True, exist_ok=True)
            keys = cls.generate()
            path.write_bytes(keys.private_pem)
            path.chmod(0o600)
            return keys
        return cls(private_pem=path.read_bytes())

    @cached_property
    def public_key(self) -> Any:
        return serialization.load_pem_private_key(self.private_pem, password=None).public_key()

    def mint(
        self,
        user_id: str,
        company_id: str,
        role: str = "user",
        email: str | None = None,
        ttl_seconds: int = 12 * 3600,
    ) -> str:
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": user_id,
            "company_id": company_id,
            "role": role,
            "email": email or f"{user_id}@{company_id}.example",
            "iat": now,
            "nbf": now,
            "exp": now + ttl_seconds,
            "jti": uuid.uuid4().hex,
        }
        return jwt.encode(claims, self.private_pem, algorithm="RS256", headers={"kid": "local"})

    def verify(self, authorization: str | None) -> dict[str, Any]:
        if not authorization:
            raise TokenRejected("no Authorization header")
        # API Gateway takes the token with or without the Bearer prefix; other schemes fail.
        scheme, _, rest = authorization.strip().partition(" ")
        if not rest:
            token = scheme
        elif scheme.lower() == "bearer":
            token = rest.strip()
        else:
            raise TokenRejected("not a bearer token")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                self.public_key,
                algorithms=["RS256"],
                audience=self.audience,
                issuer=self.issuer,
                options={"require": ["exp", "iss", "aud", "sub"]},
            )
        except jwt.PyJWTError as exc:
            raise TokenRejected(str(exc)) from exc
        return claims
