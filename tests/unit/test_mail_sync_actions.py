"""The sync worker applies pending mailbox actions (SPEC S9) before it syncs: an applied
action is gone and recorded on the run; a refused login or a server that hangs up keeps it;
a run of an account that cannot poll applies nothing; the sync right after sees the result."""

from __future__ import annotations

from datetime import timedelta

from crmsync.mail.folders import folder_roles
from crmsync.models.accounts import AccountState
from crmsync.models.actions import ActionOp, MailboxAction
from crmsync.models.jobs import MailboxActionsJob
from crmsync.models.mail import MessageLocation, StoredMessage, folder_id
from crmsync.models.servers import MailServerError
from crmsync.services.mail_sync import MailSync
from tests.unit.fakes_mail import RIG_NOW, FakeThreadStore, SyncRig, mime, problem
from tests.unit.test_thread_actions import MemoryActions


class ActionRig(SyncRig):
    def __init__(self) -> None:
        super().__init__()
        self.server.add_folder("Archive", special_use="\\Archive")
        self.server.add_folder("Trash", special_use="\\Trash")
        self.actions = MemoryActions()
        self.store = FakeThreadStore()
        self.sync = MailSync(
            self.accounts,
            self.runs,
            self.events,
            self.clock,
            poll_interval=timedelta(minutes=5),
            sessions=self.sessions,
            health=self.health,
            checkpoints=self.checkpoints,
            raw=self.raw,
            process_queue=self.queue,
            sync_queue=self.sync_queue,
            limits=self.limits,
            actions=self.actions,
            threads=self.store,
        )
        self.add_account(settings={"sync_start": "1_month"})

    def message(self, n: int) -> StoredMessage:
        """A message in INBOX on the server and in the CRM."""
        uid = self.server.append("INBOX", mime(message_id=f"m{n}@x", subject=f"S{n}"))
        roles = folder_roles(f.info() for f in self.server.folders.values())
        message = StoredMessage(
            id=f"k{n}",
            thread_id="t1",
            account_id="a1",
            company_id="c1",
            owner_user_id="u1",
            date=RIG_NOW,
            raw_key=f"raw/{n}",
            locations=[
                MessageLocation(
                    folder="INBOX",
                    folder_id=folder_id("INBOX"),
                    uidvalidity=self.server.folders["INBOX"].uidvalidity,
                    uid=uid,
                    role=roles["INBOX"],
                )
            ],
        )
        self.store.insert_message(message)
        return message

    def act(self, op: ActionOp, *messages: StoredMessage) -> MailboxAction:
        self.clock.advance(timedelta(milliseconds=1))
        now = self.clock.now()
        action = MailboxAction(
            id=MailboxAction.new_id(now, "t1", op),
            company_id="c1",
            account_id="a1",
            thread_id="t1",
            op=op,
            message_keys=[m.id for m in messages],
            created_at=now,
        )
        self.actions.add(action)
        return action

    def actions_job(self) -> MailboxActionsJob:
        return MailboxActionsJob(
            job_id="actions-1", account_id="a1", company_id="c1", enqueued_at=self.clock.now()
        )


def test_pending_actions_are_applied_in_order_then_the_folders_sync() -> None:
    rig = ActionRig()
    one, two = rig.message(1), rig.message(2)
    rig.run()  # the first sync: both are known, nothing pending
    rig.act("read", one)
    rig.act("archive", one)
    rig.act("delete", two)

    run = rig.sync.run(rig.actions_job(), out_of_time=lambda: False)

    assert (run.outcome, run.reason, run.mailbox_actions) == ("ok", "actions", 3)
    assert "mailbox actions applied: 3" in run.detail
    assert rig.actions.items == {}
    [archived] = rig.server.folders["Archive"].messages.values()
    assert b"<m1@x>" in archived.raw
    assert "\\Seen" in archived.flags
    [trashed] = rig.server.folders["Trash"].messages.values()
    assert b"<m2@x>" in trashed.raw
    assert rig.server.folders["INBOX"].messages == {}
    # The same run synced afterwards: the moves are already on their way to the CRM.
    assert {job.op for job in rig.queue.sent} >= {"removed", "upsert"}


def test_a_refused_login_keeps_the_actions_until_a_run_can_apply_them() -> None:
    rig = ActionRig()
    one = rig.message(1)
    rig.act("archive", one)
    rig.sessions.fail_with = "auth_failed"
    assert rig.run().outcome == "failed"
    assert len(rig.actions.items) == 1
    assert len(rig.server.folders["INBOX"].messages) == 1

    # An account waiting for re-authentication: its runs apply nothing and keep everything.
    rig.sessions.fail_with = None
    waiting = rig.account().model_copy(update={"state": AccountState.NEEDS_REAUTH})
    rig.accounts.put(waiting, 8)
    assert rig.sync.run(rig.actions_job(), out_of_time=lambda: False).outcome == "skipped"
    assert len(rig.actions.items) == 1

    # After re-authentication the next run applies it.
    rig.accounts.put(rig.account().model_copy(update={"state": AccountState.ACTIVE}), 8)
    assert rig.run().mailbox_actions == 1
    assert rig.actions.items == {}
    assert len(rig.server.folders["Archive"].messages) == 1


def test_a_server_that_hangs_up_mid_action_keeps_what_was_not_applied() -> None:
    rig = ActionRig()
    one, two = rig.message(1), rig.message(2)
    first = rig.act("archive", one)
    second = rig.act("archive", two)

    class HangUpAfterOne:
        calls = 0

        def apply(self, session: object, action: MailboxAction, *args: object) -> object:
            self.calls += 1
            if self.calls == 2:
                raise MailServerError(problem("server_error"))
            return real.apply(session, action, *args)  # type: ignore[arg-type]

    real = rig.sync._applier
    rig.sync._applier = HangUpAfterOne()  # type: ignore[assignment]
    assert rig.run().outcome == "failed"
    assert list(rig.actions.items) == [second.id]
    assert first.id not in rig.actions.items
    rig.sync._applier = real
    assert rig.run().mailbox_actions == 1
    assert len(rig.server.folders["Archive"].messages) == 2


def test_an_idle_poll_without_actions_stays_idle() -> None:
    rig = ActionRig()
    rig.message(1)
    rig.run()
    rig.run()
    before = rig.sessions.opened[-1].calls
    run = rig.run()
    assert (run.outcome, run.mailbox_actions) == ("idle", 0)
    # Nothing pending: not one IMAP command more than the idle poll's own.
    assert rig.sessions.opened[-1].calls == before
