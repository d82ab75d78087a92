"""Fires the template's Schedule/ScheduleV2 events like EventBridge would."""

from __future__ import annotations

import logging
import re
import threading
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from crmsync_local.lambdas import LocalFunction
from crmsync_local.template import ACCOUNT, REGION, TemplateError

log = logging.getLogger("local_stack.schedules")
_UNITS = {"minute": 60, "minutes": 60, "hour": 3600, "hours": 3600, "day": 86400, "days": 86400}


def rate_seconds(expression: str) -> int:
    """Seconds between firings of `rate(N unit)`; cron() is not reproduced locally."""
    found = re.fullmatch(r"\s*rate\(\s*([1-9]\d*)\s+(\w+)\s*\)\s*", expression)
    if not found or found.group(2) not in _UNITS:
        raise TemplateError(f"local schedules support rate(N minutes|hours|days): {expression}")
    return int(found.group(1)) * _UNITS[found.group(2)]


@dataclass
class Schedule:
    name: str
    function: LocalFunction
    interval: float
    source: str
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def event(self) -> dict[str, Any]:
        return {
            "version": "0",
            "id": str(uuid.uuid4()),
            "detail-type": "Scheduled Event",
            "source": self.source,
            "account": ACCOUNT,
            "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "region": REGION,
            "resources": [f"arn:aws:scheduler:{REGION}:{ACCOUNT}:schedule/default/{self.name}"],
            "detail": {},
        }

    def fire(self) -> Any:
        return self.function.invoke(self.event(), source=f"schedule:{self.name}")

    def start(self, first_after: float | None = None) -> None:
        def loop() -> None:
            wait = self.interval if first_after is None else first_after
            while not self._stop.wait(wait):
                try:
                    self.fire()
                except Exception:
                    log.exception("scheduled invocation of %s failed", self.name)
                wait = self.interval

        self._thread = threading.Thread(target=loop, daemon=True, name=f"schedule-{self.name}")
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)


def collect_schedules(functions: dict[str, LocalFunction], scale: float = 1.0) -> list[Schedule]:
    schedules = []
    for fn in functions.values():
        for event_name, event in fn.events.items():
            if event.get("Type") not in ("Schedule", "ScheduleV2"):
                continue
            props = event["Properties"]
            schedules.append(
                Schedule(
                    name=f"{fn.logical_id}.{event_name}",
                    function=fn,
                    interval=rate_seconds(str(props["ScheduleExpression"])) * scale,
                    source="aws.scheduler" if event["Type"] == "ScheduleV2" else "aws.events",
                )
            )
    return schedules
