"""Job queues on SQS."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from crmsync.models.mail import ProcessMessage, RelinkThreads
from crmsync.models.outbox import SendMessageJob
from crmsync.ports import QueuedSync

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

SQS_BATCH_MAX = 10
DEDUP_ID_MAX = 128


class JobSendError(RuntimeError):
    """SQS refused some entries of a batch."""


class SqsJobQueue:
    def __init__(self, client: SQSClient, sync_queue_url: str) -> None:
        self._client = client
        self._sync_queue_url = sync_queue_url

    def send_syncs(self, jobs: Sequence[QueuedSync]) -> None:
        """One group per account: SQS FIFO then never hands two of its jobs out at once."""
        for start in range(0, len(jobs), SQS_BATCH_MAX):
            entries: list[Any] = [
                {
                    "Id": str(index),
                    "MessageBody": queued.job.model_dump_json(),
                    "MessageGroupId": queued.job.account_id,
                    "MessageDeduplicationId": queued.deduplication_id[:DEDUP_ID_MAX],
                }
                for index, queued in enumerate(jobs[start : start + SQS_BATCH_MAX])
            ]
            reply = self._client.send_message_batch(QueueUrl=self._sync_queue_url, Entries=entries)
            if reply.get("Failed"):
                codes = sorted({failure["Code"] for failure in reply["Failed"]})
                raise JobSendError(f"{len(reply['Failed'])} sync jobs refused: {codes}")


class SqsProcessQueue:
    """The processing queue (FIFO). Changes of one message form one group, so they apply in
    the order the sync saw them; the deduplication id makes a repeated send harmless."""

    def __init__(self, client: SQSClient, queue_url: str) -> None:
        self._client = client
        self._queue_url = queue_url

    def send_messages(self, jobs: Sequence[ProcessMessage]) -> None:
        self._send([(job.model_dump_json(), job.message_key, job.deduplication_id) for job in jobs])

    def send_relinks(self, jobs: Sequence[RelinkThreads]) -> None:
        self._send([(job.model_dump_json(), f"relink:{job.job_id}", job.job_id) for job in jobs])

    def _send(self, bodies: list[tuple[str, str, str]]) -> None:
        for start in range(0, len(bodies), SQS_BATCH_MAX):
            entries: list[Any] = [
                {
                    "Id": str(index),
                    "MessageBody": body,
                    "MessageGroupId": group[:DEDUP_ID_MAX],
                    "MessageDeduplicationId": dedup[:DEDUP_ID_MAX],
                }
                for index, (body, group, dedup) in enumerate(bodies[start : start + SQS_BATCH_MAX])
            ]
            reply = self._client.send_message_batch(QueueUrl=self._queue_url, Entries=entries)
            if reply.get("Failed"):
                codes = sorted({failure["Code"] for failure in reply["Failed"]})
                raise JobSendError(f"{len(reply['Failed'])} processing jobs refused: {codes}")


class SqsSendQueue:
    """The send queue (FIFO): one group per account, so one account's messages leave one
    after the other; the outbox id deduplicates a repeated hand-over."""

    def __init__(self, client: SQSClient, queue_url: str) -> None:
        self._client = client
        self._queue_url = queue_url

    def send(self, jobs: Sequence[SendMessageJob]) -> None:
        for start in range(0, len(jobs), SQS_BATCH_MAX):
            entries: list[Any] = [
                {
                    "Id": str(index),
                    "MessageBody": job.model_dump_json(),
                    "MessageGroupId": job.account_id,
                    "MessageDeduplicationId": job.outbox_id[:DEDUP_ID_MAX],
                }
                for index, job in enumerate(jobs[start : start + SQS_BATCH_MAX])
            ]
            reply = self._client.send_message_batch(QueueUrl=self._queue_url, Entries=entries)
            if reply.get("Failed"):
                codes = sorted({failure["Code"] for failure in reply["Failed"]})
                raise JobSendError(f"{len(reply['Failed'])} send jobs refused: {codes}")
