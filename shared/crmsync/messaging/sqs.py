"""Job queues on SQS."""

from __future__ import annotations

from typing import TYPE_CHECKING

from crmsync.models.jobs import SyncAccount

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient


class SqsJobQueue:
    def __init__(self, client: SQSClient, sync_queue_url: str) -> None:
        self._client = client
        self._sync_queue_url = sync_queue_url

    def send_sync(self, job: SyncAccount, deduplication_id: str) -> None:
        """One group per account: SQS FIFO then never hands two of its jobs out at once."""
        self._client.send_message(
            QueueUrl=self._sync_queue_url,
            MessageBody=job.model_dump_json(),
            MessageGroupId=job.account_id,
            MessageDeduplicationId=deduplication_id[:128],
        )
