"""`make run`'s demo: a seeded mailbox and calendar beside the local stack, and a demo
company whose account the scheduled sync picks up."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING

import caldav
from pydantic import SecretStr

from crmsync.models.accounts import SyncSettingsPatch
from crmsync.models.deals import Deal, DealCreate
from crmsync.models.directory import (
    Organization,
    OrganizationCreate,
    Person,
    PersonCreate,
    User,
    UserCreate,
)
from crmsync.models.identity import Principal
from crmsync.models.servers import ServerEndpoint
from crmsync.runtime import current_runtime
from crmsync.services.accounts import ConnectAccount
from crmsync_local.demo.corpus import build_mailbox
from crmsync_local.demo.model import DemoMailbox
from crmsync_local.demo.seed import calendar_events, seed_mailbox
from crmsync_local.testservers.dovecot import DovecotServer, MailUser
from crmsync_local.testservers.radicale import CalUser, RadicaleServer
from crmsync_local.testservers.smtp import SmtpServer
from crmsync_local.testservers.tls import write_ca_bundle

if TYPE_CHECKING:
    from crmsync_local.stack import LocalStack

log = logging.getLogger("local_stack.demo")

DEMO_COMPANY = "demo-company"
DEMO_USER = "demo-user"
DEMO_ADMIN = "demo-admin"
DEMO_ACCOUNT = "demo-account"
DEMO_LOGIN = "alex"
DEMO_PASSWORD = "demo-password"  # noqa: S105 - a throw-away local mailbox
DEMO_DOMAIN = "demo.crmsync.test"


@dataclass
class DemoSummary:
    mail_user: MailUser
    cal_user: CalUser
    messages: int
    events: int
    records: dict[str, int]


class Demo:
    def __init__(self, stack: LocalStack) -> None:
        self.stack = stack
        self.dovecot = DovecotServer(domain=DEMO_DOMAIN)
        self.smtp = SmtpServer(self.dovecot)
        self.radicale = RadicaleServer()
        self.summary: DemoSummary | None = None

    def start(self) -> DemoSummary:
        self.dovecot.start()
        self.smtp.start()
        self.radicale.start()
        now = datetime.now(UTC)
        mailbox = build_mailbox(owner_email=f"{DEMO_LOGIN}@{DEMO_DOMAIN}", now=now)
        mail_user = self.dovecot.add_user(DEMO_LOGIN, DEMO_PASSWORD)
        messages = self._seed_mail(mail_user, mailbox)
        cal_user = self.radicale.add_user(DEMO_LOGIN, DEMO_PASSWORD)
        events = self._seed_calendar(cal_user, now)
        records = self._seed_directory(mailbox, mail_user)
        self._register_account(mail_user)
        self.summary = DemoSummary(mail_user, cal_user, messages, events, records)
        return self.summary

    def stop(self) -> None:
        self.radicale.stop()
        self.smtp.stop()
        self.dovecot.stop()

    def _seed_mail(self, user: MailUser, mailbox: DemoMailbox) -> int:
        client = self.dovecot.connect(user)
        try:
            existing = {name for _, _, name in client.list_folders()}
            for folder in mailbox.folders:
                if folder not in existing:
                    client.create_folder(folder)
            return seed_mailbox(
                lambda folder, raw, flags, date: client.append(folder, raw, flags, date),
                mailbox,
            )
        finally:
            client.logout()

    def _seed_calendar(self, user: CalUser, now: datetime) -> int:
        client = caldav.DAVClient(self.radicale.url, username=user.username, password=user.password)
        principal = client.principal()  # type: ignore[no-untyped-call]
        calendar = principal.make_calendar(name="Work", cal_id="work")
        items = calendar_events(now, owner_email=f"{DEMO_LOGIN}@{DEMO_DOMAIN}")
        for ical in items:
            calendar.save_event(ical.decode())
        return len(items)

    def _register_account(self, user: MailUser) -> None:
        """Connect the demo mailbox the way a user would: a real login over TLS, the
        password sealed with the local KMS key. The functions trust the throw-away
        certificates of the demo servers through CRMSYNC_LOCAL_CA_FILE (local mode only)."""
        bundle = write_ca_bundle(
            [self.dovecot.cafile, self.smtp.cafile],
            self.stack.options.state_dir / "demo-ca-bundle.pem",
        )
        os.environ["CRMSYNC_LOCAL_CA_FILE"] = str(bundle)
        current_runtime.cache_clear()
        owner = Principal(user_id=DEMO_USER, company_id=DEMO_COMPANY, role="user", email=user.email)
        current_runtime().accounts_service().connect(
            owner,
            ConnectAccount(
                email=user.email,
                password=SecretStr(DEMO_PASSWORD),
                username=user.username,
                imap=ServerEndpoint(host="localhost", port=self.dovecot.ssl_port, security="ssl"),
                smtp=ServerEndpoint(host="localhost", port=self.smtp.port, security="starttls"),
                # The demo mail goes back months: a historical start brings it all in.
                settings=SyncSettingsPatch(sync_start="1_year"),
            ),
            account_id=DEMO_ACCOUNT,
        )

    def _seed_directory(self, mailbox: DemoMailbox, user: MailUser) -> dict[str, int]:
        """The CRM side the demo mail belongs to: users, organizations, persons, deals."""
        directory = current_runtime().directory()
        admin = Principal(user_id=DEMO_ADMIN, company_id=DEMO_COMPANY, role="admin")
        owner = Principal(user_id=DEMO_USER, company_id=DEMO_COMPANY, role="user")
        directory.create(
            admin,
            User,
            UserCreate(id=DEMO_ADMIN, name="Dana Admin", email=f"dana@{DEMO_DOMAIN}", role="admin"),
        )
        directory.create(
            admin, User, UserCreate(id=DEMO_USER, name=mailbox.owner_name, email=user.email)
        )
        organizations = {
            org.name: directory.create(
                owner, Organization, OrganizationCreate(name=org.name, domain=org.domain)
            ).id
            for org in mailbox.organizations
        }
        persons: dict[str, str] = {}
        for person in mailbox.people:
            created = directory.create(
                owner,
                Person,
                PersonCreate(
                    name=person.name,
                    emails=list(person.emails),
                    organization_id=organizations.get(person.organization),
                ),
            )
            persons.update(dict.fromkeys(person.emails, created.id))
        for deal in mailbox.deals:
            directory.create(
                owner,
                Deal,
                DealCreate.model_validate(
                    {
                        "title": deal.title,
                        "value": Decimal(deal.value),
                        "currency": deal.currency,
                        "status": deal.status,
                        "person_id": persons.get(deal.person_email),
                        "organization_id": organizations.get(deal.organization),
                    }
                ),
            )
        return {
            "organizations": len(organizations),
            "persons": len(mailbox.people),
            "deals": len(mailbox.deals),
        }

    def describe(self) -> list[str]:
        assert self.summary is not None
        s = self.summary
        user_token = self.stack.token(DEMO_USER, DEMO_COMPANY, "user", s.mail_user.email)
        return [
            "Demo",
            f"  mailbox    {s.messages} messages for {s.mail_user.email} "
            f"(password {DEMO_PASSWORD})",
            f"             IMAP 127.0.0.1:{self.dovecot.port} (STARTTLS), "
            f"IMAPS 127.0.0.1:{self.dovecot.ssl_port}",
            f"             SMTP 127.0.0.1:{self.smtp.port} (STARTTLS, AUTH), "
            f"SMTPS 127.0.0.1:{self.smtp.ssl_port}",
            f"  calendar   {s.events} events at {self.radicale.url}{DEMO_LOGIN}/work/ "
            f"(user {DEMO_LOGIN}, password {DEMO_PASSWORD})",
            f"  account    {DEMO_ACCOUNT} of {DEMO_USER} in {DEMO_COMPANY}: connected over "
            "TLS, polled on the schedule (first tick two seconds after start)",
            f"  CRM        {s.records['organizations']} organizations, {s.records['persons']} "
            f"persons, {s.records['deals']} deals (GET /v1/persons, /v1/deals)",
            "  mail       synced from a year back, threaded and linked to persons and open deals",
            f"  export USER_TOKEN={user_token}",
            f'  curl -s -H "Authorization: Bearer $USER_TOKEN" '
            f"{self.stack.url}/v1/mail-accounts/{DEMO_ACCOUNT}/sync-runs",
            f'  curl -s -H "Authorization: Bearer $USER_TOKEN" '
            f'"{self.stack.url}/v1/threads?account_id={DEMO_ACCOUNT}&limit=5"',
        ]
