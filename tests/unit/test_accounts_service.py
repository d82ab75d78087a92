"""Mail accounts: connect only after a real login, owner-only changes, the state machine."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import SecretStr, ValidationError

from crmsync.errors import ConflictError, ForbiddenError, NotFoundError
from crmsync.models.accounts import AccountKind, AccountState, SyncSettingsPatch
from crmsync.models.identity import Principal
from crmsync.models.servers import ConnectionProblem, MailServerError, ServerEndpoint
from crmsync.services.accounts import AccountService, ConnectAccount, Reauthenticate
from tests.unit.fakes import (
    FakeAccountRepository,
    FakeClock,
    FakeEventPublisher,
    FakeJobQueue,
    FakeMailbox,
    FakeSecretBox,
)

NOW = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)
OWNER = Principal(user_id="u1", company_id="c1", role="user", email="alex@example.com")
ADMIN = Principal(user_id="boss", company_id="c1", role="admin")
COLLEAGUE = Principal(user_id="u2", company_id="c1", role="user")
STRANGER = Principal(user_id="u1", company_id="c2", role="admin")
IMAP = ServerEndpoint(host="imap.example.com", port=993, security="ssl")
SMTP = ServerEndpoint(host="smtp.example.com", port=465, security="ssl")


class World:
    def __init__(self) -> None:
        self.accounts = FakeAccountRepository()
        self.secrets = FakeSecretBox()
        self.mailbox = FakeMailbox()
        self.jobs = FakeJobQueue()
        self.events = FakeEventPublisher()
        self.clock = FakeClock(NOW)
        ids = iter(f"id{n}" for n in range(100))
        self.service = AccountService(
            self.accounts,
            self.secrets,
            self.mailbox,
            self.jobs,
            self.events,
            self.clock,
            shard_count=8,
            poll_interval=timedelta(minutes=5),
            new_id=lambda: next(ids),
        )
        self.mailbox.passwords["alex@example.com"] = "pw"

    def connect(self, password: str = "pw") -> str:
        request = ConnectAccount(
            email="Alex@Example.com", password=SecretStr(password), imap=IMAP, smtp=SMTP
        )
        return self.service.connect(OWNER, request).id


@pytest.fixture
def world() -> World:
    return World()


def test_connect_logs_in_stores_sealed_credentials_and_polls_now(world: World) -> None:
    account_id = world.connect()

    account = world.service.get(OWNER, account_id)
    assert account.state == AccountState.ACTIVE
    assert account.email == "alex@example.com"
    sealed = world.accounts.credentials[("c1", account_id)]
    assert "pw" not in str(sealed["box"])
    assert world.accounts.poll_keys("c1", account_id) is not None
    assert [e.detail["to"] for e in world.events.events] == ["active"]


def test_a_wrong_password_stores_nothing(world: World) -> None:
    with pytest.raises(MailServerError) as refused:
        world.connect("wrong")
    assert refused.value.problem.code == "auth_failed"
    assert world.accounts.list_for_company("c1") == []
    assert world.accounts.credentials == {}


def test_exchange_settings_are_kept_without_polling(world: World) -> None:
    request = ConnectAccount.model_validate(
        {
            "kind": "exchange",
            "email": "a@corp.example",
            "password": "pw",
            "exchange": {"server": "mail.corp.example", "username": "CORP\\alex"},
        }
    )
    account = world.service.connect(OWNER, request)
    assert account.kind == AccountKind.EXCHANGE
    assert account.state == AccountState.CONNECTING
    assert world.accounts.poll_keys("c1", account.id) is None


@pytest.mark.parametrize("username", ["alex", "alex@", "CORP\\", "a b@c.d"])
def test_exchange_user_names_must_be_email_or_domain_backslash_user(username: str) -> None:
    with pytest.raises(ValidationError):
        ConnectAccount.model_validate(
            {
                "kind": "exchange",
                "email": "a@corp.example",
                "password": "pw",
                "exchange": {"username": username},
            }
        )


def test_only_the_owner_and_admins_see_an_account_and_only_the_owner_changes_it(
    world: World,
) -> None:
    account_id = world.connect()
    assert world.service.get(ADMIN, account_id).id == account_id
    with pytest.raises(NotFoundError):
        world.service.get(COLLEAGUE, account_id)
    with pytest.raises(NotFoundError):
        world.service.get(STRANGER, account_id)
    with pytest.raises(ForbiddenError):
        world.service.stop(ADMIN, account_id)
    assert [a.id for a in world.service.list_accounts(COLLEAGUE)] == []
    assert [a.id for a in world.service.list_accounts(ADMIN)] == [account_id]


def test_stop_takes_the_account_out_of_polling_and_resume_brings_it_back(world: World) -> None:
    account_id = world.connect()
    assert world.service.stop(OWNER, account_id).state == AccountState.STOPPED
    assert world.accounts.poll_keys("c1", account_id) is None
    with pytest.raises(ConflictError):
        world.service.sync_now(OWNER, account_id)
    assert world.service.resume(OWNER, account_id).state == AccountState.ACTIVE
    assert world.accounts.poll_keys("c1", account_id) is not None


def test_reauthenticate_with_a_new_password_reactivates_and_replaces_credentials(
    world: World,
) -> None:
    account_id = world.connect()
    world.mailbox.passwords["alex@example.com"] = "new"
    with pytest.raises(MailServerError):
        world.service.reauthenticate(OWNER, account_id, Reauthenticate())
    assert world.service.get(OWNER, account_id).state == AccountState.NEEDS_REAUTH

    account = world.service.reauthenticate(
        OWNER, account_id, Reauthenticate(password=SecretStr("new"))
    )

    assert account.state == AccountState.ACTIVE
    assert account.last_error is None
    assert world.service.password_for_sync(account) == "new"


def test_remove_deletes_account_and_credentials(world: World) -> None:
    account_id = world.connect()
    world.service.remove(OWNER, account_id)
    assert world.accounts.credentials == {}
    with pytest.raises(NotFoundError):
        world.service.get(OWNER, account_id)
    assert world.connect() != account_id  # re-adding is a fresh account


def test_sync_now_sends_a_job_in_the_account_group(world: World) -> None:
    account_id = world.connect()
    job = world.service.sync_now(OWNER, account_id)
    assert world.jobs.jobs == [job]
    assert job.reason == "manual"


def test_settings_patch_changes_only_what_was_sent(world: World) -> None:
    account_id = world.connect()
    account = world.service.update_settings(
        OWNER, account_id, SyncSettingsPatch(sharing_default="shared", sync_start="3_months")
    )
    assert account.settings.sharing_default == "shared"
    assert account.settings.sync_start == "3_months"
    assert account.settings.deal_linking == "automatic"
    assert account.version == 1


def test_a_state_change_from_a_stale_read_is_retried_on_fresh_data(world: World) -> None:
    account_id = world.connect()
    stale = world.service.get(OWNER, account_id)
    world.service.update_settings(OWNER, account_id, SyncSettingsPatch(track_opens=False))
    problem = ConnectionProblem(code="timeout", message="No answer.", action="Wait.")

    moved = world.service.record_failure(stale, problem)

    assert moved.state == AccountState.CONNECTION_ERROR
    assert moved.settings.track_opens is False  # the other writer's change survived
    assert moved.version == 2


def test_a_reauthentication_that_cannot_reach_the_server_is_a_connection_error(
    world: World,
) -> None:
    account_id = world.connect()
    world.mailbox.down = True
    with pytest.raises(MailServerError):
        world.service.reauthenticate(OWNER, account_id, Reauthenticate())
    assert world.service.get(OWNER, account_id).state == AccountState.CONNECTION_ERROR
