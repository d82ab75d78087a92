"""One mail sync run of an account (MailSync): login, one STATUS per synced folder, the
folders that changed synced, the run recorded and announced only when something changed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from crmsync.models.accounts import AccountKind, AccountState, SyncSettings
from tests.unit.fakes_mail import SyncRig, mime

NOW = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)
INTERVAL = timedelta(minutes=5)
OPEN_COST = 2  # CAPABILITY + LOGIN
LIST_COST = 1


class Rig(SyncRig):
    """A mailbox with the usual special-use folders, one custom folder and a \\Noselect one."""

    def __init__(self, *, gmail: bool = False, list_status: bool = False) -> None:
        super().__init__(
            now=NOW, batch_size=10, poll_interval=INTERVAL, gmail=gmail, list_status=list_status
        )
        self.server.add_folder("Sent", special_use="\\Sent")
        self.server.add_folder("Drafts", special_use="\\Drafts")
        self.server.add_folder("Trash", special_use="\\Trash")
        self.server.add_folder("Junk", special_use="\\Junk")
        self.server.add_folder("Projects")
        self.server.add_folder("[Gmail]", flags=["\\Noselect"])


def message(n: int) -> bytes:
    return mime(message_id=f"m{n}@example.com", subject=f"Hello {n}", sent=NOW)


@pytest.fixture
def rig() -> Rig:
    return Rig()


def test_a_refused_password_records_auth_failed_and_fetches_nothing(rig: Rig) -> None:
    rig.add_account()
    rig.server.append("INBOX", message(1), internaldate=NOW)
    rig.health.password = "wrong"

    run = rig.run()

    assert (run.outcome, run.detail) == ("failed", "auth_failed")
    assert [p.code for p in rig.health.failures] == ["auth_failed"]
    assert rig.health.successes == 0
    assert rig.server.sessions_opened == 0
    assert rig.server.fetched == []
    assert rig.queue.sent == []
    assert rig.checkpoints.writes == 0
    assert [r.outcome for r in rig.runs.recorded] == ["failed"]


def test_a_timeout_on_login_records_the_failure_and_keeps_no_state(rig: Rig) -> None:
    rig.add_account()
    rig.sessions.fail_with = "timeout"

    run = rig.run()

    assert (run.outcome, run.detail) == ("failed", "timeout")
    assert [p.code for p in rig.health.failures] == ["timeout"]
    assert rig.checkpoints.writes == 0
    assert rig.raw.raw_puts == 0
    assert [e.detail["outcome"] for e in rig.events.events] == ["failed"]


def test_the_first_run_seeds_the_synced_folders_and_is_recorded(rig: Rig) -> None:
    rig.add_account()

    run = rig.run()

    assert run.outcome == "ok"
    assert run.folders_checked == 3  # INBOX, Sent, Projects
    assert sorted(rig.checkpoints.checkpoints("c1", "a1")) == ["INBOX", "Projects", "Sent"]
    assert rig.runs.recorded == [run]
    (event,) = rig.events.events
    assert event.detail_type == "mail_sync.completed"
    assert event.detail["run_id"] == run.id


def test_an_idle_second_run_costs_login_list_and_one_status_per_folder_and_writes_nothing(
    rig: Rig,
) -> None:
    rig.add_account()
    rig.server.append("INBOX", message(1), internaldate=NOW)
    rig.run()
    before = rig.accounts.get("c1", "a1")
    writes, recorded, events = (
        rig.checkpoints.writes,
        len(rig.runs.recorded),
        len(rig.events.events),
    )

    run = rig.run()

    assert run.outcome == "idle"
    assert run.folders_checked == 3
    assert run.messages_on_server == 1
    assert run.imap_commands == OPEN_COST + LIST_COST + 3
    assert rig.sessions.opened[-1].calls == ["LIST", "STATUS", "STATUS", "STATUS"]
    assert rig.checkpoints.writes == writes
    assert len(rig.runs.recorded) == recorded
    assert len(rig.events.events) == events
    assert rig.queue.sent == []
    after = rig.accounts.get("c1", "a1")
    assert after == before  # not even the poll schedule is rewritten


def test_an_idle_run_on_a_list_status_server_costs_one_command_after_login() -> None:
    rig = Rig(list_status=True)
    rig.add_account()
    rig.run()

    run = rig.run()

    assert run.outcome == "idle"
    assert run.imap_commands == OPEN_COST + 1
    assert rig.sessions.opened[-1].calls == ["LIST-STATUS"]


def test_a_run_that_finds_new_mail_is_recorded_announced_and_reschedules(rig: Rig) -> None:
    rig.add_account()
    rig.run()
    rig.clock.advance(timedelta(minutes=1))
    rig.server.append("INBOX", message(1), internaldate=rig.clock.now())

    run = rig.run()

    assert run.outcome == "ok"
    assert run.messages_fetched == 1
    assert [job.op for job in rig.queue.sent] == ["upsert"]
    assert rig.runs.recorded[-1] == run
    event = rig.events.events[-1]
    assert event.detail == {
        "account_id": "a1",
        "run_id": run.id,
        "outcome": "ok",
        "messages_fetched": 1,
    }
    account = rig.accounts.get("c1", "a1")
    assert account is not None
    assert account.last_synced_at == rig.clock.now()
    assert account.next_poll_at == rig.clock.now() + INTERVAL


@pytest.mark.parametrize("state", [AccountState.STOPPED, AccountState.NEEDS_REAUTH])
def test_an_account_that_does_not_poll_is_skipped_without_login(
    rig: Rig, state: AccountState
) -> None:
    rig.add_account(state=state)

    run = rig.run()

    assert (run.outcome, run.detail) == ("skipped", f"account is {state}")
    assert rig.server.sessions_opened == 0
    assert rig.runs.recorded == []
    assert rig.events.events == []


def test_a_removed_account_is_skipped(rig: Rig) -> None:
    run = rig.run()

    assert (run.outcome, run.detail) == ("skipped", "account removed")
    assert rig.server.sessions_opened == 0
    assert rig.runs.recorded == []


def test_an_exchange_account_is_skipped_until_its_adapter_exists(rig: Rig) -> None:
    rig.add_account(kind=AccountKind.EXCHANGE)

    run = rig.run()

    assert run.outcome == "skipped"
    assert "exchange" in run.detail
    assert rig.server.sessions_opened == 0


def test_all_mail_leaves_out_drafts_trash_junk_and_unselectable_folders(rig: Rig) -> None:
    rig.add_account()
    for n, folder in enumerate(("Drafts", "Trash", "Junk")):
        rig.server.append(folder, message(100 + n), internaldate=NOW)
    rig.clock.advance(timedelta(minutes=1))
    rig.run()
    for n, folder in enumerate(("Drafts", "Trash", "Junk", "INBOX")):
        rig.server.append(folder, message(n + 10), internaldate=rig.clock.now())

    run = rig.run()

    assert sorted(rig.checkpoints.checkpoints("c1", "a1")) == ["INBOX", "Projects", "Sent"]
    assert {job.location.folder for job in rig.queue.sent} == {"INBOX"}
    assert run.messages_fetched == 1
    assert {folder for folder, _ in rig.server.fetched} == {"INBOX"}


def test_selected_folders_sync_only_those(rig: Rig) -> None:
    rig.add_account(settings=SyncSettings(folders="selected", selected_folders=["Projects"]))
    rig.run()
    rig.server.append("INBOX", message(1), internaldate=NOW)
    rig.server.append("Projects", message(2), internaldate=NOW)

    run = rig.run()

    assert run.folders_checked == 1
    assert list(rig.checkpoints.checkpoints("c1", "a1")) == ["Projects"]
    assert [(job.op, job.location.folder) for job in rig.queue.sent] == [("upsert", "Projects")]


def test_a_selected_folder_gone_from_the_server_fails_with_folder_missing(rig: Rig) -> None:
    rig.add_account(
        settings=SyncSettings(folders="selected", selected_folders=["INBOX", "Old projects"])
    )

    run = rig.run()

    assert (run.outcome, run.detail) == ("failed", "folder_missing")
    (failure,) = rig.health.failures
    assert failure.code == "folder_missing"
    assert "Old projects" in failure.message
    assert rig.checkpoints.writes == 0


def test_a_run_cut_short_by_the_budget_requeues_a_continue_job(rig: Rig) -> None:
    rig.add_account()
    rig.run()
    for n in range(25):
        rig.server.append("INBOX", message(n), internaldate=NOW)
    calls = iter([False, True])

    run = rig.sync.run(rig.job(), out_of_time=lambda: next(calls, True))

    assert run.outcome == "ok"
    assert not run.complete
    assert run.messages_fetched == 10
    assert "continuing" in run.detail
    (follow_up,) = rig.sync_queue.jobs
    assert (follow_up.reason, follow_up.account_id, follow_up.company_id) == (
        "continue",
        "a1",
        "c1",
    )


def test_all_mail_on_a_server_with_an_all_mail_folder_syncs_that_folder_alone() -> None:
    rig = Rig(gmail=True)
    rig.server.add_folder("[Gmail]/All Mail", special_use="\\All")
    rig.add_account()
    rig.run()
    rig.server.append("INBOX", message(1), internaldate=NOW)
    rig.server.append("[Gmail]/All Mail", message(1), internaldate=NOW, gm_msgid=11)

    run = rig.run()

    assert list(rig.checkpoints.checkpoints("c1", "a1")) == ["[Gmail]/All Mail"]
    assert run.folders_checked == 1
    assert [(j.op, j.location.folder) for j in rig.queue.sent] == [("upsert", "[Gmail]/All Mail")]


def test_selected_folders_ignore_the_all_mail_rule() -> None:
    rig = Rig()
    rig.server.add_folder("[Gmail]/All Mail", special_use="\\All")
    rig.add_account(settings=SyncSettings(folders="selected", selected_folders=["INBOX"]))

    rig.run()

    assert list(rig.checkpoints.checkpoints("c1", "a1")) == ["INBOX"]
