"""Smart fields, the sandbox: every documented field, fallbacks, escaping, markup positions,
and every attempt to reach something undocumented left as text, never evaluated."""

from __future__ import annotations

import re
import time
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crmsync.errors import NotFoundError
from crmsync.models.deals import Deal, Lead, Project
from crmsync.models.directory import Organization, Person, User
from crmsync.models.identity import Principal
from crmsync.services.html_slots import HtmlPosition
from crmsync.services.smart_fields import (
    FIELDS,
    MAX_FIELDS,
    SmartFieldContext,
    context_for,
    format_money,
    missing_fields,
    render,
    render_text,
    unknown_fields,
)
from tests.unit.fakes_templates import FakeDirectory

NOW = datetime(2026, 3, 5, 9, 30, tzinfo=UTC)
TODAY = date(2026, 3, 5)
OWNER = Principal(user_id="u1", company_id="c1", role="user", email="alex@claims.example")
COLLEAGUE = Principal(user_id="u2", company_id="c1", role="user")
HOSTILE = '<script>alert("x")</script>'


def stamp(**fields: Any) -> dict[str, Any]:
    return {"created_at": NOW, "updated_at": NOW, "owner_id": "u1", **fields}


def person(**fields: Any) -> Person:
    return Person.model_validate(
        stamp(
            **{
                "id": "p1",
                "name": "Jane Roe",
                "emails": ["jane.roe@acme.example", "jr@home.example"],
                "phones": ["+1 555 0100"],
                "organization_id": "o1",
                **fields,
            }
        )
    )


def organization(**fields: Any) -> Organization:
    return Organization.model_validate(
        stamp(**{"id": "o1", "name": "Acme Inc.", "domain": "acme.example", **fields})
    )


def deal(**fields: Any) -> Deal:
    return Deal.model_validate(
        stamp(
            **{
                "id": "d1",
                "title": "Acme rollout",
                "value": Decimal("12000"),
                "currency": "EUR",
                "person_id": "p1",
                **fields,
            }
        )
    )


def lead(**fields: Any) -> Lead:
    return Lead.model_validate(stamp(**{"id": "l1", "title": "Web inquiry", **fields}))


def project(**fields: Any) -> Project:
    return Project.model_validate(stamp(**{"id": "j1", "title": "Onboarding", **fields}))


def full_context(**overrides: Any) -> SmartFieldContext:
    fields: dict[str, Any] = {
        "today": TODAY,
        "person": person(),
        "organization": organization(),
        "deal": deal(),
        "lead": lead(),
        "project": project(),
        "user_name": "Alex Demo",
        "user_email": "alex@demo.example",
    }
    return SmartFieldContext(**{**fields, **overrides})


EMPTY = SmartFieldContext(today=TODAY)

EXPECTED = {
    "person.first_name": "Jane",
    "person.last_name": "Roe",
    "person.name": "Jane Roe",
    "person.email": "jane.roe@acme.example",
    "person.phone": "+1 555 0100",
    "organization.name": "Acme Inc.",
    "organization.domain": "acme.example",
    "deal.title": "Acme rollout",
    "deal.value": "12,000.00 EUR",
    "deal.currency": "EUR",
    "lead.title": "Web inquiry",
    "project.title": "Onboarding",
    "user.name": "Alex Demo",
    "user.first_name": "Alex",
    "user.email": "alex@demo.example",
    "date.today": "2026-03-05",
    "date.today_long": "5 March 2026",
}


# ---------------------------------------------------------------- every documented field


def test_every_field_has_an_expected_value_here() -> None:
    assert set(EXPECTED) == set(FIELDS)


@pytest.mark.parametrize(("name", "value"), sorted(EXPECTED.items()))
def test_each_field_renders_its_value(name: str, value: str) -> None:
    for html in (False, True):
        rendering = render_text(f"[{{{{{name}}}}}]", full_context(), html=html)
        assert rendering.text == f"[{value}]"
        assert rendering.missing == []
        assert rendering.unknown == []


@pytest.mark.parametrize("name", sorted(set(FIELDS) - {"date.today", "date.today_long"}))
def test_a_field_without_a_value_renders_empty_or_its_fallback(name: str) -> None:
    assert render_text(f"Hi {{{{{name}}}}}!", EMPTY, html=True).text == "Hi !"
    assert missing_fields(f"Hi {{{{{name}}}}}!", EMPTY) == [name]
    with_fallback = render_text(f"Hi {{{{{name}|there}}}}!", EMPTY, html=False)
    assert with_fallback.text == "Hi there!"
    assert with_fallback.missing == []


def test_example_of_every_field_is_documented() -> None:
    for spec in FIELDS.values():
        assert spec.description.endswith(".")
        assert spec.example


# ---------------------------------------------------------------- syntax


@pytest.mark.parametrize(
    "token",
    [
        "{{person.first_name}}",
        "{{ person.first_name }}",
        "{{\tperson.first_name\n}}",
        "{{Person.First_Name}}",
        "{{ PERSON.FIRST_NAME | friend }}",
    ],
)
def test_spaces_and_case_do_not_matter(token: str) -> None:
    assert render(f"Dear {token},", full_context(), html=False) == "Dear Jane,"


def test_fallback_is_trimmed_and_used_only_without_a_value() -> None:
    template = "Hi {{ person.first_name | there }}, {{deal.title|your project}}."
    assert render(template, EMPTY, html=False) == "Hi there, your project."
    assert render(template, full_context(), html=False) == "Hi Jane, Acme rollout."
    assert render("{{person.first_name|}}!", EMPTY, html=False) == "!"
    assert missing_fields("{{person.first_name|}}!", EMPTY) == []


def test_a_blank_value_counts_as_missing() -> None:
    context = full_context(user_name="   ")
    assert render("{{user.name|Team}}", context, html=False) == "Team"


def test_missing_and_unknown_are_listed_once_in_order() -> None:
    template = "{{deal.title}} {{person.name}} {{deal.title}} {{nope.x}} {{ 7*7 }} {{nope.x}}"
    rendering = render_text(template, EMPTY, html=False)
    assert rendering.missing == ["deal.title", "person.name"]
    assert rendering.unknown == ["nope.x", "7*7"]
    assert unknown_fields(template) == ["nope.x", "7*7"]


def test_deal_value_is_formatted_with_its_currency() -> None:
    assert format_money(Decimal("12000"), "EUR") == "12,000.00 EUR"
    assert format_money(Decimal("0"), "USD") == "0.00 USD"
    assert format_money(Decimal("1234.565"), "USD") == "1,234.57 USD"
    assert format_money(Decimal("1500000.4"), "JPY") == "1,500,000 JPY"
    assert format_money(Decimal("2.0005"), "KWD") == "2.001 KWD"
    assert format_money(Decimal("9999999999999999.9999"), "EUR") == "10,000,000,000,000,000.00 EUR"
    zero = full_context(deal=deal(value=Decimal(0), currency="CHF"))
    assert render("{{deal.value}}", zero, html=False) == "0.00 CHF"


# ---------------------------------------------------------------- escaping


def test_a_person_named_script_stays_text_in_html_and_raw_in_subject_and_text() -> None:
    context = full_context(person=person(name=HOSTILE, first_name=None, last_name=None))
    body = render("<p>Dear {{person.name}}</p>", context, html=True)
    assert body == "<p>Dear &lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;</p>"
    assert "<script" not in body
    assert render("About {{person.name}}", context, html=False) == f"About {HOSTILE}"


def test_values_cannot_leave_a_quoted_attribute() -> None:
    context = full_context(organization=organization(name='x" onmouseover="alert(1)'))
    double = render('<a title="{{organization.name}}">', context, html=True)
    assert double == '<a title="x&quot; onmouseover=&quot;alert(1)">'
    context = full_context(organization=organization(name="x' onmouseover='alert(1)"))
    single = render("<a title='{{organization.name}}'>", context, html=True)
    assert single == "<a title='x&#x27; onmouseover=&#x27;alert(1)'>"
    link = render('<a href="mailto:{{person.email}}">', full_context(), html=True)
    assert link == '<a href="mailto:jane.roe@acme.example">'


def test_fallbacks_are_text_in_html() -> None:
    assert render("{{person.name|Tom &amp; Jerry}}", EMPTY, html=True) == "Tom &amp; Jerry"
    assert render("{{person.name|a <b> c}}", EMPTY, html=True) == "a &lt;b&gt; c"
    attribute = render('<p title="{{person.name|a" onclick="x}}">', EMPTY, html=True)
    assert attribute == '<p title="a&quot; onclick=&quot;x">'
    assert render("{{person.name|a <b> c}}", EMPTY, html=False) == "a <b> c"


def test_values_are_filled_once_never_rendered_again() -> None:
    context = full_context(person=person(name="{{user.email}}", first_name="{{ 7*7 }}"))
    assert render("{{person.name}} {{person.first_name}}", context, html=False) == (
        "{{user.email}} {{ 7*7 }}"
    )


# ---------------------------------------------------------------- markup positions


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("<{{person.first_name}}>", "<>"),
        ("</{{person.first_name}}>", "</>"),
        ("<scr{{person.first_name}}>", "<scr>"),
        ("<p {{person.name}}>x</p>", "<p >x</p>"),
        ("<img src=x {{person.name}}>", "<img src=x >"),
        ("<a href={{person.email}}>x</a>", "<a href=>x</a>"),
        ("<a href = {{person.email}}>x</a>", "<a href = >x</a>"),
        ('<p title="a" {{person.name}}>', '<p title="a" >'),
        ('<script>var n = "{{person.name}}";</script>', '<script>var n = "";</script>'),
        ("<SCRIPT type=x>{{person.name}}</SCRIPT >{{person.first_name}}", None),
        (
            "<style>p::after{content:'{{person.name}}'}</style>",
            "<style>p::after{content:''}</style>",
        ),
        ("<title>{{person.name}}</title>", "<title></title>"),
        ("<!-- {{person.name}} -->", "<!--  -->"),
        ("<!DOCTYPE {{person.name}}>", "<!DOCTYPE >"),
        ("<script></scriptx>{{person.name}}</script>", "<script></scriptx></script>"),
        ("<script></s</script>{{person.first_name}}", "<script></s</script>Jane"),
        ("a < {{person.first_name}} > b", "a < Jane > b"),
        ("<p>{{person.first_name}}</p>", "<p>Jane</p>"),
    ],
)
def test_a_field_inside_markup_renders_empty(template: str, expected: str | None) -> None:
    context = full_context(person=person(name="onclick=alert(1) x", first_name="Jane"))
    rendered = render(template, context, html=True)
    if expected is None:
        assert rendered == "<SCRIPT type=x></SCRIPT >Jane"
    else:
        assert rendered == expected
    assert "onclick" not in rendered


def test_the_position_tracker_follows_quotes_only_after_equals() -> None:
    position = HtmlPosition()
    position.feed('<p "')
    assert not position.fillable
    position.feed('" title="')
    assert position.fillable
    position.feed('">')
    assert position.fillable
    position.feed("<p title='")
    assert position.fillable


def test_subject_and_text_ignore_markup() -> None:
    assert render("<{{person.first_name}}>", full_context(), html=False) == "<Jane>"


# ---------------------------------------------------------------- the sandbox


ATTEMPTS = [
    "{{person.__class__}}",
    "{{ person.__class__.__mro__ }}",
    "{{person.__dict__}}",
    "{{ person.name.upper }}",
    "{{ person.first_name.__class__ }}",
    "{{ person.model_dump }}",
    "{{ person['name'] }}",
    "{{ person.name() }}",
    "{{ ''.join }}",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ __import__('os').system('id') }}",
    "{{ 7*7 }}",
    "{{7*'7'}}",
    "{{ config }}",
    "{{ self }}",
    "{{ person }}",
    "{{ context.person.name }}",
    "{{ FIELDS }}",
    "{{ user.password }}",
    "{{ deal.owner_id }}",
    "{{ person.emails }}",
    "{{ lambda: 1 }}",
    "{{}}",
    "{{ }}",
    "{{person.name|a|b}}",
    "{% if person %}x{% endif %}",
    "{%- for x in range(10) -%}{{x}}{% endfor %}",
    "{# comment #}",
    "${person.name}",
    "#{person.name}",
    "%(person.name)s",
    "{person.name}",
    "{0.__class__}",
    "{person.name!r:>{width}}",
    "{{{person.name}}}",
    "{{person.name}}}",
    "{{{person.name}}",
    "{{{{person.name}}}}",
    "{{person.name",
    "person.name}}",
    "{{ person.name }",
    "{ person.name }}",
    "}}{{",
    "{{\u0130.name}}",
    "{{person.nam\u0435}}",
]


@pytest.mark.parametrize("attempt", ATTEMPTS)
def test_anything_undocumented_is_left_as_written(attempt: str) -> None:
    for html in (False, True):
        rendering = render_text(f"a {attempt} b", full_context(), html=html)
        assert rendering.text == f"a {attempt} b"
        assert "Jane" not in rendering.text
        assert "49" not in rendering.text
        assert rendering.missing == []


def test_nested_tokens_fill_only_the_inner_field_once() -> None:
    assert render("{{ {{person.first_name}} }}", full_context(), html=False) == "{{ Jane }}"
    braced = "{{person.first_name|{{user.email}}}}"
    assert render(braced, EMPTY, html=False) == braced


def test_no_field_reaches_anything_but_its_table_entry() -> None:
    """The table is the whole surface: names are plain dotted words, looked up in a dict."""
    assert all(re.fullmatch(r"[a-z]+\.[a-z_]+", name) for name in FIELDS)
    assert not any("__" in name for name in FIELDS)


def test_very_long_input_renders_in_linear_time() -> None:
    unit = "Dear {{person.first_name}}, {{ 7*7 }} {{{{ {{person.name <p title='"
    template = unit * (256 * 1024 // len(unit))
    started = time.perf_counter()
    rendering = render_text(template, full_context(), html=True)
    assert time.perf_counter() - started < 5
    assert rendering.text.count("Jane") > 0
    braces = "{" * 200_000 + "}" * 200_000
    assert render(braces, full_context(), html=True) == braces
    opened = "{{person.name" * 20_000
    assert render(opened, full_context(), html=False) == opened


def test_fields_beyond_the_limit_are_left_as_written() -> None:
    template = "{{person.first_name}}" * (MAX_FIELDS + 3)
    rendered = render(template, full_context(), html=False)
    assert rendered == "Jane" * MAX_FIELDS + "{{person.first_name}}" * 3


HOSTILE_VALUES = st.sampled_from(
    [
        HOSTILE,
        "<scr",
        "ipt>",
        "script",
        '" onclick="alert(1)',
        "' onerror='x",
        "onload=alert(1)",
        "{{person.name}}",
        "&lt;script&gt;",
        "</textarea><script>",
        "-->",
        "x",
    ]
)
MARKUP = st.lists(
    st.sampled_from([*"<>/=\"' !-{}|.abcehiprst\n", "script", "style", "<script>", "</script>"]),
    max_size=30,
).map("".join)
TOKENS = st.sampled_from(
    [f"{{{{{name}}}}}" for name in FIELDS]
    + ["{{person.name|<script>}}", "{{ person.first_name | scr }}", "{{ 7*7 }}", "{{person.x}}"]
)
TEMPLATES = st.lists(st.one_of(MARKUP, TOKENS), max_size=12).map("".join)


@st.composite
def hostile_contexts(draw: st.DrawFn) -> SmartFieldContext:
    name = draw(HOSTILE_VALUES)
    return full_context(
        person=person(name=name, first_name=draw(HOSTILE_VALUES), last_name=draw(HOSTILE_VALUES)),
        organization=organization(name=draw(HOSTILE_VALUES)),
        deal=deal(title=draw(HOSTILE_VALUES)),
        user_name=draw(HOSTILE_VALUES),
    )


def _without_tokens(template: str) -> str:
    """The template's own text: without the tokens (the documented syntax) that may fill."""
    return re.sub(r"(?<!\{)\{\{(?!\{)[^{}]{0,300}\}\}(?!\})", "", template)


@given(template=TEMPLATES, context=hostile_contexts())
@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
def test_rendering_never_raises_and_never_makes_a_script(
    template: str, context: SmartFieldContext
) -> None:
    rendered = render(template, context, html=True)
    assert rendered.count("<") <= template.count("<")
    if "<script" in rendered.lower():
        assert "<script" in _without_tokens(template).lower()
    render(template, context, html=False)


@given(template=st.text(max_size=300), context=hostile_contexts())
@settings(max_examples=300)
def test_any_text_renders_without_error(template: str, context: SmartFieldContext) -> None:
    for html in (False, True):
        rendering = render_text(template, context, html=html)
        assert isinstance(rendering.text, str)
    rendered = render(template, context, html=True)
    assert rendered.count("<") <= template.count("<")


# ---------------------------------------------------------------- the context


def test_context_reads_the_named_records_and_what_follows_from_them() -> None:
    user = User.model_validate(
        {"id": "u1", "name": "Alex Demo", "email": "alex@demo.example", **stamp()}
    )
    directory = FakeDirectory(person(), organization(), deal(), lead(), project(), user)
    context = context_for(directory, OWNER, None, "d1", today=TODAY)
    assert context.deal == deal()
    assert context.person == person()  # the deal's person
    assert context.organization == organization()  # the person's organization
    assert (context.user_name, context.user_email) == ("Alex Demo", "alex@demo.example")
    assert context.today == TODAY


def test_organization_falls_back_to_the_deal_and_the_project_deal_to_the_project() -> None:
    directory = FakeDirectory(
        person(organization_id=None), organization(id="o2"), deal(organization_id="o2")
    )
    directory.add(project(deal_id="d1"))
    context = context_for(directory, OWNER, None, None, project_id="j1", today=TODAY)
    assert context.deal is not None
    assert context.deal.id == "d1"
    assert context.person is not None
    assert context.organization is not None
    assert context.organization.id == "o2"


def test_a_named_record_the_caller_cannot_read_is_not_found() -> None:
    directory = FakeDirectory(person(visibility="owner"), deal(visibility="owner"))
    with pytest.raises(NotFoundError):
        context_for(directory, COLLEAGUE, "p1", None, today=TODAY)
    with pytest.raises(NotFoundError):
        context_for(directory, COLLEAGUE, None, "d1", today=TODAY)
    with pytest.raises(NotFoundError):
        context_for(directory, OWNER, "nobody", None, today=TODAY)


def test_records_reached_indirectly_are_left_out_when_hidden() -> None:
    directory = FakeDirectory(
        person(visibility="owner"), organization(visibility="owner"), deal(organization_id="o1")
    )
    context = context_for(directory, COLLEAGUE, None, "d1", today=TODAY)
    assert context.deal is not None
    assert context.person is None
    assert context.organization is None


def test_the_user_comes_from_the_token_when_there_is_no_user_record() -> None:
    context = context_for(FakeDirectory(), OWNER, None, None, today=TODAY)
    assert (context.user_name, context.user_email) == (None, "alex@claims.example")
    rendering = render_text("{{user.name|Alex}} <{{user.email}}>", context, html=False)
    assert rendering.text == "Alex <alex@claims.example>"
