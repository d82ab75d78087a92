"""A cheap read that proves the table answers (for /health)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.service_resource import Table


class DynamoHealthProbe:
    def __init__(self, table: Table) -> None:
        self._table = table

    def check(self) -> str:
        self._table.get_item(Key={"PK": "HEALTH", "SK": "HEALTH"})
        return "ok"
