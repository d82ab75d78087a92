"""Builds the adapters from Settings. Called lazily by handlers, never at import time."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta
from functools import cached_property, lru_cache
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config

from crmsync.clock import Clock, SystemClock
from crmsync.config import Settings
from crmsync.errors import ForbiddenError, NotFoundError
from crmsync.mail.connect import ImapConnector, SmtpConnector
from crmsync.mail.discovery import MailDiscovery
from crmsync.mail.mailbox import ImapMailbox
from crmsync.messaging.eventbridge import EventBridgePublisher
from crmsync.messaging.sqs import SqsJobQueue, SqsProcessQueue
from crmsync.models.deals import Deal, Lead, Project
from crmsync.models.directory import Person, Record
from crmsync.models.identity import Principal
from crmsync.security.credentials import KmsEnvelopeCipher
from crmsync.security.network import HostGuard
from crmsync.security.secret_box import SealedSecretBox
from crmsync.services.accounts import AccountService
from crmsync.services.blocking import BlockingService
from crmsync.services.diagnostics import AccountDiagnostics
from crmsync.services.directory import DirectoryService
from crmsync.services.folder_sync import SyncLimits
from crmsync.services.inbox import InboxService
from crmsync.services.mail_reads import MailReader, RecordAccess
from crmsync.services.mail_sync import MailSync
from crmsync.services.message_processor import MessageProcessor
from crmsync.services.polling import PollDispatcher
from crmsync.services.rematch import RematchOnChange
from crmsync.services.retention import RetentionSweeper
from crmsync.services.sync_status import SyncStatus
from crmsync.services.thread_actions import ThreadActions
from crmsync.services.threads import ThreadAssembler
from crmsync.store.actions import DynamoMailboxActionStore
from crmsync.store.blocked import DynamoBlockedAddressStore
from crmsync.store.checkpoints import DynamoCheckpointStore
from crmsync.store.contacts import DynamoContactDirectory
from crmsync.store.directory import DynamoDirectoryRepository
from crmsync.store.dynamodb import DynamoAccountRepository, DynamoSyncRunRepository
from crmsync.store.health import DynamoHealthProbe
from crmsync.store.inbox import DynamoInboxIndex
from crmsync.store.raw_mail import S3RawMailStore
from crmsync.store.retention import DynamoRetentionRepository
from crmsync.store.threads import DynamoThreadStore

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.service_resource import Table

LINK_TYPES: dict[str, type[Record]] = {
    "person": Person,
    "deal": Deal,
    "lead": Lead,
    "project": Project,
}

AWS_CONFIG = Config(connect_timeout=3, read_timeout=10, retries={"mode": "standard"})


@dataclass
class Runtime:
    """The composition root: one per warm Lambda container."""

    settings: Settings
    clock: Clock

    @cached_property
    def table(self) -> Table:
        return boto3.resource("dynamodb", config=AWS_CONFIG).Table(self.settings.table_name)

    def client(self, service: str) -> Any:
        return boto3.client(service, config=AWS_CONFIG)  # type: ignore[call-overload]

    @cached_property
    def accounts(self) -> DynamoAccountRepository:
        return DynamoAccountRepository(self.table)

    @cached_property
    def sync_runs(self) -> DynamoSyncRunRepository:
        return DynamoSyncRunRepository(self.table)

    @cached_property
    def retention(self) -> DynamoRetentionRepository:
        objects = self.raw_mail if self.settings.raw_mail_bucket else None
        return DynamoRetentionRepository(self.table, objects=objects)

    @cached_property
    def directory_records(self) -> DynamoDirectoryRepository:
        return DynamoDirectoryRepository(self.table)

    @cached_property
    def events(self) -> EventBridgePublisher:
        return EventBridgePublisher(self.client("events"), _required(self.settings.event_bus_name))

    @cached_property
    def jobs(self) -> SqsJobQueue:
        return SqsJobQueue(self.client("sqs"), _required(self.settings.sync_queue_url))

    def poll_dispatcher(self) -> PollDispatcher:
        return PollDispatcher(
            self.accounts,
            self.jobs,
            self.clock,
            shard_count=self.settings.poll_shards,
            lease=timedelta(
                seconds=min(self.settings.poll_lease_seconds, self.settings.poll_interval_seconds)
            ),
        )

    def retention_sweeper(self) -> RetentionSweeper:
        return RetentionSweeper(
            self.retention,
            self.events,
            self.clock,
            shard_count=self.settings.poll_shards,
            after=timedelta(days=self.settings.retention_days),
        )

    @cached_property
    def mailbox(self) -> ImapMailbox:
        guard = HostGuard(self.settings.env)
        return ImapMailbox(
            ImapConnector(guard), SmtpConnector(guard), cafile=self.settings.local_ca_file
        )

    @cached_property
    def secrets(self) -> SealedSecretBox:
        key_id = _required(self.settings.credentials_key_id)
        return SealedSecretBox(KmsEnvelopeCipher(self.client("kms"), key_id))

    def discovery(self) -> MailDiscovery:
        return MailDiscovery.for_settings(self.settings)

    def accounts_service(self) -> AccountService:
        return AccountService(
            self.accounts,
            self.secrets,
            self.mailbox,
            self.jobs,
            self.events,
            self.clock,
            shard_count=self.settings.poll_shards,
            poll_interval=timedelta(seconds=self.settings.poll_interval_seconds),
        )

    def diagnostics(self) -> AccountDiagnostics:
        return AccountDiagnostics(self.accounts_service(), self.sync_runs, self.mailbox, self.clock)

    @cached_property
    def checkpoints(self) -> DynamoCheckpointStore:
        return DynamoCheckpointStore(self.table)

    @cached_property
    def raw_mail(self) -> S3RawMailStore:
        # Attachment links are presigned: SigV4, the only signature S3 takes on new buckets.
        s3 = boto3.client("s3", config=AWS_CONFIG.merge(Config(signature_version="s3v4")))
        return S3RawMailStore(s3, _required(self.settings.raw_mail_bucket))

    @cached_property
    def process_queue(self) -> SqsProcessQueue:
        return SqsProcessQueue(self.client("sqs"), _required(self.settings.process_queue_url))

    @cached_property
    def thread_store(self) -> DynamoThreadStore:
        return DynamoThreadStore(self.table)

    @cached_property
    def blocked_addresses(self) -> DynamoBlockedAddressStore:
        return DynamoBlockedAddressStore(self.table)

    def mail_sync(self) -> MailSync:
        return MailSync(
            self.accounts,
            self.sync_runs,
            self.events,
            self.clock,
            poll_interval=timedelta(seconds=self.settings.poll_interval_seconds),
            sessions=self.mailbox,
            health=self.accounts_service(),
            checkpoints=self.checkpoints,
            raw=self.raw_mail,
            process_queue=self.process_queue,
            sync_queue=self.jobs,
            limits=SyncLimits(batch_size=self.settings.fetch_batch_size),
            budget=timedelta(seconds=self.settings.sync_budget_seconds),
            actions=self.mailbox_actions,
            threads=self.thread_store,
        )

    def message_processor(self) -> MessageProcessor:
        """A fresh processor per batch: its directory answers are cached for one batch."""
        contacts = DynamoContactDirectory(self.table)
        assembler = ThreadAssembler(self.thread_store, contacts, self.events, self.clock.now)
        return MessageProcessor(
            self.accounts,
            self.thread_store,
            self.raw_mail,
            contacts,
            self.blocked_addresses,
            assembler,
            self.clock.now,
        )

    def inbox(self) -> InboxService:
        return InboxService(self.accounts, self.thread_store, DynamoInboxIndex(self.table))

    def record_access(self) -> RecordAccess:
        """The directory's answer to "may this user read that person/deal/lead/project"."""
        directory = self.directory()

        def can_read_record(principal: Principal, link_type: str, record_id: str) -> bool:
            record_type = LINK_TYPES.get(link_type)
            if record_type is None:
                return False
            try:
                directory.get(principal, record_type, record_id)
            except (NotFoundError, ForbiddenError):
                return False
            return True

        return can_read_record

    def mail_reader(self) -> MailReader:
        return MailReader(self.accounts, self.thread_store, self.raw_mail, self.record_access())

    def thread_assembler(self) -> ThreadAssembler:
        contacts = DynamoContactDirectory(self.table)
        return ThreadAssembler(self.thread_store, contacts, self.events, self.clock.now)

    @cached_property
    def mailbox_actions(self) -> DynamoMailboxActionStore:
        return DynamoMailboxActionStore(self.table)

    def thread_actions(self) -> ThreadActions:
        return ThreadActions(
            self.accounts,
            self.thread_store,
            self.thread_assembler(),
            self.record_access(),
            self.mailbox_actions,
            self.jobs,
            self.clock.now,
        )

    def blocking(self) -> BlockingService:
        return BlockingService(self.blocked_addresses, self.clock)

    def health_probe(self) -> DynamoHealthProbe:
        return DynamoHealthProbe(self.table)

    def sync_status(self) -> SyncStatus:
        return SyncStatus(self.accounts, self.sync_runs)

    def directory(self) -> DirectoryService:
        changes = (
            RematchOnChange(self.process_queue, self.clock)
            if self.settings.process_queue_url
            else None
        )
        return DirectoryService(self.directory_records, self.clock, changes=changes)


def _required(value: str | None) -> str:
    if not value:
        raise RuntimeError("A setting this function needs is missing from its environment.")
    return value


def build_runtime(settings: Settings) -> Runtime:
    return Runtime(settings=settings, clock=SystemClock())


@lru_cache(maxsize=1)
def current_runtime() -> Runtime:
    """The handlers' entry to the domain: settings are read from the environment here, once."""
    return build_runtime(Settings.from_env(os.environ))
