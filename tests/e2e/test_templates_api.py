"""Templates, signatures and smart fields over HTTP on the local stack: CRUD and shapes,
visibility, lists by update and by name, preview from real directory records, 404 for a
record the caller cannot read, default signature switching, and the store's conditions."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
import requests

from crmsync.errors import ConflictError
from crmsync.models.templates import DefaultChange, Signature
from crmsync.store.templates import DynamoSignatureStore, DynamoTemplateStore
from crmsync_local.stack import LocalStack

pytestmark = pytest.mark.e2e


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

    def create(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        reply = self.post(path, body)
        assert reply.status_code == 201, reply.text
        created: dict[str, Any] = reply.json()
        return created


def company() -> str:
    return f"co-{uuid.uuid4().hex[:10]}"


def assert_problem(reply: requests.Response, status: int) -> dict[str, Any]:
    assert reply.status_code == status, reply.text
    assert reply.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = reply.json()
    assert body["title"]
    assert body["detail"]
    return body


def table() -> Any:
    return boto3.resource("dynamodb")


def test_template_crud_and_shapes(local_stack: LocalStack) -> None:
    api = Api(local_stack, "u1", company())
    created = api.create(
        "/v1/templates",
        {
            "name": "  Intro  ",
            "subject": "Hello {{person.first_name|there}}",
            "html": '<p onclick="x()">Hi {{ person.name }}</p><script>alert(1)</script>',
        },
    )
    assert created["name"] == "Intro"
    assert created["html"] == "<p>Hi {{ person.name }}</p>"
    assert created["text"] is None
    assert (created["owner_id"], created["visibility"], created["version"]) == ("u1", "company", 1)
    template_id = created["id"]

    assert api.get(f"/v1/templates/{template_id}").json() == created
    page = api.get("/v1/templates").json()
    assert set(page) == {"items", "next_cursor"}
    assert [t["id"] for t in page["items"]] == [template_id]
    assert "html" not in page["items"][0]
    assert page["items"][0]["subject"] == "Hello {{person.first_name|there}}"

    changed = api.patch(f"/v1/templates/{template_id}", {"text": "Hi {{person.name}}"})
    assert changed.status_code == 200, changed.text
    assert (changed.json()["text"], changed.json()["version"]) == ("Hi {{person.name}}", 2)
    cleared = api.patch(f"/v1/templates/{template_id}", {"text": None}).json()
    assert cleared["text"] is None

    assert_problem(api.post("/v1/templates", {"name": "x"}), 422)
    assert_problem(api.post("/v1/templates", {"name": "x", "html": "y", "colour": "red"}), 422)
    assert_problem(api.post("/v1/templates", {"name": "x", "html": "<script>1</script>"}), 422)
    assert_problem(api.patch(f"/v1/templates/{template_id}", {"name": None}), 422)

    deleted = api.delete(f"/v1/templates/{template_id}")
    assert deleted.status_code == 204, deleted.text
    assert_problem(api.get(f"/v1/templates/{template_id}"), 404)
    assert_problem(api.delete(f"/v1/templates/{template_id}"), 404)


def test_a_large_template_round_trips_and_lists_stay_small(local_stack: LocalStack) -> None:
    api = Api(local_stack, "u1", company())
    html = "<p>" + "é" * (120 * 1024) + "</p>"  # 240 KB of UTF-8
    created = api.create("/v1/templates", {"name": "Big", "html": html})
    assert api.get(f"/v1/templates/{created['id']}").json()["html"] == html
    assert len(api.get("/v1/templates").content) < 2000
    too_big = api.post("/v1/templates", {"name": "Too big", "html": "x" * (256 * 1024 + 1)})
    assert_problem(too_big, 422)


def test_colleagues_see_company_templates_not_owner_only_ones(local_stack: LocalStack) -> None:
    tenant = company()
    owner, colleague = Api(local_stack, "u1", tenant), Api(local_stack, "u2", tenant)
    admin = Api(local_stack, "boss", tenant, "admin")
    stranger = Api(local_stack, "u1", company(), "admin")
    shared = owner.create("/v1/templates", {"name": "Shared", "html": "s"})["id"]
    private = owner.create(
        "/v1/templates", {"name": "Private", "html": "p", "visibility": "owner"}
    )["id"]

    assert [t["name"] for t in colleague.get("/v1/templates").json()["items"]] == ["Shared"]
    assert colleague.get(f"/v1/templates/{shared}").status_code == 200
    assert_problem(colleague.get(f"/v1/templates/{private}"), 404)
    assert_problem(colleague.patch(f"/v1/templates/{shared}", {"name": "Mine"}), 403)
    assert_problem(colleague.delete(f"/v1/templates/{shared}"), 403)
    assert_problem(colleague.post(f"/v1/templates/{private}/preview", {}), 404)
    assert_problem(
        colleague.post("/v1/templates", {"name": "For u1", "html": "x", "owner_id": "u1"}), 403
    )

    assert {t["name"] for t in admin.get("/v1/templates").json()["items"]} == {
        "Shared",
        "Private",
    }
    assert admin.patch(f"/v1/templates/{private}", {"visibility": "company"}).status_code == 200
    assert colleague.get(f"/v1/templates/{private}").status_code == 200

    assert stranger.get("/v1/templates").json()["items"] == []
    assert_problem(stranger.get(f"/v1/templates/{shared}"), 404)


def test_lists_by_update_and_by_name_visit_each_template_once(local_stack: LocalStack) -> None:
    api = Api(local_stack, "u1", company())
    names = ["delta", "Alpha", "charlie", "Bravo", "echo", "alpha 2", "Foxtrot"]
    for name in names:
        api.create("/v1/templates", {"name": name, "html": name})

    def walk(order: str) -> list[str]:
        seen: list[str] = []
        cursor = None
        while True:
            params: dict[str, Any] = {"order": order, "limit": 3}
            if cursor:
                params["cursor"] = cursor
            body = api.get("/v1/templates", **params).json()
            seen += [t["name"] for t in body["items"]]
            cursor = body["next_cursor"]
            if cursor is None:
                return seen

    assert walk("name") == sorted(names, key=str.casefold)
    assert walk("updated") == list(reversed(names))
    first = api.get("/v1/templates", order="name", limit=2).json()
    assert_problem(api.get("/v1/templates", order="updated", cursor=first["next_cursor"]), 400)
    assert_problem(api.get("/v1/templates", order="sideways"), 422)


def test_preview_fills_fields_from_a_person_and_deal_with_an_organization(
    local_stack: LocalStack,
) -> None:
    tenant = company()
    api = Api(local_stack, "u1", tenant)
    admin = Api(local_stack, "boss", tenant, "admin")
    admin.create("/v1/users", {"id": "u1", "name": "Alex Demo", "email": "alex@demo.test"})
    org = api.create("/v1/organizations", {"name": "Acme & Co", "domain": "acme.test"})["id"]
    person = api.create(
        "/v1/persons",
        {
            "name": "<script>alert(1)</script> Roe",
            "emails": ["jr@acme.test"],
            "organization_id": org,
        },
    )["id"]
    deal = api.create(
        "/v1/deals",
        {"title": "Rollout", "value": "12000.5", "currency": "USD", "person_id": person},
    )["id"]
    template = api.create(
        "/v1/templates",
        {
            "name": "Offer",
            "subject": "{{person.first_name}}: {{deal.title}} for {{organization.name}}",
            "html": '<p title="{{organization.name}}">Dear {{person.first_name}}, '
            "{{deal.value}} ({{deal.currency}}). {{lead.title|No lead}} {{project.title}} "
            "{{ 7*7 }} {{person.__class__}}</p><p>{{user.name}} &lt;{{user.email}}&gt;</p>",
        },
    )["id"]

    reply = api.post(f"/v1/templates/{template}/preview", {"person_id": person, "deal_id": deal})
    assert reply.status_code == 200, reply.text
    preview = reply.json()
    assert preview["subject"] == "<script>alert(1)</script>: Rollout for Acme & Co"
    assert preview["html"] == (
        '<p title="Acme &amp; Co">Dear &lt;script&gt;alert(1)&lt;/script&gt;, '
        "12,000.50 USD (USD). No lead  {{ 7*7 }} {{person.__class__}}</p>"
        "<p>Alex Demo &lt;alex@demo.test&gt;</p>"
    )
    assert "<script" not in preview["html"]
    assert preview["text"].startswith("Dear <script>alert(1)</script>, 12,000.50 USD")
    assert preview["missing"] == ["project.title"]
    assert preview["unknown"] == ["7*7", "person.__class__"]

    by_deal = api.post(f"/v1/templates/{template}/preview", {"deal_id": deal}).json()
    assert by_deal["subject"] == preview["subject"]  # the deal's person and organization
    bare = api.post(f"/v1/templates/{template}/preview", {}).json()
    assert bare["subject"] == ":  for"
    assert bare["missing"][:3] == ["person.first_name", "deal.title", "organization.name"]
    assert_problem(api.post(f"/v1/templates/{template}/preview", {"persn_id": person}), 422)


def test_preview_for_a_person_the_caller_cannot_read_is_404(local_stack: LocalStack) -> None:
    tenant = company()
    api, colleague = Api(local_stack, "u1", tenant), Api(local_stack, "u2", tenant)
    hidden = colleague.create("/v1/persons", {"name": "Secret Person", "visibility": "owner"})
    template = api.create("/v1/templates", {"name": "T", "html": "{{person.name}}"})["id"]
    body = assert_problem(
        api.post(f"/v1/templates/{template}/preview", {"person_id": hidden["id"]}), 404
    )
    assert "Secret" not in body["detail"]
    assert_problem(api.post(f"/v1/templates/{template}/preview", {"deal_id": "nope"}), 404)
    assert_problem(api.post("/v1/templates/nope/preview", {}), 404)


def test_signatures_and_default_switching(local_stack: LocalStack) -> None:
    tenant = company()
    api, colleague = Api(local_stack, "u1", tenant), Api(local_stack, "u2", tenant)
    work = api.create(
        "/v1/me/signatures",
        {"name": "Work", "html": "<p>{{user.first_name|Alex}}</p>", "is_default": True},
    )
    formal = api.create("/v1/me/signatures", {"name": "Formal", "html": "<p onclick=x>F</p>"})
    assert work["is_default"] is True
    assert formal["html"] == "<p>F</p>"
    assert set(work) >= {"id", "name", "html", "is_default", "created_at", "updated_at", "version"}

    def defaults() -> list[str]:
        body = api.get("/v1/me/signatures").json()
        assert body["next_cursor"] is None
        return [s["name"] for s in body["items"] if s["is_default"]]

    assert defaults() == ["Work"]
    switched = api.patch(f"/v1/me/signatures/{formal['id']}", {"is_default": True})
    assert switched.status_code == 200, switched.text
    assert switched.json()["is_default"] is True
    assert defaults() == ["Formal"]
    assert [s["name"] for s in api.get("/v1/me/signatures").json()["items"]] == ["Formal", "Work"]
    renamed = api.patch(f"/v1/me/signatures/{work['id']}", {"name": "Work (short)"}).json()
    assert (renamed["name"], renamed["is_default"], renamed["version"]) == (
        "Work (short)",
        False,
        2,
    )

    assert colleague.get("/v1/me/signatures").json()["items"] == []
    assert_problem(colleague.patch(f"/v1/me/signatures/{work['id']}", {"name": "x"}), 404)
    assert_problem(colleague.delete(f"/v1/me/signatures/{work['id']}"), 404)

    template = api.create("/v1/templates", {"name": "T", "html": "<p>Body</p>"})["id"]
    signed = api.post(f"/v1/templates/{template}/preview", {"signature": True}).json()
    assert signed["html"] == '<p>Body</p><br><div class="crmsync-signature"><p>F</p></div>'
    chosen = api.post(f"/v1/templates/{template}/preview", {"signature": work["id"]}).json()
    assert chosen["html"].endswith("<p>Alex</p></div>")

    assert api.delete(f"/v1/me/signatures/{formal['id']}").status_code == 204
    assert defaults() == []
    assert_problem(api.patch(f"/v1/me/signatures/{formal['id']}", {"name": "x"}), 404)
    assert_problem(api.post("/v1/me/signatures", {"name": "Empty", "html": ""}), 422)


def test_smart_fields_route_lists_the_documented_fields(local_stack: LocalStack) -> None:
    api = Api(local_stack, "u1", company())
    body = api.get("/v1/smart-fields").json()
    names = [f["name"] for f in body["items"]]
    assert {
        "person.first_name",
        "person.name",
        "organization.name",
        "deal.title",
        "deal.value",
        "user.name",
        "user.email",
    } <= set(names)
    assert all(f["description"] and f["example"] for f in body["items"])


def test_the_stores_refuse_writes_from_stale_reads(local_stack: LocalStack) -> None:
    api = Api(local_stack, "u1", company())
    main = table().Table(local_stack.resource("MainTable"))
    templates = DynamoTemplateStore(main)
    template_id = api.create("/v1/templates", {"name": "Raced", "html": "v1"})["id"]
    stale = templates.get(api.company, template_id)
    assert stale is not None
    assert api.patch(f"/v1/templates/{template_id}", {"html": "v2"}).status_code == 200
    lost = stale.changed({"html": "lost", "version": stale.version + 1})
    with pytest.raises(ConflictError):
        templates.replace(api.company, stale, lost)
    with pytest.raises(ConflictError):
        templates.delete(api.company, stale)
    assert api.get(f"/v1/templates/{template_id}").json()["html"] == "v2"

    signatures = DynamoSignatureStore(main)
    first = api.create("/v1/me/signatures", {"name": "A", "html": "a", "is_default": True})
    read = signatures.signatures(api.company, api.user)
    assert read.default is not None
    assert read.default.signature_id == first["id"]
    now = datetime.now(UTC)
    rival = Signature(id="rival", name="R", html="r", created_at=now, updated_at=now)
    api.create("/v1/me/signatures", {"name": "B", "html": "b", "is_default": True})
    with pytest.raises(ConflictError):  # the pointer moved since `read`
        signatures.create(
            api.company, api.user, rival, DefaultChange(seen=read.default, signature_id="rival")
        )
    after = signatures.signatures(api.company, api.user)
    assert [s.name for s in after.items if s.is_default] == ["B"]
    assert "rival" not in [s.id for s in after.items]
