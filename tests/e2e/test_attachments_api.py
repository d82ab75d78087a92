"""Attachment downloads end to end (SPEC I1): Dovecot -> sync -> API redirect -> moto S3.

A message with a PDF and an inline image is synced; the API answers its attachment route with
a redirect to a presigned S3 link that serves the exact bytes that were sent, cuts them from
the raw MIME once, and answers 404 for an index the message lacks or a colleague's request.
"""

from __future__ import annotations

import os
import time
import urllib.request
from collections.abc import Callable
from email.message import EmailMessage
from typing import Any
from urllib.parse import unquote, urlsplit

import boto3
import pytest
import requests

from tests.e2e.mailbox import Mailbox, mail, mailbox

__all__ = ["mailbox"]  # the fixture, used by name

pytestmark = pytest.mark.e2e

PDF = b"%PDF-1.7\n" + bytes(range(256)) * 40 + b"\r\n\x00trailer\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(255, -1, -1)) * 8
PDF_NAME = "Angebot Müller 2025.pdf"


def quote_with_files(box: Mailbox) -> EmailMessage:
    message = mail("Ann Buyer <ann@customer.test>", box.user.email, "Quote attached", "See PDF.")
    message.add_alternative('<p>Our logo: <img src="cid:logo@customer.test"></p>', subtype="html")
    html = message.get_payload()[1]
    html.add_related(
        PNG, "image", "png", cid="<logo@customer.test>", disposition="inline", filename="logo.png"
    )
    message.add_attachment(PDF, "application", "pdf", filename=PDF_NAME)
    return message


def _get(box: Mailbox, path: str, token: str | None = None) -> requests.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else box.headers
    return requests.get(
        f"{box.stack.url}{path}", headers=headers, allow_redirects=False, timeout=10
    )


def _download(url: str) -> tuple[bytes, dict[str, str]]:
    """The presigned link as a browser would follow it: no API credentials."""
    with urllib.request.urlopen(url, timeout=10) as reply:  # noqa: S310 (the stack's S3)
        assert reply.status == 200
        return reply.read(), {k.lower(): v for k, v in reply.headers.items()}


def _stored(box: Mailbox, prefix: str) -> list[dict[str, Any]]:
    listing = boto3.client("s3").list_objects_v2(
        Bucket=box.stack.resource("RawMailBucket"), Prefix=prefix
    )
    return list(listing.get("Contents", []))


def test_attachments_download_through_a_presigned_redirect(
    mailbox: Callable[..., Mailbox],
) -> None:
    box = mailbox(sync_start="1_month")
    box.append("INBOX", quote_with_files(box))
    box.sync()
    [thread] = box.threads()
    [summary] = box.get(f"/v1/threads/{thread['id']}")["messages"]
    message = box.get(f"/v1/messages/{summary['id']}")
    files = {a["content_type"]: a for a in message["attachments"]}
    assert set(files) == {"application/pdf", "image/png"}
    pdf, png = files["application/pdf"], files["image/png"]
    assert (pdf["filename"], pdf["inline"]) == (PDF_NAME, False)
    assert (png["inline"], png["content_id"]) == (True, "logo@customer.test")
    for item in (pdf, png):
        assert item["download_url"] == f"/v1/messages/{message['id']}/attachments/{item['index']}"

    prefix = f"attachments/{box.owner.company_id}/{box.account.id}/{message['id']}/"
    assert _stored(box, prefix) == [], "nothing is cut out before the first download"

    reply = _get(box, pdf["download_url"])
    assert reply.status_code == 302, reply.text
    assert reply.headers["cache-control"] == "no-store"
    location = reply.headers["location"]
    s3_endpoint = urlsplit(os.environ["AWS_ENDPOINT_URL_S3"])  # set by the stack
    assert urlsplit(location).netloc == s3_endpoint.netloc, "the link is on the stack's S3"
    assert "X-Amz-Expires=300" in location
    body, headers = _download(location)
    assert body == PDF
    assert headers["content-type"] == "application/pdf"
    disposition = headers["content-disposition"]
    assert disposition.startswith("attachment;")
    assert unquote(disposition.split("filename*=UTF-8''", 1)[1]) == PDF_NAME

    [stored] = _stored(box, prefix)
    assert stored["Key"] == f"{prefix}{pdf['index']}"
    time.sleep(1.1)  # a second put would move LastModified
    again = _get(box, pdf["download_url"])
    assert again.status_code == 302
    assert _download(again.headers["location"])[0] == PDF
    [same] = _stored(box, prefix)
    assert (same["ETag"], same["LastModified"]) == (stored["ETag"], stored["LastModified"])

    inline = _get(box, png["download_url"])
    assert inline.status_code == 302
    image, image_headers = _download(inline.headers["location"])
    assert image == PNG
    assert image_headers["content-type"] == "image/png"
    assert len(_stored(box, prefix)) == 2


def test_unknown_attachments_and_other_readers_answer_404(
    mailbox: Callable[..., Mailbox],
) -> None:
    box = mailbox(sync_start="1_month")
    box.append("INBOX", quote_with_files(box))
    box.sync()
    [thread] = box.threads()
    [summary] = box.get(f"/v1/threads/{thread['id']}")["messages"]
    base = f"/v1/messages/{summary['id']}/attachments"
    assert len(summary["attachments"]) == 2

    for path in (f"{base}/2", f"{base}/999", "/v1/messages/m-nope/attachments/0"):
        reply = _get(box, path)
        assert reply.status_code == 404, (path, reply.text)
        assert reply.headers["content-type"] == "application/problem+json"
    assert _get(box, f"{base}/first").status_code == 422

    assert thread["visibility"] == "private"
    company = box.owner.company_id
    for role in ("user", "admin"):
        colleague = box.stack.token(f"colleague-{role}", company, role)
        reply = _get(box, f"{base}/0", token=colleague)
        assert reply.status_code == 404, (role, reply.text)
    stranger = box.stack.token(box.owner.user_id, "co-elsewhere", "admin")
    assert _get(box, f"{base}/0", token=stranger).status_code == 404
    prefix = f"attachments/{company}/{box.account.id}/{summary['id']}/"
    assert _stored(box, prefix) == [], "a refused request cuts nothing out"
