"""``citypark notify``: delivers NGSI-LD notifications, in its own process.

Why a process of its own: deliveries wait on other people's servers. In the API's lifespan a
slow or dead endpoint would hold connections, memory and event-loop time of the processes
that answer drivers; in ingest it would hold up commits. Here it only ``LISTEN``s: ingest's
``NOTIFY space_state`` (after each committed batch, the ids of spaces whose occupancy
changed), ``NOTIFY facility_state`` (gate-counted facilities whose count moved: count
messages, passages, voids) and ``ngsi_subscriptions`` (the table's trigger), so neither ingest nor the API waits
for it, and it scales or restarts on its own (deploy/docker-compose.yml runs one).

Each pass (at most every ``PASS_S``) turns the changed spaces and facilities into the entities
they touch (the spot, its facility, the facility's groups), diffs each against the last state seen,
and matches the changes to the active subscriptions (type and id / idPattern, then
``watchedAttributes``, ``q`` and ``geoQ``; a numpy bounding-box prefilter keeps a thousand
geo-subscriptions cheap). Every subscription has at most one delivery in flight; changes that
arrive meanwhile, or within its ``throttling``, are merged (latest state per entity) into its
next notification. A failed delivery is retried with exponential backoff
(``CITYPARK_NOTIFY_ATTEMPTS`` tries), its endpoint re-checked against the SSRF rules first;
``timesSent``, ``lastNotification``, ``lastSuccess``, ``lastFailure`` are written back once a
second. Expired subscriptions are marked ``expired`` and no longer served.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import asyncpg
import numpy as np
import orjson
import shapely
from shapely.geometry import shape

from app.core.db import create_engine, create_sessionmaker
from app.core.geo import distance_m
from app.core.settings import Settings
from app.core.times import iso_utc
from app.standards.ngsi_ld import entities, geo, http_post, query, render, service, ssrf
from app.standards.ngsi_ld.entities import Filters, Row
from matching.geo import EARTH_RADIUS_M, haversine_m, least_dot, unit_xyz

log = logging.getLogger(__name__)
PASS_S = 0.1
# a subscription without throttling still gets at most one notification per this many seconds:
# changes within it are merged, which bounds the POSTs to (subscriptions / COALESCE_S) per second
COALESCE_S = 0.5
RELOAD_S = 30.0
FLUSH_S = 1.0
BACKOFF_S = (0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0)
MAX_IN_FLIGHT = 200
DEG_PER_M = 1 / 111_000
LOCK_KEY = 0x6E677369  # "ngsi"
SSRF_RECHECK_S = 10.0  # an endpoint's address is checked again at most this long after the last check


@dataclass
class Sub:
    id: str
    types: frozenset[str]
    selectors: list[dict[str, str]]
    watched: frozenset[str] | None
    q: query.Query | None
    geo: geo.GeoQuery | None
    shape: Any
    bbox: tuple[float, float, float, float]
    uri: str
    accept: str
    key_values: bool
    attrs: frozenset[str] | None
    throttling_s: float
    expires_at: datetime | None
    pending: dict[str, Row] = field(default_factory=dict)
    busy: bool = False
    last_sent: float = 0.0


@dataclass
class Stats:
    sent: int = 0
    failed: int = 0
    last_notification: datetime | None = None
    last_success: datetime | None = None
    last_failure: datetime | None = None
    reason: str | None = None


class Notifier:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.allow = ssrf.AllowList.parse(settings.notify_allow)
        self.engine = create_engine(settings, pool_size=2)
        self.sessions = create_sessionmaker(self.engine)
        self.subs: dict[str, Sub] = {}
        self.last: dict[str, dict[str, Any]] = {}
        self.changed: set[str] = set()
        self.changed_facilities: set[str] = set()
        self.reload_wanted = True
        self.stats: dict[str, Stats] = {}
        self.wake = asyncio.Event()
        self.http = http_post.Poster(timeout_s=settings.notify_timeout_s)
        self.in_flight = asyncio.Semaphore(MAX_IN_FLIGHT)
        self.tasks: set[asyncio.Task[None]] = set()
        self.listener: asyncpg.Connection | None = None
        self.stopping = False
        self.ready = asyncio.Event()
        # geo prefilter: one row per subscription with a geoQ (min lon, min lat, max lon, max lat)
        self._boxes = np.zeros((0, 4))
        self._boxed: list[Sub] = []
        self._checked: dict[str, float] = {}  # endpoint URI → when it last passed the SSRF rules
        self._near: list[Sub] = []
        self._near_xyr = np.zeros((0, 3))
        self._near_xyz = np.zeros((0, 3))
        self._near_dot = np.zeros(0)
        self._unboxed: list[Sub] = []

    # --- lifecycle -------------------------------------------------------------------------

    async def run(self) -> None:
        last_reload = last_flush = 0.0
        while not self.stopping:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), timeout=PASS_S * 5)
            self.wake.clear()
            try:
                if self.listener is None or self.listener.is_closed():
                    await self._listen()
                now = time.monotonic()
                if self.reload_wanted or now - last_reload > RELOAD_S:
                    await self.reload()
                    last_reload = now
                await self.step()
                if now - last_flush > FLUSH_S:
                    await self.flush_stats()
                    last_flush = now
                if not self.ready.is_set():
                    log.info("ready: %d subscriptions, %d entities primed", len(self.subs), len(self.last))
                self.ready.set()
            except (OSError, asyncpg.PostgresConnectionError, asyncpg.CannotConnectNowError) as exc:
                log.warning("notifier pass failed, database unreachable (retrying): %s: %s",
                            type(exc).__name__, exc)  # one line a pass: an outage is not a bug
                await asyncio.sleep(1.0)
            except Exception:  # a bad pass must not end the loop
                log.exception("notifier pass failed")
                await asyncio.sleep(1.0)
            await asyncio.sleep(PASS_S)

    async def stop(self) -> None:
        self.stopping = True
        self.wake.set()
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        with contextlib.suppress(Exception):
            await self.flush_stats()
        if self.listener is not None and not self.listener.is_closed():
            await self.listener.close()
        await self.http.close()
        await self.engine.dispose()

    async def _listen(self) -> None:
        self.listener = await asyncpg.connect(self.settings.asyncpg_dsn)
        # one notifier delivers; a second one waits here until the first's connection ends
        await self.listener.execute("SELECT pg_advisory_lock($1)", LOCK_KEY)
        await self.listener.add_listener("space_state", self._on_space_state)
        await self.listener.add_listener("facility_state", self._on_facility_state)
        await self.listener.add_listener("ngsi_subscriptions", self._on_subscriptions)
        self.reload_wanted = True

    def _on_space_state(self, _c: object, _p: int, _ch: str, payload: str) -> None:
        self.changed.update(str(i) for i in orjson.loads(payload))
        self.wake.set()

    def _on_facility_state(self, _c: object, _p: int, _ch: str, payload: str) -> None:
        self.changed_facilities.update(str(i) for i in orjson.loads(payload))
        self.wake.set()

    def _on_subscriptions(self, *_: object) -> None:
        self.reload_wanted = True
        self.wake.set()

    # --- subscriptions ------------------------------------------------------------------------

    async def reload(self) -> None:
        self.reload_wanted = False
        async with self.sessions() as session, session.begin():
            conn = await session.connection()
            await conn.exec_driver_sql(
                "UPDATE ngsi_subscriptions SET status = 'expired', modified_at = now() "
                "WHERE status = 'active' AND expires_at <= now()")
            rows = (await conn.exec_driver_sql(
                "SELECT id, spec, entity_types, watched_attributes, endpoint_uri, throttling_s, expires_at "
                "FROM ngsi_subscriptions WHERE status = 'active'")).all()
        fresh: dict[str, Sub] = {}
        for row in rows:
            try:
                sub = _sub(row)
            except Exception:  # a stored subscription that no longer parses is skipped, not fatal
                log.exception("subscription %s skipped", row[0])
                continue
            old = self.subs.get(sub.id)
            if old is not None:
                sub.pending, sub.busy, sub.last_sent = old.pending, old.busy, old.last_sent
            fresh[sub.id] = sub
        self.subs = fresh
        # near a point within a distance: one vectorised distance per changed point entity
        self._near = [s for s in fresh.values() if s.geo is not None and s.geo.point is not None
                      and s.geo.max_distance_m is not None]
        xyr = []
        for s in self._near:
            assert s.geo is not None
            assert s.geo.point is not None
            xyr.append((*s.geo.point, s.geo.max_distance_m))
        self._near_xyr = np.array(xyr, dtype=float).reshape(-1, 3)
        # unit vectors of the centres and the least dot product within each distance (+1 m): one
        # matrix product per changed point, then haversine on the few it leaves
        self._near_xyz = unit_xyz(self._near_xyr[:, 1], self._near_xyr[:, 0]).reshape(-1, 3)
        self._near_dot = np.array([least_dot(r + 1.0) for r in self._near_xyr[:, 2]])
        near = {s.id for s in self._near}
        self._boxed = [s for s in fresh.values() if s.geo is not None and s.id not in near]
        self._unboxed = [s for s in fresh.values() if s.geo is None]
        self._boxes = np.array([s.bbox for s in self._boxed]) if self._boxed else np.zeros((0, 4))
        if not self.last:
            await self._prime()

    async def _prime(self) -> None:
        """The current state of every entity, so the first change has something to differ from."""
        async with self.sessions() as session, session.begin():
            for row in await service.matching(session, settings=self.settings, types=entities.TYPES, ids=None,
                                              geo=None, q=None):
                self.last[row.id] = row.kv

    # --- passes -------------------------------------------------------------------------------

    async def step(self) -> None:
        now_dt = datetime.now(UTC)
        for sub in list(self.subs.values()):
            if sub.expires_at is not None and sub.expires_at <= now_dt:
                self.subs.pop(sub.id, None)
                self.reload_wanted = True
        changed, self.changed = self.changed, set()
        facilities, self.changed_facilities = self.changed_facilities, set()
        if (changed or facilities) and self.subs:
            for row, attrs in await self._changes(changed, facilities):
                for sub, geo_holds in self._candidates(row):
                    if _wants(sub, row, attrs, geo_holds):
                        sub.pending[row.id] = row
        elif changed or facilities:
            await self._changes(changed, facilities)  # keep the last-seen state current
        for sub in self.subs.values():
            if sub.pending and not sub.busy and time.monotonic() - sub.last_sent >= max(sub.throttling_s, COALESCE_S):
                self._deliver(sub)

    async def _changes(self, space_ids: set[str], facility_ids: set[str] | None = None) -> list[tuple[Row, set[str]]]:
        """The entities the changed spaces and gate-counted facilities touch, each with the
        attributes that differ from the last state seen."""
        wanted = set().union(*(s.types for s in self.subs.values())) if self.subs else {"ParkingSpot"}
        ids = frozenset(entities.urn("ParkingSpot", s) for s in space_ids)
        rows: list[Row] = []
        async with self.sessions() as session, session.begin():
            if "ParkingSpot" in wanted and ids:
                rows += (await entities.spots(session, settings=self.settings, filters=Filters(ids=ids))).rows
            sites = {r.kv["refParkingSite"] for r in rows} or (await _sites(session, space_ids) if ids else set())
            # a counted facility's URN: whichever of the two types its kind makes it
            sites |= {entities.urn(t, f) for f in facility_ids or () for t in entities.TYPES[:2]}
            if wanted & {"OffStreetParking", "OnStreetParking"}:
                rows += await entities.facilities(session, settings=self.settings, now=datetime.now(UTC),
                                                  types=entities.TYPES[:2], filters=Filters(ids=frozenset(sites)))
            if "ParkingGroup" in wanted:
                local = {s.rsplit(":", 1)[1] for s in sites}
                rows += [r for r in await entities.groups(session, settings=self.settings, filters=Filters())
                         if r.kv["refParkingSite"].rsplit(":", 1)[1] in local]
        out = []
        for row in rows:
            before = self.last.get(row.id, {})
            diff = {k for k in set(row.kv) | set(before) if row.kv.get(k) != before.get(k)}
            self.last[row.id] = row.kv
            if diff:
                out.append((row, diff))
        return out

    def _candidates(self, row: Row) -> list[tuple[Sub, bool]]:
        """The subscriptions ``row`` may concern, each with whether its geoQ is already known to hold."""
        kind = row.kv["type"]
        found = [(s, False) for s in self._unboxed if kind in s.types]
        location = row.kv["location"]
        if self._near and location["type"] == "Point":
            lon, lat = location["coordinates"][:2]
            xyr = self._near_xyr
            close = np.flatnonzero(self._near_xyz @ unit_xyz(lat, lon)[0] >= self._near_dot)
            hit = close[_haversine(lon, lat, xyr[close, 0], xyr[close, 1]) <= xyr[close, 2]]
            found += [(self._near[i], True) for i in hit.tolist() if kind in self._near[i].types]
        elif self._near:
            found += [(s, False) for s in self._near if kind in s.types]
        if self._boxed:
            x0, y0, x1, y1 = _bounds(row.kv["location"])
            b = self._boxes
            hit = np.flatnonzero((b[:, 0] <= x1) & (b[:, 2] >= x0) & (b[:, 1] <= y1) & (b[:, 3] >= y0))
            found += [(self._boxed[i], False) for i in hit if kind in self._boxed[i].types]
        return found

    # --- delivery -------------------------------------------------------------------------------

    def _deliver(self, sub: Sub) -> None:
        batch, sub.pending = list(sub.pending.values()), {}
        sub.busy, sub.last_sent = True, time.monotonic()
        task = asyncio.create_task(self._send(sub, batch))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _send(self, sub: Sub, batch: list[Row]) -> None:
        try:
            body, headers = _notification(sub, batch, self.settings)
            for attempt in range(self.settings.notify_attempts):
                if self.stopping or sub.id not in self.subs:
                    return
                error = await self._post(sub, body, headers)
                stats = self.stats.setdefault(sub.id, Stats())
                stats.last_notification = datetime.now(UTC)
                if error is None:
                    stats.sent += 1
                    stats.last_success = stats.last_notification
                    return
                stats.failed += 1
                stats.last_failure, stats.reason = stats.last_notification, error
                await asyncio.sleep(BACKOFF_S[min(attempt, len(BACKOFF_S) - 1)])
        finally:
            sub.busy = False
            self.wake.set()

    async def _post(self, sub: Sub, body: bytes, headers: dict[str, str]) -> str | None:
        if time.monotonic() - self._checked.get(sub.uri, -SSRF_RECHECK_S) >= SSRF_RECHECK_S:
            try:
                await ssrf.check(sub.uri, self.allow)
            except ssrf.EndpointRefused as exc:
                return str(exc)
            self._checked[sub.uri] = time.monotonic()
        async with self.in_flight:
            try:
                status = await self.http.post(sub.uri, body, headers)
            except (OSError, TimeoutError, ValueError, asyncio.IncompleteReadError) as exc:
                return f"{type(exc).__name__}: {exc}"[:500]
        return None if 200 <= status < 300 else f"HTTP {status}"

    async def flush_stats(self) -> None:
        stats, self.stats = self.stats, {}
        if not stats:
            return
        ids = list(stats)
        async with self.sessions() as session, session.begin():
            conn = await session.connection()
            raw: Any = (await conn.get_raw_connection()).driver_connection
            await raw.execute(
                "UPDATE ngsi_subscriptions AS s SET times_sent = s.times_sent + u.sent, "
                "times_failed = s.times_failed + u.failed, "
                "last_notification = coalesce(u.last_notification, s.last_notification), "
                "last_success = coalesce(u.last_success, s.last_success), "
                "last_failure = coalesce(u.last_failure, s.last_failure), "
                "last_failure_reason = coalesce(u.reason, s.last_failure_reason) "
                "FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::timestamptz[], $5::timestamptz[], "
                "$6::timestamptz[], $7::text[]) AS u(id, sent, failed, last_notification, last_success, "
                "last_failure, reason) WHERE s.id = u.id",
                ids, [stats[i].sent for i in ids], [stats[i].failed for i in ids],
                [stats[i].last_notification for i in ids], [stats[i].last_success for i in ids],
                [stats[i].last_failure for i in ids], [stats[i].reason for i in ids])


def _sub(row: Any) -> Sub:
    sub_id, spec, types, watched, uri, throttling, expires = row
    geoq = geo.from_geoq(spec["geoQ"]) if "geoQ" in spec else None
    notification = spec["notification"]
    region = shape(geoq.geometry) if geoq is not None else None
    bbox = (-180.0, -90.0, 180.0, 90.0)
    if region is not None and geoq is not None:
        x0, y0, x1, y1 = region.bounds
        if geoq.relation == "near" and geoq.max_distance_m is not None:
            pad = geoq.max_distance_m * DEG_PER_M
            bbox = (x0 - pad * 2, y0 - pad, x1 + pad * 2, y1 + pad)  # longitude degrees are shorter
        elif geoq.relation in ("within", "intersects", "overlaps", "equals", "contains"):
            bbox = (x0, y0, x1, y1)
    return Sub(
        id=sub_id, types=frozenset(types), selectors=spec.get("entities", []),
        watched=frozenset(watched) if watched else None, q=query.parse(spec["q"]) if "q" in spec else None,
        geo=geoq, shape=region, bbox=bbox, uri=uri, accept=notification["endpoint"].get("accept", render.JSON),
        key_values=notification.get("format") == "keyValues",
        attrs=frozenset(notification["attributes"]) if "attributes" in notification else None,
        throttling_s=float(throttling or 0), expires_at=expires)


def _wants(sub: Sub, row: Row, changed: set[str], geo_holds: bool = False) -> bool:
    if sub.watched is not None and not (sub.watched & changed):
        return False
    if sub.selectors and not any(_selected(s, row) for s in sub.selectors):
        return False
    if sub.q is not None and not query.matches(sub.q, row.kv):
        return False
    return sub.geo is None or geo_holds or _geo_holds(sub, row)


def _selected(selector: dict[str, str], row: Row) -> bool:
    if selector["type"] != row.kv["type"]:
        return False
    if "id" in selector and selector["id"] != row.id:
        return False
    return "idPattern" not in selector or re.search(selector["idPattern"], row.id) is not None


def _geo_holds(sub: Sub, row: Row) -> bool:
    assert sub.geo is not None
    relation = sub.geo.relation
    target = shape(row.kv["location"]) if relation != "near" or row.kv["location"]["type"] != "Point" else None
    if relation == "near":
        point, kind = sub.geo.point, row.kv["location"]["type"]
        if point is not None and kind == "Point":  # the common case, without shapely
            lon, lat = row.kv["location"]["coordinates"][:2]
            metres = haversine_m(point[1], point[0], lat, lon)
        else:
            metres = distance_m(sub.shape, target)
        if sub.geo.max_distance_m is not None:
            return metres <= sub.geo.max_distance_m
        return metres >= (sub.geo.min_distance_m or 0.0)
    test = {"within": shapely.within, "contains": shapely.contains, "intersects": shapely.intersects,
            "disjoint": shapely.disjoint, "equals": shapely.equals, "overlaps": shapely.overlaps}[relation]
    return bool(test(target, sub.shape))


def _haversine(lon: float, lat: float, lons: np.ndarray, lats: np.ndarray) -> np.ndarray:
    p1, p2 = np.radians(lat), np.radians(lats)
    a = np.sin((p2 - p1) / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(np.radians(lons - lon) / 2) ** 2
    return np.asarray(2 * EARTH_RADIUS_M * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0))))


def _bounds(location: dict[str, Any]) -> tuple[float, float, float, float]:
    if location["type"] == "Point":
        x, y = location["coordinates"][:2]
        return x, y, x, y
    x0, y0, x1, y1 = shape(location).bounds
    return float(x0), float(y0), float(x1), float(y1)


_BODIES: dict[tuple[str, object, bool], dict[str, Any]] = {}


def _body(row: Row, sub: Sub) -> dict[str, Any]:
    """An entity's notified form; the same change sent to many subscriptions is rendered once."""
    if sub.attrs is not None:
        return render.entity_body(row, key_values=sub.key_values, attrs=sub.attrs)
    key = (row.id, row.observed_at, sub.key_values)
    body = _BODIES.get(key)
    if body is None or body.get("status") != row.kv.get("status"):
        if len(_BODIES) > 100_000:
            _BODIES.clear()
        body = _BODIES[key] = render.entity_body(row, key_values=sub.key_values, attrs=None)
    return body


def _notification(sub: Sub, batch: list[Row], settings: Settings) -> tuple[bytes, dict[str, str]]:
    base = settings.public_url
    data = [_body(r, sub) for r in batch]
    body: dict[str, Any] = {"id": f"urn:ngsi-ld:Notification:{uuid.uuid4()}", "type": "Notification",
                            "subscriptionId": sub.id, "notifiedAt": iso_utc(datetime.now(UTC)), "data": data}
    headers = {"Content-Type": sub.accept, "User-Agent": "citypark-notifier"}
    if sub.accept == render.LD:
        body["@context"] = render.context_url(base)
    else:
        headers["Link"] = render.link_header(base)
    return orjson.dumps(body), headers


async def _sites(session: Any, space_ids: set[str]) -> set[str]:
    conn = await session.connection()
    raw = (await conn.get_raw_connection()).driver_connection
    rows = await raw.fetch("SELECT DISTINCT f.id, f.kind FROM spaces s JOIN facilities f ON f.id = s.facility_id "
                           "WHERE s.id = ANY($1::text[])", list(space_ids))
    return {entities.urn(entities.facility_type(r["kind"]), r["id"]) for r in rows}


async def serve(settings: Settings) -> None:
    """Run until cancelled (the ``citypark notify`` command). The process lowers its own CPU
    priority (``CITYPARK_NOTIFY_NICE``): on a host it shares with ingest and the API, a flood of
    changes makes notifications later, never ingest slower."""
    if settings.notify_nice:
        os.nice(settings.notify_nice)
    notifier = Notifier(settings)
    try:
        await notifier.run()
    finally:
        await notifier.stop()
