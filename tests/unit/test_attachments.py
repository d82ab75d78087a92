"""Attachment downloads (SPEC I1): who gets a link, and what the S3 adapter stores and signs."""

from __future__ import annotations

from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from botocore.stub import Stubber

from crmsync.errors import NotFoundError
from crmsync.mail.parse import parse_message
from crmsync.models.identity import Principal
from crmsync.models.mail import StoredMessage, Thread
from crmsync.models.parsed import Attachment
from crmsync.services.mail_reads import MailReader
from crmsync.store.raw_mail import S3RawMailStore, download_disposition
from tests.unit.fakes import FakeAccountRepository
from tests.unit.fakes_mail import FakeRawStore, FakeThreadStore

COMPANY = "co-1"
ACCOUNT = "acc-1"
OWNER = Principal(user_id="owner-1", company_id=COMPANY, role="user")
PDF = b"%PDF-1.4\n" + bytes(range(256)) * 4 + b"\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x01\x02\xff" * 64


def quote_mail() -> bytes:
    message = EmailMessage()
    message["From"] = "Ann Buyer <ann@customer.test>"
    message["To"] = "olga@crm.test"
    message["Subject"] = "Quote"
    message["Message-ID"] = "<quote-1@customer.test>"
    message["Date"] = "Sat, 01 Mar 2025 12:00:00 +0000"
    message.set_content("See the quote.")
    message.add_alternative('<p>See <img src="cid:logo@x"></p>', subtype="html")
    message.get_payload()[1].add_related(PNG, "image", "png", cid="<logo@x>")
    message.add_attachment(PDF, "application", "pdf", filename="Angebot Müller.pdf")
    return message.as_bytes()


class World:
    def __init__(self, visibility: str = "private") -> None:
        self.raw = FakeRawStore()
        self.threads = FakeThreadStore()
        self.reader = MailReader(FakeAccountRepository(), self.threads, self.raw, lambda *_: True)
        raw_key, _ = self.raw.put_raw(COMPANY, ACCOUNT, quote_mail())
        parsed = parse_message(self.raw.get_raw(raw_key))
        when = datetime(2025, 3, 1, 12, tzinfo=UTC)
        self.message = StoredMessage(
            id="m1",
            thread_id="t1",
            account_id=ACCOUNT,
            company_id=COMPANY,
            owner_user_id=OWNER.user_id,
            subject="Quote",
            date=when,
            raw_key=raw_key,
            attachments=parsed.attachments,
        )
        self.threads.insert_message(self.message)
        thread = Thread(
            id="t1",
            account_id=ACCOUNT,
            company_id=COMPANY,
            owner_user_id=OWNER.user_id,
            first_message_at=when,
            last_message_at=when,
            visibility=visibility,  # type: ignore[arg-type]
        )
        assert self.threads.save_thread(thread, None, [], [])


def test_the_message_has_a_file_and_an_inline_image() -> None:
    attachments = World().message.attachments
    assert [(a.index, a.content_type, a.inline) for a in attachments] == [
        (0, "image/png", True),
        (1, "application/pdf", False),
    ]


def test_owner_gets_a_link_and_the_bytes_are_stored_once() -> None:
    world = World()
    url = world.reader.attachment_url(OWNER, "m1", 1)
    key = f"attachments/{COMPANY}/{ACCOUNT}/m1/1"
    assert url == f"https://raw-mail.s3.test/{key}?expires=300"
    assert world.raw.objects[key] == PDF
    assert world.reader.attachment_url(OWNER, "m1", 1) == url
    assert world.reader.attachment_url(OWNER, "m1", 0).endswith("/m1/0?expires=300")
    assert world.raw.objects[f"attachments/{COMPANY}/{ACCOUNT}/m1/0"] == PNG
    assert world.raw.attachment_puts == 2


def test_message_view_points_at_the_download_route() -> None:
    view = World().reader.message(OWNER, "m1")
    assert [a["download_url"] for a in view.attachments] == [
        "/v1/messages/m1/attachments/0",
        "/v1/messages/m1/attachments/1",
    ]


@pytest.mark.parametrize(
    "principal",
    [
        Principal(user_id="colleague", company_id=COMPANY, role="admin"),
        Principal(user_id=OWNER.user_id, company_id="co-other", role="user"),
    ],
)
def test_a_thread_the_caller_may_not_read_answers_not_found(principal: Principal) -> None:
    world = World(visibility="private")
    with pytest.raises(NotFoundError):
        world.reader.attachment_url(principal, "m1", 1)
    assert world.raw.attachment_puts == 0


@pytest.mark.parametrize("index", [2, 99, -1])
def test_an_index_the_message_lacks_answers_not_found(index: int) -> None:
    world = World()
    with pytest.raises(NotFoundError, match="no attachment"):
        world.reader.attachment_url(OWNER, "m1", index)
    assert world.raw.attachment_puts == 0


def test_a_missing_message_answers_not_found() -> None:
    with pytest.raises(NotFoundError):
        World().reader.attachment_url(OWNER, "m-unknown", 0)


def test_metadata_the_raw_mime_does_not_match_answers_not_found() -> None:
    """Stored metadata names an attachment the raw bytes lack: 404, not a 500."""
    world = World()
    ghost = Attachment(index=5, content_type="text/plain", size=1, sha256="0" * 64)
    world.threads.update_message(
        world.message.model_copy(update={"attachments": [*world.message.attachments, ghost]})
    )
    with pytest.raises(NotFoundError):
        world.reader.attachment_url(OWNER, "m1", 5)


# -- the S3 adapter -------------------------------------------------------------------------
BUCKET = "raw-mail"
RAW_KEY = f"raw/{COMPANY}/{ACCOUNT}/abc.eml"
PDF_META = Attachment(
    index=1, filename="Angebot Müller.pdf", content_type="application/pdf", size=1, sha256="x"
)


def s3_store() -> tuple[S3RawMailStore, Stubber]:
    client = boto3.client(
        "s3",
        region_name="eu-west-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
        config=Config(signature_version="s3v4"),
    )
    return S3RawMailStore(client, BUCKET), Stubber(client)


def _head(key: str) -> dict[str, Any]:
    return {"Bucket": BUCKET, "Key": key}


def test_s3_cuts_and_puts_the_bytes_only_when_absent_then_presigns() -> None:
    store, stub = s3_store()
    key = f"attachments/{COMPANY}/{ACCOUNT}/m1/1"
    stub.add_client_error("head_object", "404", http_status_code=404, expected_params=_head(key))
    stub.add_response(
        "get_object",
        {"Body": _Body(quote_mail())},
        {"Bucket": BUCKET, "Key": RAW_KEY},
    )
    stub.add_response(
        "put_object",
        {},
        {"Bucket": BUCKET, "Key": key, "Body": PDF, "ContentType": "application/pdf"},
    )
    stub.add_response("head_object", {"ContentLength": len(PDF)}, _head(key))
    with stub:
        first = store.attachment_url(COMPANY, ACCOUNT, "m1", RAW_KEY, PDF_META)
        again = store.attachment_url(COMPANY, ACCOUNT, "m1", RAW_KEY, PDF_META)
        stub.assert_no_pending_responses()
    for url in (first, again):
        parts = urlsplit(url)
        query = parse_qs(parts.query)
        assert unquote(parts.path).endswith(f"/{key}")
        assert query["X-Amz-Expires"] == ["300"]
        assert query["X-Amz-Algorithm"] == ["AWS4-HMAC-SHA256"]
        assert query["response-content-type"] == ["application/pdf"]
        assert query["response-content-disposition"] == [download_disposition(PDF_META)]


def test_s3_errors_other_than_missing_are_not_swallowed() -> None:
    store, stub = s3_store()
    key = f"attachments/{COMPANY}/{ACCOUNT}/m1/1"
    stub.add_client_error("head_object", "403", http_status_code=403, expected_params=_head(key))
    with stub, pytest.raises(ClientError, match="403"):
        store.attachment_url(COMPANY, ACCOUNT, "m1", RAW_KEY, PDF_META)


def test_retention_purges_the_attachments_and_outbox_prefixes_too() -> None:
    store, stub = s3_store()
    for kind in ("raw", "parsed", "attachments", "outbox"):
        prefix = f"{kind}/{COMPANY}/{ACCOUNT}/"
        stub.add_response(
            "list_objects_v2",
            {"Contents": [{"Key": f"{prefix}x"}]},
            {"Bucket": BUCKET, "Prefix": prefix},
        )
        stub.add_response(
            "delete_objects",
            {},
            {"Bucket": BUCKET, "Delete": {"Objects": [{"Key": f"{prefix}x"}]}},
        )
    with stub:
        assert store.delete_account_objects(COMPANY, ACCOUNT) == 4
        stub.assert_no_pending_responses()


@pytest.mark.parametrize(
    ("filename", "content_type", "expected"),
    [
        (
            "quote.pdf",
            "application/pdf",
            "attachment; filename=\"quote.pdf\"; filename*=UTF-8''quote.pdf",
        ),
        (
            None,
            "image/png",
            "attachment; filename=\"attachment-3.png\"; filename*=UTF-8''attachment-3.png",
        ),
        (
            'a"b/..\\c\r\n.txt',
            "text/plain",
            "attachment; filename=\"a_b_.._c.txt\"; filename*=UTF-8''a%22b_.._c.txt",
        ),
        (
            "日本.pdf",
            "application/pdf",
            "attachment; filename=\"__.pdf\"; filename*=UTF-8''%E6%97%A5%E6%9C%AC.pdf",
        ),
    ],
)
def test_download_disposition(filename: str | None, content_type: str, expected: str) -> None:
    attachment = Attachment(
        index=3, filename=filename, content_type=content_type, size=1, sha256="x"
    )
    assert download_disposition(attachment) == expected


class _Body:
    """What get_object's StreamingBody offers the adapter."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    def read(self) -> bytes:
        return self._data
