"""Mail templates (SPEC I4): who reads and writes them, and rendering a message's smart fields.

Templates follow the directory's rule (`can_read`, `can_write` in services/directory.py): a
`"company"` template is read by every user of the company, an `"owner"` one by its owner and
the admins; the owner and admins write it. `render_message` is what sending calls.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC
from functools import partial

from crmsync.clock import Clock
from crmsync.errors import ForbiddenError, NotFoundError
from crmsync.mail.html import html_to_text
from crmsync.models.identity import Principal
from crmsync.models.pages import Page
from crmsync.models.templates import (
    MAX_TEMPLATE_HTML_BYTES,
    PreviewRequest,
    RenderedMessage,
    Signature,
    SmartFieldInfo,
    Template,
    TemplateCreate,
    TemplateOrder,
    TemplateSummary,
    TemplateUpdate,
)
from crmsync.ports import TemplateStore
from crmsync.services.directory import can_read, can_write
from crmsync.services.signatures import (
    ID,
    SignatureService,
    cleaned_html,
    new_id,
    retrying,
    validated,
)
from crmsync.services.smart_fields import (
    FIELDS,
    RecordReader,
    Rendering,
    SmartFieldContext,
    context_for,
    render_text,
)

_REFUSAL = "Only the owner or an admin can change this template, or give it to another user."
_BODY_END = re.compile(r"</body\s*>", re.IGNORECASE)
_LINE_BREAKS = re.compile(r"[\r\n\u2028\u2029]+")
SIGNATURE_SEPARATOR = "\n\n-- \n"
"""Before the signature in plain text (the usenet convention mail clients recognise)."""


def smart_field_list() -> list[SmartFieldInfo]:
    return [
        SmartFieldInfo(name=f.name, description=f.description, example=f.example)
        for f in FIELDS.values()
    ]


def append_signature(html: str, signature_html: str) -> str:
    """The signature after the body: before `</body>` when the body is a whole document."""
    block = f'<br><div class="crmsync-signature">{signature_html}</div>'
    ends = list(_BODY_END.finditer(html))
    if not ends:
        return html + block
    at = ends[-1].start()
    return html[:at] + block + html[at:]


def _merged(renderings: list[Rendering], attribute: str) -> list[str]:
    names: list[str] = []
    for rendering in renderings:
        names += [n for n in getattr(rendering, attribute) if n not in names]
    return names


class TemplateService:
    def __init__(
        self,
        store: TemplateStore,
        signatures: SignatureService,
        directory: RecordReader,
        clock: Clock,
        new_id: Callable[[], str] = new_id,
    ) -> None:
        self._store = store
        self._signatures = signatures
        self._directory = directory
        self._clock = clock
        self._new_id = new_id

    # ------------------------------------------------------------ templates

    def get(self, principal: Principal, template_id: str) -> Template:
        """NotFoundError when it does not exist or the caller may not read it."""
        template = (
            self._store.get(principal.company_id, template_id)
            if ID.fullmatch(template_id)
            else None
        )
        if template is None or not can_read(principal, template):
            raise NotFoundError(f"Template {template_id} not found.")
        return template

    def list(
        self, principal: Principal, order: TemplateOrder, limit: int, cursor: str | None
    ) -> Page[TemplateSummary]:
        return self._store.list(
            principal.company_id, order, limit, cursor, partial(can_read, principal)
        )

    def create(self, principal: Principal, data: TemplateCreate) -> Template:
        now = self._clock.now()
        fields = {
            **data.model_dump(),
            "html": cleaned_html(data.html, MAX_TEMPLATE_HTML_BYTES),
            "id": self._new_id(),
            "owner_id": data.owner_id or principal.user_id,
            "created_at": now,
            "updated_at": now,
        }
        template = validated(lambda: Template.model_validate(fields))
        if not can_write(principal, template):
            raise ForbiddenError(_REFUSAL)
        self._store.create(principal.company_id, template)
        return template

    def update(self, principal: Principal, template_id: str, patch: TemplateUpdate) -> Template:
        """Only the fields sent change (`text: null` clears it); a lost race is re-applied
        to the newer version (3 tries, then 409)."""
        changes = patch.model_dump(exclude_unset=True)
        if changes.get("html") is not None:
            changes["html"] = cleaned_html(changes["html"], MAX_TEMPLATE_HTML_BYTES)

        def attempt() -> Template:
            seen = self.get(principal, template_id)
            if not can_write(principal, seen):
                raise ForbiddenError(_REFUSAL)
            stamp = {"updated_at": self._clock.now(), "version": seen.version + 1}
            template = validated(lambda: seen.changed({**changes, **stamp}))
            if not can_write(principal, template):
                raise ForbiddenError(_REFUSAL)
            self._store.replace(principal.company_id, seen, template)
            return template

        return retrying(attempt)

    def delete(self, principal: Principal, template_id: str) -> None:
        def attempt() -> None:
            seen = self.get(principal, template_id)
            if not can_write(principal, seen):
                raise ForbiddenError(_REFUSAL)
            self._store.delete(principal.company_id, seen)

        retrying(attempt)

    # ------------------------------------------------------------ rendering

    def context_for(
        self,
        principal: Principal,
        person_id: str | None,
        deal_id: str | None,
        lead_id: str | None = None,
        project_id: str | None = None,
    ) -> SmartFieldContext:
        """The smart fields' values for these records, read with the caller's access."""
        today = self._clock.now().astimezone(UTC).date()
        return context_for(
            self._directory, principal, person_id, deal_id, lead_id, project_id, today=today
        )

    def preview(
        self, principal: Principal, template_id: str, request: PreviewRequest
    ) -> RenderedMessage:
        """The template rendered for these records, as `render_message` would send it."""
        return self.render_message(
            principal,
            template_id=template_id,
            subject="",
            html="",
            text=None,
            person_id=request.person_id,
            deal_id=request.deal_id,
            lead_id=request.lead_id,
            project_id=request.project_id,
            signature=request.signature,
        )

    def render_message(
        self,
        principal: Principal,
        *,
        template_id: str | None,
        subject: str,
        html: str,
        text: str | None,
        person_id: str | None,
        deal_id: str | None,
        signature: bool | str | None = None,
        lead_id: str | None = None,
        project_id: str | None = None,
    ) -> RenderedMessage:
        """A message with its smart fields filled, as it is to be sent.

        - With `template_id`, a blank `subject` takes the template's subject, and a blank
          `html` takes the template's html, and then its text unless `text` is given.
        - Smart fields are filled in the subject (then made one line), the HTML (escaped
          values) and the text, from the records named (`context_for`): a record the caller
          may not read is NotFoundError, as is a template they may not read.
        - Signature: `None` or `True` appends the caller's default signature if they have
          one; `False` none; a string, that signature of the caller's (NotFoundError if
          none). Its smart fields are filled too; it goes after the HTML body and, when a
          text body was given, after the text, following "-- ".
        - `text` comes back as given (rendered) or, when there is none, as the text of the
          rendered HTML.
        """
        if template_id is not None:
            template = self.get(principal, template_id)
            if not subject.strip():
                subject = template.subject
            if not html.strip():
                html = template.html
                if text is None or not text.strip():
                    text = template.text
        chosen = self._chosen_signature(principal, signature)
        context = self.context_for(principal, person_id, deal_id, lead_id, project_id)
        renderings = [
            render_text(subject, context, html=False),
            render_text(html, context, html=True),
        ]
        body = renderings[1].text
        text_body = None
        if text is not None and text.strip():
            renderings.append(render_text(text, context, html=False))
            text_body = renderings[-1].text
        if chosen is not None:
            renderings.append(render_text(chosen.html, context, html=True))
            body = append_signature(body, renderings[-1].text)
            if text_body is not None:
                text_body += SIGNATURE_SEPARATOR + html_to_text(renderings[-1].text)
        return RenderedMessage(
            subject=_LINE_BREAKS.sub(" ", renderings[0].text).strip(),
            html=body,
            text=text_body if text_body is not None else html_to_text(body),
            missing=_merged(renderings, "missing"),
            unknown=_merged(renderings, "unknown"),
        )

    def _chosen_signature(
        self, principal: Principal, signature: bool | str | None
    ) -> Signature | None:
        if signature is False:
            return None
        if isinstance(signature, str):
            return self._signatures.get(principal, signature)
        return self._signatures.default(principal)
