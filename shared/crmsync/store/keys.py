"""Key layout of the single table. Every partition key starts with the company: tenancy is
structural, a request scoped to one company cannot address another company's items."""

from __future__ import annotations

import zlib


def account_pk(company_id: str, account_id: str) -> str:
    return f"COMPANY#{company_id}#ACCOUNT#{account_id}"


ACCOUNT_SK = "ACCOUNT"
CREDENTIALS_SK = "CREDENTIALS"


def company_accounts_gsi2pk(company_id: str) -> str:
    return f"COMPANY#{company_id}#ACCOUNTS"


def user_accounts_gsi1pk(company_id: str, user_id: str) -> str:
    return f"COMPANY#{company_id}#USER#{user_id}#ACCOUNTS"


def sync_run_sk(started_key: str, run_id: str) -> str:
    return f"RUN#{started_key}#{run_id}"


SYNC_RUN_PREFIX = "RUN#"


def poll_shard(account_id: str, shard_count: int) -> str:
    """Spread due accounts over shards so no single index partition gets hot."""
    return f"{zlib.crc32(account_id.encode()) % shard_count:02d}"
