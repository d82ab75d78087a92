"""Smart fields: `{{person.first_name}}` in a subject or body, filled from CRM records.

A sandbox, not a template engine: nothing in a template is ever evaluated. The text is cut
into literal text and tokens by one regular expression; a token names a field of `FIELDS`, an
explicit table from field name to a function of the context, and nothing else is looked up.

The rules (docs/api.md, "Templates, signatures, smart fields"):

- A token is `{{name}}` or `{{name|fallback}}`, spaces allowed around the name and the
  fallback (`{{ person.name | there }}`); names are matched without regard to case.
- Anything else between braces (an unknown name, `{{person.__class__}}`, `{{ 7*7 }}`,
  `{{ ''.join }}`, `{% … %}`, single or triple braces, a second `|`) is not a field: it is
  left exactly as written and reported in `unknown`. It is never evaluated.
- A field without a value renders its fallback, else nothing (and is reported in `missing`).
- Values are filled once: a value that itself contains `{{…}}` stays text.
- In HTML, values and fallbacks are HTML-escaped, and a field is filled only in element text
  or a quoted attribute value; elsewhere inside markup it renders empty (services/html_slots.py).
  In a subject or plain text, values are inserted as they are.
- At most `MAX_FIELDS` fields are filled per text; further tokens are left as written.
"""

from __future__ import annotations

import html as html_escaping
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from typing import Protocol, TypeVar

from crmsync.errors import NotFoundError
from crmsync.models.deals import Deal, Lead, Project
from crmsync.models.directory import Organization, Person, Record, User
from crmsync.models.identity import Principal
from crmsync.services.html_slots import HtmlPosition

R = TypeVar("R", bound=Record)

MAX_FIELDS = 1000
"""Fields filled in one text: bounds what a template can grow into."""
MAX_REPORTED = 50
"""Names listed in `missing` or `unknown`."""

# `{{`, at most 300 characters without braces, `}}`; not part of a longer run of braces.
_TOKEN = re.compile(r"(?<!\{)\{\{(?!\{)([^{}]{0,300})\}\}(?!\})")
_FIELD = re.compile(
    r"\s*([A-Za-z][A-Za-z0-9_]{0,39}\.[A-Za-z][A-Za-z0-9_]{0,39})\s*(?:\|([^|]*))?", re.ASCII
)
_MONTHS = (
    *("January", "February", "March", "April", "May", "June"),
    *("July", "August", "September", "October", "November", "December"),
)
_ZERO_DECIMAL_CURRENCIES = frozenset(
    {"BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF", "UGX", "UYI"}
    | {"VND", "VUV", "XAF", "XOF", "XPF"}
)
_THREE_DECIMAL_CURRENCIES = frozenset({"BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"})


@dataclass(frozen=True)
class SmartFieldContext:
    """The records a message is about, as the caller may read them; any may be absent."""

    today: date
    person: Person | None = None
    organization: Organization | None = None
    deal: Deal | None = None
    lead: Lead | None = None
    project: Project | None = None
    user_name: str | None = None
    user_email: str | None = None


@dataclass(frozen=True)
class SmartField:
    name: str
    description: str
    example: str
    value: Callable[[SmartFieldContext], str | None]


def format_money(value: Decimal, currency: str) -> str:
    """`12,000.00 EUR`: thousands separated by commas, the currency's usual decimals
    (none for JPY and the like, three for KWD and the like), half up."""
    places = (
        0
        if currency in _ZERO_DECIMAL_CURRENCIES
        else 3
        if currency in _THREE_DECIMAL_CURRENCIES
        else 2
    )
    rounded = value.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)
    return f"{rounded:,.{places}f} {currency}"


def _first_word(name: str | None) -> str | None:
    return name.split()[0] if name and name.split() else None


def _person_name(part: str) -> Callable[[SmartFieldContext], str | None]:
    def value(context: SmartFieldContext) -> str | None:
        person = context.person
        if person is None:
            return None
        return {"first": person.first_name, "last": person.last_name, "full": person.name}[part]

    return value


def _deal_value(context: SmartFieldContext) -> str | None:
    deal = context.deal
    return format_money(deal.value, deal.currency) if deal else None


def _long_date(day: date) -> str:
    return f"{day.day} {_MONTHS[day.month - 1]} {day.year}"


_TABLE = (
    SmartField("person.first_name", "The person's first name.", "Jane", _person_name("first")),
    SmartField("person.last_name", "The person's last name.", "Roe", _person_name("last")),
    SmartField("person.name", "The person's full name.", "Jane Roe", _person_name("full")),
    SmartField(
        "person.email",
        "The person's first e-mail address.",
        "jane.roe@acme.example",
        lambda c: c.person.emails[0] if c.person and c.person.emails else None,
    ),
    SmartField(
        "person.phone",
        "The person's first phone number.",
        "+1 555 0100",
        lambda c: c.person.phones[0] if c.person and c.person.phones else None,
    ),
    SmartField(
        "organization.name",
        "The organization of the person (else of the deal, lead or project).",
        "Acme Inc.",
        lambda c: c.organization.name if c.organization else None,
    ),
    SmartField(
        "organization.domain",
        "That organization's web domain.",
        "acme.example",
        lambda c: c.organization.domain if c.organization else None,
    ),
    SmartField(
        "deal.title",
        "The deal's title.",
        "Acme rollout",
        lambda c: c.deal.title if c.deal else None,
    ),
    SmartField(
        "deal.value",
        "The deal's value with its currency: thousands separated, the currency's decimals.",
        "12,000.00 EUR",
        _deal_value,
    ),
    SmartField(
        "deal.currency",
        "The deal's currency (ISO 4217).",
        "EUR",
        lambda c: c.deal.currency if c.deal else None,
    ),
    SmartField(
        "lead.title", "The lead's title.", "Web inquiry", lambda c: c.lead.title if c.lead else None
    ),
    SmartField(
        "project.title",
        "The project's title.",
        "Onboarding",
        lambda c: c.project.title if c.project else None,
    ),
    SmartField(
        "user.name", "The sender's name (the CRM user).", "Alex Demo", lambda c: c.user_name
    ),
    SmartField(
        "user.first_name",
        "The first word of the sender's name.",
        "Alex",
        lambda c: _first_word(c.user_name),
    ),
    SmartField(
        "user.email", "The sender's e-mail address.", "alex@demo.example", lambda c: c.user_email
    ),
    SmartField(
        "date.today", "Today's date (UTC), ISO 8601.", "2026-03-05", lambda c: c.today.isoformat()
    ),
    SmartField(
        "date.today_long",
        "Today's date (UTC), written out in English.",
        "5 March 2026",
        lambda c: _long_date(c.today),
    ),
)
FIELDS: dict[str, SmartField] = {f.name: f for f in _TABLE}
"""Every smart field: the whole of what a template can reach."""


@dataclass
class Rendering:
    text: str
    missing: list[str] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)


def _parse(inside: str) -> tuple[SmartField | None, str | None]:
    """The field a token names and its fallback; (None, None) when it names none."""
    match = _FIELD.fullmatch(inside)
    if match is None:
        return None, None
    found = FIELDS.get(match.group(1).lower())
    fallback = match.group(2)
    return found, fallback.strip() if fallback is not None else None


def _note(names: list[str], name: str) -> None:
    if name not in names and len(names) < MAX_REPORTED:
        names.append(name)


def render_text(template_text: str, context: SmartFieldContext, *, html: bool) -> Rendering:
    """Fill the smart fields of `template_text` (one pass, linear in its length)."""
    out: list[str] = []
    result = Rendering(text="")
    position = HtmlPosition() if html else None
    last = filled = 0
    for match in _TOKEN.finditer(template_text):
        literal = template_text[last : match.start()]
        out.append(literal)
        if position is not None:
            position.feed(literal)
        last = match.end()
        found, fallback = _parse(match.group(1))
        if found is None or filled >= MAX_FIELDS:
            if found is None:
                _note(result.unknown, match.group(1).strip()[:100])
            out.append(match.group(0))
            if position is not None:
                position.feed(match.group(0))
            continue
        filled += 1
        if position is not None and not position.fillable:
            continue
        out.append(_value(found, fallback, context, html, result))
    out.append(template_text[last:])
    result.text = "".join(out)
    return result


def _value(
    found: SmartField,
    fallback: str | None,
    context: SmartFieldContext,
    html: bool,
    result: Rendering,
) -> str:
    value = found.value(context)
    if value is not None and value.strip():
        return html_escaping.escape(value, quote=True) if html else value
    if fallback is None:
        _note(result.missing, found.name)
        return ""
    # In HTML the fallback is markup the author typed: normalised, so it stays text.
    return html_escaping.escape(html_escaping.unescape(fallback), quote=True) if html else fallback


def render(template_text: str, context: SmartFieldContext, *, html: bool) -> str:
    """The text with its smart fields filled; never raises for any text."""
    return render_text(template_text, context, html=html).text


def missing_fields(
    template_text: str, context: SmartFieldContext, *, html: bool = False
) -> list[str]:
    """Fields of the text that render empty for want of a value (no fallback), in order."""
    return render_text(template_text, context, html=html).missing


def unknown_fields(template_text: str) -> list[str]:
    """What the text has between `{{` and `}}` that is not a smart field."""
    names: list[str] = []
    for match in _TOKEN.finditer(template_text):
        if _parse(match.group(1))[0] is None:
            _note(names, match.group(1).strip()[:100])
    return names


# ---------------------------------------------------------------- the context


class RecordReader(Protocol):
    """The directory's read with the caller's access (DirectoryService.get): NotFoundError
    for a record that does not exist or that the caller may not read."""

    def get(self, principal: Principal, record_type: type[R], record_id: str) -> R: ...


def _maybe(
    directory: RecordReader, principal: Principal, record_type: type[R], record_id: str | None
) -> R | None:
    """A record the caller did not ask for by id: absent when missing or not readable."""
    if not record_id:
        return None
    try:
        return directory.get(principal, record_type, record_id)
    except NotFoundError:
        return None


def context_for(
    directory: RecordReader,
    principal: Principal,
    person_id: str | None,
    deal_id: str | None,
    lead_id: str | None = None,
    project_id: str | None = None,
    *,
    today: date,
) -> SmartFieldContext:
    """Read the records named by id through the directory, with the caller's access (a record
    the caller may not read raises NotFoundError). The rest follows from them:

    - the person is `person_id`'s, else the person of the deal, the lead or the project;
    - the deal is `deal_id`'s, else the project's deal;
    - the organization is the person's, else that of the deal, the lead or the project;
    - the user is the caller's `/v1/users` record, else the token's e-mail claim (no name).

    A record reached this way that the caller may not read (or that is gone) is left out."""
    lead = directory.get(principal, Lead, lead_id) if lead_id else None
    project = directory.get(principal, Project, project_id) if project_id else None
    deal = (
        directory.get(principal, Deal, deal_id)
        if deal_id
        else _maybe(directory, principal, Deal, project.deal_id if project else None)
    )
    person = directory.get(principal, Person, person_id) if person_id else None
    linked = [record for record in (person, deal, lead, project) if record is not None]
    if person is None:
        person_ids = (getattr(record, "person_id", None) for record in linked)
        person = _maybe(directory, principal, Person, next((p for p in person_ids if p), None))
        if person is not None:
            linked.insert(0, person)
    organization_ids = (getattr(record, "organization_id", None) for record in linked)
    organization = _maybe(
        directory, principal, Organization, next((o for o in organization_ids if o), None)
    )
    user = _maybe(directory, principal, User, principal.user_id)
    return SmartFieldContext(
        today=today,
        person=person,
        organization=organization,
        deal=deal,
        lead=lead,
        project=project,
        user_name=user.name if user else None,
        user_email=user.email if user else principal.email,
    )
