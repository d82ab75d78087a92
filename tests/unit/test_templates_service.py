"""Templates and signatures without I/O: visibility and ownership, cleaning and limits, safe
concurrent writes, one default signature, and `render_message`, the helper sending uses."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from pydantic import ValidationError

from crmsync.errors import ConflictError, ForbiddenError, NotFoundError
from crmsync.models.deals import Deal
from crmsync.models.directory import Organization, Person, User
from crmsync.models.identity import Principal
from crmsync.models.templates import (
    MAX_SIGNATURES,
    MAX_TEMPLATE_HTML_BYTES,
    PreviewRequest,
    SignatureCreate,
    SignatureUpdate,
    Template,
    TemplateCreate,
    TemplateUpdate,
)
from crmsync.services.directory import InvalidFieldsError
from crmsync.services.signatures import SignatureService
from crmsync.services.smart_fields import FIELDS
from crmsync.services.templates import TemplateService, append_signature, smart_field_list
from tests.unit.fakes import FakeClock
from tests.unit.fakes_templates import FakeDirectory, FakeSignatureStore, FakeTemplateStore

NOW = datetime(2026, 3, 5, 9, 30, tzinfo=UTC)
OWNER = Principal(user_id="u1", company_id="c1", role="user", email="u1@claims.example")
COLLEAGUE = Principal(user_id="u2", company_id="c1", role="user")
ADMIN = Principal(user_id="boss", company_id="c1", role="admin")
OUTSIDER = Principal(user_id="u1", company_id="c2", role="admin")


def stamp(**fields: Any) -> dict[str, Any]:
    return {"created_at": NOW, "updated_at": NOW, "owner_id": "u1", **fields}


class World:
    def __init__(self) -> None:
        self.clock = FakeClock(NOW)
        self.templates = FakeTemplateStore()
        self.signature_store = FakeSignatureStore()
        self.directory = FakeDirectory(
            Person.model_validate(
                stamp(id="p1", name="Jane Roe", emails=["jane@acme.example"], organization_id="o1")
            ),
            Person.model_validate(
                stamp(id="hidden", name="Secret", visibility="owner", owner_id="u9")
            ),
            Organization.model_validate(stamp(id="o1", name="Acme Inc.")),
            Deal.model_validate(
                stamp(id="d1", title="Rollout", value=Decimal("12000"), person_id="p1")
            ),
            User.model_validate(
                {"id": "u1", "name": "Alex Demo", "email": "alex@demo.example", **stamp()}
            ),
        )
        counter = iter(range(1, 10_000))
        self.signatures = SignatureService(
            self.signature_store, self.clock, new_id=lambda: f"s{next(counter)}"
        )
        ids = iter(range(1, 10_000))
        self.service = TemplateService(
            self.templates,
            self.signatures,
            self.directory,
            self.clock,
            new_id=lambda: f"t{next(ids)}",
        )

    def template(self, principal: Principal = OWNER, **fields: Any) -> Template:
        body = {"name": "Intro", "subject": "Hi {{person.first_name}}", "html": "<p>Hi</p>"}
        return self.service.create(principal, TemplateCreate.model_validate({**body, **fields}))


@pytest.fixture
def world() -> World:
    return World()


# ---------------------------------------------------------------- templates: who sees what


def test_create_read_update_delete(world: World) -> None:
    created = world.template(text="Hi {{person.first_name}}")
    assert (created.id, created.owner_id, created.visibility, created.version) == (
        "t1",
        "u1",
        "company",
        1,
    )
    assert world.service.get(OWNER, "t1") == created
    world.clock.advance(timedelta(minutes=1))
    changed = world.service.update(OWNER, "t1", TemplateUpdate(name="Intro v2", text=None))
    assert (changed.name, changed.text, changed.version) == ("Intro v2", None, 2)
    assert changed.updated_at == NOW + timedelta(minutes=1)
    assert changed.html == created.html
    world.service.delete(OWNER, "t1")
    with pytest.raises(NotFoundError):
        world.service.get(OWNER, "t1")


def test_colleagues_read_company_templates_and_only_their_owner_writes_them(world: World) -> None:
    shared = world.template(name="Shared")
    private = world.template(name="Private", visibility="owner")
    assert world.service.get(COLLEAGUE, shared.id).name == "Shared"
    with pytest.raises(NotFoundError):
        world.service.get(COLLEAGUE, private.id)
    with pytest.raises(NotFoundError):
        world.service.get(OUTSIDER, shared.id)
    with pytest.raises(ForbiddenError):
        world.service.update(COLLEAGUE, shared.id, TemplateUpdate(name="Mine now"))
    with pytest.raises(ForbiddenError):
        world.service.delete(COLLEAGUE, shared.id)
    with pytest.raises(NotFoundError):
        world.service.delete(COLLEAGUE, private.id)
    assert world.service.get(ADMIN, private.id).name == "Private"
    assert world.service.update(ADMIN, private.id, TemplateUpdate(name="Checked")).version == 2
    listed = world.service.list(COLLEAGUE, "updated", 25, None)
    assert [t.name for t in listed.items] == ["Shared"]
    assert {t.name for t in world.service.list(ADMIN, "updated", 25, None).items} == {
        "Shared",
        "Checked",
    }


def test_a_user_cannot_give_a_template_away_or_create_one_for_another(world: World) -> None:
    with pytest.raises(ForbiddenError):
        world.template(owner_id="u2")
    mine = world.template()
    with pytest.raises(ForbiddenError):
        world.service.update(OWNER, mine.id, TemplateUpdate(owner_id="u2"))
    given = world.service.update(ADMIN, mine.id, TemplateUpdate(owner_id="u2"))
    assert given.owner_id == "u2"


def test_lists_newest_update_first_or_by_name_without_bodies(world: World) -> None:
    for name in ("banana", "Apple", "cherry"):
        world.template(name=name)
        world.clock.advance(timedelta(seconds=1))
    newest = world.service.list(OWNER, "updated", 25, None)
    assert [t.name for t in newest.items] == ["cherry", "Apple", "banana"]
    assert "html" not in newest.items[0].model_dump()
    by_name = world.service.list(OWNER, "name", 2, None)
    assert [t.name for t in by_name.items] == ["Apple", "banana"]
    rest = world.service.list(OWNER, "name", 2, by_name.next_cursor)
    assert [t.name for t in rest.items] == ["cherry"]
    assert rest.next_cursor is None


@pytest.mark.parametrize("bad_id", ["", "a#b", "a/b", "x" * 129, "a b"])
def test_ids_that_address_nothing_are_not_found(world: World, bad_id: str) -> None:
    with pytest.raises(NotFoundError):
        world.service.get(OWNER, bad_id)


# ---------------------------------------------------------------- templates: content


def test_html_is_cleaned_on_save(world: World) -> None:
    template = world.template(
        html='<p style="color: red; position: fixed" onclick="x()">Hi {{ person.name|there }}</p>'
        '<script>alert(1)</script><a href="javascript:alert(1)">x</a>'
        '<a href="https://acme.example/?who={{person.email}}">y</a>'
    )
    assert template.html == (
        '<p style="color:red">Hi {{ person.name|there }}</p><a rel="noopener noreferrer">x</a>'
        '<a href="https://acme.example/?who={{person.email}}" rel="noopener noreferrer">y</a>'
    )
    with pytest.raises(InvalidFieldsError):
        world.template(html="<script>only()</script>")
    changed = world.service.update(OWNER, template.id, TemplateUpdate(html="<b onload=x>B</b>"))
    assert changed.html == "<b>B</b>"


def test_limits() -> None:
    base = {"name": "n", "html": "x"}
    TemplateCreate.model_validate({**base, "html": "é" * (MAX_TEMPLATE_HTML_BYTES // 2)})
    for bad in (
        {"html": "é" * (MAX_TEMPLATE_HTML_BYTES // 2 + 1)},
        {"html": ""},
        {"name": "n" * 201},
        {"name": "   "},
        {"subject": "s" * 999},
        {"text": "t" * (64 * 1024 + 1)},
        {"visibility": "everyone"},
        {"unknown": 1},
    ):
        with pytest.raises(ValidationError):
            TemplateCreate.model_validate({**base, **bad})
    with pytest.raises(ValidationError):
        SignatureCreate.model_validate({"name": "s", "html": "x" * (64 * 1024 + 1)})


def test_html_that_grows_past_the_limit_when_cleaned_is_refused(world: World) -> None:
    with pytest.raises(InvalidFieldsError, match="once cleaned"):
        world.template(html="&" * (MAX_TEMPLATE_HTML_BYTES - 10))


def test_null_for_a_required_field_is_refused(world: World) -> None:
    template = world.template()
    with pytest.raises(InvalidFieldsError):
        world.service.update(OWNER, template.id, TemplateUpdate.model_validate({"name": None}))


def test_a_lost_race_is_reapplied_then_refused(world: World) -> None:
    template = world.template()
    world.templates.conflicts_to_raise = 2
    assert world.service.update(OWNER, template.id, TemplateUpdate(name="Third try")).version == 2
    world.templates.conflicts_to_raise = 3
    with pytest.raises(ConflictError):
        world.service.update(OWNER, template.id, TemplateUpdate(name="Never"))
    assert world.service.get(OWNER, template.id).name == "Third try"


# ---------------------------------------------------------------- signatures


def test_one_default_signature_per_user(world: World) -> None:
    first = world.signatures.create(OWNER, SignatureCreate(name="Work", html="<p>A</p>"))
    assert first.is_default is False
    assert world.signatures.default(OWNER) is None
    second = world.signatures.create(
        OWNER, SignatureCreate(name="Formal", html="<p>B</p>", is_default=True)
    )
    assert world.signatures.default(OWNER) == second
    switched = world.signatures.update(OWNER, first.id, SignatureUpdate(is_default=True))
    assert switched.is_default
    listed = world.signatures.list(OWNER)
    assert [(s.name, s.is_default) for s in listed] == [("Work", True), ("Formal", False)]
    unset = world.signatures.update(OWNER, first.id, SignatureUpdate(is_default=False))
    assert not unset.is_default
    assert world.signatures.default(OWNER) is None


def test_deleting_the_default_leaves_none_and_others_see_nothing(world: World) -> None:
    signature = world.signatures.create(
        OWNER, SignatureCreate(name="Work", html="<p>{{user.name}}</p>", is_default=True)
    )
    assert world.signatures.list(COLLEAGUE) == []
    with pytest.raises(NotFoundError):
        world.signatures.update(COLLEAGUE, signature.id, SignatureUpdate(name="x"))
    with pytest.raises(NotFoundError):
        world.signatures.delete(ADMIN, signature.id)
    world.signatures.delete(OWNER, signature.id)
    assert world.signatures.list(OWNER) == []
    assert world.signatures.default(OWNER) is None
    with pytest.raises(NotFoundError):
        world.signatures.delete(OWNER, signature.id)


def test_a_default_set_meanwhile_is_seen_before_switching(world: World) -> None:
    """Two requests making two signatures the default: the pointer's version condition makes
    the second re-read, so exactly one default remains."""
    a = world.signatures.create(OWNER, SignatureCreate(name="A", html="a"))
    b = world.signatures.create(OWNER, SignatureCreate(name="B", html="b"))

    def meanwhile() -> None:
        world.signatures.update(OWNER, a.id, SignatureUpdate(is_default=True))

    world.signature_store.before_write = meanwhile
    world.signatures.update(OWNER, b.id, SignatureUpdate(is_default=True))
    assert [s.name for s in world.signatures.list(OWNER) if s.is_default] == ["B"]


def test_signature_html_is_cleaned_and_counted(world: World) -> None:
    made = world.signatures.create(OWNER, SignatureCreate(name="S", html="<i onclick=x>Me</i>"))
    assert made.html == "<i>Me</i>"
    for n in range(MAX_SIGNATURES - 1):
        world.signatures.create(OWNER, SignatureCreate(name=f"S{n}", html="x"))
    with pytest.raises(ConflictError):
        world.signatures.create(OWNER, SignatureCreate(name="One too many", html="x"))


# ---------------------------------------------------------------- render_message and preview


def render(world: World, **arguments: Any) -> Any:
    defaults: dict[str, Any] = {
        "template_id": None,
        "subject": "",
        "html": "",
        "text": None,
        "person_id": None,
        "deal_id": None,
    }
    return world.service.render_message(OWNER, **{**defaults, **arguments})


def test_the_template_fills_a_blank_subject_and_body(world: World) -> None:
    template = world.template(
        subject="Offer for {{organization.name}}",
        html="<p>Dear {{person.first_name|customer}}, {{deal.title}}: {{deal.value}}</p>",
        text="Dear {{person.first_name}}",
    )
    message = render(world, template_id=template.id, person_id="p1", deal_id="d1")
    assert message.subject == "Offer for Acme Inc."
    assert message.html == "<p>Dear Jane, Rollout: 12,000.00 EUR</p>"
    assert message.text == "Dear Jane"
    assert message.missing == []
    own = render(world, template_id=template.id, subject="Mine", html="<b>{{user.name}}</b>")
    assert (own.subject, own.html, own.text) == ("Mine", "<b>Alex Demo</b>", "Alex Demo")
    assert own.missing == []


def test_without_a_template_the_given_parts_are_rendered(world: World) -> None:
    message = render(
        world,
        subject="Re: {{deal.title}}\r\nBcc: evil@x.example",
        html="<p>{{person.name}} {{lead.title}}</p>",
        text="{{person.name}} {{ 7*7 }}",
        person_id="p1",
    )
    assert message.subject == "Re:  Bcc: evil@x.example"
    assert message.html == "<p>Jane Roe </p>"
    assert message.text == "Jane Roe {{ 7*7 }}"
    assert message.missing == ["deal.title", "lead.title"]
    assert message.unknown == ["7*7"]


def test_signature_rules(world: World) -> None:
    assert render(world, html="<p>Body</p>").html == "<p>Body</p>"
    default = world.signatures.create(
        OWNER, SignatureCreate(name="Default", html="<p>{{user.name}}</p>", is_default=True)
    )
    other = world.signatures.create(OWNER, SignatureCreate(name="Other", html="<p>Other</p>"))
    block = '<br><div class="crmsync-signature"><p>Alex Demo</p></div>'
    assert render(world, html="<p>Body</p>").html == "<p>Body</p>" + block
    assert render(world, html="<p>Body</p>", signature=True).html == "<p>Body</p>" + block
    assert render(world, html="<p>Body</p>", signature=False).html == "<p>Body</p>"
    chosen = render(world, html="<p>Body</p>", signature=other.id)
    assert chosen.html.endswith('<div class="crmsync-signature"><p>Other</p></div>')
    with pytest.raises(NotFoundError):
        render(world, html="x", signature="nope")
    document = render(world, html="<html><body><p>Body</p></BODY></html>")
    assert document.html == f"<html><body><p>Body</p>{block}</BODY></html>"
    with_text = render(world, html="<p>Body</p>", text="Body")
    assert with_text.text == "Body\n\n-- \nAlex Demo"
    derived = render(world, html="<p>Body</p>")
    assert derived.text == "Body\n\nAlex Demo"
    world.signatures.delete(OWNER, default.id)
    assert render(world, html="<p>Body</p>", signature=True).html == "<p>Body</p>"


def test_records_the_caller_cannot_read_are_not_found(world: World) -> None:
    with pytest.raises(NotFoundError):
        render(world, html="{{person.name}}", person_id="hidden")
    private = world.template(visibility="owner")
    with pytest.raises(NotFoundError):
        world.service.render_message(
            COLLEAGUE,
            template_id=private.id,
            subject="",
            html="",
            text=None,
            person_id=None,
            deal_id=None,
        )


def test_preview_renders_the_template_without_a_signature_unless_asked(world: World) -> None:
    world.signatures.create(
        OWNER, SignatureCreate(name="Default", html="<p>Sig</p>", is_default=True)
    )
    template = world.template(subject="{{deal.title}}", html="<p>{{person.first_name}}</p>")
    preview = world.service.preview(OWNER, template.id, PreviewRequest(deal_id="d1"))
    assert (preview.subject, preview.html, preview.text) == ("Rollout", "<p>Jane</p>", "Jane")
    signed = world.service.preview(OWNER, template.id, PreviewRequest(signature=True))
    assert signed.html.endswith("<p>Sig</p></div>")
    assert signed.missing == ["deal.title", "person.first_name"]


def test_signature_goes_before_the_last_body_end() -> None:
    assert append_signature("a</body>b</body>", "S") == (
        'a</body>b<br><div class="crmsync-signature">S</div></body>'
    )


def test_the_smart_field_list_is_the_table() -> None:
    listed = smart_field_list()
    assert [f.name for f in listed] == list(FIELDS)
    assert all(f.description and f.example for f in listed)
