"""S3 adapter of raw MIME and parsed bodies (bucket `RawMailBucket`).

Raw messages are keyed by their content hash under the company and account: the same bytes
seen in two folders (or fetched twice) are one object, and an account's objects can be
purged by prefix. Every key starts with the company.

Attachments are cut from the raw MIME on their first download only and kept under
`attachments/`; the API hands out short-lived presigned GET links to them (SPEC I1)."""

from __future__ import annotations

import hashlib
import mimetypes
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from botocore.exceptions import ClientError

from crmsync.mail.parse import attachment_bytes
from crmsync.models.parsed import Attachment

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

ATTACHMENT_LINK_SECONDS = 300
_MISSING = ("404", "NoSuchKey", "NotFound")


class S3RawMailStore:
    def __init__(self, client: S3Client, bucket: str) -> None:
        self._client = client
        self._bucket = bucket

    def put_raw(self, company_id: str, account_id: str, raw: bytes) -> tuple[str, str]:
        sha = hashlib.sha256(raw).hexdigest()
        key = f"raw/{company_id}/{account_id}/{sha}.eml"
        self._client.put_object(
            Bucket=self._bucket, Key=key, Body=raw, ContentType="message/rfc822"
        )
        return key, sha

    def get_raw(self, key: str) -> bytes:
        return self._client.get_object(Bucket=self._bucket, Key=key)["Body"].read()

    def put_parsed(self, company_id: str, account_id: str, message_key: str, body: bytes) -> str:
        key = f"parsed/{company_id}/{account_id}/{message_key}.json"
        self._client.put_object(
            Bucket=self._bucket, Key=key, Body=body, ContentType="application/json"
        )
        return key

    def get_parsed(self, key: str) -> bytes:
        return self._client.get_object(Bucket=self._bucket, Key=key)["Body"].read()

    def attachment_url(
        self,
        company_id: str,
        account_id: str,
        message_key: str,
        raw_key: str,
        attachment: Attachment,
        expires_in: int = ATTACHMENT_LINK_SECONDS,
    ) -> str:
        """A presigned GET link to the attachment's bytes, saved as a download under its name.

        The bytes are cut from the raw MIME and stored on the first request only; later ones
        cost a HEAD. Raises LookupError when the raw message has no such attachment."""
        key = f"attachments/{company_id}/{account_id}/{message_key}/{attachment.index}"
        if not self._exists(key):
            _, data = attachment_bytes(self.get_raw(raw_key), attachment.index)
            self._client.put_object(
                Bucket=self._bucket, Key=key, Body=data, ContentType=attachment.content_type
            )
        return self._client.generate_presigned_url(
            "get_object",
            Params={
                "Bucket": self._bucket,
                "Key": key,
                "ResponseContentType": attachment.content_type,
                "ResponseContentDisposition": download_disposition(attachment),
            },
            ExpiresIn=expires_in,
        )

    def delete_account_objects(self, company_id: str, account_id: str) -> int:
        """Raw and parsed messages and cut-out attachments of an account (the retention
        sweep)."""
        return sum(
            self._delete_prefix(f"{kind}/{company_id}/{account_id}/")
            for kind in ("raw", "parsed", "attachments", "outbox")
        )

    def _exists(self, key: str) -> bool:
        try:
            self._client.head_object(Bucket=self._bucket, Key=key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in _MISSING:
                return False
            raise
        return True

    def _delete_prefix(self, prefix: str) -> int:
        """Delete every object under a prefix (the retention sweep); how many went."""
        deleted = 0
        paginator = self._client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self._bucket, Prefix=prefix):
            objects: list[Any] = [{"Key": obj["Key"]} for obj in page.get("Contents", [])]
            if objects:
                self._client.delete_objects(Bucket=self._bucket, Delete={"Objects": objects})
                deleted += len(objects)
        return deleted


def download_disposition(attachment: Attachment) -> str:
    """`Content-Disposition: attachment` with the file's name: RFC 6266's ASCII `filename`
    for old clients and the exact UTF-8 name in `filename*` (RFC 8187)."""
    name = "".join(ch for ch in attachment.filename or "" if ch.isprintable())
    name = name.replace("/", "_").replace("\\", "_").strip() or _unnamed(attachment)
    fallback = name.encode("ascii", "replace").decode().replace('"', "_").replace("?", "_")
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"


def _unnamed(attachment: Attachment) -> str:
    extension = mimetypes.guess_extension(attachment.content_type, strict=False) or ""
    return f"attachment-{attachment.index}{extension}"
