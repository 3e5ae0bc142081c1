"""DATEX II v3.4 parking publications: the table (static) and the status (live), as XML with
conditional GET (a weak ``ETag`` of the content; ``If-None-Match`` answers 304)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from app.api.deps import SessionDep, SettingsDep
from app.standards.datex2 import publications
from app.standards.datex2.publications import Document

router = APIRouter(prefix="/datex2/v3", tags=["DATEX II"])
XML: dict[int | str, dict[str, Any]] = {200: {"content": {publications.MEDIA_TYPE: {}}, "description": "a D2 payload"},
       304: {"description": "not modified since the ETag given in If-None-Match"}}
Spaces = Annotated[Literal["true", "false"], Query(description="`true`: each space too")]


@router.get("/parking-table", summary="ParkingTablePublication: facilities and their supply", responses=XML)
async def parking_table(request: Request, session: SessionDep, settings: SettingsDep,
                        spaces: Spaces = "false") -> Response:
    document = await publications.parking_table(session, settings=settings, spaces=spaces == "true")
    return _conditional(request, document)


@router.get("/parking-status", summary="ParkingStatusPublication: live vacant and occupied spaces", responses=XML)
async def parking_status(request: Request, session: SessionDep, settings: SettingsDep,
                         spaces: Spaces = "false") -> Response:
    document = await publications.parking_status(session, settings=settings, spaces=spaces == "true")
    return _conditional(request, document)


def _conditional(request: Request, document: Document) -> Response:
    headers = {"ETag": document.etag, "Cache-Control": "no-cache"}
    asked = {tag.strip() for tag in request.headers.get("if-none-match", "").split(",")}
    if document.etag in asked or document.etag.removeprefix("W/") in asked or "*" in asked:
        return Response(status_code=304, headers=headers)
    return Response(document.body, media_type=publications.MEDIA_TYPE, headers=headers)
