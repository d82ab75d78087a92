"""Who is calling, from the claims API Gateway's JWT authorizer passes on (all strings)."""

from __future__ import annotations

import pytest

from crmsync.models.identity import Principal, UnauthenticatedError

CLAIMS = {
    "iss": "https://auth.example.com/",
    "aud": "crmsync",
    "sub": "u1",
    "company_id": "c1",
    "role": "admin",
    "email": "u1@c1.example",
    "iat": "1741000000",
    "exp": "1741043200",
}


def test_principal_is_built_from_api_gateway_claims() -> None:
    principal = Principal.from_claims(CLAIMS)

    assert principal == Principal(
        user_id="u1", company_id="c1", role="admin", email="u1@c1.example"
    )
    assert principal.is_admin


def test_user_role_is_not_admin() -> None:
    principal = Principal.from_claims({**CLAIMS, "role": "user"})

    assert principal.role == "user"
    assert not principal.is_admin


def test_email_claim_is_optional() -> None:
    claims = {k: v for k, v in CLAIMS.items() if k != "email"}

    assert Principal.from_claims(claims).email is None


@pytest.mark.parametrize("missing", ["sub", "company_id", "role"])
def test_claims_without_tenancy_are_refused(missing: str) -> None:
    claims = {k: v for k, v in CLAIMS.items() if k != missing}

    with pytest.raises(UnauthenticatedError):
        Principal.from_claims(claims)


@pytest.mark.parametrize("blank", ["sub", "company_id", "role"])
def test_blank_tenancy_claims_are_refused(blank: str) -> None:
    with pytest.raises(UnauthenticatedError):
        Principal.from_claims({**CLAIMS, blank: ""})


@pytest.mark.parametrize("role", ["owner", "Admin", "superuser", '["admin"]'])
def test_roles_other_than_admin_or_user_are_refused(role: str) -> None:
    with pytest.raises(UnauthenticatedError):
        Principal.from_claims({**CLAIMS, "role": role})


def test_refusal_answers_401() -> None:
    assert UnauthenticatedError.status == 401
