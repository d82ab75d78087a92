"""Calendar accounts: connect only after a real login, the calendar choice and its sync
start, the state machine of the sync's failures, owner-only changes, sealed credentials."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from pydantic import SecretStr, ValidationError

from crmsync.clock import iso
from crmsync.config import Settings
from crmsync.errors import ConflictError, CrmSyncError, ForbiddenError, NotFoundError
from crmsync.messaging.sqs import SqsCalendarSyncQueue
from crmsync.models.accounts import AccountState
from crmsync.models.calendar import CalendarAccount, CalendarSyncJob
from crmsync.models.calendar_accounts import (
    CalendarAccountPatch,
    CalendarChoiceError,
    CalendarConnect,
    CalendarReauthenticate,
    CalendarServerError,
)
from crmsync.models.identity import Principal
from crmsync.models.servers import ConnectionProblem
from crmsync.services.calendar_accounts import CalendarAccountService, credential_context
from crmsync.store import keys
from crmsync.store.calendar_accounts import DynamoCalendarAccountRepository
from tests.unit.fakes import FakeClock, FakeEventPublisher, FakeSecretBox
from tests.unit.fakes_calendar import (
    FakeCalDavServer,
    FakeCalendarAccountRepository,
    FakeCalendarConnector,
    FakeCalendarSyncQueue,
)

NOW = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)
OWNER = Principal(user_id="u1", company_id="c1", role="user", email="alex@example.com")
ADMIN = Principal(user_id="boss", company_id="c1", role="admin")
COLLEAGUE = Principal(user_id="u2", company_id="c1", role="user")
STRANGER = Principal(user_id="u1", company_id="c2", role="admin")
SERVER_URL = "https://cal.example.com/"
ICLOUD_URL = "https://caldav.icloud.com/"
PROBLEMS = {
    code: ConnectionProblem(code=code, message=f"{code} happened.", action=f"fix {code}")
    for code in ("auth_failed", "permission_denied", "calendar_missing", "timeout")
}


class World:
    def __init__(self, *, queue: bool = True) -> None:
        self.server = FakeCalDavServer(SERVER_URL)
        self.server.passwords["alex"] = "pw"
        self.work = self.server.add_calendar("Work", color="#ff0000")
        self.holidays = self.server.add_calendar("Holidays", writable=False)
        self.tasks = self.server.add_calendar("Tasks", supports_events=False)
        self.icloud = FakeCalDavServer(ICLOUD_URL)
        self.icloud.passwords["alex@icloud.com"] = "app-pw"
        self.icloud.add_calendar("Home")
        self.connector = FakeCalendarConnector(self.server, self.icloud)
        self.accounts = FakeCalendarAccountRepository()
        self.secrets = FakeSecretBox()
        self.queue = FakeCalendarSyncQueue()
        self.events = FakeEventPublisher()
        self.clock = FakeClock(NOW)
        ids = iter(f"id{n}" for n in range(100))
        self.service = CalendarAccountService(
            self.accounts,
            self.secrets,
            self.connector,
            self.queue if queue else None,
            self.events,
            self.clock,
            poll_interval=timedelta(minutes=5),
            new_id=lambda: next(ids),
        )

    def connect(self, password: str = "pw", **fields: Any) -> CalendarAccount:
        request = CalendarConnect.model_validate(
            {"url": SERVER_URL, "username": "alex", "password": password, **fields}
        )
        return self.service.connect(OWNER, request)

    def connected(self, **fields: Any) -> str:
        """An account syncing the Work calendar, set up at NOW."""
        account_id = self.connect(**fields).id
        self.service.update(OWNER, account_id, CalendarAccountPatch(calendar_id=self.work.id))
        return account_id

    def state_changes(self) -> list[tuple[str | None, str]]:
        return [
            (e.detail["from"], e.detail["to"])
            for e in self.events.events
            if e.detail_type == "account.state_changed"
        ]


@pytest.fixture
def world() -> World:
    return World()


# -- connect ---------------------------------------------------------------------------------


def test_connect_logs_in_and_answers_the_calendars_with_names_colours_and_writability(
    world: World,
) -> None:
    account = world.connect()

    assert account.state == AccountState.ACTIVE
    assert account.calendar_id is None
    assert account.sync_since is None
    shown = {c.name: (c.id, c.color, c.writable) for c in account.calendars}
    assert shown == {
        "Work": (world.work.id, "#ff0000", True),
        "Holidays": (world.holidays.id, None, False),
        "Tasks": (world.tasks.id, None, True),
    }
    assert world.server.logins == 1
    assert world.service.get(OWNER, account.id) == account
    # Nothing to sync before a calendar is chosen: not in the dispatcher's shards.
    assert world.accounts.poll_keys("c1", account.id) is None
    assert world.state_changes() == [(None, "active")]
    assert world.events.events[0].detail["kind"] == "calendar"


def test_credentials_are_sealed_bound_to_the_calendar_account_and_never_shown(
    world: World,
) -> None:
    account = world.connect()
    sealed = world.accounts.credentials[("c1", account.id)]
    assert sealed["context"] == {"company_id": "c1", "account_id": account.id, "kind": "calendar"}
    assert sealed["context"] == credential_context(account)
    assert "pw" not in str(sealed["box"])
    assert world.service.password_for_sync(account) == "pw"
    for shown in (account.model_dump_json(), repr(account), str(world.events.events)):
        assert '"pw"' not in shown
        assert "'pw'" not in shown
    # Copied to another account, the sealed password does not open.
    other = account.model_copy(update={"id": "elsewhere"})
    world.accounts.create(other, sealed)
    with pytest.raises(ValueError, match="another account"):
        world.service.password_for_sync(other)


def test_a_wrong_password_is_a_422_problem_and_nothing_is_stored(world: World) -> None:
    with pytest.raises(CalendarServerError) as refused:
        world.connect("wrong")
    assert refused.value.status == 422
    assert refused.value.extensions()["code"] == "auth_failed"
    assert "refused the user name or password" in str(refused.value)
    assert world.accounts.list_for_company("c1") == []
    assert world.accounts.credentials == {}
    assert world.events.events == []


def test_an_unreachable_server_is_a_connection_problem_and_nothing_is_stored(
    world: World,
) -> None:
    world.server.down = PROBLEMS["timeout"]
    with pytest.raises(CalendarServerError) as failed:
        world.connect()
    assert failed.value.problem.code == "timeout"
    assert world.accounts.list_for_company("c1") == []


def test_a_preset_gives_the_server_and_its_app_password_advice(world: World) -> None:
    def connect(preset: str, password: str) -> CalendarAccount:
        body = {"preset": preset, "username": "alex@icloud.com", "password": password}
        return world.service.connect(OWNER, CalendarConnect.model_validate(body))

    account = connect("iCloud", "app-pw")
    assert (account.preset, account.url) == ("icloud", ICLOUD_URL)
    assert [c.name for c in account.calendars] == ["Home"]

    with pytest.raises(CalendarServerError) as refused:
        connect("icloud", "apple-id-password")
    assert "app password" in refused.value.problem.action
    failed = world.service.record_failure(account, PROBLEMS["auth_failed"])
    assert failed.last_error is not None
    assert "app password" in failed.last_error.action


def test_google_needs_oauth_and_a_self_hosted_preset_needs_its_host(world: World) -> None:
    with pytest.raises(CalendarChoiceError) as google:
        world.service.connect(
            OWNER,
            CalendarConnect.model_validate({"preset": "google", "username": "a", "password": "b"}),
        )
    assert google.value.code == "oauth_required"
    with pytest.raises(CrmSyncError):
        world.service.connect(
            OWNER,
            CalendarConnect.model_validate(
                {"preset": "nextcloud", "username": "a", "password": "b"}
            ),
        )
    nextcloud = CalendarConnect.model_validate(
        {"preset": "nextcloud", "host": "cal.example.com", "username": "alex", "password": "pw"}
    )
    account = world.service.connect(OWNER, nextcloud)
    assert account.url == "https://cal.example.com/remote.php/dav"


def test_connect_needs_a_url_or_a_known_preset(world: World) -> None:
    for body in ({"preset": "nowhere"}, {}):
        with pytest.raises(CalendarChoiceError) as refused:
            world.service.connect(
                OWNER,
                CalendarConnect.model_validate({"username": "alex", "password": "pw", **body}),
            )
        assert refused.value.status == 422
    with pytest.raises(ValidationError):
        CalendarConnect.model_validate(
            {"url": "ftp://x.example/", "username": "a", "password": "b"}
        )
    with pytest.raises(ValidationError):
        CalendarConnect.model_validate({"url": SERVER_URL, "username": "a", "password": ""})
    assert world.accounts.list_for_company("c1") == []


# -- choosing the calendar and what syncs ----------------------------------------------------


def test_choosing_the_calendar_starts_the_sync_now_and_puts_it_in_its_shard(
    world: World,
) -> None:
    account_id = world.connect().id
    world.clock.advance(timedelta(minutes=7))
    chosen = world.service.update(
        OWNER,
        account_id,
        CalendarAccountPatch.model_validate(
            {
                "calendar_id": world.work.id,
                "sync_type": "two_way",
                "activity_types": ["meeting", "call", "meeting", "lunch"],
                "default_activity_type": "call",
            }
        ),
    )
    assert chosen.calendar_id == world.work.id
    assert chosen.calendar is not None
    assert chosen.calendar.name == "Work"
    assert chosen.sync_since == NOW + timedelta(minutes=7)
    assert chosen.sync_type == "two_way"
    assert chosen.activity_types == ["meeting", "call", "lunch"]
    assert chosen.default_activity_type == "call"
    assert chosen.version == 1
    poll = world.accounts.poll_keys("c1", account_id)
    assert poll is not None
    assert poll.shard.startswith("CAL#")
    assert poll.next_poll_at == iso(NOW + timedelta(minutes=7))


def test_changing_the_calendar_moves_the_sync_start_other_settings_do_not(
    world: World,
) -> None:
    account_id = world.connected()
    world.clock.advance(timedelta(days=2))
    same = world.service.update(
        OWNER, account_id, CalendarAccountPatch(calendar_id=world.work.id, sync_type="two_way")
    )
    assert same.sync_since == NOW
    other = world.server.add_calendar("Sales")
    moved = world.service.update(OWNER, account_id, CalendarAccountPatch(calendar_id=other.id))
    assert moved.sync_since == NOW + timedelta(days=2)
    assert moved.calendar_id == other.id
    # A calendar made after connecting was found by asking the server again.
    assert other.id in {c.id for c in moved.calendars}


def test_a_read_only_calendar_or_a_task_list_is_refused_with_a_clear_message(
    world: World,
) -> None:
    account_id = world.connect().id
    with pytest.raises(CalendarChoiceError) as read_only:
        world.service.update(OWNER, account_id, CalendarAccountPatch(calendar_id=world.holidays.id))
    assert read_only.value.status == 422
    assert read_only.value.extensions()["code"] == "calendar_read_only"
    assert "“Holidays” is read-only" in str(read_only.value)
    assert "writable calendar" in read_only.value.action
    with pytest.raises(CalendarChoiceError) as tasks:
        world.service.update(OWNER, account_id, CalendarAccountPatch(calendar_id=world.tasks.id))
    assert tasks.value.code == "calendar_without_events"
    with pytest.raises(CalendarChoiceError) as unknown:
        world.service.update(OWNER, account_id, CalendarAccountPatch(calendar_id="calnope"))
    assert unknown.value.code == "calendar_not_found"
    account = world.service.get(OWNER, account_id)
    assert (account.calendar_id, account.sync_since, account.version) == (None, None, 0)


def test_patch_refuses_unknown_fields_and_bad_values() -> None:
    for body in (
        {"sync_type": "both_ways"},
        {"activity_types": ["Meeting"]},
        {"calendar": "x"},
        {"activity_types": ["call"] * 51},
    ):
        with pytest.raises(ValidationError):
            CalendarAccountPatch.model_validate(body)


# -- the state machine -----------------------------------------------------------------------


def test_a_refused_password_needs_reauth_with_the_app_password_hint_only_for_two_factor(
    world: World,
) -> None:
    plain_id = world.connected()
    plain = world.service.record_failure(
        world.service.get(OWNER, plain_id), PROBLEMS["auth_failed"]
    )
    assert plain.state == AccountState.NEEDS_REAUTH
    assert plain.last_error is not None
    assert plain.last_error.code == "auth_failed"
    assert "app password" not in plain.last_error.action
    assert world.accounts.poll_keys("c1", plain_id) is None

    two_factor_id = world.connected(uses_two_factor=True)
    two_factor = world.service.record_failure(
        world.service.get(OWNER, two_factor_id), PROBLEMS["auth_failed"]
    )
    assert two_factor.last_error is not None
    assert "app password" in two_factor.last_error.action
    assert ("active", "needs_reauth") in world.state_changes()


def test_permission_denied_stops_polling_until_resumed(world: World) -> None:
    account_id = world.connected()
    denied = world.service.record_failure(
        world.service.get(OWNER, account_id), PROBLEMS["permission_denied"]
    )
    assert denied.state == AccountState.PERMISSION_DENIED
    assert denied.last_error is not None
    assert denied.last_error.action == "fix permission_denied"
    assert world.accounts.poll_keys("c1", account_id) is None
    with pytest.raises(ConflictError):
        world.service.sync(OWNER, account_id)

    resumed = world.service.resume(OWNER, account_id)
    assert resumed.state == AccountState.ACTIVE
    assert resumed.last_error is None
    assert world.accounts.poll_keys("c1", account_id) is not None
    assert world.state_changes()[-2:] == [
        ("active", "permission_denied"),
        ("permission_denied", "active"),
    ]


def test_a_deleted_calendar_stops_polling_and_asks_to_choose_another(world: World) -> None:
    account_id = world.connected()
    missing = world.service.record_failure(
        world.service.get(OWNER, account_id), PROBLEMS["calendar_missing"]
    )
    assert missing.state == AccountState.CALENDAR_MISSING
    assert not missing.state.polls
    assert world.accounts.poll_keys("c1", account_id) is None

    world.clock.advance(timedelta(hours=1))
    other = world.server.add_calendar("Sales")
    chosen = world.service.update(OWNER, account_id, CalendarAccountPatch(calendar_id=other.id))
    assert chosen.state == AccountState.ACTIVE
    assert chosen.last_error is None
    assert chosen.sync_since == NOW + timedelta(hours=1)
    assert world.accounts.poll_keys("c1", account_id) is not None


def test_connection_errors_back_off_then_need_attention_and_a_success_recovers(
    world: World,
) -> None:
    account_id = world.connected()
    account = world.service.get(OWNER, account_id)
    for n in range(1, 4):
        account = world.service.record_failure(account, PROBLEMS["timeout"])
        assert account.state == AccountState.CONNECTION_ERROR
        assert account.failures == n
        assert account.next_poll_at is not None
        wait = account.next_poll_at - world.clock.now()
        assert timedelta(minutes=5 * 2 ** (n - 1)) <= wait <= timedelta(minutes=6 * 2 ** (n - 1))
    assert world.accounts.poll_keys("c1", account_id) is not None
    world.clock.advance(timedelta(days=3))
    account = world.service.record_failure(account, PROBLEMS["timeout"])
    assert account.state == AccountState.NEEDS_ATTENTION
    assert account.next_poll_at is not None
    assert account.next_poll_at - world.clock.now() <= timedelta(hours=1, minutes=12)

    recovered = world.service.record_success(account)
    assert (recovered.state, recovered.failures, recovered.last_error) == (
        AccountState.ACTIVE,
        0,
        None,
    )
    saves = world.accounts.saves
    assert world.service.record_success(recovered) == recovered
    assert world.accounts.saves == saves  # a healthy sync writes nothing


def test_the_sync_never_overrides_a_stop_made_meanwhile(world: World) -> None:
    account_id = world.connected()
    seen_by_sync = world.service.get(OWNER, account_id)
    world.service.stop(OWNER, account_id)
    after_failure = world.service.record_failure(seen_by_sync, PROBLEMS["timeout"])
    assert after_failure.state == AccountState.STOPPED
    failing = seen_by_sync.model_copy(update={"failures": 2})
    assert world.service.record_success(failing).state == AccountState.STOPPED
    assert world.accounts.poll_keys("c1", account_id) is None


def test_stop_resume_and_what_resume_leaves_alone(world: World) -> None:
    account_id = world.connected()
    stopped = world.service.stop(OWNER, account_id)
    assert stopped.state == AccountState.STOPPED
    assert world.accounts.poll_keys("c1", account_id) is None
    assert world.service.resume(OWNER, account_id).state == AccountState.ACTIVE

    world.service.record_failure(world.service.get(OWNER, account_id), PROBLEMS["auth_failed"])
    assert world.service.resume(OWNER, account_id).state == AccountState.NEEDS_REAUTH


def test_reauthenticate_logs_in_for_real_and_seals_the_new_password(world: World) -> None:
    account_id = world.connected()
    world.service.record_failure(world.service.get(OWNER, account_id), PROBLEMS["auth_failed"])
    world.server.passwords["alex"] = "rotated"

    with pytest.raises(CalendarServerError) as still_wrong:
        world.service.reauthenticate(OWNER, account_id, CalendarReauthenticate())
    assert still_wrong.value.problem.code == "auth_failed"
    assert world.service.get(OWNER, account_id).state == AccountState.NEEDS_REAUTH

    active = world.service.reauthenticate(
        OWNER, account_id, CalendarReauthenticate(password=SecretStr("rotated"))
    )
    assert active.state == AccountState.ACTIVE
    assert world.service.password_for_sync(active) == "rotated"
    assert world.state_changes()[-1] == ("needs_reauth", "active")


def test_reauthenticate_notices_the_chosen_calendar_is_gone(world: World) -> None:
    account_id = world.connected()
    world.server.remove_calendar(world.work.id)
    account = world.service.reauthenticate(OWNER, account_id, CalendarReauthenticate())
    assert account.state == AccountState.CALENDAR_MISSING
    assert account.last_error is not None
    assert "choose another" in account.last_error.action.lower()
    assert world.work.id not in {c.id for c in account.calendars}


def test_sync_now_queues_one_job_per_request_for_the_accounts_group(world: World) -> None:
    account_id = world.connect().id
    with pytest.raises(ConflictError, match="Choose a calendar"):
        world.service.sync(OWNER, account_id)
    world.service.update(OWNER, account_id, CalendarAccountPatch(calendar_id=world.work.id))
    job = world.service.sync(OWNER, account_id)
    assert job.kind == "calendar_sync"
    assert (job.company_id, job.account_id, job.reason) == ("c1", account_id, "manual")
    assert world.queue.jobs == [job]
    world.service.stop(OWNER, account_id)
    with pytest.raises(ConflictError, match="stopped"):
        world.service.sync(OWNER, account_id)


def test_sync_now_without_a_calendar_sync_queue_is_not_available() -> None:
    world = World(queue=False)
    account_id = world.connected()
    with pytest.raises(ConflictError, match="not available"):
        world.service.sync(OWNER, account_id)


def test_a_save_that_lost_a_race_is_applied_again_to_the_newer_account(world: World) -> None:
    account_id = world.connected()
    stale = world.service.get(OWNER, account_id)
    world.service.update(OWNER, account_id, CalendarAccountPatch(sync_type="two_way"))
    failed = world.service.record_failure(stale, PROBLEMS["timeout"])
    assert failed.state == AccountState.CONNECTION_ERROR
    assert failed.sync_type == "two_way"  # the owner's change survived
    assert failed.version == stale.version + 2


# -- who may do what -------------------------------------------------------------------------


def test_owner_changes_admins_read_nobody_else_sees(world: World) -> None:
    account_id = world.connected()
    assert world.service.get(ADMIN, account_id).id == account_id
    assert [a.id for a in world.service.list_accounts(ADMIN)] == [account_id]
    assert [a.id for a in world.service.list_accounts(OWNER)] == [account_id]
    assert world.service.list_accounts(COLLEAGUE) == []
    assert world.service.list_accounts(STRANGER) == []
    for principal, error in ((ADMIN, ForbiddenError), (COLLEAGUE, NotFoundError)):
        for change in (
            lambda p: world.service.stop(p, account_id),
            lambda p: world.service.resume(p, account_id),
            lambda p: world.service.sync(p, account_id),
            lambda p: world.service.delete(p, account_id),
            lambda p: world.service.reauthenticate(p, account_id, CalendarReauthenticate()),
            lambda p: world.service.update(p, account_id, CalendarAccountPatch()),
        ):
            with pytest.raises(error):
                change(principal)
    with pytest.raises(NotFoundError):
        world.service.get(STRANGER, account_id)


def test_delete_removes_the_account_and_its_credentials(world: World) -> None:
    account_id = world.connected()
    world.service.delete(OWNER, account_id)
    assert world.accounts.get("c1", account_id) is None
    assert world.accounts.credentials == {}
    assert world.accounts.poll_keys("c1", account_id) is None
    removed = world.events.events[-1]
    assert removed.detail_type == "account.removed"
    assert removed.detail == {"account_id": account_id, "user_id": "u1", "kind": "calendar"}
    with pytest.raises(NotFoundError):
        world.service.get(OWNER, account_id)


# -- adapters --------------------------------------------------------------------------------


class RecordingTable:
    name = "table"

    def __init__(self) -> None:
        self.puts: list[dict[str, Any]] = []
        self.transactions: list[list[dict[str, Any]]] = []
        self.meta = SimpleNamespace(
            client=SimpleNamespace(
                transact_write_items=lambda **kw: self.transactions.append(kw["TransactItems"])
            )
        )

    def put_item(self, **request: Any) -> dict[str, Any]:
        self.puts.append(request)
        return {}


def _account(**fields: Any) -> CalendarAccount:
    return CalendarAccount.model_validate(
        {
            "id": "a1",
            "company_id": "c1",
            "user_id": "u1",
            "url": SERVER_URL,
            "username": "alex",
            "created_at": NOW,
            **fields,
        }
    )


def test_the_store_keys_the_account_under_its_company_and_indexes_only_what_polls() -> None:
    table = RecordingTable()
    store = DynamoCalendarAccountRepository(table, shard_count=8)  # type: ignore[arg-type]
    store.create(_account(), {"box": "sealed"})
    account_put, credentials_put = (entry["Put"] for entry in table.transactions[0])
    item = account_put["Item"]
    assert (item["PK"], item["SK"]) == ("COMPANY#c1#CALACCOUNT#a1", "CALACCOUNT")
    assert item["GSI1PK"] == "COMPANY#c1#USER#u1#CALACCOUNTS"
    assert item["GSI2PK"] == "COMPANY#c1#CALACCOUNTS"
    assert item["kind"] == "calendar_account"
    assert "poll_shard" not in item  # no calendar chosen yet
    assert account_put["ConditionExpression"] == "attribute_not_exists(PK)"
    assert credentials_put["Item"] == {
        "PK": "COMPANY#c1#CALACCOUNT#a1",
        "SK": "CREDENTIALS",
        "sealed": {"box": "sealed"},
    }

    assert store.save(_account(calendar_id="cal1", next_poll_at=NOW, version=3), 3)
    saved = table.puts[-1]
    assert saved["Item"]["poll_shard"] == keys.calendar_poll_shard("a1", 8)
    assert saved["Item"]["poll_shard"].startswith("CAL#")
    assert saved["Item"]["next_poll_at"] == iso(NOW)
    assert saved["Item"]["data"]["version"] == 4
    assert saved["ExpressionAttributeValues"] == {":v": 3}

    for stopped in (
        _account(calendar_id="cal1", next_poll_at=NOW, state="stopped"),
        _account(calendar_id="cal1", state="active"),
        _account(next_poll_at=NOW),
    ):
        store.save(stopped, 0)
        assert "poll_shard" not in table.puts[-1]["Item"]


def test_the_calendar_shards_never_look_like_the_mail_dispatchers() -> None:
    shard = keys.calendar_poll_shard("a1", 8)
    assert shard == "CAL#" + keys.poll_shard("a1", 8)
    assert shard not in {f"{n:02d}" for n in range(64)}
    assert not AccountState.CALENDAR_MISSING.polls


def test_the_sqs_queue_groups_by_account_and_deduplicates_by_job() -> None:
    sent: list[dict[str, Any]] = []
    client = SimpleNamespace(send_message_batch=lambda **kw: sent.append(kw) or {"Failed": []})
    queue = SqsCalendarSyncQueue(client, "https://sqs.example/cal.fifo")  # type: ignore[arg-type]
    jobs = [
        CalendarSyncJob(job_id=f"a{n}:manual:x", company_id="c1", account_id=f"a{n}")
        for n in range(12)
    ]
    queue.send(jobs)
    assert [len(batch["Entries"]) for batch in sent] == [10, 2]
    entry = sent[0]["Entries"][0]
    assert entry["MessageGroupId"] == "a0"
    assert entry["MessageDeduplicationId"] == "a0:manual:x"
    assert CalendarSyncJob.model_validate_json(entry["MessageBody"]) == jobs[0]


def test_the_queue_url_comes_from_the_environment() -> None:
    settings = Settings.from_env({"TABLE_NAME": "t", "CALENDAR_SYNC_QUEUE_URL": "https://q"})
    assert settings.calendar_sync_queue_url == "https://q"
    assert Settings.from_env({"TABLE_NAME": "t"}).calendar_sync_queue_url is None
