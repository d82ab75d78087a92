"""The CRM directory over HTTP: users, persons, organizations, deals, leads, projects,
activities. Handlers parse, call DirectoryService, answer; the rules live in the service."""

from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Query

from crmsync.http.common import Cursor, Limit, caller, created, new_router, no_content
from crmsync.models.activities import Activity, ActivityCreate, ActivityUpdate, UtcTime
from crmsync.models.calendar_sync import ActivityListItem, CalendarEventLink
from crmsync.models.deals import (
    Deal,
    DealCreate,
    DealStatus,
    DealUpdate,
    Lead,
    LeadCreate,
    LeadUpdate,
    Project,
    ProjectCreate,
    ProjectUpdate,
)
from crmsync.models.directory import (
    Organization,
    OrganizationCreate,
    OrganizationUpdate,
    Person,
    PersonCreate,
    PersonUpdate,
    User,
    UserCreate,
    UserUpdate,
)
from crmsync.models.pages import Page
from crmsync.runtime import current_runtime
from crmsync.services.directory import DirectoryService

router = new_router()

Email = Annotated[
    str | None, Query(max_length=254, description="Only persons with this address (any case).")
]
PersonFilter = Annotated[str | None, Query(max_length=128, description="Only this person's.")]
StatusFilter = Annotated[DealStatus | None, Query(description="Only deals in this status.")]
OwnerFilter = Annotated[str | None, Query(max_length=128, description="Only this user's.")]
Since = Annotated[UtcTime | None, Query(description="Starting at or after this time.")]
Until = Annotated[UtcTime | None, Query(description="Starting before this time.")]


def _directory() -> DirectoryService:
    return current_runtime().directory()


# ---------------------------------------------------------------- users


@router.get("/v1/users")
def list_users(limit: Limit = 25, cursor: Cursor = None) -> Page[User]:
    return _directory().list(caller(router), User, limit, cursor)


@router.post("/v1/users", status_code=201)
def create_user(user: UserCreate) -> Response[User]:
    return created(_directory().create(caller(router), User, user))


@router.get("/v1/users/<user_id>")
def get_user(user_id: str) -> User:
    return _directory().get(caller(router), User, user_id)


@router.patch("/v1/users/<user_id>")
def update_user(user_id: str, patch: UserUpdate) -> User:
    return _directory().update(caller(router), User, user_id, patch)


# ---------------------------------------------------------------- persons


@router.get("/v1/persons")
def list_persons(email: Email = None, limit: Limit = 25, cursor: Cursor = None) -> Page[Person]:
    if email is not None:
        return _directory().persons_with_email(caller(router), email, limit, cursor)
    return _directory().list(caller(router), Person, limit, cursor)


@router.post("/v1/persons", status_code=201)
def create_person(person: PersonCreate) -> Response[Person]:
    return created(_directory().create(caller(router), Person, person))


@router.get("/v1/persons/<person_id>")
def get_person(person_id: str) -> Person:
    return _directory().get(caller(router), Person, person_id)


@router.patch("/v1/persons/<person_id>")
def update_person(person_id: str, patch: PersonUpdate) -> Person:
    return _directory().update(caller(router), Person, person_id, patch)


@router.delete("/v1/persons/<person_id>", status_code=204)
def delete_person(person_id: str) -> Response[str]:
    _directory().delete(caller(router), Person, person_id)
    return no_content()


# ---------------------------------------------------------------- organizations


@router.get("/v1/organizations")
def list_organizations(limit: Limit = 25, cursor: Cursor = None) -> Page[Organization]:
    return _directory().list(caller(router), Organization, limit, cursor)


@router.post("/v1/organizations", status_code=201)
def create_organization(organization: OrganizationCreate) -> Response[Organization]:
    return created(_directory().create(caller(router), Organization, organization))


@router.get("/v1/organizations/<organization_id>")
def get_organization(organization_id: str) -> Organization:
    return _directory().get(caller(router), Organization, organization_id)


@router.patch("/v1/organizations/<organization_id>")
def update_organization(organization_id: str, patch: OrganizationUpdate) -> Organization:
    return _directory().update(caller(router), Organization, organization_id, patch)


@router.delete("/v1/organizations/<organization_id>", status_code=204)
def delete_organization(organization_id: str) -> Response[str]:
    _directory().delete(caller(router), Organization, organization_id)
    return no_content()


# ---------------------------------------------------------------- deals


@router.get("/v1/deals")
def list_deals(
    person_id: PersonFilter = None,
    status: StatusFilter = None,
    limit: Limit = 25,
    cursor: Cursor = None,
) -> Page[Deal]:
    return _directory().deals(caller(router), person_id, status, limit, cursor)


@router.post("/v1/deals", status_code=201)
def create_deal(deal: DealCreate) -> Response[Deal]:
    return created(_directory().create(caller(router), Deal, deal))


@router.get("/v1/deals/<deal_id>")
def get_deal(deal_id: str) -> Deal:
    return _directory().get(caller(router), Deal, deal_id)


@router.patch("/v1/deals/<deal_id>")
def update_deal(deal_id: str, patch: DealUpdate) -> Deal:
    return _directory().update(caller(router), Deal, deal_id, patch)


@router.delete("/v1/deals/<deal_id>", status_code=204)
def delete_deal(deal_id: str) -> Response[str]:
    _directory().delete(caller(router), Deal, deal_id)
    return no_content()


# ---------------------------------------------------------------- leads


@router.get("/v1/leads")
def list_leads(limit: Limit = 25, cursor: Cursor = None) -> Page[Lead]:
    return _directory().list(caller(router), Lead, limit, cursor)


@router.post("/v1/leads", status_code=201)
def create_lead(lead: LeadCreate) -> Response[Lead]:
    return created(_directory().create(caller(router), Lead, lead))


@router.get("/v1/leads/<lead_id>")
def get_lead(lead_id: str) -> Lead:
    return _directory().get(caller(router), Lead, lead_id)


@router.patch("/v1/leads/<lead_id>")
def update_lead(lead_id: str, patch: LeadUpdate) -> Lead:
    return _directory().update(caller(router), Lead, lead_id, patch)


@router.delete("/v1/leads/<lead_id>", status_code=204)
def delete_lead(lead_id: str) -> Response[str]:
    _directory().delete(caller(router), Lead, lead_id)
    return no_content()


# ---------------------------------------------------------------- projects


@router.get("/v1/projects")
def list_projects(limit: Limit = 25, cursor: Cursor = None) -> Page[Project]:
    return _directory().list(caller(router), Project, limit, cursor)


@router.post("/v1/projects", status_code=201)
def create_project(project: ProjectCreate) -> Response[Project]:
    return created(_directory().create(caller(router), Project, project))


@router.get("/v1/projects/<project_id>")
def get_project(project_id: str) -> Project:
    return _directory().get(caller(router), Project, project_id)


@router.patch("/v1/projects/<project_id>")
def update_project(project_id: str, patch: ProjectUpdate) -> Project:
    return _directory().update(caller(router), Project, project_id, patch)


@router.delete("/v1/projects/<project_id>", status_code=204)
def delete_project(project_id: str) -> Response[str]:
    _directory().delete(caller(router), Project, project_id)
    return no_content()


# ---------------------------------------------------------------- activities


@router.get("/v1/activities")
def list_activities(
    owner_id: OwnerFilter = None,
    since: Since = None,
    until: Until = None,
    limit: Limit = 25,
    cursor: Cursor = None,
) -> Page[ActivityListItem]:
    """Earliest start first; since/until bound the start time. Each with its calendar event
    (`calendar_event`, null when it has none): one BatchGetItem for the page."""
    principal = caller(router)
    page = _directory().activities(principal, owner_id, since, until, limit, cursor)
    mappings = current_runtime().calendar_sync_store.mappings(
        principal.company_id, [a.id for a in page.items]
    )
    items = []
    for activity in page.items:
        mapping = mappings.get(activity.id)
        link = (
            CalendarEventLink(account_id=mapping.account_id, uid=mapping.uid) if mapping else None
        )
        items.append(ActivityListItem(**activity.model_dump(), calendar_event=link))
    return Page(items=items, next_cursor=page.next_cursor)


@router.post("/v1/activities", status_code=201)
def create_activity(activity: ActivityCreate) -> Response[Activity]:
    return created(_directory().create(caller(router), Activity, activity))


@router.get("/v1/activities/<activity_id>")
def get_activity(activity_id: str) -> Activity:
    return _directory().get(caller(router), Activity, activity_id)


@router.patch("/v1/activities/<activity_id>")
def update_activity(activity_id: str, patch: ActivityUpdate) -> Activity:
    return _directory().update(caller(router), Activity, activity_id, patch)


@router.delete("/v1/activities/<activity_id>", status_code=204)
def delete_activity(activity_id: str) -> Response[str]:
    _directory().delete(caller(router), Activity, activity_id)
    return no_content()
