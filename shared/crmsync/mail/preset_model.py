"""The shape of a provider preset: servers, username format and the quirks the engine obeys."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

from crmsync.models.servers import ServerEndpoint

UsernameFormat = Literal["email", "local_part"]

DOMAIN_PLACEHOLDER = "{domain}"


class PresetEndpoint(ServerEndpoint):
    """A preset's server; frozen because presets are shared by every request.

    A host may contain `{domain}` for providers whose server is named after the customer's
    domain (self-hosted Zimbra, shared hosting); `ProviderPreset.imap_for` fills it in.
    """

    model_config = ConfigDict(frozen=True)


class ProviderPreset(BaseModel):
    """What we know about one mail provider, so users do not have to type server settings."""

    model_config = ConfigDict(frozen=True)

    id: str
    name: str
    domains: tuple[str, ...] = ()
    """Address domains the provider owns: `user@<domain>` always lives there."""
    mx_suffixes: tuple[str, ...] = ()
    """MX host suffixes that reveal the provider behind a customer's own domain."""
    imap: PresetEndpoint
    smtp: PresetEndpoint
    username: UsernameFormat = "email"
    requires_app_password_with_2fa: bool = False
    saves_sent_copy: bool = False
    """The server files submitted mail in Sent itself: appending a copy would duplicate it."""
    uses_labels: bool = False
    oauth_recommended: bool = False
    self_hosted: bool = False
    notes: str = ""

    def imap_for(self, domain: str) -> ServerEndpoint:
        return _endpoint_for(self.imap, domain)

    def smtp_for(self, domain: str) -> ServerEndpoint:
        return _endpoint_for(self.smtp, domain)


def _endpoint_for(endpoint: PresetEndpoint, domain: str) -> ServerEndpoint:
    """A plain, mutable copy for the caller, with `{domain}` filled in."""
    host = endpoint.host.replace(DOMAIN_PLACEHOLDER, domain.lower().rstrip("."))
    return ServerEndpoint(host=host, port=endpoint.port, security=endpoint.security)
