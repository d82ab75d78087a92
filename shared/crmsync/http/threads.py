"""Synced mail over HTTP: threads of an account or of a CRM record, messages, raw MIME,
and the caller's blocked addresses. Access rules live in services/mail_reads.py."""

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

router = new_router()


class BlockedAddressList(BaseModel):
    items: list[BlockedAddress] = Field(default_factory=list)


def _reader() -> MailReader:
    return current_runtime().mail_reader()


@router.get("/v1/threads/<thread_id>")
def get_thread(thread_id: str) -> ThreadDetail:
    return _reader().thread(caller(router), thread_id)


@router.get("/v1/persons/<person_id>/threads")
def person_threads(person_id: str, limit: Limit = 25, cursor: Cursor = None) -> Page[Thread]:
    return _reader().linked_threads(caller(router), "person", person_id, limit, cursor)


@router.get("/v1/deals/<deal_id>/threads")
def deal_threads(deal_id: str, limit: Limit = 25, cursor: Cursor = None) -> Page[Thread]:
    return _reader().linked_threads(caller(router), "deal", deal_id, limit, cursor)


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
