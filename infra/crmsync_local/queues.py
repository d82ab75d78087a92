"""SQS event source mappings: moto's SQS supplies the queue semantics (visibility timeout,
receive counts, redrive to the DLQ after maxReceiveCount, FIFO message groups); this poller
does what Lambda's poller does around them: batches, invoke, delete what succeeded, honour
`batchItemFailures` when the mapping reports them.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import boto3

from crmsync_local.lambdas import LocalFunction
from crmsync_local.template import REGION

log = logging.getLogger("local_stack.queues")
SQS_MAX_RECEIVE = 10


def _lambda_record(message: dict[str, Any], queue_arn: str) -> dict[str, Any]:
    attributes = dict(message.get("Attributes", {}))
    message_attributes = {
        name: {
            "stringValue": value.get("StringValue"),
            "binaryValue": value.get("BinaryValue"),
            "stringListValues": [],
            "binaryListValues": [],
            "dataType": value["DataType"],
        }
        for name, value in message.get("MessageAttributes", {}).items()
    }
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": attributes,
        "messageAttributes": message_attributes,
        "md5OfBody": message.get("MD5OfBody")
        or hashlib.md5(  # noqa: S324 - SQS's checksum
            message["Body"].encode()
        ).hexdigest(),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": REGION,
    }


@dataclass
class QueuePoller:
    function: LocalFunction
    queue_url: str
    queue_arn: str
    batch_size: int = 10
    report_item_failures: bool = False
    wait_seconds: int = 1
    busy: bool = False
    invocations: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    @property
    def queue_name(self) -> str:
        return self.queue_arn.rsplit(":", 1)[-1]

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._loop, daemon=True, name=f"poller-{self.queue_name}"
        )
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.wait_seconds + 30)

    def _loop(self) -> None:
        sqs = boto3.client("sqs")
        while not self._stop.is_set():
            try:
                self.poll_once(sqs)
            except Exception:
                log.exception("poller for %s failed; retrying", self.queue_name)
                self._stop.wait(1)

    def _receive(self, sqs: Any) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = []
        while len(messages) < self.batch_size:
            reply = sqs.receive_message(
                QueueUrl=self.queue_url,
                MaxNumberOfMessages=min(SQS_MAX_RECEIVE, self.batch_size - len(messages)),
                WaitTimeSeconds=0 if messages else self.wait_seconds,
                MessageSystemAttributeNames=["All"],
                MessageAttributeNames=["All"],
            )
            got = reply.get("Messages", [])
            if not got:
                break
            messages.extend(got)
        return messages

    def poll_once(self, sqs: Any) -> int:
        """Receive one batch, invoke, settle it. Returns how many records it handed over."""
        messages = self._receive(sqs)
        if not messages:
            return 0
        self.busy = True  # received but not settled: invisible on the queue, not yet done
        try:
            self.invocations += 1
            records = [_lambda_record(m, self.queue_arn) for m in messages]
            failed = self._invoke(records)
            done = [m for m in messages if m["MessageId"] not in failed]
            for start in range(0, len(done), SQS_MAX_RECEIVE):
                sqs.delete_message_batch(
                    QueueUrl=self.queue_url,
                    Entries=[
                        {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                        for i, m in enumerate(done[start : start + SQS_MAX_RECEIVE])
                    ],
                )
            return len(messages)
        finally:
            self.busy = False

    def _invoke(self, records: list[dict[str, Any]]) -> set[str]:
        """The ids that stay on the queue: all of them when the function fails, otherwise
        those it reports (when the mapping has ReportBatchItemFailures)."""
        every = {r["messageId"] for r in records}
        try:
            result = self.function.invoke({"Records": records}, source=f"sqs:{self.queue_name}")
        except Exception:  # noqa: BLE001 - any handler error fails the batch, as in Lambda
            log.warning(
                "function %s failed; %d records return to %s after their visibility timeout",
                self.function.logical_id,
                len(records),
                self.queue_name,
            )
            return every
        if not self.report_item_failures or not isinstance(result, dict):
            return set()
        failures = result.get("batchItemFailures") or []
        ids = {str(f.get("itemIdentifier") or "") for f in failures}
        if not ids <= every or "" in ids:
            # Lambda treats an unknown or empty identifier as a failure of the whole batch.
            return every
        return ids


def collect_pollers(
    functions: dict[str, LocalFunction], queue_arns: dict[str, str]
) -> list[QueuePoller]:
    """One poller per SQS event of a function; `queue_arns` maps ARN -> local queue URL."""
    pollers = []
    for fn in functions.values():
        for event in fn.events.values():
            if event.get("Type") != "SQS":
                continue
            props = event["Properties"]
            arn = str(props["Queue"])
            pollers.append(
                QueuePoller(
                    function=fn,
                    queue_url=queue_arns[arn],
                    queue_arn=arn,
                    batch_size=int(props.get("BatchSize", 10)),
                    report_item_failures="ReportBatchItemFailures"
                    in props.get("FunctionResponseTypes", []),
                )
            )
    return pollers


def wait_until_idle(pollers: list[QueuePoller], timeout: float = 60.0) -> None:
    """Block until no source queue holds a visible or in-flight message and no poller works."""
    sqs = boto3.client("sqs")
    deadline = time.monotonic() + timeout
    quiet_rounds = 0
    while time.monotonic() < deadline:
        pending = 0
        for poller in pollers:
            attrs = sqs.get_queue_attributes(
                QueueUrl=poller.queue_url,
                AttributeNames=[
                    "ApproximateNumberOfMessages",
                    "ApproximateNumberOfMessagesNotVisible",
                ],
            )["Attributes"]
            pending += int(attrs["ApproximateNumberOfMessages"])
            pending += int(attrs["ApproximateNumberOfMessagesNotVisible"])
            pending += int(poller.busy)
        quiet_rounds = quiet_rounds + 1 if pending == 0 else 0
        if quiet_rounds >= 2:
            return
        time.sleep(0.1)
    raise TimeoutError("queues did not drain in time")
