"""The local runner's SQS event source mapping on moto's real SQS semantics."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import boto3
import pytest

from crmsync_local.emulators import aws_environment
from crmsync_local.lambdas import LocalFunction
from crmsync_local.queues import QueuePoller
from crmsync_local.stack import Emulators

pytestmark = pytest.mark.integration

HANDLER = """
import json
SEEN = []

def handler(event, context):
    failures = []
    for record in event["Records"]:
        body = json.loads(record["body"])
        SEEN.append((body["name"], record["attributes"]["ApproximateReceiveCount"]))
        if body.get("explode"):
            raise RuntimeError("the whole batch fails")
        if body.get("fail"):
            failures.append({"itemIdentifier": record["messageId"]})
    return {"batchItemFailures": failures}
"""


@pytest.fixture
def sqs(aws_emulators: Emulators, monkeypatch: pytest.MonkeyPatch) -> Any:
    for key, value in aws_environment(
        aws_emulators.dynamodb_endpoint, aws_emulators.moto_endpoint
    ).items():
        monkeypatch.setenv(key, value)
    return boto3.client("sqs")


@pytest.fixture
def function(tmp_path: Path) -> LocalFunction:
    (tmp_path / "app.py").write_text(HANDLER)
    return LocalFunction(
        logical_id=f"Probe{tmp_path.name[-6:].replace('-', '')}",
        name="probe",
        code_dir=tmp_path,
        handler_ref="app.handler",
        timeout=30,
        memory=128,
        environment={},
        events={},
    )


def _queue_with_dlq(sqs: Any, name: str, fifo: bool = False) -> tuple[str, str, str]:
    suffix = ".fifo" if fifo else ""
    extra = {"FifoQueue": "true"} if fifo else {}
    dlq = sqs.create_queue(QueueName=f"{name}-dlq{suffix}", Attributes=extra)["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    url = sqs.create_queue(
        QueueName=f"{name}{suffix}",
        Attributes={
            **extra,
            "VisibilityTimeout": "1",
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 2}),
        },
    )["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    return url, arn, dlq


def _seen(function: LocalFunction) -> list[tuple[str, str]]:
    function.handler()
    assert function._module is not None
    seen: list[tuple[str, str]] = function._module.SEEN
    return seen


def _dlq_bodies(sqs: Any, dlq: str) -> list[str]:
    reply = sqs.receive_message(QueueUrl=dlq, MaxNumberOfMessages=10, WaitTimeSeconds=1)
    return [json.loads(m["Body"])["name"] for m in reply.get("Messages", [])]


def _poll_until_empty(poller: QueuePoller, sqs: Any, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        poller.poll_once(sqs)


def test_only_reported_failures_are_redelivered_then_dead_lettered(
    sqs: Any, function: LocalFunction
) -> None:
    url, arn, dlq = _queue_with_dlq(sqs, "partial")
    for name, fail in (("ok-1", False), ("bad", True), ("ok-2", False)):
        sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"name": name, "fail": fail}))
    poller = QueuePoller(function, url, arn, batch_size=10, report_item_failures=True)

    poller.poll_once(sqs)  # one batch with all three
    assert sorted(name for name, _ in _seen(function)) == ["bad", "ok-1", "ok-2"]

    _poll_until_empty(poller, sqs, 4.5)  # visibility 1 s: "bad" comes back, then moves
    names = [name for name, _ in _seen(function)]
    assert names.count("ok-1") == 1
    assert names.count("ok-2") == 1
    assert [count for name, count in _seen(function) if name == "bad"] == ["1", "2"]
    assert _dlq_bodies(sqs, dlq) == ["bad"]


def test_a_raising_handler_fails_the_whole_batch(sqs: Any, function: LocalFunction) -> None:
    url, arn, _ = _queue_with_dlq(sqs, "explode")
    sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"name": "a", "explode": True}))
    sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"name": "b"}))
    poller = QueuePoller(function, url, arn, batch_size=10, report_item_failures=True)
    poller.poll_once(sqs)
    attrs = sqs.get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessagesNotVisible"]
    )["Attributes"]
    assert attrs["ApproximateNumberOfMessagesNotVisible"] == "2"  # nothing was deleted


def test_without_report_batch_item_failures_a_returned_list_is_ignored(
    sqs: Any, function: LocalFunction
) -> None:
    url, arn, _ = _queue_with_dlq(sqs, "no-report")
    sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"name": "x", "fail": True}))
    poller = QueuePoller(function, url, arn, batch_size=10, report_item_failures=False)
    poller.poll_once(sqs)
    time.sleep(1.2)
    assert sqs.receive_message(QueueUrl=url, WaitTimeSeconds=0).get("Messages") is None


def test_fifo_group_waits_for_its_failed_message(sqs: Any, function: LocalFunction) -> None:
    url, arn, _ = _queue_with_dlq(sqs, "groups", fifo=True)
    for name, group, fail in (("a1", "A", True), ("a2", "A", False), ("b1", "B", False)):
        sqs.send_message(
            QueueUrl=url,
            MessageBody=json.dumps({"name": name, "fail": fail}),
            MessageGroupId=group,
            MessageDeduplicationId=name,
        )
    poller = QueuePoller(function, url, arn, batch_size=1, report_item_failures=True)
    poller.poll_once(sqs)  # a1 fails and stays in flight
    poller.poll_once(sqs)  # group A is blocked: b1 comes next, never a2
    assert [name for name, _ in _seen(function)] == ["a1", "b1"]
    _poll_until_empty(poller, sqs, 2.5)
    names = [name for name, _ in _seen(function)]
    assert names.index("a2") > names.index("a1", 1)  # a2 only after a1's redelivery
