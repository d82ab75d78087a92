"""Templates, signatures and smart fields over HTTP (SPEC I4). Handlers parse, call the
services, answer; the rules live in services/templates.py and services/signatures.py."""

from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Query

from crmsync.http.common import Cursor, Limit, caller, created, new_router, no_content
from crmsync.models.pages import Page
from crmsync.models.templates import (
    PreviewRequest,
    RenderedMessage,
    Signature,
    SignatureCreate,
    SignatureUpdate,
    SmartFieldInfo,
    Template,
    TemplateCreate,
    TemplateOrder,
    TemplateSummary,
    TemplateUpdate,
)
from crmsync.runtime import current_runtime
from crmsync.services.signatures import SignatureService
from crmsync.services.templates import TemplateService, smart_field_list

router = new_router()

Order = Annotated[
    TemplateOrder, Query(description="updated: newest update first; name: by name, A to Z.")
]


def _templates() -> TemplateService:
    return current_runtime().templates()


def _signatures() -> SignatureService:
    return current_runtime().signatures()


# ---------------------------------------------------------------- templates


@router.get("/v1/templates")
def list_templates(
    order: Order = "updated", limit: Limit = 25, cursor: Cursor = None
) -> Page[TemplateSummary]:
    """The templates the caller may read, without their bodies."""
    return _templates().list(caller(router), order, limit, cursor)


@router.post("/v1/templates", status_code=201)
def create_template(template: TemplateCreate) -> Response[Template]:
    return created(_templates().create(caller(router), template))


@router.get("/v1/templates/<template_id>")
def get_template(template_id: str) -> Template:
    return _templates().get(caller(router), template_id)


@router.patch("/v1/templates/<template_id>")
def update_template(template_id: str, patch: TemplateUpdate) -> Template:
    return _templates().update(caller(router), template_id, patch)


@router.delete("/v1/templates/<template_id>", status_code=204)
def delete_template(template_id: str) -> Response[str]:
    _templates().delete(caller(router), template_id)
    return no_content()


@router.post("/v1/templates/<template_id>/preview")
def preview_template(template_id: str, request: PreviewRequest) -> RenderedMessage:
    """The template with its smart fields filled for these records."""
    return _templates().preview(caller(router), template_id, request)


# ---------------------------------------------------------------- signatures


@router.get("/v1/me/signatures")
def list_signatures() -> Page[Signature]:
    """The caller's signatures, the default first."""
    return Page(items=_signatures().list(caller(router)))


@router.post("/v1/me/signatures", status_code=201)
def create_signature(signature: SignatureCreate) -> Response[Signature]:
    return created(_signatures().create(caller(router), signature))


@router.patch("/v1/me/signatures/<signature_id>")
def update_signature(signature_id: str, patch: SignatureUpdate) -> Signature:
    return _signatures().update(caller(router), signature_id, patch)


@router.delete("/v1/me/signatures/<signature_id>", status_code=204)
def delete_signature(signature_id: str) -> Response[str]:
    _signatures().delete(caller(router), signature_id)
    return no_content()


# ---------------------------------------------------------------- smart fields


@router.get("/v1/smart-fields")
def list_smart_fields() -> Page[SmartFieldInfo]:
    """Every smart field a subject or body may use."""
    caller(router)
    return Page(items=smart_field_list())
