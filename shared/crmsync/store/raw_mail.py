"""S3 adapter of raw MIME and parsed bodies (bucket `RawMailBucket`).

Raw messages are keyed by their content hash under the company and account: the same bytes
seen in two folders (or fetched twice) are one object, and an account's objects can be
purged by prefix. Every key starts with the company."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


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

    def delete_account_objects(self, company_id: str, account_id: str) -> int:
        """Raw and parsed messages of an account (the retention sweep)."""
        return sum(
            self._delete_prefix(f"{kind}/{company_id}/{account_id}/") for kind in ("raw", "parsed")
        )

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
