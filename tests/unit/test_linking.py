"""The automatic linking rule (plan_links) and which directory changes re-match mail
(RematchOnChange.job_for)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from crmsync.models.deals import Deal
from crmsync.models.directory import Organization, Person, User
from crmsync.models.threads import LinkRecord
from crmsync.services.linking import plan_links
from crmsync.services.rematch import RematchOnChange
from tests.unit.fakes import FakeClock
from tests.unit.fakes_mail import FakeProcessQueue

NOW = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)


def deal(
    deal_id: str, person_id: str | None = "p1", updated_days_ago: float = 1, **more: Any
) -> Deal:
    return Deal.model_validate(
        {
            "id": deal_id,
            "created_at": NOW - timedelta(days=100),
            "updated_at": NOW - timedelta(days=updated_days_ago),
            "owner_id": "u1",
            "title": deal_id,
            "person_id": person_id,
            **more,
        }
    )


def link(kind: str, target: str, reason: str, active: bool = True) -> LinkRecord:
    return LinkRecord.model_validate(
        {"type": kind, "id": target, "reason": reason, "active": active}
    )


def targets(links: list[LinkRecord]) -> set[tuple[str, str, str]]:
    return {(item.type, item.id, item.reason) for item in links}


# -- plan_links ------------------------------------------------------------------------------
def test_every_matched_person_is_linked_and_stale_automatic_links_are_dropped() -> None:
    existing = [link("person", "p-gone", "auto:person")]

    plan = plan_links(existing, ["p2", "p1", "p1"], [], "automatic")

    assert targets(plan.active) == {
        ("person", "p1", "auto:person"),
        ("person", "p2", "auto:person"),
    }
    assert targets(plan.drop) == {("person", "p-gone", "auto:person")}


def test_a_manual_link_is_kept_even_when_the_rule_no_longer_matches() -> None:
    manual = link("person", "p-chosen", "manual")
    manual_deal = link("deal", "d-chosen", "manual")

    plan = plan_links([manual, manual_deal], [], [], "automatic")

    assert plan.keep == [manual, manual_deal]
    assert plan.drop == []


def test_a_manual_unlink_blocks_the_automatic_link_to_the_same_record() -> None:
    tombstone = link("person", "p1", "manual", active=False)

    plan = plan_links([tombstone], ["p1", "p2"], [], "automatic")

    assert targets(plan.active) == {("person", "p2", "auto:person")}
    assert tombstone in plan.keep  # the tombstone stays stored
    assert plan.drop == []


def test_a_manual_unlink_of_a_deal_blocks_that_deal_but_not_another() -> None:
    tombstone = link("deal", "d-new", "manual", active=False)
    deals = [deal("d-new", updated_days_ago=1), deal("d-old", updated_days_ago=5)]

    plan = plan_links([tombstone], ["p1"], deals, "automatic")

    assert ("deal", "d-old", "auto:deal") in targets(plan.active)
    assert not any(item.id == "d-new" and item.active for item in plan.keep)


def test_a_manual_deal_link_suppresses_the_automatic_deal() -> None:
    existing = [link("deal", "d-mine", "manual"), link("deal", "d-auto", "auto:deal")]

    plan = plan_links(
        existing, ["p1"], [deal("d-auto"), deal("d-fresh", updated_days_ago=0)], "automatic"
    )

    assert [item.id for item in plan.active if item.type == "deal"] == ["d-mine"]
    assert targets(plan.drop) == {("deal", "d-auto", "auto:deal")}


def test_the_most_recently_updated_open_deal_is_chosen() -> None:
    deals = [
        deal("d-a", updated_days_ago=9),
        deal("d-b", updated_days_ago=2),
        deal("d-c", updated_days_ago=4),
    ]

    plan = plan_links([], ["p1"], deals, "automatic")

    assert [item.id for item in plan.active if item.type == "deal"] == ["d-b"]


def test_the_automatic_deal_link_is_sticky_while_that_deal_is_still_open() -> None:
    existing = [link("person", "p1", "auto:person"), link("deal", "d-old", "auto:deal")]
    deals = [deal("d-old", updated_days_ago=30), deal("d-new", updated_days_ago=0)]

    plan = plan_links(existing, ["p1"], deals, "automatic")

    assert [item.id for item in plan.active if item.type == "deal"] == ["d-old"]
    assert plan.drop == []


def test_the_automatic_deal_moves_on_when_the_linked_deal_is_no_longer_open() -> None:
    existing = [link("deal", "d-old", "auto:deal")]
    still_open = [deal("d-new", updated_days_ago=0)]  # d-old closed: not among open deals

    plan = plan_links(existing, ["p1"], still_open, "automatic")

    assert [item.id for item in plan.active if item.type == "deal"] == ["d-new"]
    assert targets(plan.drop) == {("deal", "d-old", "auto:deal")}


def test_a_tie_on_update_time_goes_to_the_smaller_deal_id() -> None:
    deals = [
        deal("d-9", updated_days_ago=1),
        deal("d-10", updated_days_ago=1),
        deal("d-2", updated_days_ago=1),
    ]

    plan = plan_links([], ["p1"], deals, "automatic")

    assert [item.id for item in plan.active if item.type == "deal"] == ["d-10"]


def test_manual_deal_mode_links_no_deal_and_drops_an_automatic_one() -> None:
    existing = [link("deal", "d-old", "auto:deal")]

    plan = plan_links(existing, ["p1"], [deal("d-old")], "manual")

    assert targets(plan.active) == {("person", "p1", "auto:person")}
    assert targets(plan.drop) == {("deal", "d-old", "auto:deal")}


def test_a_thread_whose_person_no_longer_matches_loses_its_automatic_links() -> None:
    # The caller passes the open deals of the matched persons: none when none matches.
    existing = [link("person", "p1", "auto:person"), link("deal", "d1", "auto:deal")]

    plan = plan_links(existing, [], [], "automatic")

    assert plan.keep == []
    assert targets(plan.drop) == {("person", "p1", "auto:person"), ("deal", "d1", "auto:deal")}


# -- RematchOnChange -------------------------------------------------------------------------
def person(person_id: str = "p1", *emails: str, name: str = "Ann Example") -> Person:
    return Person.model_validate(
        {
            "id": person_id,
            "created_at": NOW - timedelta(days=10),
            "updated_at": NOW,
            "owner_id": "u1",
            "name": name,
            "emails": list(emails),
        }
    )


def user(address: str) -> User:
    return User.model_validate(
        {
            "id": "u2",
            "created_at": NOW - timedelta(days=10),
            "updated_at": NOW,
            "name": "Colleague",
            "email": address,
        }
    )


@pytest.fixture
def rematch() -> RematchOnChange:
    return RematchOnChange(FakeProcessQueue(), FakeClock(NOW))


def test_an_added_address_rematches_that_address(rematch: RematchOnChange) -> None:
    job = rematch.job_for(
        "c1", person("p1", "ann@example.com"), person("p1", "ann@example.com", "Ann@Work.Example")
    )

    assert job is not None
    assert (job.company_id, job.addresses, job.person_ids) == ("c1", ["ann@work.example"], [])


def test_a_removed_address_rematches_that_address(rematch: RematchOnChange) -> None:
    job = rematch.job_for(
        "c1", person("p1", "ann@example.com", "old@example.com"), person("p1", "ann@example.com")
    )

    assert job is not None
    assert (job.addresses, job.person_ids) == (["old@example.com"], [])


def test_a_new_person_with_addresses_rematches_them(rematch: RematchOnChange) -> None:
    job = rematch.job_for("c1", None, person("p1", "ann@example.com"))

    assert job is not None
    assert job.addresses == ["ann@example.com"]


def test_a_deleted_person_rematches_its_addresses_and_its_linked_threads(
    rematch: RematchOnChange,
) -> None:
    job = rematch.job_for("c1", person("p1", "ann@example.com"), None)

    assert job is not None
    assert (job.addresses, job.person_ids) == (["ann@example.com"], ["p1"])


def test_a_user_changing_address_rematches_both_addresses(rematch: RematchOnChange) -> None:
    job = rematch.job_for("c1", user("old@example.com"), user("new@example.com"))

    assert job is not None
    assert job.addresses == ["new@example.com", "old@example.com"]
    assert job.person_ids == []


@pytest.mark.parametrize(("before", "after"), [("open", "won"), ("won", "open"), ("open", "lost")])
def test_a_deal_status_change_rematches_the_persons_threads(
    before: str, after: str, rematch: RematchOnChange
) -> None:
    job = rematch.job_for("c1", deal("d1", "p1", status=before), deal("d1", "p1", status=after))

    assert job is not None
    assert (job.person_ids, job.addresses) == (["p1"], [])


def test_a_deal_moving_to_another_person_rematches_both(rematch: RematchOnChange) -> None:
    job = rematch.job_for("c1", deal("d1", "p1"), deal("d1", "p2"))

    assert job is not None
    assert job.person_ids == ["p1", "p2"]


def test_a_new_and_a_deleted_deal_rematch_the_person(rematch: RematchOnChange) -> None:
    created = rematch.job_for("c1", None, deal("d1", "p1"))
    deleted = rematch.job_for("c1", deal("d1", "p1"), None)

    assert created is not None
    assert created.person_ids == ["p1"]
    assert deleted is not None
    assert deleted.person_ids == ["p1"]


@pytest.mark.parametrize(
    ("before", "after"),
    [
        (person("p1", "ann@example.com"), person("p1", "ANN@example.com", name="Ann Renamed")),
        (person("p1"), person("p1", name="No addresses")),
        (deal("d1", "p1"), deal("d1", "p1", title="Renamed", value="100")),
        (deal("d1", person_id=None), deal("d1", person_id=None, status="won")),
        (
            Organization.model_validate(
                {"id": "o1", "created_at": NOW, "updated_at": NOW, "owner_id": "u1", "name": "Org"}
            ),
            None,
        ),
        (None, None),
    ],
    ids=["address-case", "no-addresses", "deal-title", "deal-without-person", "org", "nothing"],
)
def test_changes_that_cannot_move_a_link_need_no_rematch(
    before: Any, after: Any, rematch: RematchOnChange
) -> None:
    assert rematch.job_for("c1", before, after) is None


def test_changed_sends_one_relink_job_and_a_no_op_sends_none() -> None:
    queue = FakeProcessQueue()
    rematch = RematchOnChange(queue, FakeClock(NOW))

    rematch.changed("c1", person("p1"), person("p1", name="Renamed"))
    rematch.changed("c1", person("p1"), person("p1", "ann@example.com"))

    (job,) = queue.relinks
    assert job.addresses == ["ann@example.com"]
    assert job.job_id
