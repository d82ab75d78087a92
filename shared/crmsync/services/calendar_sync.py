"""Calendar sync (SPEC C5-C7): one run of one calendar account (one FIFO group per account).

A run asks the calendar what changed since its sync token (one request), applies it to the
activities (two-way only, calendar_pull.py), then pushes the activities changed in the CRM
since their last push (the push markers the directory's change hook writes), and saves the
new sync token last: a run that stops anywhere is redone from the old token, and every step
is idempotent (UID claims, mappings, ETags). A run with nothing to do costs one request and
no DynamoDB write.

Push: each activity's event has a UID derived from the activity id. Creates use
`If-None-Match: *`; if the event already exists (a push that stopped before saving its
mapping) it is adopted: found by UID, then updated with `If-Match`. Updates use `If-Match`
with the stored ETag; a 412 means the event changed meanwhile: re-read, and the conflict
rule decides (`event_wins`). A deleted activity, or one no longer selected, removes its event.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Protocol
from urllib.parse import unquote, urlsplit

from crmsync.calendar.ics import IcsError, activity_to_ics, parse_calendar
from crmsync.clock import Clock
from crmsync.models.activities import Activity
from crmsync.models.calendar import CalendarAccount, RemoteEvent, event_uid
from crmsync.models.calendar_sync import (
    SINGLE,
    CalendarRun,
    CalendarSyncState,
    EventRef,
    SkippedActivity,
    StoredMapping,
)
from crmsync.models.servers import ConnectionProblem, MailServerError
from crmsync.ports import CalendarConnector, EventPublisher
from crmsync.services.calendar_context import (
    ActivityRecords,
    CalendarSyncStore,
    SyncContext,
    event_wins,
    skip_reason,
)
from crmsync.services.calendar_pull import EventPull

WINDOW = timedelta(days=90)
"""Occurrences of recurring events starting in [now, now + WINDOW) become activities."""


class CalendarSyncRequest(Protocol):
    """What a job names (CalendarSyncJob)."""

    @property
    def company_id(self) -> str: ...

    @property
    def account_id(self) -> str: ...


class CalendarAccountLookup(Protocol):
    def get(self, company_id: str, account_id: str) -> CalendarAccount | None: ...


class CalendarHealth(Protocol):
    """The calendar accounts service: the password, and the account's state after a run."""

    def password_for_sync(self, account: CalendarAccount) -> str: ...

    def record_success(self, account: CalendarAccount) -> CalendarAccount: ...

    def record_failure(
        self, account: CalendarAccount, problem: ConnectionProblem
    ) -> CalendarAccount: ...


class CalendarSync:
    def __init__(
        self,
        accounts: CalendarAccountLookup,
        health: CalendarHealth,
        connector: CalendarConnector,
        store: CalendarSyncStore,
        records: ActivityRecords,
        events: EventPublisher,
        clock: Clock,
        link_for: Callable[[Activity], str | None] = lambda _: None,
        window: timedelta = WINDOW,
    ) -> None:
        self._accounts = accounts
        self._health = health
        self._connector = connector
        self._store = store
        self._records = records
        self._events = events
        self._clock = clock
        self._link_for = link_for
        self._window = window

    def run(self, job: CalendarSyncRequest) -> CalendarRun:
        account = self._accounts.get(job.company_id, job.account_id)
        calendar = account.calendar if account is not None else None
        if account is None or calendar is None or not account.state.polls:
            return CalendarRun(account_id=job.account_id, outcome="not_due")
        run = CalendarRun(account_id=account.id, outcome="ok")
        ctx: SyncContext | None = None
        try:
            password = self._health.password_for_sync(account)
            with self._connector.open(account.url, account.username, password) as server:
                state = self._store.state(account.company_id, account.id)
                if state is None or state.calendar_id != calendar.id:
                    state = CalendarSyncState(
                        company_id=account.company_id,
                        account_id=account.id,
                        calendar_id=calendar.id,
                        version=state.version if state else 0,
                    )
                ctx = SyncContext(account, calendar, server, state, self._clock.now(), run)
                try:
                    self._sync(ctx)
                finally:
                    run.requests = server.requests_sent
        except MailServerError as exc:
            run.outcome = "failed"
            run.error_code = exc.problem.code
            self._health.record_failure(account, exc.problem)
            self._publish(ctx)
            return run
        self._health.record_success(account)
        self._publish(ctx)
        return run

    # ------------------------------------------------------------ the run

    def _sync(self, ctx: SyncContext) -> None:
        before = ctx.state.model_copy(deep=True)
        pull = EventPull(self._store, self._records, self._window)
        changes = ctx.server.changes(ctx.calendar.url, ctx.state.sync_token)
        if ctx.account.sync_type == "two_way":
            changed, deleted = changes.changed, changes.deleted
            if changes.full_listing:
                changed, deleted = self._compare_listing(ctx, changes.changed)
            pull.apply_changes(ctx, changed, deleted, baseline=ctx.state.sync_token is None)
            pull.move_window(ctx)
        self._push(ctx, pull)
        run = ctx.run
        pulled = run.pulled_created + run.pulled_updated + run.pulled_deleted
        pushed = run.pushed + run.push_deleted
        if pulled:
            ctx.state.last_pull_at = ctx.now
            ctx.state.pulled_total += pulled
        if pushed:
            ctx.state.last_push_at = ctx.now
            ctx.state.pushed_total += pushed
        ctx.state.sync_token = changes.sync_token
        if ctx.state != before:
            self._store.save_state(ctx.state)

    def _compare_listing(
        self, ctx: SyncContext, listed: list[RemoteEvent]
    ) -> tuple[list[RemoteEvent], list[str]]:
        """A server without sync-collection lists every event's href and ETag: the changed
        ones are those whose ETag differs from the one we know, the deleted ones those we
        know and it no longer lists."""
        # Only this calendar's: after the user chose another calendar, the previous one's
        # events are not in this listing, and taking them as deleted would delete their
        # activities.
        inside = unquote(urlsplit(ctx.calendar.url).path).rstrip("/") + "/"
        known = {
            href: ref
            for href, ref in self._store.event_refs(ctx.company_id, ctx.account.id).items()
            if unquote(urlsplit(href).path).startswith(inside)
        }
        hrefs = {remote.href for remote in listed}
        changed = [r for r in listed if r.href not in known or known[r.href].etag != r.etag]
        return changed, [href for href in known if href not in hrefs]

    # ------------------------------------------------------------ push

    def _push(self, ctx: SyncContext, pull: EventPull) -> None:
        markers = {
            m.activity_id: m for m in self._store.pending_pushes(ctx.company_id, ctx.account.id)
        }
        wanted = sorted(set(markers) | ctx.pushes)
        if not wanted:
            return
        skipped = {s.activity_id: s for s in self._store.skipped(ctx.company_id, ctx.account.id)}
        for activity_id in wanted:
            self._push_one(ctx, pull, activity_id, skipped.get(activity_id))
            marker = markers.get(activity_id)
            if marker is not None:
                self._store.clear_push(ctx.company_id, ctx.account.id, marker)

    def _push_one(
        self,
        ctx: SyncContext,
        pull: EventPull,
        activity_id: str,
        skipped: SkippedActivity | None,
    ) -> None:
        company = ctx.company_id
        activity = self._records.get(company, Activity, activity_id)
        stored = self._store.mapping(company, activity_id)
        mine = (
            stored
            if stored is not None
            and stored.account_id == ctx.account.id
            and stored.calendar_id == ctx.calendar.id
            else None
        )
        reason = skip_reason(ctx.account, activity) if activity is not None else None
        if (
            reason is None
            and stored is not None
            and stored.account_id != ctx.account.id
            and self._accounts.get(company, stored.account_id) is not None
        ):
            reason = "synced_to_another_account"  # (a removed account's mapping is stale)
        if activity is None or reason is not None:
            if mine is not None:
                self._remove_event(ctx, mine)
            elif activity is None:
                self._remove_unmapped(ctx, activity_id)
            if activity is not None and reason is not None:
                skip = SkippedActivity(
                    activity_id=activity_id, reason=reason, activity_type=activity.type, at=ctx.now
                )
                ctx.run.skipped.append(skip)
                if skipped is None or skipped.reason != reason:
                    self._store.record_skip(company, ctx.account.id, skip)
            return
        if mine is not None and mine.recurrence_id is not None:
            return  # one occurrence of a calendar series: the series stays the calendar's
        if (
            mine is not None
            and mine.activity_version == activity.version
            and activity_id not in ctx.pushes
        ):
            return  # already pushed (a redelivered job, a repeated marker)
        written = self._write_event(ctx, pull, activity, mine)
        if written is None:
            return
        ref = self._store.event_ref(company, ctx.account.id, written.href)
        occurrences = dict(ref.occurrences) if ref else {}
        occurrences[SINGLE] = activity_id
        ref = EventRef(
            href=written.href, uid=written.uid, etag=written.etag, occurrences=occurrences
        )
        self._store.save_event(company, ctx.account.id, ref, [written])
        if skipped is not None:
            self._store.clear_skip(company, ctx.account.id, activity_id)

    def _write_event(
        self,
        ctx: SyncContext,
        pull: EventPull,
        activity: Activity,
        mine: StoredMapping | None,
    ) -> StoredMapping | None:
        """PUT the activity's event; the mapping to save, or None when the event won a
        conflict (then the activity was updated from it and its mapping saved)."""
        uid = mine.uid if mine is not None else event_uid(ctx.company_id, activity.id)
        ics = activity_to_ics(activity, uid=uid, link=self._link_for(activity), now=ctx.now)
        url = ctx.calendar.url
        server = ctx.server
        if mine is not None:
            href, etag = mine.href, ctx.etags.get(mine.href, mine.etag)
            outcome, new_etag = server.put(url, href, ics, etag)
            action = "updated"
        else:
            self._store.claim_uid(
                ctx.company_id, ctx.calendar.id, uid, None, activity.id, ctx.account.id
            )
            # The path, as the server lists hrefs: the pull must find this event's href item
            # (a full URL here made every pushed event unknown to the pull).
            href = urlsplit(url.rstrip("/") + "/" + uid.split("@", 1)[0] + ".ics").path
            outcome, new_etag = server.put(url, href, ics, None)
            action = "created"
            if outcome == "exists":  # a push that stopped before its mapping: adopt it
                found = server.find_uid(url, uid)
                if found is None:
                    raise MailServerError(_conflict_problem(href))
                href = found.href
                outcome, new_etag = server.put(url, href, ics, found.etag)
        if outcome == "precondition_failed":
            current = server.get(url, href)
            if current is None:
                outcome, new_etag = server.put(url, href, ics, None)
            else:
                if self._event_won(ctx, pull, activity, current, mine):
                    return None
                outcome, new_etag = server.put(url, href, ics, current.etag)
        elif outcome == "gone":  # deleted in a one-way calendar: write it again
            outcome, new_etag = server.put(url, href, ics, None)
        if outcome not in ("created", "updated"):
            raise MailServerError(_conflict_problem(href))
        ctx.run.pushed += 1
        ctx.synced(activity.id, uid, "push", action)
        return StoredMapping(
            activity_id=activity.id,
            account_id=ctx.account.id,
            calendar_id=ctx.calendar.id,
            uid=uid,
            href=href,
            etag=new_etag,
            activity_version=activity.version,
            activity_updated_at=activity.updated_at,
            origin=mine.origin if mine is not None else "crm",
        )

    def _event_won(
        self,
        ctx: SyncContext,
        pull: EventPull,
        activity: Activity,
        current: RemoteEvent,
        mine: StoredMapping | None,
    ) -> bool:
        """The event changed since our last write: in two-way sync the conflict rule
        decides; one-way sync writes the CRM's version."""
        if ctx.account.sync_type != "two_way" or mine is None or current.ics is None:
            return False
        ctx.run.conflicts += 1
        try:
            occurrences = parse_calendar(
                current.ics, window_start=ctx.now, window_end=ctx.now + self._window
            )
        except IcsError:
            return False
        occurrence = next((o for o in occurrences if o.recurrence_id is None), None)
        if occurrence is None or not event_wins(occurrence.last_modified, activity.updated_at):
            return False
        outcome = pull.update_activity(ctx, activity.id, current, occurrence, force=True)
        if not isinstance(outcome, StoredMapping):
            return False
        ref = EventRef(
            href=current.href, uid=outcome.uid, etag=current.etag, occurrences={SINGLE: activity.id}
        )
        self._store.save_event(ctx.company_id, ctx.account.id, ref, [outcome])
        return True

    def _remove_event(self, ctx: SyncContext, mine: StoredMapping) -> None:
        """The activity was deleted or is no longer selected: its event goes (an occurrence
        of a calendar series only loses its mapping)."""
        if mine.recurrence_id is None:
            url = ctx.calendar.url
            etag = ctx.etags.get(mine.href, mine.etag)
            outcome = ctx.server.delete(url, mine.href, etag)
            if outcome == "precondition_failed":
                current = ctx.server.get(url, mine.href)
                if current is not None:
                    ctx.server.delete(url, mine.href, current.etag)
            self._store.drop_mappings(ctx.company_id, [mine])
            self._store.drop_event_ref(ctx.company_id, ctx.account.id, mine.href)
            ctx.run.push_deleted += 1
            ctx.synced(mine.activity_id, mine.uid, "push", "deleted")
            return
        self._store.drop_mappings(ctx.company_id, [mine])

    def _remove_unmapped(self, ctx: SyncContext, activity_id: str) -> None:
        """A deleted activity without a mapping: if a push claimed its UID (and may have
        written the event before stopping), find the event by UID and delete it."""
        uid = event_uid(ctx.company_id, activity_id)
        calendar_id = ctx.calendar.id
        if self._store.uid_claim(ctx.company_id, calendar_id, uid, None) != activity_id:
            return
        found = ctx.server.find_uid(ctx.calendar.url, uid)
        if found is not None:
            ctx.server.delete(ctx.calendar.url, found.href, found.etag)
            ctx.run.push_deleted += 1
            ctx.synced(activity_id, uid, "push", "deleted")
        self._store.release_claim(ctx.company_id, calendar_id, uid, None)

    def _publish(self, ctx: SyncContext | None) -> None:
        if ctx is not None and ctx.events:
            self._events.publish(ctx.events)


def _conflict_problem(href: str) -> ConnectionProblem:
    return ConnectionProblem(
        code="server_error",
        message=f"The calendar server refused to write the event {href}.",
        action="The next sync tries again; if it keeps failing, check the calendar's sharing "
        "settings.",
    )
