"""The CRM directory over HTTP on the local stack: contract shapes, paging, lookup by address,
tenancy on every route, visibility, validation and optimistic concurrency."""

from __future__ import annotations

import uuid
from typing import Any

import boto3
import pytest
import requests

from crmsync.errors import ConflictError
from crmsync.models.directory import Person
from crmsync.store.directory import DynamoDirectoryRepository
from crmsync_local.stack import LocalStack

pytestmark = pytest.mark.e2e

KINDS = ("persons", "organizations", "deals", "leads", "projects", "activities")


class Api:
    """One caller: a user of a company with a role, talking to the local API."""

    def __init__(self, stack: LocalStack, user: str, company: str, role: str = "user") -> None:
        self.base = stack.url
        self.user = user
        self.company = company
        self.headers = {"Authorization": f"Bearer {stack.token(user, company, role)}"}

    def get(self, path: str, **params: Any) -> requests.Response:
        return requests.get(self.base + path, params=params, headers=self.headers, timeout=10)

    def post(self, path: str, body: dict[str, Any]) -> requests.Response:
        return requests.post(self.base + path, json=body, headers=self.headers, timeout=10)

    def patch(self, path: str, body: dict[str, Any]) -> requests.Response:
        return requests.patch(self.base + path, json=body, headers=self.headers, timeout=10)

    def delete(self, path: str) -> requests.Response:
        return requests.delete(self.base + path, headers=self.headers, timeout=10)

    def create(self, kind: str, body: dict[str, Any]) -> str:
        reply = self.post(f"/v1/{kind}", body)
        assert reply.status_code == 201, reply.text
        return str(reply.json()["id"])


def company() -> str:
    return f"co-{uuid.uuid4().hex[:10]}"


def assert_problem(reply: requests.Response, status: int) -> dict[str, Any]:
    assert reply.status_code == status, reply.text
    assert reply.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = reply.json()
    assert body["title"]
    assert body["detail"]
    return body


def one_of_each(api: Api) -> dict[str, str]:
    """Create a record of every kind, linked together; kind -> id."""
    ids = {"organizations": api.create("organizations", {"name": "Acme", "domain": "acme.test"})}
    ids["persons"] = api.create(
        "persons",
        {"name": "Ann Acme", "emails": ["ann@acme.test"], "organization_id": ids["organizations"]},
    )
    ids["deals"] = api.create(
        "deals", {"title": "Rockets", "person_id": ids["persons"], "status": "open"}
    )
    ids["leads"] = api.create("leads", {"title": "Maybe rockets", "person_id": ids["persons"]})
    ids["projects"] = api.create("projects", {"title": "Launch", "deal_id": ids["deals"]})
    ids["activities"] = api.create(
        "activities",
        {
            "type": "meeting",
            "subject": "Kick-off",
            "start": "2030-05-04T09:00:00+02:00",
            "duration_minutes": 45,
            "participants": [{"email": "ann@acme.test", "person_id": ids["persons"]}],
            "deal_id": ids["deals"],
        },
    )
    return ids


def test_contract_shapes(local_stack: LocalStack) -> None:
    api = Api(local_stack, "u1", company())
    org = api.create("organizations", {"name": "Example Ltd"})

    person = api.post(
        "/v1/persons",
        {"name": "Alice Smith", "emails": ["alice@example.com"], "organization_id": org},
    )
    assert person.status_code == 201, person.text
    person_id = person.json()["id"]
    deal = api.post("/v1/deals", {"title": "Big one", "person_id": person_id, "status": "open"})
    assert deal.status_code == 201, deal.text

    stored = api.get(f"/v1/persons/{person_id}").json()
    assert stored["first_name"] == "Alice"
    assert stored["last_name"] == "Smith"
    assert stored["owner_id"] == "u1"
    assert stored["visibility"] == "company"
    assert stored["emails"] == ["alice@example.com"]
    page = api.get("/v1/deals").json()
    assert set(page) == {"items", "next_cursor"}
    assert [d["id"] for d in page["items"]] == [deal.json()["id"]]
    assert page["items"][0]["status"] == "open"
    assert page["next_cursor"] is None

    for kind, record_id in one_of_each(api).items():
        assert api.get(f"/v1/{kind}/{record_id}").status_code == 200
        assert record_id in [r["id"] for r in api.get(f"/v1/{kind}").json()["items"]]
        deleted = api.delete(f"/v1/{kind}/{record_id}")
        assert deleted.status_code == 204, deleted.text
        assert deleted.content == b""
        assert_problem(api.get(f"/v1/{kind}/{record_id}"), 404)


def test_pagination_visits_each_person_once(local_stack: LocalStack) -> None:
    api = Api(local_stack, "u1", company())
    created = {api.create("persons", {"name": f"Person {n:02d}"}) for n in range(30)}

    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 7}
        if cursor:
            params["cursor"] = cursor
        body = api.get("/v1/persons", **params).json()
        assert len(body["items"]) <= 7
        seen += [p["id"] for p in body["items"]]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == sorted(created)
    assert pages == 5
    updated = [p["updated_at"] for p in api.get("/v1/persons", limit=30).json()["items"]]
    assert updated == sorted(updated, reverse=True)


def test_person_is_found_by_any_address_case_insensitively(local_stack: LocalStack) -> None:
    api = Api(local_stack, "u1", company())
    alice = api.create(
        "persons", {"name": "Alice", "emails": ["alice.w@example.net", "alice@example.com"]}
    )
    api.create("persons", {"name": "Bob", "emails": ["bob@example.com"]})

    def found(address: str) -> list[str]:
        reply = api.get("/v1/persons", email=address)
        assert reply.status_code == 200, reply.text
        return [p["id"] for p in reply.json()["items"]]

    assert found("ALICE@Example.com") == [alice]
    assert found("Alice.W@EXAMPLE.NET") == [alice]

    patched = api.patch(
        f"/v1/persons/{alice}", {"emails": ["alice.w@example.net", "a.smith@example.org"]}
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["version"] == 2
    assert found("alice@example.com") == []
    assert found("A.Smith@example.org") == [alice]
    assert found("alice.w@example.net") == [alice]

    assert api.delete(f"/v1/persons/{alice}").status_code == 204
    assert found("alice.w@example.net") == []
    assert_problem(api.get("/v1/persons", email="not an address"), 422)


def test_a_company_reads_nothing_of_another_on_every_route(local_stack: LocalStack) -> None:
    owner_b = Api(local_stack, "b-admin", company(), "admin")
    ids = one_of_each(owner_b)
    user_b = owner_b.create("users", {"id": "b-user", "name": "B User", "email": "b@b.test"})
    owner_b.create("persons", {"name": "Second B"})
    b_cursor = owner_b.get("/v1/persons", limit=1).json()["next_cursor"]
    assert b_cursor

    intruder = Api(local_stack, "b-admin", company(), "admin")  # same user id, other company
    for kind, record_id in {**ids, "users": user_b}.items():
        assert_problem(intruder.get(f"/v1/{kind}/{record_id}"), 404)
        assert_problem(intruder.patch(f"/v1/{kind}/{record_id}", {}), 404)
        if kind != "users":
            assert_problem(intruder.delete(f"/v1/{kind}/{record_id}"), 404)
        assert intruder.get(f"/v1/{kind}").json() == {"items": [], "next_cursor": None}
    assert intruder.get("/v1/persons", email="ann@acme.test").json()["items"] == []
    assert intruder.get("/v1/deals", person_id=ids["persons"]).json()["items"] == []
    assert intruder.get("/v1/activities", owner_id="b-admin").json()["items"] == []
    assert_problem(intruder.get("/v1/persons", cursor=b_cursor), 400)
    linked = intruder.post("/v1/deals", {"title": "Steal", "person_id": ids["persons"]})
    assert "person_id" in assert_problem(linked, 422)["detail"]

    for kind, record_id in ids.items():  # and nothing of B changed
        assert owner_b.get(f"/v1/{kind}/{record_id}").json()["version"] == 1


def test_owner_visible_records_are_hidden_from_other_users_not_admins(
    local_stack: LocalStack,
) -> None:
    co = company()
    owner, colleague = Api(local_stack, "u1", co), Api(local_stack, "u2", co)
    admin = Api(local_stack, "boss", co, "admin")
    private = owner.create(
        "persons", {"name": "Secret Source", "emails": ["s@x.test"], "visibility": "owner"}
    )
    shared = owner.create("persons", {"name": "Known Contact"})

    assert_problem(colleague.get(f"/v1/persons/{private}"), 404)
    assert_problem(colleague.patch(f"/v1/persons/{private}", {"name": "Hi"}), 404)
    assert [p["id"] for p in colleague.get("/v1/persons").json()["items"]] == [shared]
    assert colleague.get("/v1/persons", email="s@x.test").json()["items"] == []
    assert admin.get(f"/v1/persons/{private}").status_code == 200
    assert {p["id"] for p in admin.get("/v1/persons").json()["items"]} == {private, shared}
    assert owner.get(f"/v1/persons/{private}").status_code == 200

    assert_problem(colleague.patch(f"/v1/persons/{shared}", {"name": "Mine now"}), 403)
    assert_problem(colleague.delete(f"/v1/persons/{shared}"), 403)
    given = owner.patch(f"/v1/persons/{shared}", {"owner_id": "u2"})
    assert_problem(given, 403)
    assert admin.patch(f"/v1/persons/{shared}", {"owner_id": "u2"}).json()["owner_id"] == "u2"
    assert colleague.patch(f"/v1/persons/{shared}", {"phones": ["+1 555"]}).status_code == 200


def test_only_admins_add_users(local_stack: LocalStack) -> None:
    co = company()
    user, admin = Api(local_stack, "u1", co), Api(local_stack, "boss", co, "admin")
    body = {"id": "u2", "name": "New Colleague", "email": "new@co.test"}

    assert_problem(user.post("/v1/users", body), 403)
    assert admin.create("users", body) == "u2"
    assert_problem(admin.post("/v1/users", body), 409)
    listed = user.get("/v1/users").json()["items"]
    assert [(u["id"], u["role"], u["active"]) for u in listed] == [("u2", "user", True)]
    assert_problem(user.patch("/v1/users/u2", {"active": False}), 403)
    assert admin.patch("/v1/users/u2", {"active": False}).json()["active"] is False


def test_invalid_bodies_are_422_problems_naming_the_field(local_stack: LocalStack) -> None:
    api = Api(local_stack, "u1", company())
    bad_email = api.post("/v1/persons", {"name": "X", "emails": ["ok@x.test", "not-an-address"]})
    assert "emails" in assert_problem(bad_email, 422)["detail"]
    negative = api.post("/v1/deals", {"title": "Refund", "value": -5})
    assert "value" in assert_problem(negative, 422)["detail"]
    unknown = api.post("/v1/leads", {"title": "L", "colour": "red"})
    assert "colour" in assert_problem(unknown, 422)["detail"]
    naive = api.post("/v1/activities", {"subject": "Call", "start": "2030-01-01T10:00:00"})
    assert "start" in assert_problem(naive, 422)["detail"]
    ancient = api.post("/v1/activities", {"subject": "C", "start": "0001-01-01T00:00:00+01:00"})
    assert "start" in assert_problem(ancient, 422)["detail"]
    assert_problem(api.get("/v1/activities", since="0001-01-01T00:00:00+05:00"), 422)
    assert_problem(api.get(f"/v1/persons/{'x' * 3000}"), 404)
    person = api.create("persons", {"name": "Y"})
    cleared = api.patch(f"/v1/persons/{person}", {"name": None, "first_name": None})
    assert "name" in assert_problem(cleared, 422)["detail"]
    assert_problem(api.get("/v1/persons", cursor="garbage"), 400)


def test_deals_of_a_person_and_activities_of_a_user(local_stack: LocalStack) -> None:
    co = company()
    api, other = Api(local_stack, "u1", co), Api(local_stack, "u2", co)
    person = api.create("persons", {"name": "Linked"})
    open_deal = api.create("deals", {"title": "Open", "person_id": person, "value": "10.50"})
    won = api.create("deals", {"title": "Won", "person_id": person, "status": "won"})
    api.create("deals", {"title": "Someone else's", "status": "open"})

    open_deals = api.get("/v1/deals", person_id=person, status="open").json()["items"]
    assert [(d["id"], d["value"]) for d in open_deals] == [(open_deal, "10.50")]
    assert {d["id"] for d in api.get("/v1/deals", person_id=person).json()["items"]} == {
        open_deal,
        won,
    }

    for day, who in ((3, api), (1, api), (2, other), (5, api)):
        who.create("activities", {"subject": f"Day {day}", "start": f"2030-01-0{day}T09:00:00Z"})
    mine = api.get(
        "/v1/activities",
        owner_id="u1",
        since="2030-01-01T00:00:00Z",
        until="2030-01-05T00:00:00+00:00",
    ).json()["items"]
    assert [a["subject"] for a in mine] == ["Day 1", "Day 3"]
    everyone = api.get("/v1/activities", since="2030-01-02T09:00:00Z").json()["items"]
    assert [a["subject"] for a in everyone] == ["Day 2", "Day 3", "Day 5"]
    assert_problem(
        api.get("/v1/activities", since="2030-01-02T00:00:00Z", until="2030-01-01T00:00:00Z"),
        422,
    )


def test_a_write_from_a_stale_read_is_refused(local_stack: LocalStack) -> None:
    api = Api(local_stack, "u1", company())
    person_id = api.create("persons", {"name": "Raced", "emails": ["r@x.test"]})
    repository = DynamoDirectoryRepository(
        boto3.resource("dynamodb").Table(local_stack.resource("MainTable"))
    )
    stale = repository.get(api.company, Person, person_id)
    assert stale is not None

    assert api.patch(f"/v1/persons/{person_id}", {"phones": ["1"]}).status_code == 200
    lost = stale.changed({"name": "Lost update", "version": stale.version + 1})
    with pytest.raises(ConflictError):
        repository.replace(api.company, stale, lost)
    with pytest.raises(ConflictError):
        repository.delete(api.company, stale)
    assert api.get(f"/v1/persons/{person_id}").json()["phones"] == ["1"]
