"""Synced mail over HTTP: threads of an account or of a CRM record, messages, raw MIME,
attachment downloads, and the caller's blocked addresses. Access rules live in
services/mail_reads.py."""

from __future__ import annotations

from aws_lambda_powertools.event_handler import Response
from pydantic import BaseModel, Field

from crmsync.errors import NotFoundError
from crmsync.http.common import Cursor, Limit, caller, created, new_router, no_content
from crmsync.models.mail import BlockedAddress, Thread
from crmsync.models.pages import Page
from crmsync.runtime import current_runtime
from crmsync.services.blocking import BlockedAddressInput
from crmsync.services.mail_reads import MailReader, MessageView, ThreadDetail
from crmsync.services.thread_actions import LinkInput, ThreadPatch

router = new_router()


class BlockedAddressList(BaseModel):
    items: list[BlockedAddress] = Field(default_factory=list)


def _reader() -> MailReader:
    return current_runtime().mail_reader()


@router.get("/v1/threads/<thread_id>")
def get_thread(thread_id: str) -> ThreadDetail:
    return _reader().thread(caller(router), thread_id)


@router.patch("/v1/threads/<thread_id>")
def patch_thread(thread_id: str, change: ThreadPatch) -> Thread:
    """Share or make private, mark read or unread, archive or unarchive (SPEC L4, S9)."""
    return current_runtime().thread_actions().patch(caller(router), thread_id, change)


@router.delete("/v1/threads/<thread_id>")
def delete_thread(thread_id: str) -> Response[str]:
    current_runtime().thread_actions().delete(caller(router), thread_id)
    return no_content()


@router.post("/v1/threads/<thread_id>/links", status_code=201)
def link_thread(thread_id: str, target: LinkInput) -> Response[Thread]:
    """A manual link; it wins over automatic linking and survives re-sync (SPEC L3)."""
    return created(current_runtime().thread_actions().link(caller(router), thread_id, target))


@router.delete("/v1/threads/<thread_id>/links/<link_type>/<target_id>")
def unlink_thread(thread_id: str, link_type: str, target_id: str) -> Response[str]:
    current_runtime().thread_actions().unlink(caller(router), thread_id, link_type, target_id)
    return no_content()


@router.get("/v1/persons/<person_id>/threads")
def person_threads(person_id: str, limit: Limit = 25, cursor: Cursor = None) -> Page[Thread]:
    return _reader().linked_threads(caller(router), "person", person_id, limit, cursor)


@router.get("/v1/deals/<deal_id>/threads")
def deal_threads(deal_id: str, limit: Limit = 25, cursor: Cursor = None) -> Page[Thread]:
    return _reader().linked_threads(caller(router), "deal", deal_id, limit, cursor)


@router.get("/v1/leads/<lead_id>/threads")
def lead_threads(lead_id: str, limit: Limit = 25, cursor: Cursor = None) -> Page[Thread]:
    return _reader().linked_threads(caller(router), "lead", lead_id, limit, cursor)


@router.get("/v1/projects/<project_id>/threads")
def project_threads(project_id: str, limit: Limit = 25, cursor: Cursor = None) -> Page[Thread]:
    return _reader().linked_threads(caller(router), "project", project_id, limit, cursor)


@router.get("/v1/messages/<message_id>")
def get_message(message_id: str) -> MessageView:
    return _reader().message(caller(router), message_id)


@router.get("/v1/messages/<message_id>/raw")
def get_raw_message(message_id: str) -> Response[bytes]:
    """The message exactly as the server gave it (message/rfc822)."""
    raw = _reader().raw(caller(router), message_id)
    return Response(
        status_code=200,
        content_type="message/rfc822",
        body=raw,
        headers={"Content-Disposition": f'attachment; filename="{message_id}.eml"'},
    )


@router.get("/v1/messages/<message_id>/attachments/<index>")
def get_attachment(message_id: str, index: int) -> Response[str]:
    """A redirect to a short-lived S3 link to the attachment's bytes (a download)."""
    url = _reader().attachment_url(caller(router), message_id, index)
    return Response(
        status_code=302,
        content_type="text/plain",
        body="",
        headers={"Location": url, "Cache-Control": "no-store"},
    )


@router.get("/v1/me/blocked-addresses")
def list_blocked() -> BlockedAddressList:
    return BlockedAddressList(items=current_runtime().blocking().list(caller(router)))


@router.post("/v1/me/blocked-addresses", status_code=201)
def block_address(entry: BlockedAddressInput) -> Response[BlockedAddress]:
    return created(current_runtime().blocking().add(caller(router), entry))


@router.delete("/v1/me/blocked-addresses/<address>")
def unblock_address(address: str) -> Response[str]:
    if not current_runtime().blocking().remove(caller(router), address):
        raise NotFoundError(f"{address} is not blocked.")
    return no_content()
