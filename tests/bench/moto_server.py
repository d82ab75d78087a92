"""moto server for the mail sync bench, its SQS no longer O(queue depth) per message sent.

Run as a script (`python tests/bench/moto_server.py -H host -p port`), like
`python -m moto.server`. moto 5's SQS builds the full attribute map of a queue four times
for every message sent to a FIFO queue, only to read `ContentBasedDeduplication`, and each
build counts every queued message three times with a clock that constructs two datetimes
per call. With the 10,000 jobs of a large sync queued, one `SendMessageBatch` then takes
seconds and the bench would measure moto, not crmsync (see `stock_moto_fifo_cost`).

The patches keep moto's behaviour; they only skip work whose result nobody reads:

- the SQS models' clock (`unix_time`, `unix_time_millis`) reads `time.time()`: the same
  value (seconds since the epoch, UTC) without the datetimes;
- while `send_message` or `send_message_batch` runs, a queue's three message counts
  read 0: in those code paths the attribute map is only asked for
  `ContentBasedDeduplication`;
- one `get_queue_attributes` request builds a queue's attribute map once, not twice per
  attribute name asked for.

When moto's internals are not the ones patched here, moto runs unpatched and says so in
its log; the bench reports which one ran.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import Any

PATCHED = "crmsync-bench: moto SQS patched"
UNPATCHED = "crmsync-bench: moto SQS NOT patched (unknown moto internals)"
SENDS = ("send_message", "send_message_batch")
COUNTS = (
    "approximate_number_of_messages",
    "approximate_number_of_messages_delayed",
    "approximate_number_of_messages_not_visible",
)


def patch() -> bool:
    from moto.sqs import models as sqs_models

    models: Any = sqs_models
    queue: Any = getattr(models, "Queue", None)
    backend: Any = getattr(models, "SQSBackend", None)
    known = (
        queue is not None
        and backend is not None
        and all(hasattr(models, name) for name in ("unix_time", "unix_time_millis"))
        and all(
            isinstance(getattr(queue, name, None), property) for name in (*COUNTS, "attributes")
        )
        and all(hasattr(backend, name) for name in (*SENDS, "get_queue_attributes"))
    )
    if not known:
        sys.stderr.write(UNPATCHED + "\n")
        return False
    state = threading.local()
    original_unix_time = models.unix_time

    def unix_time(dt: Any = None) -> float:
        return time.time() if dt is None else float(original_unix_time(dt))

    def unix_time_millis(dt: Any = None) -> float:
        return unix_time(dt) * 1000.0

    def count_unless_sending(prop: property) -> property:
        def fget(self: Any) -> Any:
            return 0 if getattr(state, "sending", 0) else prop.fget(self)  # type: ignore[misc]

        return property(fget)

    original_attributes: property = queue.attributes

    def attributes(self: Any) -> Any:
        memo: dict[int, Any] | None = getattr(state, "memo", None)
        if memo is None:
            return original_attributes.fget(self)  # type: ignore[misc]
        if id(self) not in memo:
            memo[id(self)] = original_attributes.fget(self)  # type: ignore[misc]
        return memo[id(self)]

    original_get_attributes = backend.get_queue_attributes

    def sending(original: Any) -> Any:
        def send(self: Any, *args: Any, **kwargs: Any) -> Any:
            state.sending = getattr(state, "sending", 0) + 1  # the batch calls send_message
            try:
                return original(self, *args, **kwargs)
            finally:
                state.sending -= 1

        return send

    def get_queue_attributes(self: Any, *args: Any, **kwargs: Any) -> Any:
        state.memo = {}
        try:
            return original_get_attributes(self, *args, **kwargs)
        finally:
            state.memo = None

    models.unix_time = unix_time
    models.unix_time_millis = unix_time_millis
    for name in COUNTS:
        setattr(queue, name, count_unless_sending(getattr(queue, name)))
    queue.attributes = property(attributes)
    for name in SENDS:
        setattr(backend, name, sending(getattr(backend, name)))
    backend.get_queue_attributes = get_queue_attributes
    sys.stderr.write(PATCHED + "\n")
    return True


def main() -> None:
    patch()
    from moto.server import main as moto_main

    moto_main(sys.argv[1:])


if __name__ == "__main__":
    main()
