"""Admin management of parking rules: time limits and no-parking hours on facilities, spaces, zones."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from pydantic import BaseModel

from app.api import paging
from app.api.deps import SessionDep, SettingsDep, require_roles
from app.api.openapi import ERROR_RESPONSES
from app.core.errors import InvalidInput
from app.enforcement import rules as rules_service
from app.enforcement.rules import RuleSpec
from app.keys.service import Principal

router = APIRouter(prefix="/v1/admin/rules", tags=["admin"])

Admin = Annotated[Principal, Depends(require_roles("admin"))]
MAX_LIMIT = 1000
RuleId = Annotated[int, Path(ge=1, le=2**63 - 1)]


class RuleOut(BaseModel):
    id: int
    facility_id: str | None
    space_id: str | None
    zone: dict[str, Any] | None
    kind: Literal["time_limit", "no_parking"]
    max_stay_minutes: int | None
    no_parking: bool
    days: str
    from_: str
    to: str
    timezone: str
    note: str | None

    model_config = {"populate_by_name": True, "alias_generator": lambda name: name.rstrip("_")}


@router.get("", response_model=list[RuleOut], summary="List parking rules, by id, paged",
            responses={200: {"headers": paging.OPENAPI_HEADERS}, **ERROR_RESPONSES})
async def list_rules(
    request: Request, response: Response, session: SessionDep, _: Admin,
    facility_id: Annotated[str | None, Query(max_length=100)] = None,
    space_id: Annotated[str | None, Query(max_length=100)] = None,
    kind: Literal["time_limit", "no_parking"] | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 500,
    cursor: Annotated[str | None, Query(max_length=paging.MAX_CURSOR, description=paging.CURSOR_DESCRIPTION)] = None,
) -> list[dict[str, Any]]:
    """At most ``limit`` rules; ``Link: rel="next"`` while more remain, ``X-Total-Count``."""
    after = paging.decode_cursor(cursor)
    if after is not None and not isinstance(after, int):
        raise InvalidInput("cursor: not a cursor of this list (take it from the Link header)")
    rows, total = await rules_service.list_rules(session, facility_id=facility_id, space_id=space_id, kind=kind,
                                                 limit=limit + 1, after_id=after)
    more, rows = len(rows) > limit, rows[:limit]
    response.headers.update(paging.headers(request, total=total, **(
        {"cursor": paging.encode_cursor(rows[-1]["id"])} if more else {})))
    return rows


@router.post("", status_code=201, response_model=RuleOut, summary="Create a parking rule",
             responses={**ERROR_RESPONSES})
async def create_rule(body: RuleSpec, session: SessionDep, settings: SettingsDep, _: Admin) -> dict[str, Any]:
    return await rules_service.create_rule(session, spec=body, area=settings.service_area_bbox)


@router.get("/{rule_id}", response_model=RuleOut, summary="One parking rule", responses={**ERROR_RESPONSES})
async def get_rule(rule_id: RuleId, session: SessionDep, _: Admin) -> dict[str, Any]:
    return await rules_service.get_rule(session, rule_id=rule_id)


@router.delete("/{rule_id}", status_code=204, response_class=Response, summary="Delete a parking rule",
               responses={**ERROR_RESPONSES})
async def delete_rule(rule_id: RuleId, session: SessionDep, _: Admin) -> Response:
    await rules_service.delete_rule(session, rule_id=rule_id)
    return Response(status_code=204)
