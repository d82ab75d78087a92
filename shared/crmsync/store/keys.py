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
FOLDER_PREFIX = "FOLDER#"


def poll_shard(account_id: str, shard_count: int) -> str:
    """Spread due accounts over shards so no single index partition gets hot."""
    return f"{zlib.crc32(account_id.encode()) % shard_count:02d}"


# PollDue shards of accounts whose synced data waits for the retention sweep (SPEC E7): the
# dispatcher asks for shards "00".."NN" exactly, so it never sees these.
PURGE_SHARD_PREFIX = "purge-"


def purge_shard(account_id: str, shard_count: int) -> str:
    return PURGE_SHARD_PREFIX + poll_shard(account_id, shard_count)


def retention_pk(company_id: str) -> str:
    """Markers of removed accounts whose synced data is purged later."""
    return f"COMPANY#{company_id}#RETENTION"


def retention_marker_sk(account_id: str) -> str:
    return f"ACCOUNT#{account_id}"


def purges_pk(company_id: str) -> str:
    """The kept record of every purge of a company."""
    return f"COMPANY#{company_id}#PURGES"


def purge_record_sk(purged_key: str, account_id: str) -> str:
    return f"{purged_key}#{account_id}"


# -- mail: folders, UID maps, messages, threads, links (SPEC S1-S8, L1-L5) -------------------


def folder_sk(folder_id: str) -> str:
    return f"{FOLDER_PREFIX}{folder_id}"


def uid_map_pk(company_id: str, account_id: str, folder_id: str) -> str:
    return f"COMPANY#{company_id}#ACCOUNT#{account_id}#FOLDER#{folder_id}"


def uid_sk(uidvalidity: int, uid: int) -> str:
    return f"UID#{uidvalidity}#{uid:010d}"


def uid_prefix(uidvalidity: int) -> str:
    return f"UID#{uidvalidity}#"


def message_pointer_pk(company_id: str, message_key: str) -> str:
    return f"COMPANY#{company_id}#MESSAGE#{message_key}"


MESSAGE_SK = "MESSAGE"


def thread_pk(company_id: str, thread_id: str) -> str:
    return f"COMPANY#{company_id}#THREAD#{thread_id}"


THREAD_SK = "THREAD"
MESSAGE_PREFIX = "MSG#"
LINK_PREFIX = "LINK#"


def link_sk(link_type: str, target_id: str) -> str:
    return f"{LINK_PREFIX}{link_type.upper()}#{target_id}"


def account_threads_gsi1pk(company_id: str, account_id: str) -> str:
    return f"COMPANY#{company_id}#ACCOUNT#{account_id}#THREADS"


def entity_threads_gsi2pk(company_id: str, link_type: str, target_id: str) -> str:
    return f"COMPANY#{company_id}#{link_type.upper()}#{target_id}#THREADS"


def msgid_ref_pk(company_id: str, account_id: str, digest: str) -> str:
    return f"COMPANY#{company_id}#ACCOUNT#{account_id}#MSGID#{digest}"


MSGID_SK = "MSGID"


def participant_pk(company_id: str, address: str) -> str:
    return f"COMPANY#{company_id}#PARTICIPANT#{address}"


def participant_sk(thread_id: str) -> str:
    return f"THREAD#{thread_id}"


def subject_pk(company_id: str, account_id: str, digest: str) -> str:
    return f"COMPANY#{company_id}#ACCOUNT#{account_id}#SUBJECT#{digest}"


def user_pk(company_id: str, user_id: str) -> str:
    return f"COMPANY#{company_id}#USER#{user_id}"


BLOCK_PREFIX = "BLOCK#"


def block_sk(address: str) -> str:
    return f"{BLOCK_PREFIX}{address}"


# -- the inbox (SPEC I1): a user's index entries of their own threads, and unread counters ---


def inbox_entry_pk(company_id: str, user_id: str, entry: str) -> str:
    """One list of a user's inbox: `BOX#inbox`, `UNREAD`, `LINK#person#p1`, `TERM#acme`…"""
    return f"COMPANY#{company_id}#USER#{user_id}#INBOX#{entry}"


MAIL_COUNTS_PREFIX = "MAILCOUNTS#"


def mail_counts_sk(account_id: str) -> str:
    """The counters of one account, in its owner's user partition (`user_pk`)."""
    return f"{MAIL_COUNTS_PREFIX}{account_id}"


MAILBOX_ACTION_PREFIX = "ACTION#"


def mailbox_action_sk(action_id: str) -> str:
    """A pending mailbox action in its account's partition (SPEC S9), in creation order."""
    return f"{MAILBOX_ACTION_PREFIX}{action_id}"


def outbox_pk(company_id: str, outbox_id: str) -> str:
    return f"COMPANY#{company_id}#OUTBOX#{outbox_id}"


OUTBOX_SK = "OUTBOX"


def user_outbox_gsi1pk(company_id: str, user_id: str) -> str:
    return f"COMPANY#{company_id}#USER#{user_id}#OUTBOX"


SEND_SHARD_PREFIX = "SEND#"


def send_shard(outbox_id: str, shard_count: int) -> str:
    """PollDue shards of scheduled sends (SPEC I5): the account dispatcher asks for "00"…
    exactly, so it never sees these."""
    return SEND_SHARD_PREFIX + poll_shard(outbox_id, shard_count)


# -- tracking (SPEC T1-T4): one partition per tracked message ------------------------------


def tracking_pk(company_id: str, message_key: str) -> str:
    return f"COMPANY#{company_id}#TRACK#{message_key}"


TRACKED_MESSAGE_SK = "MESSAGE"
TRACKING_HIT_PREFIX = "HIT#"
FIRST_OPEN_PREFIX = "OPENED#"


def tracking_hit_sk(at_key: str, hit_id: str) -> str:
    return f"{TRACKING_HIT_PREFIX}{at_key}#{hit_id}"


def first_open_sk(recipient: str) -> str:
    return f"{FIRST_OPEN_PREFIX}{recipient}"


# -- calendar accounts (SPEC C1, C7) -----------------------------------------------------------


def calendar_account_pk(company_id: str, account_id: str) -> str:
    return f"COMPANY#{company_id}#CALACCOUNT#{account_id}"


CALENDAR_ACCOUNT_SK = "CALACCOUNT"


def user_calendar_accounts_gsi1pk(company_id: str, user_id: str) -> str:
    return f"COMPANY#{company_id}#USER#{user_id}#CALACCOUNTS"


def company_calendar_accounts_gsi2pk(company_id: str) -> str:
    return f"COMPANY#{company_id}#CALACCOUNTS"


CALENDAR_SHARD_PREFIX = "CAL#"


def calendar_poll_shard(account_id: str, shard_count: int) -> str:
    """PollDue shards of calendar accounts: the mail dispatcher asks for "00"… exactly, so
    it never sees these."""
    return CALENDAR_SHARD_PREFIX + poll_shard(account_id, shard_count)


# -- calendar sync (SPEC C5, C6): mappings, UID claims, per-account sync state --------------


def calendar_sync_pk(company_id: str, account_id: str) -> str:
    """The sync's items (SYNCSTATE, HREF#, PUSH#, SKIP#) live in the calendar account's own
    partition, so removing the account removes them."""
    return calendar_account_pk(company_id, account_id)


CALENDAR_SYNC_STATE_SK = "SYNCSTATE"
EVENT_HREF_PREFIX = "HREF#"
PUSH_MARKER_PREFIX = "PUSH#"
SKIPPED_PREFIX = "SKIP#"
EVENT_MAPPING_SK = "CALMAP"


def activity_pk(company_id: str, activity_id: str) -> str:
    """The activity's own partition (the directory's record item lives here too)."""
    return f"COMPANY#{company_id}#ACTIVITY#{activity_id}"


def uid_claim_pk(company_id: str, calendar_id: str, uid: str) -> str:
    return f"COMPANY#{company_id}#CALENDAR#{calendar_id}#UID#{uid}"


def uid_claim_sk(recurrence_id: str | None) -> str:
    return f"UID#{recurrence_id}" if recurrence_id else "UID"
