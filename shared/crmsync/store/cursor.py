"""Opaque pagination cursors built from LastEvaluatedKey."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from typing import Any

from crmsync.errors import ValidationFailedError


def encode_cursor(last_key: Mapping[str, Any] | None) -> str | None:
    if not last_key:
        return None
    raw = json.dumps(dict(last_key), sort_keys=True, separators=(",", ":"), default=str)
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(
    cursor: str | None, expected_pk: str, partition_key: str = "PK"
) -> dict[str, Any] | None:
    """Decode a cursor and refuse one that points into another partition.

    `partition_key` names the attribute that holds the partition: `PK` on the base table,
    the index's partition attribute (`GSI1PK`, `GSI2PK`) for a query on a GSI.
    """
    if not cursor:
        return None
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        key = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValidationFailedError("The cursor is not valid.") from exc
    if not isinstance(key, dict) or key.get(partition_key) != expected_pk:
        raise ValidationFailedError("The cursor is not valid.")
    return key
