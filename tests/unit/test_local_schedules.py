"""Local schedules: rate() expressions and EventBridge-shaped scheduled events."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from aws_lambda_powertools.utilities.data_classes import EventBridgeEvent

from crmsync_local.lambdas import LocalFunction
from crmsync_local.schedules import Schedule, collect_schedules, rate_seconds
from crmsync_local.template import ACCOUNT, REGION, TemplateError


class Recorder:
    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def __call__(self, event: dict[str, Any], context: Any) -> dict[str, int]:
        self.events.append(event)
        return {"enqueued": 0}


def function(handler: Recorder, events: dict[str, dict[str, Any]]) -> LocalFunction:
    module = ModuleType("fake_dispatcher")
    module.handler = handler  # type: ignore[attr-defined]
    return LocalFunction(
        logical_id="Dispatcher",
        name="crmsync-test-dispatcher",
        code_dir=Path("."),
        handler_ref="app.handler",
        timeout=60,
        memory=128,
        environment={},
        events=events,
        _module=module,
    )


def schedule_event(kind: str, expression: str) -> dict[str, Any]:
    return {"Type": kind, "Properties": {"ScheduleExpression": expression}}


@pytest.mark.parametrize(
    ("expression", "seconds"),
    [
        ("rate(1 minute)", 60),
        ("rate(5 minutes)", 300),
        ("rate(2 hours)", 7200),
        ("rate(1 day)", 86400),
        (" rate( 3 days ) ", 3 * 86400),
    ],
)
def test_rate_expressions_parse_to_seconds(expression: str, seconds: int) -> None:
    assert rate_seconds(expression) == seconds


@pytest.mark.parametrize(
    "expression",
    [
        "cron(0 12 * * ? *)",
        "rate(5 weeks)",
        "rate(minutes)",
        "rate(-5 minutes)",
        "every 5 minutes",
        "",
    ],
)
def test_cron_and_garbage_are_refused(expression: str) -> None:
    with pytest.raises(TemplateError):
        rate_seconds(expression)


@pytest.mark.parametrize("expression", ["rate(0 minutes)", "rate(00 hours)"])
def test_zero_rate_is_refused_rather_than_firing_in_a_busy_loop(expression: str) -> None:
    with pytest.raises(TemplateError):
        rate_seconds(expression)


def test_scheduled_event_has_the_eventbridge_shape() -> None:
    schedule = Schedule("Dispatcher.Every", function(Recorder(), {}), 60, "aws.scheduler")

    raw = schedule.event()
    event = EventBridgeEvent(raw)

    assert event.version == "0"
    assert uuid.UUID(event.get_id)
    assert event.detail_type == "Scheduled Event"
    assert event.source == "aws.scheduler"
    assert (event.account, event.region) == (ACCOUNT, REGION)
    assert event.resources == [
        f"arn:aws:scheduler:{REGION}:{ACCOUNT}:schedule/default/Dispatcher.Every"
    ]
    assert event.detail == {}
    fired_at = datetime.strptime(event.time, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    assert abs(datetime.now(UTC) - fired_at) < timedelta(seconds=5)


def test_each_scheduled_event_has_its_own_id() -> None:
    schedule = Schedule("Dispatcher.Every", function(Recorder(), {}), 60, "aws.scheduler")

    assert schedule.event()["id"] != schedule.event()["id"]


def test_fire_invokes_the_function_with_the_scheduled_event() -> None:
    handler = Recorder()
    schedule = Schedule("Dispatcher.Every", function(handler, {}), 60, "aws.events")

    assert schedule.fire() == {"enqueued": 0}
    (event,) = handler.events
    assert (event["detail-type"], event["source"]) == ("Scheduled Event", "aws.events")


def test_schedules_are_collected_from_schedule_events_only() -> None:
    fn = function(
        Recorder(),
        {
            "Every": schedule_event("ScheduleV2", "rate(5 minutes)"),
            "Nightly": schedule_event("Schedule", "rate(1 day)"),
            "Jobs": {"Type": "SQS", "Properties": {"Queue": "arn"}},
        },
    )

    schedules = {s.name: s for s in collect_schedules({"Dispatcher": fn}, scale=0.5)}

    assert set(schedules) == {"Dispatcher.Every", "Dispatcher.Nightly"}
    assert (schedules["Dispatcher.Every"].source, schedules["Dispatcher.Every"].interval) == (
        "aws.scheduler",
        150,
    )
    assert (schedules["Dispatcher.Nightly"].source, schedules["Dispatcher.Nightly"].interval) == (
        "aws.events",
        43200,
    )


def test_template_with_a_cron_schedule_is_refused() -> None:
    fn = function(Recorder(), {"Every": schedule_event("ScheduleV2", "cron(0 * * * ? *)")})

    with pytest.raises(TemplateError):
        collect_schedules({"Dispatcher": fn})
