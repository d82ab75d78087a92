"""Job queues on SQS. Every queue is FIFO: a group orders the jobs of one thing (an
account, a message) and a deduplication id makes a repeated send of a job harmless."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from crmsync.models.calendar import CalendarSyncJob
from crmsync.models.mail import ProcessMessage, RelinkThreads
from crmsync.models.outbox import SendMessageJob
from crmsync.ports import QueuedSync

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

SQS_BATCH_MAX = 10
DEDUP_ID_MAX = 128

FifoMessage = tuple[str, str, str]
"""(body, message group id, deduplication id)."""


class JobSendError(RuntimeError):
    """SQS refused some entries of a batch."""


class FifoQueue:
    def __init__(self, client: SQSClient, queue_url: str, what: str) -> None:
        self._client = client
        self._queue_url = queue_url
        self._what = what

    def send_fifo(self, messages: Sequence[FifoMessage]) -> None:
        """Every message, in batches of ten, or JobSendError naming what was refused."""
        for start in range(0, len(messages), SQS_BATCH_MAX):
            entries: list[Any] = [
                {
                    "Id": str(index),
                    "MessageBody": body,
                    "MessageGroupId": group[:DEDUP_ID_MAX],
                    "MessageDeduplicationId": dedup[:DEDUP_ID_MAX],
                }
                for index, (body, group, dedup) in enumerate(
                    messages[start : start + SQS_BATCH_MAX]
                )
            ]
            reply = self._client.send_message_batch(QueueUrl=self._queue_url, Entries=entries)
            if reply.get("Failed"):
                codes = sorted({failure["Code"] for failure in reply["Failed"]})
                raise JobSendError(f"{len(reply['Failed'])} {self._what} refused: {codes}")


class SqsJobQueue(FifoQueue):
    """The sync queue: one group per account, so SQS never hands out two of its jobs (a
    sync and a mailbox-actions run) at once."""

    def __init__(self, client: SQSClient, sync_queue_url: str) -> None:
        super().__init__(client, sync_queue_url, "sync jobs")

    def send_syncs(self, jobs: Sequence[QueuedSync]) -> None:
        self.send_fifo(
            [(q.job.model_dump_json(), q.job.account_id, q.deduplication_id) for q in jobs]
        )


class SqsProcessQueue(FifoQueue):
    """The processing queue. Changes of one message form one group, so they apply in the
    order the sync saw them."""

    def __init__(self, client: SQSClient, queue_url: str) -> None:
        super().__init__(client, queue_url, "processing jobs")

    def send_messages(self, jobs: Sequence[ProcessMessage]) -> None:
        self.send_fifo(
            [(job.model_dump_json(), job.message_key, job.deduplication_id) for job in jobs]
        )

    def send_relinks(self, jobs: Sequence[RelinkThreads]) -> None:
        self.send_fifo(
            [(job.model_dump_json(), f"relink:{job.job_id}", job.job_id) for job in jobs]
        )


class SqsSendQueue(FifoQueue):
    """The send queue: one group per account, so its messages leave one after the other;
    the outbox id deduplicates a repeated hand-over."""

    def __init__(self, client: SQSClient, queue_url: str) -> None:
        super().__init__(client, queue_url, "send jobs")

    def send(self, jobs: Sequence[SendMessageJob]) -> None:
        self.send_fifo([(job.model_dump_json(), job.account_id, job.outbox_id) for job in jobs])


class SqsCalendarSyncQueue(FifoQueue):
    """The calendar sync queue: one group per calendar account, so two syncs of one account
    never run at once; the job id deduplicates a repeated send."""

    def __init__(self, client: SQSClient, queue_url: str) -> None:
        super().__init__(client, queue_url, "calendar sync jobs")

    def send(self, jobs: Sequence[CalendarSyncJob]) -> None:
        self.send_fifo([(job.model_dump_json(), job.account_id, job.job_id) for job in jobs])
