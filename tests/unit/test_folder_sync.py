"""Sync of IMAP folders against their checkpoints (FolderSync, driven through MailSync):
seeding and backfill, new mail, flag changes, expunges, moves, UIDVALIDITY resets, and
resuming after a run was cut short, never sending finished work twice."""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable
from datetime import timedelta

import pytest

from crmsync.models.mail import ProcessMessage
from crmsync.models.servers import MailServerError
from tests.unit.fakes_mail import RIG_NOW, SyncRig, mime

NOW = RIG_NOW
DAY = timedelta(days=1)


def message(n: int, days_ago: float = 0) -> bytes:
    return mime(message_id=f"m{n}@example.com", subject=f"Hello {n}", sent=NOW - days_ago * DAY)


def fill(rig: SyncRig, ages_in_days: list[float], folder: str = "INBOX") -> list[int]:
    """Append one message per age (oldest first, so UIDs grow with the date)."""
    return [
        rig.server.append(folder, message(n, age), internaldate=NOW - age * DAY)
        for n, age in enumerate(ages_in_days)
    ]


def deadline_after(batches: int) -> Callable[[], bool]:
    """An out_of_time that lets `batches` checks pass and then says the time is up."""
    calls = {"n": 0}

    def out_of_time() -> bool:
        calls["n"] += 1
        return calls["n"] > batches

    return out_of_time


def upserted_uids(jobs: list[ProcessMessage], folder: str = "INBOX") -> list[int]:
    return [j.location.uid for j in jobs if j.op == "upsert" and j.location.folder == folder]


def synced(rig: SyncRig) -> dict[int, str]:
    """uid -> message key of the INBOX upserts sent so far."""
    return {j.location.uid: j.message_key for j in rig.queue.of("upsert")}


# -- seeding and backfill --------------------------------------------------------------------
def test_a_seed_with_sync_start_now_fetches_nothing() -> None:
    rig = SyncRig()
    rig.add_account()
    fill(rig, [3, 2, 1, 0])

    run = rig.run()

    assert run.messages_fetched == 0
    assert rig.queue.sent == []
    assert rig.server.fetched == []
    checkpoint = rig.checkpoint()
    assert checkpoint.uidnext == 5
    assert checkpoint.backfill_below is None
    assert checkpoint.since == NOW.date()


def test_one_month_backfills_the_month_newest_first_in_batches() -> None:
    rig = SyncRig(batch_size=2)
    rig.add_account(settings={"sync_start": "1_month"})
    uids = fill(rig, [200, 45, 29, 20, 10, 5, 1])  # the first two are older than a month
    recent = uids[2:]

    run = rig.run()

    assert run.messages_fetched == len(recent)
    # Newest first: batch by batch from the top UID down (a FETCH answers in UID order).
    session = rig.sessions.opened[-1]
    batches = [[uids[5], uids[6]], [uids[3], uids[4]], [uids[2]]]
    assert [sorted(b) for b in session.batches] == batches
    assert upserted_uids(rig.queue.sent) == [uid for batch in batches for uid in batch]
    assert sorted(uid for _, uid in rig.server.fetched) == recent
    assert rig.checkpoint().backfill_below is None
    assert rig.checkpoint().since == (NOW - 30 * DAY).date()


def test_a_backfill_cut_short_resumes_and_sends_every_uid_once() -> None:
    rig = SyncRig(batch_size=2)
    rig.add_account(settings={"sync_start": "1_month"})
    uids = fill(rig, [25, 20, 15, 10, 8, 5, 3])

    first = rig.run(out_of_time=deadline_after(2))

    assert not first.complete
    assert first.messages_fetched == 4
    assert rig.checkpoint().backfill_below == uids[3]
    (follow_up,) = rig.sync_queue.jobs
    assert follow_up.reason == "continue"

    second = rig.run()

    assert second.complete
    assert second.messages_fetched == 3
    sent = upserted_uids(rig.queue.sent)
    assert Counter(sent) == Counter(uids)  # every UID exactly once across the two runs
    assert rig.checkpoint().backfill_below is None
    assert len(rig.sync_queue.jobs) == 1  # the complete run asked for no continuation


def test_new_messages_after_the_seed_are_fetched_once() -> None:
    rig = SyncRig()
    rig.add_account()
    fill(rig, [2, 1])
    rig.run()
    new = rig.server.append("INBOX", message(10), internaldate=NOW)

    rig.run()
    rig.run()

    assert upserted_uids(rig.queue.sent) == [new]
    (job,) = rig.queue.sent
    assert job.raw_key is not None
    assert rig.raw.get_raw(job.raw_key) == message(10)
    assert job.raw_sha256 == hashlib.sha256(message(10)).hexdigest()
    assert rig.checkpoint().uidnext == new + 1


def test_an_empty_message_on_the_server_is_sent_on_and_does_not_stop_the_sync() -> None:
    # An empty (0-byte) message is something the processor keeps as "unparseable"; the sync
    # must pass it on (keyed by its content hash) rather than fail on it every run.
    rig = SyncRig()
    rig.add_account()
    rig.run()
    empty = rig.server.append("INBOX", b"", internaldate=NOW)
    after = rig.server.append("INBOX", message(1), internaldate=NOW)

    run = rig.run()

    assert run.outcome == "ok"
    assert upserted_uids(rig.queue.sent) == [empty, after]
    assert rig.queue.sent[0].raw_sha256 == hashlib.sha256(b"").hexdigest()


# -- flags -----------------------------------------------------------------------------------
def seeded_with_three(rig: SyncRig) -> list[int]:
    rig.add_account()
    rig.run()
    uids = fill(rig, [0.3, 0.2, 0.1])
    rig.run()
    rig.queue.take()
    return uids


def test_flag_changes_arrive_with_qresync_select_one_job_per_changed_message() -> None:
    rig = SyncRig(qresync=True)
    uids = seeded_with_three(rig)
    rig.server.set_flags("INBOX", uids[1], ["\\Seen"])
    rig.server.set_flags("INBOX", uids[2], [])  # touched (new MODSEQ) but unchanged

    run = rig.run()

    (job,) = rig.queue.sent
    assert (job.op, job.location.uid, job.flags) == ("flags", uids[1], ["\\Seen"])
    assert run.flag_changes == 1
    calls = rig.sessions.opened[-1].calls
    assert "FETCH CHANGEDSINCE" not in calls
    assert "FETCH FLAGS" not in calls
    assert rig.uid_map()[(rig.checkpoint().uidvalidity, uids[1])].flags == ["\\Seen"]
    rig.run()
    assert len(rig.queue.sent) == 1  # nothing is sent twice


def test_flag_changes_with_condstore_only_use_changedsince() -> None:
    rig = SyncRig(qresync=False, condstore=True)
    uids = seeded_with_three(rig)
    rig.server.set_flags("INBOX", uids[0], ["\\Flagged", "\\Seen"])
    rig.server.set_flags("INBOX", uids[1], [])  # touched (new MODSEQ) but unchanged

    run = rig.run()

    (job,) = rig.queue.sent
    assert (job.op, job.location.uid, job.flags) == ("flags", uids[0], ["\\Flagged", "\\Seen"])
    assert run.flag_changes == 1
    calls = rig.sessions.opened[-1].calls
    assert "FETCH CHANGEDSINCE" in calls
    assert "FETCH FLAGS" not in calls
    rig.run()
    assert len(rig.queue.sent) == 1  # the new HIGHESTMODSEQ was kept: nothing sent twice


def test_flag_changes_without_condstore_wait_for_the_periodic_full_check() -> None:
    rig = SyncRig(qresync=False, condstore=False, full_check_every=timedelta(hours=1))
    uids = seeded_with_three(rig)
    rig.server.set_flags("INBOX", uids[2], ["\\Seen"])

    early = rig.run()

    assert early.outcome == "idle"  # STATUS cannot see flags; the full check is not due
    assert rig.queue.sent == []

    rig.clock.advance(timedelta(hours=1, minutes=1))
    late = rig.run()

    (job,) = rig.queue.sent
    assert (job.op, job.location.uid, job.flags) == ("flags", uids[2], ["\\Seen"])
    assert late.flag_changes == 1
    assert "FETCH FLAGS" in rig.sessions.opened[-1].calls
    assert rig.checkpoint().last_full_check_at == rig.clock.now()
    assert rig.run().outcome == "idle"  # the check was recorded: not due again yet


# -- expunges and moves ----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("qresync", "condstore"),
    [(True, True), (False, True), (False, False)],
    ids=["vanished", "condstore-compare", "plain-compare"],
)
def test_an_expunged_message_becomes_one_removed_job(qresync: bool, condstore: bool) -> None:
    rig = SyncRig(qresync=qresync, condstore=condstore)
    rig.add_account()
    rig.run()
    uids = fill(rig, [0.3, 0.2, 0.1])
    rig.run()
    keys = synced(rig)
    rig.queue.take()
    rig.server.expunge("INBOX", uids[1])

    run = rig.run()

    (job,) = rig.queue.sent
    assert (job.op, job.location.uid, job.message_key) == ("removed", uids[1], keys[uids[1]])
    assert run.messages_removed == 1
    validity = rig.checkpoint().uidvalidity
    assert sorted(uid for _, uid in rig.uid_map()) == [uids[0], uids[2]]
    assert (validity, uids[1]) not in rig.uid_map()
    rig.run()
    assert len(rig.queue.sent) == 1


def test_an_expunge_and_an_arrival_in_one_interval_are_both_seen_without_qresync() -> None:
    rig = SyncRig(qresync=False, condstore=True)
    rig.add_account()
    rig.run()
    uids = fill(rig, [0.3, 0.2])
    rig.run()
    rig.queue.take()
    rig.server.expunge("INBOX", uids[0])
    new = rig.server.append("INBOX", message(50), internaldate=NOW)

    rig.run()

    assert sorted((j.op, j.location.uid) for j in rig.queue.sent) == [
        ("removed", uids[0]),
        ("upsert", new),
    ]


def test_a_move_is_an_upsert_in_the_target_and_removed_in_the_source() -> None:
    rig = SyncRig()
    rig.server.add_folder("Archive", special_use="\\Archive")
    rig.add_account()
    rig.run()
    (uid,) = fill(rig, [0.1])
    rig.run()
    (first,) = rig.queue.take()
    new_uid = rig.server.move("INBOX", uid, "Archive")

    rig.run()

    by_op = {(j.op, j.location.folder): j for j in rig.queue.sent}
    assert set(by_op) == {("upsert", "Archive"), ("removed", "INBOX")}
    assert by_op[("upsert", "Archive")].message_key == first.message_key
    assert by_op[("removed", "INBOX")].message_key == first.message_key
    assert by_op[("upsert", "Archive")].location.uid == new_uid
    assert by_op[("removed", "INBOX")].location.uid == uid


# -- UIDVALIDITY ------------------------------------------------------------------------------
def test_a_uidvalidity_reset_resends_under_new_uids_then_removes_the_old_locations() -> None:
    rig = SyncRig()
    rig.add_account(settings={"sync_start": "1_month"})
    fill(rig, [10, 5, 1])
    rig.run()
    old_validity = rig.checkpoint().uidvalidity
    old = {j.message_key: j.location for j in rig.queue.take()}
    rig.server.reset_uidvalidity("INBOX")
    new_validity = rig.server.folders["INBOX"].uidvalidity

    run = rig.run()

    jobs = rig.queue.sent
    upserts = [j for j in jobs if j.op == "upsert"]
    removals = [j for j in jobs if j.op == "removed"]
    assert {j.message_key for j in upserts} == set(old)
    assert {j.location.uidvalidity for j in upserts} == {new_validity}
    assert {j.message_key: j.location for j in removals} == old
    assert jobs.index(removals[0]) > max(jobs.index(u) for u in upserts)  # add, then remove
    assert (run.messages_fetched, run.messages_removed) == (3, 3)
    checkpoint = rig.checkpoint()
    assert (checkpoint.uidvalidity, checkpoint.stale_uidvalidity) == (new_validity, None)
    assert {validity for validity, _ in rig.uid_map()} == {new_validity}
    assert old_validity != new_validity


def test_a_second_uidvalidity_reset_before_the_first_finished_leaves_no_stale_entries() -> None:
    rig = SyncRig(batch_size=1)
    rig.add_account(settings={"sync_start": "1_month"})
    fill(rig, [10, 5, 1])
    rig.run()
    rig.server.reset_uidvalidity("INBOX")
    middle = rig.server.folders["INBOX"].uidvalidity
    rig.run(out_of_time=deadline_after(1))  # one message re-sent under `middle`, then cut
    assert any(validity == middle for validity, _ in rig.uid_map())
    rig.server.reset_uidvalidity("INBOX")
    final = rig.server.folders["INBOX"].uidvalidity

    rig.run()

    # Every location under an old UIDVALIDITY was removed again, `middle`'s included.
    assert {validity for validity, _ in rig.uid_map()} == {final}
    added = Counter((j.location.uidvalidity, j.location.uid) for j in rig.queue.of("upsert"))
    removed = Counter((j.location.uidvalidity, j.location.uid) for j in rig.queue.of("removed"))
    assert {loc for loc in added if loc[0] != final} == set(removed)


def test_a_uidvalidity_reset_keeps_a_synced_message_dated_before_the_sync_start() -> None:
    # A message synced as new mail may carry an older INTERNALDATE (moved in from a folder
    # that is not synced, or APPENDed with its date). After a reset it must be found again,
    # not removed from the CRM.
    rig = SyncRig()
    rig.server.add_folder("Trash", special_use="\\Trash")
    rig.add_account()
    rig.run()
    rig.clock.advance(DAY)
    restored = mime(message_id="old@example.com", subject="Old", sent=NOW - 200 * DAY)
    rig.server.append("Trash", restored, internaldate=NOW - 200 * DAY)
    rig.server.move("Trash", 1, "INBOX")
    fill(rig, [0])
    rig.run()
    before = {j.message_key for j in rig.queue.take()}
    assert len(before) == 2
    rig.server.reset_uidvalidity("INBOX")

    rig.run()

    final = rig.server.folders["INBOX"].uidvalidity
    assert {j.message_key for j in rig.queue.of("upsert")} == before
    assert {(v, u) for v, u in rig.uid_map()} == {(final, 1), (final, 2)}


# -- hang-ups and scope ----------------------------------------------------------------------
def test_a_hang_up_mid_fetch_keeps_the_saved_checkpoint_and_the_next_run_resumes() -> None:
    rig = SyncRig(batch_size=2)
    rig.add_account(settings={"sync_start": "1_month"})
    uids = fill(rig, [9, 8, 7, 6, 5])
    rig.server.fail_after_fetches = 2

    with rig.sessions.open_session(rig.account(), rig.server.password) as session:
        sync = rig.folder_sync(session)
        status = session.status("INBOX")
        with pytest.raises(MailServerError) as failure:
            sync.sync(status, None)

    assert failure.value.problem.code == "server_error"
    assert upserted_uids(rig.queue.sent) == [uids[3], uids[4]]
    assert rig.checkpoint().backfill_below == uids[3]

    rig.server.fail_after_fetches = None
    run = rig.run()

    assert run.outcome == "ok"
    sent = upserted_uids(rig.queue.sent)
    assert Counter(sent) == Counter(uids)
    assert sorted(uid for _, uid in rig.server.fetched) == sorted(uids)


def test_a_hang_up_while_fetching_new_mail_keeps_the_batches_done() -> None:
    rig = SyncRig(batch_size=2)
    rig.add_account()
    rig.run()
    uids = fill(rig, [0.5, 0.4, 0.3, 0.2, 0.1])
    rig.server.fail_after_fetches = 2

    failed = rig.run()

    assert (failed.outcome, failed.detail) == ("failed", "server_error")
    assert upserted_uids(rig.queue.sent) == uids[:2]
    assert rig.checkpoint().uidnext == uids[2]
    rig.server.fail_after_fetches = None

    rig.run()

    assert Counter(upserted_uids(rig.queue.sent)) == Counter(uids)
    assert rig.sessions.opened[-1].batches == [uids[2:4], uids[4:]]


def test_a_hang_up_during_a_run_is_a_failed_run_and_nothing_is_refetched_later() -> None:
    rig = SyncRig(batch_size=2)
    rig.add_account(settings={"sync_start": "1_month"})
    uids = fill(rig, [9, 8, 7, 6, 5])
    rig.server.fail_after_fetches = 3

    failed = rig.run()

    assert (failed.outcome, failed.detail) == ("failed", "server_error")
    assert [p.code for p in rig.health.failures] == ["server_error"]
    rig.server.fail_after_fetches = None
    rig.run()
    assert Counter(upserted_uids(rig.queue.sent)) == Counter(uids)


def test_historical_is_set_only_for_messages_older_than_the_account() -> None:
    rig = SyncRig()
    rig.add_account(settings={"sync_start": "1_month"}, created_at=NOW - 10 * DAY)
    uids = fill(rig, [20, 11, 9, 1])

    rig.run()

    historical = {j.location.uid: j.historical for j in rig.queue.sent}
    assert historical == {uids[0]: True, uids[1]: True, uids[2]: False, uids[3]: False}


def test_gmail_messages_are_keyed_by_x_gm_msgid_and_carry_thread_and_labels() -> None:
    rig = SyncRig(gmail=True)
    rig.add_account()
    rig.run()
    one = mime(message_id="same@example.com", subject="A", sent=NOW)
    other = mime(message_id="same@example.com", subject="B", sent=NOW)  # a reused Message-ID
    rig.server.append("INBOX", one, gm_msgid=501, gm_thrid=900, gm_labels=["\\Important"])
    rig.server.append("INBOX", other, gm_msgid=502, gm_thrid=900)

    rig.run()

    first, second = rig.queue.sent
    assert first.message_key != second.message_key
    assert (first.gm_thrid, first.gm_labels) == (900, ["\\Important"])
    assert second.gm_thrid == 900
