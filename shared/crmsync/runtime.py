"""Builds the adapters from Settings. Called lazily by handlers, never at import time."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cached_property, lru_cache
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config

from crmsync.calendar.caldav_server import CaldavConnector
from crmsync.clock import Clock, SystemClock
from crmsync.config import Settings
from crmsync.errors import ForbiddenError, NotFoundError
from crmsync.mail.connect import ImapConnector, SmtpConnector
from crmsync.mail.discovery import MailDiscovery
from crmsync.mail.mailbox import ImapMailbox
from crmsync.messaging.eventbridge import EventBridgePublisher
from crmsync.messaging.sqs import (
    SqsCalendarSyncQueue,
    SqsJobQueue,
    SqsProcessQueue,
    SqsSendQueue,
)
from crmsync.models.accounts import MailAccount
from crmsync.models.deals import Deal, Lead, Project
from crmsync.models.directory import Person, Record
from crmsync.models.identity import Principal
from crmsync.models.outbox import OutboxEntry, SendRequest
from crmsync.security.credentials import KmsEnvelopeCipher
from crmsync.security.network import HostGuard
from crmsync.security.secret_box import SealedSecretBox
from crmsync.services.accounts import AccountService
from crmsync.services.blocking import BlockingService
from crmsync.services.calendar_accounts import CalendarAccountService
from crmsync.services.calendar_diagnostics import CalendarDiagnostics
from crmsync.services.calendar_sync import CalendarSync
from crmsync.services.calendar_triggers import (
    CalendarPollDispatcher,
    CalendarPushOnChange,
    DirectoryChangeListeners,
)
from crmsync.services.diagnostics import AccountDiagnostics
from crmsync.services.directory import DirectoryChanges, DirectoryService
from crmsync.services.folder_sync import SyncLimits
from crmsync.services.inbox import InboxService
from crmsync.services.mail_reads import MailReader, RecordAccess
from crmsync.services.mail_sender import Instrument, MailSender, Tracking
from crmsync.services.mail_sync import MailSync
from crmsync.services.message_processor import MessageProcessor
from crmsync.services.polling import PollDispatcher
from crmsync.services.rematch import RematchOnChange
from crmsync.services.retention import RetentionSweeper
from crmsync.services.sending import RenderedBody, Renderer, SendService
from crmsync.services.signatures import SignatureService
from crmsync.services.sync_status import SyncStatus
from crmsync.services.templates import TemplateService
from crmsync.services.thread_actions import ThreadActions
from crmsync.services.threads import ThreadAssembler
from crmsync.store.actions import DynamoMailboxActionStore
from crmsync.store.blocked import DynamoBlockedAddressStore
from crmsync.store.calendar_accounts import DynamoCalendarAccountRepository
from crmsync.store.calendar_sync import DynamoCalendarSyncStore
from crmsync.store.checkpoints import DynamoCheckpointStore
from crmsync.store.contacts import DynamoContactDirectory
from crmsync.store.directory import DynamoDirectoryRepository
from crmsync.store.dynamodb import DynamoAccountRepository, DynamoSyncRunRepository
from crmsync.store.health import DynamoHealthProbe
from crmsync.store.inbox import DynamoInboxIndex
from crmsync.store.outbox import DynamoOutboxStore, S3OutboxPayloads
from crmsync.store.raw_mail import S3RawMailStore
from crmsync.store.retention import DynamoRetentionRepository
from crmsync.store.templates import DynamoSignatureStore, DynamoTemplateStore
from crmsync.store.threads import DynamoThreadStore
from crmsync.store.tracking import DynamoTrackingStore
from crmsync.tracking.keys import ParameterKeys
from crmsync.tracking.models import TrackedMessage
from crmsync.tracking.service import TrackingService
from crmsync.tracking.tokens import TokenSigner

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

    # -- calendar accounts (SPEC C1, C7) ---------------------------------------------------
    @cached_property
    def calendar_accounts(self) -> DynamoCalendarAccountRepository:
        return DynamoCalendarAccountRepository(self.table, self.settings.poll_shards)

    def calendar_connector(self) -> CaldavConnector:
        """CalDAV logins: HostGuard admits hosts per environment; local mode trusts the local
        CA bundle (CRMSYNC_LOCAL_CA_FILE)."""
        return CaldavConnector(HostGuard(self.settings.env), cafile=self.settings.local_ca_file)

    @cached_property
    def calendar_sync_queue(self) -> SqsCalendarSyncQueue | None:
        """None where the deployment has no calendar sync queue: sync now answers 409."""
        url = self.settings.calendar_sync_queue_url
        return SqsCalendarSyncQueue(self.client("sqs"), url) if url else None

    def calendar_accounts_service(self) -> CalendarAccountService:
        return CalendarAccountService(
            self.calendar_accounts,
            self.secrets,
            self.calendar_connector(),
            self.calendar_sync_queue,
            self.events,
            self.clock,
            poll_interval=timedelta(seconds=self.settings.poll_interval_seconds),
        )

    # -- calendar sync (SPEC C5, C6) --------------------------------------------------------
    def calendar_diagnostics(self) -> CalendarDiagnostics:
        service = self.calendar_accounts_service()
        store = self.calendar_sync_store
        return CalendarDiagnostics(
            service.get,
            service.password_for_sync,
            self.calendar_connector(),
            store.state,
            store.skipped,
            self.clock.now,
        )

    @cached_property
    def calendar_sync_store(self) -> DynamoCalendarSyncStore:
        return DynamoCalendarSyncStore(self.table)

    def calendar_sync(self) -> CalendarSync:
        return CalendarSync(
            self.calendar_accounts,
            self.calendar_accounts_service(),
            self.calendar_connector(),
            self.calendar_sync_store,
            self.directory_records,
            self.events,
            self.clock,
        )

    def calendar_poll_dispatcher(self) -> CalendarPollDispatcher | None:
        queue = self.calendar_sync_queue
        if queue is None:
            return None
        return CalendarPollDispatcher(
            self.calendar_accounts,
            queue,
            self.clock,
            shard_count=self.settings.poll_shards,
            lease=timedelta(
                seconds=min(self.settings.poll_lease_seconds, self.settings.poll_interval_seconds)
            ),
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

    # -- compose and send (SPEC I2, I5) -------------------------------------------------------
    @cached_property
    def outbox(self) -> DynamoOutboxStore:
        return DynamoOutboxStore(self.table, self.settings.poll_shards)

    @cached_property
    def outbox_payloads(self) -> S3OutboxPayloads:
        return S3OutboxPayloads(self.client("s3"), _required(self.settings.raw_mail_bucket))

    @cached_property
    def send_queue(self) -> SqsSendQueue:
        return SqsSendQueue(self.client("sqs"), _required(self.settings.send_queue_url))

    def send_service(self) -> SendService:
        accounts = self.accounts_service()
        return SendService(
            self.accounts,
            self.outbox,
            self.outbox_payloads,
            S3OutboxPayloads.key,
            self.thread_store,
            self.send_queue,
            self.clock.now,
            shard_count=self.settings.poll_shards,
            render=self.message_renderer(),
            remember_tracking=accounts.update_settings,
            test_domains=self.settings.env == "local",
        )

    def message_renderer(self) -> Renderer:
        """Smart fields (and a template, a signature) rendered into what is sent (SPEC I4)."""
        templates = self.templates()

        def render(principal: Principal, request: SendRequest) -> RenderedBody:
            rendered = templates.render_message(
                principal,
                template_id=request.template_id,
                subject=request.subject,
                html=request.html,
                text=request.text,
                person_id=request.person_id,
                deal_id=request.deal_id,
                signature=request.signature,
            )
            return RenderedBody(subject=rendered.subject, html=rendered.html, text=rendered.text)

        return render

    def mail_sender(self) -> MailSender:
        processor = self.message_processor()
        return MailSender(
            self.accounts,
            self.outbox,
            self.outbox_payloads,
            self.accounts_service(),
            self.mailbox,
            self.mailbox,
            self.raw_mail,
            self.thread_store,
            processor.process,
            self.clock.now,
            tracking=self.send_tracking(),
        )

    def send_tracking(self) -> Tracking | None:
        """Tracking for the sender, when this deployment has its public URL and keys."""
        if not (self.settings.tracking_base_url and self.settings.tracking_keys_parameter):
            return None
        service = self.tracking_service()

        def prepare(entry: OutboxEntry, account: MailAccount, key: str, at: datetime) -> Instrument:
            message = TrackedMessage(
                company_id=entry.company_id,
                message_key=key,
                account_id=entry.account_id,
                owner_user_id=entry.user_id,
                sender_email=account.email,
                recipients=entry.recipients,
                sent_at=at,
                opens=entry.track_opens,
                clicks=entry.track_clicks,
                html=entry.has_html,
            )
            service.register(message)

            def instrument(recipient: str, html: str, text: str) -> tuple[str, str]:
                tracked_html, tracked_text = service.instrument(
                    message, recipient, html or None, text or None
                )
                return tracked_html or "", tracked_text or ""

            return instrument

        return prepare

    # -- open and click tracking (SPEC T1-T4); the public routes build theirs in
    # crmsync.tracking.runtime, without importing this module --------------------------------
    @cached_property
    def tracking_keys(self) -> ParameterKeys:
        return ParameterKeys(_required(self.settings.tracking_keys_parameter))

    def tracking_signer(self) -> TokenSigner:
        return self.tracking_keys.signer()

    @cached_property
    def tracking_store(self) -> DynamoTrackingStore:
        # The store speaks the low-level client; the resource's client transforms values.
        return DynamoTrackingStore(self.client("dynamodb"), self.settings.table_name)

    def tracking_service(self) -> TrackingService:
        return TrackingService(
            self.tracking_store,
            self.tracking_signer,
            self.events,
            self.clock.now,
            base_url=self.settings.tracking_base_url,
        )

    def blocking(self) -> BlockingService:
        return BlockingService(self.blocked_addresses, self.clock)

    def health_probe(self) -> DynamoHealthProbe:
        return DynamoHealthProbe(self.table)

    def sync_status(self) -> SyncStatus:
        return SyncStatus(self.accounts, self.sync_runs)

    def directory(self) -> DirectoryService:
        listeners: list[DirectoryChanges] = []
        if self.settings.process_queue_url:
            listeners.append(RematchOnChange(self.process_queue, self.clock))
        if self.calendar_sync_queue is not None:
            listeners.append(
                CalendarPushOnChange(
                    self.calendar_accounts,
                    self.calendar_sync_store,
                    self.calendar_sync_queue,
                    self.clock,
                )
            )
        return DirectoryService(
            self.directory_records, self.clock, changes=DirectoryChangeListeners(listeners)
        )

    # -- templates, signatures, smart fields (SPEC I4) ------------------------------------------
    def signatures(self) -> SignatureService:
        return SignatureService(DynamoSignatureStore(self.table), self.clock)

    def templates(self) -> TemplateService:
        """Also what sending renders a message with (`render_message`)."""
        return TemplateService(
            DynamoTemplateStore(self.table), self.signatures(), self.directory(), self.clock
        )


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
