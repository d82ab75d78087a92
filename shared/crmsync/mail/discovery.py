"""Find the IMAP/SMTP servers for an address (SPEC E2), and say how they were found.

Order: the preset table by address domain; the domain's MX hosts onto a known provider;
RFC 6186 SRV records (implicit TLS preferred, RFC 8314); Mozilla autoconfig. Exchange
Autodiscover is listed as not tried until the Exchange connector adds it. Every DNS or HTTP
failure becomes a step in the result, never an exception: discovery only suggests settings,
and the user can always type them by hand ("advanced settings").
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import suppress
from typing import Literal
from urllib.parse import quote

import dns.exception
import dns.name
import dns.resolver
from dns.rdtypes.ANY.MX import MX
from dns.rdtypes.IN.SRV import SRV
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from crmsync.config import Settings
from crmsync.errors import ValidationFailedError
from crmsync.mail.autoconfig import AutoconfigError, parse_autoconfig
from crmsync.mail.fetch import FetchError, FetchPolicy, HttpGet, ResolvingHttpGetter
from crmsync.mail.hostnames import normalise_hostname
from crmsync.mail.providers import (
    ProviderPreset,
    UsernameFormat,
    preset_for_domain,
    preset_for_mx,
)
from crmsync.models.servers import Security, ServerEndpoint

StepMethod = Literal["preset", "mx", "srv", "autoconfig", "autodiscover"]
StepOutcome = Literal[
    "found",
    "not_found",
    "nxdomain",
    "no_answer",
    "not_offered",
    "unknown_provider",
    "timeout",
    "refused",
    "too_large",
    "invalid",
    "error",
    "skipped",
    "not_tried",
]
Source = Literal["preset", "mx", "srv", "autoconfig", "none"]

_SRV_IMAP: tuple[tuple[str, Security], ...] = (("_imaps._tcp", "ssl"), ("_imap._tcp", "starttls"))
_SRV_SMTP: tuple[tuple[str, Security], ...] = (
    ("_submissions._tcp", "ssl"),
    ("_submission._tcp", "starttls"),
)


class DiscoveryStep(BaseModel):
    method: StepMethod
    target: str
    outcome: StepOutcome
    detail: str = ""


class DiscoveryResult(BaseModel):
    """What discovery suggests; `found` only when both an IMAP and an SMTP server are known."""

    email: str
    domain: str
    found: bool
    source: Source
    provider_id: str | None = None
    provider_name: str | None = None
    imap: ServerEndpoint | None = None
    smtp: ServerEndpoint | None = None
    username_hint: UsernameFormat = "email"
    notes: list[str] = []
    steps: list[DiscoveryStep] = []


class DiscoveryLimits(BaseModel):
    """Time and size bounds: discovery runs inside an API request."""

    model_config = ConfigDict(frozen=True)

    dns_seconds: float = Field(default=2.0, gt=0)
    http_seconds: float = Field(default=5.0, gt=0)
    total_seconds: float = Field(default=10.0, gt=0)
    max_autoconfig_bytes: int = Field(default=64 * 1024, ge=1024)


class _Run:
    """One discover() call: its steps and its deadline."""

    def __init__(self, deadline: float, clock: Callable[[], float]) -> None:
        self.steps: list[DiscoveryStep] = []
        self._deadline = deadline
        self._clock = clock

    def left(self) -> float:
        return self._deadline - self._clock()

    def step(self, method: StepMethod, target: str, outcome: StepOutcome, detail: str = "") -> None:
        self.steps.append(
            DiscoveryStep(method=method, target=target, outcome=outcome, detail=detail)
        )


class MailDiscovery:
    """Discovery with its network dependencies injected, so tests can point it at loopback."""

    def __init__(
        self,
        resolver: dns.resolver.Resolver,
        policy: FetchPolicy,
        http_get: HttpGet | None = None,
        limits: DiscoveryLimits | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._resolver = resolver
        self._policy = policy
        self._limits = limits or DiscoveryLimits()
        self._http_get = http_get or ResolvingHttpGetter(
            resolver, policy, dns_seconds=self._limits.dns_seconds
        )
        self._clock = clock

    @classmethod
    def for_settings(
        cls, settings: Settings, resolver: dns.resolver.Resolver | None = None
    ) -> MailDiscovery:
        """The edge's constructor: the system resolver, and the fetch policy of `settings.env`."""
        return cls(resolver or dns.resolver.Resolver(), FetchPolicy.for_env(settings.env))

    def discover(self, email: str) -> DiscoveryResult:
        address, domain = _split_address(email)
        run = _Run(self._clock() + self._limits.total_seconds, self._clock)
        preset = preset_for_domain(domain)
        if preset is not None:
            run.step("preset", domain, "found", preset.id)
            return _from_preset(address, domain, "preset", preset, run)
        run.step("preset", domain, "not_found")
        mx_hosts = self._mx_hosts(run, domain)
        preset = preset_for_mx(mx_hosts)
        if preset is not None:
            return _from_preset(address, domain, "mx", preset, run)
        srv = self._srv(run, address, domain)
        if srv.found:
            return srv
        config = self._autoconfig(run, address, domain)
        if config.found:
            return config
        run.step("autodiscover", domain, "not_tried", "Exchange Autodiscover is not built yet")
        partial = srv if srv.imap or srv.smtp else config
        notes = list(partial.notes)
        if mx_hosts:
            notes.append(f"Mail for {domain} is received by {mx_hosts[0]}.")
        notes.append("Enter the IMAP and SMTP server settings manually.")
        return partial.model_copy(update={"notes": notes, "steps": run.steps})

    def _query(
        self, run: _Run, method: StepMethod, name: str, rdtype: str
    ) -> dns.resolver.Answer | None:
        target = f"{name} {rdtype}"
        left = run.left()
        if left <= 0:
            run.step(method, target, "skipped", "time budget spent")
            return None
        try:
            return self._resolver.resolve(
                f"{name}.", rdtype, lifetime=min(self._limits.dns_seconds, left), search=False
            )
        except dns.resolver.NXDOMAIN:
            run.step(method, target, "nxdomain")
        except dns.resolver.NoAnswer:
            run.step(method, target, "no_answer")
        except dns.exception.Timeout:
            run.step(method, target, "timeout", "the DNS server did not answer in time")
        except dns.resolver.NoNameservers as exc:
            run.step(method, target, "error", f"no DNS server could answer: {exc}"[:300])
        except dns.exception.DNSException as exc:
            run.step(method, target, "error", f"{type(exc).__name__}: {exc}"[:300])
        return None

    def _mx_hosts(self, run: _Run, domain: str) -> list[str]:
        answer = self._query(run, "mx", domain, "MX")
        if answer is None:
            return []
        records = sorted((rr for rr in answer if isinstance(rr, MX)), key=lambda r: r.preference)
        hosts = [rr.exchange.to_text(omit_final_dot=True) for rr in records]
        hosts = [host for host in hosts if host not in ("", ".")]
        target = f"{domain} MX"
        if not hosts:
            run.step("mx", target, "not_offered", "null MX: the domain accepts no mail")
            return []
        preset = preset_for_mx(hosts)
        if preset is None:
            run.step("mx", target, "unknown_provider", ", ".join(hosts[:5]))
        else:
            run.step("mx", target, "found", f"{preset.id} via {', '.join(hosts[:5])}")
        return hosts

    def _srv_endpoint(
        self, run: _Run, domain: str, services: tuple[tuple[str, Security], ...]
    ) -> ServerEndpoint | None:
        for service, security in services:
            name = f"{service}.{domain}"
            answer = self._query(run, "srv", name, "SRV")
            if answer is None:
                continue
            records = sorted(
                (rr for rr in answer if isinstance(rr, SRV)), key=lambda r: (r.priority, -r.weight)
            )
            usable = [rr for rr in records if rr.target != dns.name.root and rr.port > 0]
            if not usable:
                run.step("srv", f"{name} SRV", "not_offered", "target '.': service not offered")
                continue
            best = usable[0]
            host = normalise_hostname(best.target.to_text(omit_final_dot=True))
            if host is None:
                run.step("srv", f"{name} SRV", "invalid", "target is not a host name")
                continue
            endpoint = ServerEndpoint(host=host, port=best.port, security=security)
            run.step("srv", f"{name} SRV", "found", f"{host}:{best.port}")
            return endpoint
        return None

    def _srv(self, run: _Run, address: str, domain: str) -> DiscoveryResult:
        imap = self._srv_endpoint(run, domain, _SRV_IMAP)
        smtp = self._srv_endpoint(run, domain, _SRV_SMTP)
        notes = [
            f"{endpoint.host} (from DNS SRV) is outside {domain}: check it before signing in."
            for endpoint in (imap, smtp)
            if endpoint is not None and not _within(endpoint.host, domain)
        ]
        return DiscoveryResult(
            email=address,
            domain=domain,
            found=imap is not None and smtp is not None,
            source="srv" if imap or smtp else "none",
            imap=imap,
            smtp=smtp,
            notes=notes,
            steps=run.steps,
        )

    def _autoconfig(self, run: _Run, address: str, domain: str) -> DiscoveryResult:
        urls = (
            self._policy.url(
                f"autoconfig.{domain}",
                f"/mail/config-v1.1.xml?emailaddress={quote(address, safe='@')}",
            ),
            self._policy.url(domain, "/.well-known/autoconfig/mail/config-v1.1.xml"),
        )
        for url in urls:
            left = run.left()
            if left <= 0:
                run.step("autoconfig", url, "skipped", "time budget spent")
                continue
            try:
                body = self._http_get(
                    url,
                    timeout=min(self._limits.http_seconds, left),
                    max_bytes=self._limits.max_autoconfig_bytes,
                )
                config = parse_autoconfig(body, domain)
            except FetchError as exc:
                run.step("autoconfig", url, exc.outcome, exc.detail[:300])
                continue
            except AutoconfigError as exc:
                run.step("autoconfig", url, "invalid", str(exc)[:300])
                continue
            if config.imap is None or config.smtp is None:
                run.step("autoconfig", url, "not_offered", "no IMAP and SMTP servers in it")
                continue
            run.step("autoconfig", url, "found", f"{config.imap.host}, {config.smtp.host}")
            return DiscoveryResult(
                email=address,
                domain=domain,
                found=True,
                source="autoconfig",
                provider_name=config.provider_name,
                imap=config.imap,
                smtp=config.smtp,
                username_hint=config.username,
                notes=config.notes,
                steps=run.steps,
            )
        return DiscoveryResult(email=address, domain=domain, found=False, source="none")


def _within(host: str, domain: str) -> bool:
    return host == domain or host.endswith("." + domain)


def _split_address(email: str) -> tuple[str, str]:
    local, at, raw_domain = email.strip().rpartition("@")
    domain = normalise_hostname(raw_domain) if at and local else None
    if domain is None or len(email) > 320:
        raise ValidationFailedError("Enter a complete e-mail address, such as name@example.com.")
    return f"{local}@{domain}", domain


def _preset_notes(preset: ProviderPreset) -> list[str]:
    notes = [preset.notes] if preset.notes else []
    if preset.requires_app_password_with_2fa:
        notes.append("With two-step verification on, sign in with an app password.")
    if preset.oauth_recommended:
        notes.append("Signing in with the provider's OAuth2 is recommended.")
    return notes


def _from_preset(
    address: str, domain: str, source: Source, preset: ProviderPreset, run: _Run
) -> DiscoveryResult:
    imap: ServerEndpoint | None = None
    smtp: ServerEndpoint | None = None
    with suppress(ValidationError):  # a {domain} host past 253 characters: suggest nothing
        imap, smtp = preset.imap_for(domain), preset.smtp_for(domain)
    return DiscoveryResult(
        email=address,
        domain=domain,
        found=imap is not None and smtp is not None,
        source=source,
        provider_id=preset.id,
        provider_name=preset.name,
        imap=imap,
        smtp=smtp,
        username_hint=preset.username,
        notes=_preset_notes(preset),
        steps=run.steps,
    )
