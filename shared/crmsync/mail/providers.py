"""Lookups that pick a provider preset (SPEC E2) for an address or a domain's MX hosts.

The model lives in `preset_model` and the data in `provider_table`, so the table can grow
without touching the code that reads it; callers import everything from here.
"""

from __future__ import annotations

from collections.abc import Iterable

from crmsync.mail.preset_model import PresetEndpoint, ProviderPreset, UsernameFormat
from crmsync.mail.provider_table import PRESETS

__all__ = [
    "PresetEndpoint",
    "ProviderPreset",
    "UsernameFormat",
    "all_presets",
    "domain_of",
    "preset_by_id",
    "preset_for_domain",
    "preset_for_email",
    "preset_for_mx",
]


def _normalise_host(host: str) -> str:
    return host.strip().lower().rstrip(".")


def _index_by_domain(presets: Iterable[ProviderPreset]) -> dict[str, ProviderPreset]:
    index: dict[str, ProviderPreset] = {}
    for preset in presets:
        for domain in preset.domains:
            if domain in index:
                raise ValueError(f"domain {domain} belongs to {index[domain].id} and {preset.id}")
            index[domain] = preset
    return index


_PRESETS = PRESETS
_BY_DOMAIN = _index_by_domain(_PRESETS)
_BY_ID = {preset.id: preset for preset in _PRESETS}
if len(_BY_ID) != len(_PRESETS):
    raise ValueError("provider ids must be unique")


def all_presets() -> tuple[ProviderPreset, ...]:
    return _PRESETS


def preset_by_id(provider_id: str) -> ProviderPreset | None:
    return _BY_ID.get(provider_id)


def domain_of(address: str) -> str:
    """The normalised domain of an address (text after the last `@`), or '' if none."""
    _, at, domain = address.strip().rpartition("@")
    return _normalise_host(domain) if at else ""


def preset_for_domain(domain: str) -> ProviderPreset | None:
    return _BY_DOMAIN.get(_normalise_host(domain))


def preset_for_email(address: str) -> ProviderPreset | None:
    """The provider that owns the address's domain (gmail.com → Gmail), if it is in the table."""
    domain = domain_of(address)
    return _BY_DOMAIN.get(domain) if domain else None


def _mx_match(host: str) -> tuple[int, ProviderPreset] | None:
    best: tuple[int, ProviderPreset] | None = None
    for preset in _PRESETS:
        for suffix in preset.mx_suffixes:
            if (host == suffix or host.endswith("." + suffix)) and (
                best is None or len(suffix) > best[0]
            ):
                best = (len(suffix), preset)
    return best


def preset_for_mx(mx_hosts: Iterable[str]) -> ProviderPreset | None:
    """The provider behind a domain's MX hosts, given most preferred first.

    The longest matching suffix wins, so `olc.protection.outlook.com` (Outlook.com) is not
    mistaken for `protection.outlook.com` (Microsoft 365).
    """
    for host in mx_hosts:
        match = _mx_match(_normalise_host(host))
        if match is not None:
            return match[1]
    return None
