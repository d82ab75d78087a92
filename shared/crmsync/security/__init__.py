"""Secrets at rest (KMS envelope encryption) and network safety for user-supplied hosts."""

from crmsync.security.credentials import (
    CredentialCipher,
    Credentials,
    CredentialsTamperedError,
    KmsEnvelopeCipher,
    SealedCredentials,
)
from crmsync.security.network import (
    HostGuard,
    ResolvedAddress,
    connect_checked,
    refusal_reason,
    system_resolver,
    verifying_tls_context,
)

__all__ = [
    "CredentialCipher",
    "Credentials",
    "CredentialsTamperedError",
    "HostGuard",
    "KmsEnvelopeCipher",
    "ResolvedAddress",
    "SealedCredentials",
    "connect_checked",
    "refusal_reason",
    "system_resolver",
    "verifying_tls_context",
]
