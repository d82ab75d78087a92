"""The automatic linking rule (SPEC L1, L2), in one place.

- Every participant address is looked up among the CRM persons' addresses (any of a person's
  addresses, case-insensitively). The account's own address and every address of a company
  user are never contacts.
- The thread links to every matched person (`auto:person`).
- In *automatic* deal mode it also links to one open deal of a matched person
  (`auto:deal`): the deal it is already linked to automatically while that deal is still
  open and still a matched person's; otherwise the open deal updated most recently (ties:
  the smaller id). *Manual* mode links no deal automatically, and neither does a thread
  the user linked to a deal by hand.
- A manual link is kept as it is; a manual unlink (tombstone) blocks the automatic link to
  the same record. Automatic links that no longer follow from the rule are removed.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from crmsync.models.deals import Deal
from crmsync.models.threads import LinkRecord


@dataclass(frozen=True)
class LinkPlan:
    keep: list[LinkRecord]
    drop: list[LinkRecord]

    @property
    def active(self) -> list[LinkRecord]:
        return [link for link in self.keep if link.active]


def plan_links(
    existing: Sequence[LinkRecord],
    person_ids: Iterable[str],
    open_deals: Sequence[Deal],
    deal_mode: str,
) -> LinkPlan:
    manual = {link.target: link for link in existing if link.manual}
    wanted: dict[tuple[str, str], LinkRecord] = {}
    for person_id in sorted(set(person_ids)):
        wanted[("person", person_id)] = LinkRecord(
            type="person", id=person_id, reason="auto:person"
        )
    deal = _chosen_deal(existing, open_deals) if deal_mode == "automatic" else None
    if deal is not None:
        wanted[("deal", deal.id)] = LinkRecord(type="deal", id=deal.id, reason="auto:deal")
    keep = list(manual.values())
    keep += [link for target, link in wanted.items() if target not in manual]
    kept = {link.target for link in keep}
    drop = [link for link in existing if not link.manual and link.target not in kept]
    return LinkPlan(keep=keep, drop=drop)


def _chosen_deal(existing: Sequence[LinkRecord], open_deals: Sequence[Deal]) -> Deal | None:
    manual_deals = [link for link in existing if link.manual and link.type == "deal"]
    if any(link.active for link in manual_deals):
        return None  # the user chose the deal of this conversation
    blocked = {link.id for link in manual_deals}
    candidates = [deal for deal in open_deals if deal.id not in blocked]
    if not candidates:
        return None
    current = {link.id for link in existing if link.reason == "auto:deal"}
    for deal in candidates:
        if deal.id in current:
            return deal
    return min(candidates, key=lambda deal: (-deal.updated_at.timestamp(), deal.id))
