"""Gate passages of counted lots: ``POST /v1/operators/{operator_id}/facilities/{facility_id}/passages``.

One passage or a list, the body of the MQTT ``…/passage`` message, through the same
validation and writer (``app/passages/``). A rejection is stored (plates blanked) and answered
``404`` unknown facility, ``403`` another operator's, ``422`` otherwise; in a list, invalid
passages are rejected one by one and reported in the ``202`` answer.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Request
from pydantic import BaseModel, Field

from app.api.deps import SessionDep, SettingsDep, require_operator_of, require_roles
from app.api.errors import error_response, status_for
from app.api.openapi import ERROR_RESPONSES
from app.core.errors import DomainError
from app.keys.service import Principal
from app.passages import push

router = APIRouter(prefix="/v1/operators/{operator_id}", tags=["operators"])

OperatorKey = Annotated[Principal, Depends(require_roles("operator"))]
Id = Annotated[str, Path(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$")]


class PassageIn(BaseModel):
    """A gate passage (CONTRACT.md "Real inputs"); plates are hashed on arrival, never stored."""

    direction: Literal["in", "out"] | None = Field(description="left out only by a pure void (void_of)")
    observed_at: datetime = Field(description="RFC 3339 with an offset")
    passage_id: str | None = Field(default=None, description="the gate system's id; derived from the content if absent")
    plate: str | None = Field(default=None, max_length=20, description="licence plate; only its keyed hash is kept")
    lane: str | None = Field(default=None, max_length=50)
    void_of: str | None = Field(default=None, description="passage_id this one voids or corrects")


class RejectedPassage(BaseModel):
    index: int
    error: str
    detail: str


class PassagesAccepted(BaseModel):
    accepted: int = Field(description="new passages stored")
    duplicates: int = Field(description="passages already stored (re-deliveries), counted once")
    voided: int = Field(description="passages voided by this request")
    rejected: list[RejectedPassage] = Field(description="invalid passages of a list, by index")


BODY = {"requestBody": {"required": True, "content": {"application/json": {"schema": {
    "oneOf": [PassageIn.model_json_schema(), {"type": "array", "items": PassageIn.model_json_schema(),
                                              "minItems": 1, "maxItems": 1000}]}}}}}


@router.post(
    "/facilities/{facility_id}/passages", status_code=202, response_model=PassagesAccepted,
    summary="Push gate passages of a counted lot (one or a list; same body and rules as MQTT)",
    openapi_extra=BODY, responses={**ERROR_RESPONSES},
)
async def push_passages(
    operator_id: Id, facility_id: Id, request: Request, principal: OperatorKey,
    session: SessionDep, settings: SettingsDep,
) -> Any:
    require_operator_of(operator_id, principal)
    try:
        result = await push.push_passages(session, settings=settings, operator_id=operator_id,
                                          facility_id=facility_id, body=await request.body())
    except DomainError as exc:  # answered, not raised: the stored rejection commits with the request
        return error_response(status_for(exc), exc.kind, exc.detail)
    request.app.state.facility_cache.invalidate()  # this process's snapshot is out of date
    return PassagesAccepted(**result.__dict__)
