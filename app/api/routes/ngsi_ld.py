"""NGSI-LD (ETSI GS CIM 009) for the parking types: entities, types, @context documents and
subscriptions. Errors are ProblemDetails (``type``, ``title``, ``status``, ``detail`` and the
citypark ``error`` word); entity writes answer 405 OperationNotSupported."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Annotated, Any
from urllib.parse import unquote_plus

import orjson
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from fastapi.routing import APIRoute

from app.api import errors as api_errors
from app.api import hot
from app.api.deps import SessionDep, SettingsDep, require_roles, transaction
from app.assignments.free_index import FreeIndex
from app.core.errors import DomainError
from app.core.settings import Settings
from app.keys.service import Principal
from app.standards.ngsi_ld import errors, geo, query, render, service, subscriptions
from app.standards.ngsi_ld.entities import TYPES, Filters
from app.standards.ngsi_ld.errors import NgsiLdError, OperationNotSupported


class ProblemRoute(APIRoute):
    """Every error of these routes, domain or NGSI-LD, leaves as a ProblemDetails."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        return problems(super().get_route_handler())


def problems(handler: Callable[[Request], Coroutine[Any, Any, Response]]
             ) -> Callable[[Request], Coroutine[Any, Any, Response]]:
    """``handler`` with its domain and NGSI-LD errors answered as ProblemDetails."""

    async def route(request: Request) -> Response:
        try:
            return await handler(request)
        except NgsiLdError as exc:
            return problem(exc.status, exc.problem_details())
        except DomainError as exc:
            status = api_errors.status_for(exc)
            name = {401: "Unauthorized", 403: "Forbidden", 404: "ResourceNotFound",
                    409: "AlreadyExists"}.get(status, "BadRequestData")
            return problem(status, {"type": errors.ERRORS + name, "title": name, "status": status,
                                    "detail": exc.detail, "error": exc.kind})

    route.__name__ = getattr(handler, "__name__", "route")
    return route


def problem(status: int, body: dict[str, Any]) -> Response:
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return Response(orjson.dumps(body), status_code=status, media_type="application/json", headers=headers)


router = APIRouter(prefix="/ngsi-ld", tags=["NGSI-LD"], route_class=ProblemRoute)
_PROBLEM = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
ENTITY_CONTENT: dict[str, Any] = {"application/json": {}, "application/ld+json": {}, "application/geo+json": {}}
RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"content": ENTITY_CONTENT},
    400: {"description": "BadRequestData / InvalidRequest (ProblemDetails)", "content": _PROBLEM},
    404: {"description": "ResourceNotFound (ProblemDetails)", "content": _PROBLEM},
    406: {"description": "Accept cannot be served (ProblemDetails)", "content": _PROBLEM},
}
Text = Annotated[str | None, Query()]
Subscriber = Annotated[Principal, Depends(require_roles("operator"))]


def _index(request: Request, settings: Settings) -> FreeIndex | None:
    """The process's free-space index for spot queries (None: PostGIS answers)."""
    runtime = getattr(request.app.state, "matching", None)
    return runtime.current_index() if settings.ngsi_index and runtime is not None else None


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/")


_ENTITY_PARAMS = ("type", "id", "idPattern", "attrs", "q", "georel", "geometry", "coordinates", "geoproperty",
                  "limit", "offset", "count", "options", "format")


async def answer_query_entities(request: Request) -> Response:
    """The one handler of ``GET /ngsi-ld/v1/entities`` (a hot route: ``app.api.hot``; a ``near``
    query on spots is answered from memory, so FastAPI's per-request machinery would be most
    of its cost)."""
    params = request.query_params
    p = {name: params.get(name) for name in _ENTITY_PARAMS}
    settings: Settings = request.app.state.settings
    media = render.negotiate(request.headers.get("accept"))
    key_values = render.parse_options(p["options"], p["format"])
    off, lim = service.parse_window(p["offset"], p["limit"])
    if p["count"] not in (None, "true", "false"):
        raise errors.BadRequestData("count is true or false")
    asked = service.EntityQuery(
        types=service.parse_types(p["type"]),
        filters=Filters(ids=service.parse_ids(p["id"]), id_pattern=service.parse_pattern(p["idPattern"]),
                        geo=geo.parse(p["georel"], p["geometry"], p["coordinates"], p["geoproperty"])),
        q=query.parse(p["q"]) if p["q"] else None, attrs=_attrs(p["attrs"]), offset=off, limit=lim,
        count=p["count"] == "true")
    index = _index(request, settings)
    if service.from_index(asked, index):  # spots from memory: no session, no transaction
        assert index is not None
        page = service.find_in_index(asked, index)
    else:
        async with transaction(request) as session:
            page = await service.find(session, settings=settings, request=asked, index=index)
    base = _base(request)
    body = render.render_many(page.rows, media=media, key_values=key_values, attrs=asked.attrs, base=base)
    headers = {"Link": ", ".join(_links(request, page, off, lim, base))}
    if page.total is not None:
        headers["NGSILD-Results-Count"] = headers["X-Total-Count"] = str(page.total)
    return Response(body, media_type=media, headers=headers)


async def query_entities(
    type: Text = None, id: Text = None, idPattern: Text = None, attrs: Text = None, q: Text = None,
    georel: Text = None, geometry: Text = None, coordinates: Text = None, geoproperty: Text = None,
    limit: Text = None, offset: Text = None, count: Text = None, options: Text = None, format: Text = None,
) -> Response:
    """OpenAPI description only: requests are answered by :func:`answer_query_entities`."""
    raise NotImplementedError


router.add_api_route("/v1/entities", query_entities, methods=["GET"], summary="Query parking entities",
                     responses=RESPONSES,
                     route_class_override=hot.hot_route(problems(answer_query_entities)))


@router.get("/v1/entities/{entity_id}", summary="One parking entity", responses=RESPONSES)
async def retrieve_entity(request: Request, entity_id: str, session: SessionDep, settings: SettingsDep,
                          attrs: Text = None, options: Text = None, format: Text = None) -> Response:
    media = render.negotiate(request.headers.get("accept"))
    key_values = render.parse_options(options, format)
    row = await service.get(session, settings=settings, entity_id=entity_id, index=_index(request, settings))
    body = render.render_one(row, media=media, key_values=key_values, attrs=_attrs(attrs), base=_base(request))
    return Response(body, media_type=media, headers={"Link": render.link_header(_base(request))})


@router.get("/v1/types", summary="The entity types citypark has", responses=RESPONSES)
async def entity_types(request: Request, session: SessionDep, settings: SettingsDep,
                       details: Text = None) -> Response:
    media = render.negotiate(request.headers.get("accept"))
    counts = await service.type_counts(session, settings=settings)
    body: Any
    if details == "true":
        body = [{"id": f"https://smartdatamodels.org/dataModel.Parking/{t}", "type": "EntityType",
                 "typeName": t, "attributeNames": sorted(subscriptions.ATTRIBUTES[t])} for t in counts]
    else:
        body = {"id": "urn:ngsi-ld:EntityTypeList:citypark", "type": "EntityTypeList", "typeList": list(counts)}
    if media == render.LD:
        context = render.context_url(_base(request))
        body = [{**b, "@context": context} for b in body] if isinstance(body, list) else {**body, "@context": context}
    return Response(orjson.dumps(body), media_type=render.LD if media == render.LD else render.JSON,
                    headers={"Link": render.link_header(_base(request))})


@router.get("/v1/types/{type_name}", summary="One entity type", responses=RESPONSES)
async def entity_type(request: Request, type_name: str, session: SessionDep, settings: SettingsDep) -> Response:
    name = type_name.removeprefix("https://smartdatamodels.org/dataModel.Parking/")
    if name not in TYPES:
        raise errors.ResourceNotFound(f"no entity type {type_name}")
    counts = await service.type_counts(session, settings=settings)
    body = {"id": f"https://smartdatamodels.org/dataModel.Parking/{name}", "type": "EntityTypeInfo",
            "typeName": name, "entityCount": counts.get(name, 0),
            "attributeDetails": [{"id": a, "type": "Attribute", "attributeName": a}
                                 for a in sorted(subscriptions.ATTRIBUTES[name])]}
    return Response(orjson.dumps(body), media_type=render.JSON, headers={"Link": render.link_header(_base(request))})


@router.get("/contexts/{name}", summary="The JSON-LD @context documents (served here, never fetched)",
            responses={200: {"content": {"application/ld+json": {}}}, 404: RESPONSES[404]})
async def context(request: Request, name: str) -> Response:
    document = render.context_document(name, _base(request))
    if document is None:
        raise errors.ResourceNotFound(f"no @context {name}")
    return Response(document, media_type=render.LD, headers={"Cache-Control": "public, max-age=3600"})


# --- subscriptions ------------------------------------------------------------------------------


@router.post("/v1/subscriptions", status_code=201, summary="Subscribe to changes (operator or admin key)",
             responses={201: {"description": "created; Location names it"}, **RESPONSES})
async def create_subscription(request: Request, session: SessionDep, settings: SettingsDep,
                              principal: Subscriber) -> Response:
    try:
        body = orjson.loads(await request.body())
    except orjson.JSONDecodeError:
        raise errors.InvalidRequest("the body is not JSON") from None
    created = await subscriptions.create(session, settings=settings, principal=principal, body=body)
    return Response(status_code=201, headers={"Location": f"/ngsi-ld/v1/subscriptions/{created}"})


@router.get("/v1/subscriptions", summary="Your subscriptions", responses=RESPONSES)
async def list_subscriptions(request: Request, session: SessionDep, principal: Subscriber,
                             limit: Text = None, offset: Text = None) -> Response:
    off, lim = service.parse_window(offset, limit)
    items, total = await subscriptions.list_for(session, principal=principal, offset=off, limit=lim)
    headers = {"X-Total-Count": str(total), "NGSILD-Results-Count": str(total),
               "Link": render.link_header(_base(request))}
    if off + len(items) < total:
        headers["Link"] += f', <{_page_url(request, off + lim, lim)}>; rel="next"'
    return Response(orjson.dumps(items), media_type=render.JSON, headers=headers)


@router.get("/v1/subscriptions/{subscription_id}", summary="One subscription", responses=RESPONSES)
async def get_subscription(request: Request, subscription_id: str, session: SessionDep,
                           principal: Subscriber) -> Response:
    item = await subscriptions.get(session, principal=principal, subscription_id=subscription_id)
    return Response(orjson.dumps(item), media_type=render.JSON, headers={"Link": render.link_header(_base(request))})


@router.delete("/v1/subscriptions/{subscription_id}", status_code=204, summary="Unsubscribe",
               responses={204: {"description": "deleted"}, **RESPONSES})
async def delete_subscription(subscription_id: str, session: SessionDep, principal: Subscriber) -> Response:
    await subscriptions.delete(session, principal=principal, subscription_id=subscription_id)
    return Response(status_code=204)


# --- writes: not supported (citypark's inventory and sensors are the source of truth) --------

_WRITE_PATHS = ("/v1/entities", "/v1/entities/{entity_id}", "/v1/entities/{entity_id}/attrs",
                "/v1/entities/{entity_id}/attrs/{attr}", "/v1/entityOperations/{operation}")


async def _not_supported(request: Request) -> Response:
    raise OperationNotSupported(f"{request.method} {request.url.path}: citypark's NGSI-LD interface is read-only; "
                                "inventory and occupancy come from the operators' feeds")


for _path in _WRITE_PATHS:
    router.add_api_route(_path, _not_supported, methods=["POST", "PUT", "PATCH", "DELETE"], include_in_schema=False)
router.add_api_route("/v1/subscriptions/{subscription_id}", _not_supported, methods=["PATCH", "PUT"],
                     include_in_schema=False)


def _attrs(raw: str | None) -> frozenset[str] | None:
    if raw is None:
        return None
    names = frozenset(query._short(a.strip()) for a in raw.split(",") if a.strip())
    if not names:
        raise errors.BadRequestData("attrs: no attribute named")
    return names


def _links(request: Request, page: service.Page, offset: int, limit: int, base: str) -> list[str]:
    links = [render.link_header(base)]
    if page.more and limit > 0:
        links.append(f'<{_page_url(request, offset + limit, limit)}>; rel="next"')
    if offset > 0 and limit > 0:
        links.append(f'<{_page_url(request, max(0, offset - limit), limit)}>; rel="prev"')
    return links


def _page_url(request: Request, offset: int, limit: int) -> str:
    """This request's URL with another window: the caller's parameters as sent (no re-encoding)."""
    raw = request.scope["query_string"].decode("latin-1")
    kept = [part for part in raw.split("&")
            if part and unquote_plus(part.partition("=")[0]) not in ("offset", "limit")]
    kept += [f"offset={offset}", f"limit={limit}"]
    return f"{request.scope.get('root_path', '')}{request.scope['path']}?{'&'.join(kept)}"
