"""The pull of a two-way calendar sync (SPEC C6): events created, edited, moved and deleted in
the calendar reach the CRM's activities; recurring events as one activity per occurrence
inside the rolling window.

Our own writes never come back: the href item holds the ETag of the version the sync last
wrote or applied, and a change with that ETag is skipped. An event that carries our UID but
that no mapping knows (a push that stopped before saving its mapping) is left to the push,
which adopts it.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from crmsync.calendar.ics import (
    EventOccurrence,
    IcsError,
    event_uid_of,
    last_modified_of,
    occurrence_fields,
    parse_calendar,
)
from crmsync.errors import ConflictError
from crmsync.models.activities import Activity
from crmsync.models.calendar import RemoteEvent, event_uid
from crmsync.models.calendar_sync import SINGLE, EventRef, StoredMapping
from crmsync.models.directory import address_key
from crmsync.services.calendar_context import (
    ActivityRecords,
    CalendarSyncStore,
    SyncContext,
    event_wins,
    pulled_activity_id,
)

COMPARED_FIELDS = (
    "subject",
    "start",
    "duration_minutes",
    "all_day",
    "location",
    "note",
    "participants",
    "busy",
    "done",
)


class EventPull:
    def __init__(self, store: CalendarSyncStore, records: ActivityRecords, window: timedelta):
        self._store = store
        self._records = records
        self._window = window
        self._persons: dict[str, str | None] = {}

    # ------------------------------------------------------------ entry points

    def apply_changes(
        self, ctx: SyncContext, changed: list[RemoteEvent], deleted: list[str], baseline: bool
    ) -> None:
        """`baseline`: the first pull after set-up, which lists every event: only those
        modified after set-up become activities."""
        for remote in changed:
            ctx.seen_hrefs.add(remote.href)
            ref = self._store.event_ref(ctx.company_id, ctx.account.id, remote.href)
            if ref is not None and remote.etag and ref.etag == remote.etag:
                ctx.run.own_writes_ignored += 1
                continue
            if remote.ics is None:
                fetched = ctx.server.get(ctx.calendar.url, remote.href)
                if fetched is None or fetched.ics is None:
                    if ref is not None:
                        self.delete_event(ctx, ref)
                    continue
                remote = fetched
            self.apply_event(ctx, remote, ref, baseline=baseline)
        for href in deleted:
            ctx.seen_hrefs.add(href)
            ref = self._store.event_ref(ctx.company_id, ctx.account.id, href)
            if ref is not None:
                self.delete_event(ctx, ref)

    def move_window(self, ctx: SyncContext) -> bool:
        """Expand the recurring events again when the window moved by a day or more, so
        the next occurrences become activities. True when it did."""
        until = ctx.now + self._window
        if ctx.state.window_until is not None and until - ctx.state.window_until < timedelta(
            days=1
        ):
            return False
        for href in list(ctx.state.recurring_hrefs):
            if href in ctx.seen_hrefs:
                continue
            ref = self._store.event_ref(ctx.company_id, ctx.account.id, href)
            remote = ctx.server.get(ctx.calendar.url, href)
            if remote is None or remote.ics is None:
                if ref is not None:
                    self.delete_event(ctx, ref)
                continue
            self.apply_event(ctx, remote, ref, baseline=False)
        ctx.state.window_until = until
        return True

    # ------------------------------------------------------------ one event

    def apply_event(
        self, ctx: SyncContext, remote: RemoteEvent, ref: EventRef | None, baseline: bool
    ) -> None:
        ics = remote.ics or ""
        try:
            occurrences = parse_calendar(
                ics, window_start=ctx.now, window_end=ctx.now + self._window
            )
            uid = occurrences[0].uid if occurrences else event_uid_of(ics)
            modified = last_modified_of(ics)
        except IcsError:
            ctx.run.unreadable_events += 1
            return
        if uid is None:
            ctx.run.unreadable_events += 1
            return
        if ref is None:
            ours = next((o.activity_id for o in occurrences if o.activity_id), None)
            if ours is not None and uid == event_uid(ctx.company_id, ours):
                return  # pushed by us, its mapping not saved yet: the push adopts it
            if baseline and (
                modified is None
                or ctx.account.sync_since is None
                or modified < ctx.account.sync_since
            ):
                return  # in the calendar before the sync was set up
            ref = EventRef(href=remote.href, uid=uid)
        recurring = ref.recurring or any(o.recurring for o in occurrences)
        wanted = {o.recurrence_id or SINGLE: o for o in occurrences if not o.cancelled}
        kept: dict[str, str] = {}
        mappings: list[StoredMapping] = []
        crm_won = False
        for rid, occurrence in wanted.items():
            activity_id = ref.occurrences.get(rid)
            if activity_id is None:
                made = self._create(ctx, remote, occurrence, rid)
                if made is not None:
                    kept[rid] = made.activity_id
                    mappings.append(made)
                continue
            kept[rid] = activity_id
            outcome = self.update_activity(ctx, activity_id, remote, occurrence, force=False)
            if isinstance(outcome, StoredMapping):
                mappings.append(outcome)
            elif outcome == "crm_won":
                crm_won = True
        for rid, activity_id in ref.occurrences.items():
            if rid not in wanted:
                self._gone_occurrence(ctx, activity_id, rid)
        updated = ref.model_copy(
            update={
                "uid": uid,
                "etag": ref.etag if crm_won else remote.etag,
                "recurring": recurring,
                "occurrences": kept,
            }
        )
        self._store.save_event(ctx.company_id, ctx.account.id, updated, mappings)
        hrefs = set(ctx.state.recurring_hrefs)
        if recurring and remote.href not in hrefs:
            ctx.state.recurring_hrefs = sorted(hrefs | {remote.href})

    def update_activity(
        self,
        ctx: SyncContext,
        activity_id: str,
        remote: RemoteEvent,
        occurrence: EventOccurrence,
        force: bool,
    ) -> StoredMapping | str | None:
        """Apply an event's version to its activity, or decide the CRM's version wins
        (`"crm_won"`: the push writes it). `force`: the push already chose the event."""
        activity = self._records.get(ctx.company_id, Activity, activity_id)
        if activity is None:
            return None  # deleted in the CRM: the push removes the event
        mapping = self._store.mapping(ctx.company_id, activity_id)
        if mapping is None:
            return None
        crm_changed = activity.version != mapping.activity_version
        if crm_changed and not force:
            ctx.run.conflicts += 1
            if not event_wins(occurrence.last_modified, activity.updated_at):
                ctx.pushes.add(activity_id)
                if remote.etag:
                    ctx.etags[remote.href] = remote.etag
                return "crm_won"
        fields = self._fields(ctx, occurrence)
        candidate = activity.changed(fields)
        synced = activity
        if _differs(activity, candidate):
            synced = activity.changed(
                {**fields, "updated_at": ctx.now, "version": activity.version + 1}
            )
            try:
                self._records.replace(ctx.company_id, activity, synced)
            except ConflictError:
                ctx.pushes.add(activity_id)  # changed in the CRM this very moment
                return "crm_won"
            ctx.run.pulled_updated += 1
            ctx.synced(activity_id, mapping.uid, "pull", "updated")
        return mapping.model_copy(
            update={
                "href": remote.href,
                "etag": remote.etag,
                "activity_version": synced.version,
                "activity_updated_at": synced.updated_at,
                "event_last_modified": occurrence.last_modified,
            }
        )

    def delete_event(self, ctx: SyncContext, ref: EventRef) -> None:
        """The event was deleted in the calendar: its activities go (a deletion wins over an
        edit on the other side)."""
        gone = []
        for activity_id in ref.occurrences.values():
            activity = self._records.get(ctx.company_id, Activity, activity_id)
            if activity is not None:
                self._delete_activity(ctx, activity)
                ctx.run.pulled_deleted += 1
                ctx.synced(activity_id, ref.uid, "pull", "deleted")
            mapping = self._store.mapping(ctx.company_id, activity_id)
            if mapping is not None and mapping.account_id == ctx.account.id:
                gone.append(mapping)
        if gone:
            self._store.drop_mappings(ctx.company_id, gone)
        self._store.drop_event_ref(ctx.company_id, ctx.account.id, ref.href)
        if ref.href in ctx.state.recurring_hrefs:
            ctx.state.recurring_hrefs = [h for h in ctx.state.recurring_hrefs if h != ref.href]

    # ------------------------------------------------------------ details

    def _create(
        self, ctx: SyncContext, remote: RemoteEvent, occurrence: EventOccurrence, rid: str
    ) -> StoredMapping | None:
        """A new event (occurrence) → a new activity of the account's default type, owned
        by the account's user. The claim comes first, and the id is derived from the event,
        so a retry finds what a stopped attempt made."""
        calendar_id = ctx.calendar.id
        candidate = pulled_activity_id(ctx.company_id, calendar_id, occurrence.uid, rid)
        holder = self._store.claim_uid(
            ctx.company_id,
            calendar_id,
            occurrence.uid,
            occurrence.recurrence_id,
            candidate,
            ctx.account.id,
        )
        fields = self._fields(ctx, occurrence)
        existing = self._records.get(ctx.company_id, Activity, holder)
        if existing is None:
            activity = Activity.model_validate(
                {
                    **fields,
                    "id": holder,
                    "type": ctx.account.default_activity_type,
                    "owner_id": ctx.account.user_id,
                    "created_at": ctx.now,
                    "updated_at": ctx.now,
                    "version": 1,
                }
            )
            try:
                self._records.create(ctx.company_id, activity)
            except ConflictError:
                return None
        else:
            activity = existing
        ctx.run.pulled_created += 1
        ctx.synced(activity.id, occurrence.uid, "pull", "created")
        return StoredMapping(
            activity_id=activity.id,
            account_id=ctx.account.id,
            calendar_id=calendar_id,
            uid=occurrence.uid,
            href=remote.href,
            etag=remote.etag,
            recurrence_id=occurrence.recurrence_id,
            activity_version=activity.version,
            activity_updated_at=activity.updated_at,
            event_last_modified=occurrence.last_modified,
            origin="calendar",
        )

    def _gone_occurrence(self, ctx: SyncContext, activity_id: str, rid: str) -> None:
        """An occurrence no longer in the event's window: EXDATE'd or cancelled (its activity
        goes), or simply past (its activity stays as the record of what happened)."""
        activity = self._records.get(ctx.company_id, Activity, activity_id)
        if activity is None:
            return
        if rid != SINGLE and activity.start < ctx.now:
            return
        self._delete_activity(ctx, activity)
        mapping = self._store.mapping(ctx.company_id, activity_id)
        if mapping is not None:
            self._store.drop_mappings(ctx.company_id, [mapping])
        ctx.run.pulled_deleted += 1
        ctx.synced(activity_id, mapping.uid if mapping else "", "pull", "deleted")

    def _delete_activity(self, ctx: SyncContext, activity: Activity) -> None:
        try:
            self._records.delete(ctx.company_id, activity)
        except ConflictError:
            latest = self._records.get(ctx.company_id, Activity, activity.id)
            if latest is not None:
                self._records.delete(ctx.company_id, latest)

    def _fields(self, ctx: SyncContext, occurrence: EventOccurrence) -> dict[str, Any]:
        fields = occurrence_fields(occurrence)
        participants = []
        for participant in fields.get("participants", []):
            person_id = self._person_of(ctx, participant["email"])
            participants.append(
                {**participant, "person_id": person_id} if person_id else participant
            )
        fields["participants"] = participants
        return fields

    def _person_of(self, ctx: SyncContext, email: str) -> str | None:
        """The CRM person with this address (the first, if several), once per run."""
        try:
            key = address_key(email)
        except ValueError:
            return None
        if key not in self._persons:
            page = self._records.persons_with_address(ctx.company_id, key, 1, None, lambda _: True)
            self._persons[key] = page.items[0].id if page.items else None
        return self._persons[key]


def _differs(before: Activity, after: Activity) -> bool:
    old, new = (
        before.model_dump(include=set(COMPARED_FIELDS)),
        after.model_dump(include=set(COMPARED_FIELDS)),
    )
    return bool(old != new)
