"""Mailbox actions over HTTP: read/unread, archive, delete and sharing of a thread (SPEC S9, L4)."""

from __future__ import annotations

from crmsync.http.common import new_router

router = new_router()
