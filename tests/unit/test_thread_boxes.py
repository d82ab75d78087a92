"""Which lists a thread is in (services/threads.py `with_boxes`), from where its messages
are on the server and from what the user did in the CRM."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from crmsync.models.mail import FolderRole, MessageLocation, StoredMessage, Thread
from crmsync.services.threads import with_boxes

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


def message(
    key: str,
    role: FolderRole,
    *,
    at: datetime = T0,
    direction: str = "inbound",
    labels: tuple[str, ...] = (),
) -> StoredMessage:
    return StoredMessage.model_validate(
        {
            "id": key,
            "thread_id": "t1",
            "account_id": "a1",
            "company_id": "c1",
            "owner_user_id": "u1",
            "date": at,
            "direction": direction,
            "gm_labels": list(labels),
            "locations": [
                MessageLocation(folder=role, folder_id=role, uidvalidity=1, uid=1, role=role)
            ],
            "raw_key": f"raw/{key}",
        }
    )


def thread(**state: datetime) -> Thread:
    return Thread(
        id="t1",
        account_id="a1",
        company_id="c1",
        owner_user_id="u1",
        first_message_at=T0,
        last_message_at=T0,
        **state,
    )


def test_received_mail_is_in_the_inbox_and_leaves_it_for_the_archive_when_moved() -> None:
    assert with_boxes(thread(), [message("m1", "inbox")]).boxes == ["inbox"]
    assert with_boxes(thread(), [message("m1", "archive")]).boxes == ["archive"]
    assert with_boxes(thread(), [message("m1", "other")]).boxes == ["archive"]


def test_a_thread_the_user_wrote_to_is_in_sent_and_in_the_inbox_when_answered() -> None:
    sent = message("m1", "sent", direction="outbound")
    assert with_boxes(thread(), [sent]).boxes == ["sent"]
    answer = message("m2", "inbox", at=T0 + timedelta(hours=1))
    assert with_boxes(thread(), [sent, answer]).boxes == ["inbox", "sent"]


def test_gmail_all_mail_is_in_the_inbox_only_with_the_inbox_label() -> None:
    labelled = message("m1", "all", labels=("\\Inbox", "Customers"))
    assert with_boxes(thread(), [labelled]).boxes == ["inbox"]
    assert with_boxes(thread(), [message("m1", "all", labels=("Customers",))]).boxes == ["archive"]


def test_archived_in_the_crm_until_newer_mail_reaches_the_inbox() -> None:
    archived = with_boxes(thread(archived_at=T0 + timedelta(minutes=5)), [message("m1", "inbox")])
    assert (archived.boxes, archived.archived) == (["archive"], True)
    later = message("m2", "inbox", at=T0 + timedelta(hours=1))
    back = with_boxes(
        thread(archived_at=T0 + timedelta(minutes=5)), [message("m1", "inbox"), later]
    )
    assert (back.boxes, back.archived) == (["inbox"], False)


def test_deleted_in_the_crm_is_in_no_list_until_a_newer_message_arrives() -> None:
    gone = with_boxes(thread(deleted_at=T0), [message("m1", "inbox")])
    assert (gone.boxes, gone.deleted) == ([], True)
    later = message("m2", "inbox", at=T0 + timedelta(minutes=1))
    back = with_boxes(thread(deleted_at=T0), [message("m1", "inbox"), later])
    assert (back.boxes, back.deleted) == (["inbox"], False)
