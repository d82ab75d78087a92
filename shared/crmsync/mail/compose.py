"""The MIME of an outgoing message (SPEC I2): text and HTML alternatives, inline images
(`cid:`) related to the HTML, attachments, threading headers and a generated Message-ID.

The same message is composed once per delivery when tracking makes bodies differ per
recipient; everything but the body is identical, Message-ID included.
"""

from __future__ import annotations

import base64
import binascii
from datetime import datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, make_msgid

from crmsync.models.outbox import OutboxPayload, OutgoingAttachment

TRACKING_HEADER = "X-CRMSync-Tracking"


class AttachmentError(ValueError):
    """An attachment the request cannot carry (not base64, a bad content type)."""


def new_message_id(sender: str) -> str:
    """`<…@domain>` on the sender's own domain, as mail apps do."""
    domain = sender.rpartition("@")[2] or "crmsync.invalid"
    return make_msgid(domain=domain)


def decoded(attachment: OutgoingAttachment) -> bytes:
    try:
        return base64.b64decode(attachment.content_base64, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise AttachmentError(f"{attachment.filename}: the content is not base64") from exc


def _split_type(attachment: OutgoingAttachment) -> tuple[str, str]:
    maintype, slash, subtype = attachment.content_type.partition("/")
    if not slash or not maintype or not subtype or " " in attachment.content_type:
        raise AttachmentError(f"{attachment.filename}: {attachment.content_type!r} is no type")
    return maintype.lower(), subtype.lower()


def compose(
    payload: OutboxPayload,
    *,
    sender: str,
    message_id: str,
    date: datetime,
    html: str,
    text: str,
    tracking_id: str | None = None,
    with_bcc: bool = False,
) -> EmailMessage:
    """One message. `html`/`text` are the bodies of this delivery (instrumented for one
    recipient, or plain for the Sent copy); `with_bcc` keeps the Bcc header (the sender's
    own copy shows whom it went to; deliveries never carry it)."""
    message = EmailMessage(policy=SMTP)
    message["From"] = Address(display_name=payload.from_name or "", addr_spec=sender)
    if payload.to:
        message["To"] = ", ".join(payload.to)
    if payload.cc:
        message["Cc"] = ", ".join(payload.cc)
    if with_bcc and payload.bcc:
        message["Bcc"] = ", ".join(payload.bcc)
    message["Subject"] = payload.subject
    message["Date"] = format_datetime(date)
    message["Message-ID"] = message_id
    if payload.in_reply_to:
        message["In-Reply-To"] = payload.in_reply_to
        message["References"] = " ".join([*payload.references, payload.in_reply_to])
    if tracking_id:
        message[TRACKING_HEADER] = tracking_id
    message["MIME-Version"] = "1.0"
    message.set_content(text or "", subtype="plain", charset="utf-8")
    inline = [a for a in payload.attachments if a.inline and a.content_id]
    if html:
        message.add_alternative(html, subtype="html", charset="utf-8")
        parts = message.get_payload()
        html_part = parts[-1] if isinstance(parts, list) else None
        if not isinstance(html_part, EmailMessage):
            raise TypeError("the HTML alternative is not a message part")
        for image in inline:
            maintype, subtype = _split_type(image)
            html_part.add_related(
                decoded(image),
                maintype=maintype,
                subtype=subtype,
                cid=f"<{image.content_id.strip('<>')}>" if image.content_id else None,
                filename=image.filename,
                disposition="inline",
            )
    for attachment in payload.attachments:
        if attachment in inline and html:
            continue
        maintype, subtype = _split_type(attachment)
        message.add_attachment(
            decoded(attachment),
            maintype=maintype,
            subtype=subtype,
            filename=attachment.filename,
        )
    return message
