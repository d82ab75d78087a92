"""Settings parsed once at the edge (the handler) and passed into the domain."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator


class Settings(BaseModel):
    """Everything the domain needs from the environment, validated in one place."""

    env: Literal["production", "local"] = "production"
    stage: str = "prod"
    table_name: str
    idempotency_table_name: str | None = None
    raw_mail_bucket: str | None = None
    sync_queue_url: str | None = None
    process_queue_url: str | None = None
    send_queue_url: str | None = None
    calendar_sync_queue_url: str | None = None
    event_bus_name: str | None = None
    credentials_key_id: str | None = None
    # SPEC T1/T2: public base URL of the tracking routes (pixel and click links) and the
    # SSM parameter holding the token signing keys.
    tracking_base_url: str | None = None
    tracking_keys_parameter: str | None = None
    poll_shards: int = Field(default=8, ge=1, le=64)
    poll_interval_seconds: int = Field(default=300, ge=30)
    poll_lease_seconds: int = Field(default=900, ge=60)
    # SPEC S4: a sync run stops starting batches after this long and re-queues the account.
    sync_budget_seconds: int = Field(default=600, ge=1)
    fetch_batch_size: int = Field(default=50, ge=1, le=500)
    # SPEC E7: synced data of an account inactive (or removed) this long is purged.
    retention_days: int = Field(default=30, ge=0, le=3650)
    runtime_info: dict[str, Any] = Field(default_factory=dict)
    local_ca_file: str | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Settings:
        raw: dict[str, Any] = {
            "env": environ.get("CRMSYNC_ENV", "production"),
            "stage": environ.get("CRMSYNC_STAGE", "prod"),
            "table_name": environ.get("TABLE_NAME", ""),
            "idempotency_table_name": environ.get("IDEMPOTENCY_TABLE_NAME"),
            "raw_mail_bucket": environ.get("RAW_MAIL_BUCKET"),
            "sync_queue_url": environ.get("SYNC_QUEUE_URL"),
            "process_queue_url": environ.get("PROCESS_QUEUE_URL"),
            "send_queue_url": environ.get("SEND_QUEUE_URL"),
            "calendar_sync_queue_url": environ.get("CALENDAR_SYNC_QUEUE_URL") or None,
            "event_bus_name": environ.get("EVENT_BUS_NAME"),
            "credentials_key_id": environ.get("CREDENTIALS_KEY_ID"),
            "tracking_base_url": environ.get("CRMSYNC_TRACKING_BASE_URL") or None,
            "tracking_keys_parameter": environ.get("TRACKING_KEYS_PARAMETER") or None,
        }
        for name, key in (
            ("poll_shards", "CRMSYNC_POLL_SHARDS"),
            ("poll_interval_seconds", "CRMSYNC_POLL_INTERVAL_SECONDS"),
            ("poll_lease_seconds", "CRMSYNC_POLL_LEASE_SECONDS"),
            ("retention_days", "CRMSYNC_RETENTION_DAYS"),
            ("sync_budget_seconds", "CRMSYNC_SYNC_BUDGET_SECONDS"),
            ("fetch_batch_size", "CRMSYNC_FETCH_BATCH_SIZE"),
        ):
            if key in environ:
                raw[name] = int(environ[key])
        if raw["env"] == "local" and environ.get("CRMSYNC_LOCAL_CA_FILE"):
            # Local mode only: trust the throw-away certificates of the local test servers.
            raw["local_ca_file"] = environ["CRMSYNC_LOCAL_CA_FILE"]
        if "CRMSYNC_RUNTIME_INFO" in environ:
            raw["runtime_info"] = json.loads(environ["CRMSYNC_RUNTIME_INFO"])
        return cls.model_validate(raw)

    @model_validator(mode="after")
    def _purge_not_at_once_in_production(self) -> Settings:
        # 0 days lets a local run purge what it just stopped; in production it would purge
        # every stopped account's data at the next sweep.
        if self.env == "production" and self.retention_days < 1:
            raise ValueError("CRMSYNC_RETENTION_DAYS must be at least 1 in production")
        return self
