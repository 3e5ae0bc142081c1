"""Forecasts of free spaces: one code path for today's answer and any backtest.

:func:`forecast` answers for some facilities at an instant ``as_of`` from what was observed
before it: the newest stored model whose training window ended by ``as_of``
(``gradient_boosting``) for the facilities it knows, else each facility's weekly profile from
the four weeks before ``as_of``, corrected by the current deviation (``weekly_profile``), else
the last observation (``persistence``), else nothing (``none``).

:class:`Board` is that function applied to every facility at "now" on a grid of horizons,
recomputed every ``CITYPARK_FORECAST_BOARD_S`` by each API process: what the forecast
endpoint (without ``as_of``), ``/v1/forecast/near`` and the assignment of far-away drivers
read, with no query per request.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import numpy as np

from app.core.errors import InvalidInput, NotFound
from app.core.times import iso_utc
from app.forecast import features as feat
from app.forecast import model as fm
from app.forecast import series, store
from app.forecast.features import Origins
from app.forecast.series import Grid, Inventory
from matching.geo import EARTH_RADIUS_M, haversine_m

BOARD_HORIZONS = tuple(range(15, fm.MAX_HORIZON_MIN + 1, 15))
DEFAULT_HORIZONS = (15, 30, 60, 120)
MAX_HORIZONS = 24
DRIVE_M_PER_MIN = 400.0  # 24 km/h: a city drive, for drivers who do not say their eta


@dataclass(frozen=True)
class Forecast:
    """One facility's forecast: per horizon, expected free spaces, p10, p90, P(any free)."""

    facility_id: str
    as_of: datetime
    total: int
    model: str
    trained_at: datetime | None
    horizons: tuple[float, ...]
    free: tuple[float | None, ...]
    lo: tuple[float | None, ...]
    hi: tuple[float | None, ...]
    p_any: tuple[float | None, ...]

    def as_json(self, horizons: tuple[float, ...] | None = None) -> dict[str, Any]:
        """The endpoint's JSON (only ``horizons`` of those computed, when given)."""
        wanted = range(len(self.horizons)) if horizons is None else [self.horizons.index(h) for h in horizons]
        points = [{"horizon_min": _num(self.horizons[i]),
                   "at": iso_utc(self.as_of + timedelta(minutes=self.horizons[i])),
                   "free": self.free[i], "free_p10": self.lo[i], "free_p90": self.hi[i], "p_any_free": self.p_any[i]}
                  for i in wanted]
        return {"facility_id": self.facility_id, "as_of": iso_utc(self.as_of), "total": self.total,
                "model": self.model, "trained_at": iso_utc(self.trained_at) if self.trained_at else None,
                "points": points}


def _num(h: float) -> float | int:
    return int(h) if float(h).is_integer() else h


def parse_horizons(text: str | None) -> tuple[float, ...]:
    """``"15,30,60"`` → minutes; each in [0, 240], at most 24 of them."""
    if text is None or not text.strip():
        return DEFAULT_HORIZONS
    try:
        values = tuple(float(part) for part in text.split(","))
    except ValueError:
        raise InvalidInput("horizons: comma-separated minutes, e.g. 15,30,60,120") from None
    if not values or len(values) > MAX_HORIZONS:
        raise InvalidInput(f"horizons: between 1 and {MAX_HORIZONS} values")
    if not all(fm.horizon_ok(h) for h in values):
        raise InvalidInput(f"horizons: each between 0 and {fm.MAX_HORIZON_MIN} minutes")
    return tuple(dict.fromkeys(values))


async def forecast(conn: asyncpg.Connection, *, facility_ids: list[str] | None, as_of: datetime,
                   horizons: tuple[float, ...], country: str) -> list[Forecast]:
    """Forecasts at ``as_of`` for the given facilities (all when None), from data before it."""
    if as_of.tzinfo is None:
        raise InvalidInput("as_of needs a UTC offset (RFC 3339)")
    inv = await series.inventory(conn)
    if facility_ids is not None:
        if missing := [f for f in facility_ids if f not in inv.index]:
            raise NotFound(f"no facility {missing[0]!r}")
        inv = inv.subset(facility_ids)
    found = await store.newest_before(conn, as_of)
    art = await store.load(conn, found[0]) if found else None
    known = [f for f in inv.ids if art is not None and f in art.index]
    out: dict[str, Forecast] = {}
    if known and art is not None and found is not None:
        out.update(await _by_model(conn, art, inv.subset(known), as_of, horizons, found[1]))
    if rest := [f for f in inv.ids if f not in out]:
        out.update(await _by_profile(conn, inv.subset(rest), as_of, horizons, country))
    return [_closed(out[f]) if closed else out[f] for f, closed in zip(inv.ids, inv.closed, strict=True)]


def _origins(n_rows: int, col: int, horizons: tuple[float, ...]) -> Origins:
    rows = np.repeat(np.arange(n_rows), len(horizons))
    return Origins(rows, np.full(rows.size, col, dtype=np.int64), np.tile(np.array(horizons, dtype=np.float64), n_rows))


async def _by_model(conn: asyncpg.Connection, art: fm.Artifact, inv: Inventory, as_of: datetime,
                    horizons: tuple[float, ...], trained_at: datetime) -> dict[str, Forecast]:
    grid = await series.load(conn, inv, end=as_of, n=feat.LOOKBACK + 1)
    o = _origins(len(inv.ids), grid.n - 1, horizons)
    pred = fm.predict(art, grid, art.profiles(inv.ids), o)
    return _assemble(grid, o, pred, horizons, art.kind, trained_at)


async def _by_profile(conn: asyncpg.Connection, inv: Inventory, as_of: datetime, horizons: tuple[float, ...],
                      country: str) -> dict[str, Forecast]:
    grid = await series.load(conn, inv, end=as_of, n=fm.FALLBACK_DAYS * 96)
    pos, hol = feat.slots(grid, country)
    prof = feat.fit_profiles(grid.share, feat.effective_slot(pos, hol))
    o = _origins(len(inv.ids), grid.n - 1, horizons)
    pred = fm.predict_profile(grid, prof, o, country=country)
    out = _assemble(grid, o, pred, horizons, "weekly_profile", None)
    last = grid.share[:, -1]
    for i, fid in enumerate(inv.ids):
        if prof.observations[i] < 96:  # less than a day of history: no profile to speak of
            out[fid] = _persistence(out[fid], last[i], inv.total[i])
    return out


def _assemble(grid: Grid, o: Origins, pred: fm.Prediction, horizons: tuple[float, ...], model: str,
              trained_at: datetime | None) -> dict[str, Forecast]:
    total = grid.inv.total[o.rows]
    free, lo, hi = pred.mean * total, pred.lo * total, pred.hi * total
    p_any = fm.p_any_free(free, lo, total)
    k = len(horizons)
    out = {}
    for i, fid in enumerate(grid.inv.ids):
        s = slice(i * k, (i + 1) * k)
        out[fid] = Forecast(fid, grid.end, int(grid.inv.total[i]), model, trained_at, horizons,
                            _round(free[s], 1), _round(lo[s], 1), _round(hi[s], 1), _round(p_any[s], 3))
    return out


def _round(values: np.ndarray, digits: int) -> tuple[float | None, ...]:
    return tuple(None if math.isnan(v) else round(float(v), digits) for v in values)


def _persistence(f: Forecast, last_share: float, total: float) -> Forecast:
    if math.isnan(last_share):
        none = tuple(None for _ in f.horizons)
        return Forecast(f.facility_id, f.as_of, f.total, "none", None, f.horizons, none, none, none, none)
    free = round(float(last_share * total), 1)
    p = 1.0 if free >= 1 else 0.0
    same = tuple(free for _ in f.horizons)
    return Forecast(f.facility_id, f.as_of, f.total, "persistence", None, f.horizons, same, same, same,
                    tuple(p for _ in f.horizons))


def _closed(f: Forecast) -> Forecast:
    zeros = tuple(0.0 for _ in f.horizons)
    return Forecast(f.facility_id, f.as_of, f.total, "closed", f.trained_at, f.horizons, zeros, zeros, zeros, zeros)


# --- the per-process board -----------------------------------------------------------------


@dataclass
class Board:
    """Every facility's forecast at one instant on ``BOARD_HORIZONS``, ready to rank by place."""

    as_of: datetime
    forecasts: dict[str, Forecast]
    ids: list[str]
    names: list[str]
    lat: np.ndarray
    lon: np.ndarray
    p_any: np.ndarray  # (F, len(BOARD_HORIZONS)), NaN unknown
    free: np.ndarray

    def column(self, eta_min: float) -> int:
        """The board horizon nearest ``eta_min`` (the first for an eta under 15 minutes)."""
        return int(np.argmin(np.abs(np.array(BOARD_HORIZONS) - eta_min)))

    def near(self, *, lat: float, lon: float, radius_m: float, eta_min: float) -> list[dict[str, Any]]:
        """Facilities within ``radius_m``: by P(a space is free at arrival), then distance."""
        dist = _distances(lat, lon, self.lat, self.lon)
        idx = np.flatnonzero(dist <= radius_m)
        c = self.column(eta_min)
        p = np.nan_to_num(self.p_any[idx, c], nan=-1.0)
        order = idx[np.lexsort((dist[idx], -p))]
        return [{"id": self.ids[i], "name": self.names[i], "distance_m": round(float(dist[i]), 1),
                 "p_any_free": _maybe(self.p_any[i, c], 3), "free": _maybe(self.free[i, c], 1),
                 "model": f.model if (f := self.forecasts.get(self.ids[i])) else "none",
                 "at": iso_utc(self.as_of + timedelta(minutes=BOARD_HORIZONS[c]))} for i in order]


def _distances(lat: float, lon: float, lats: np.ndarray, lons: np.ndarray) -> np.ndarray:
    p1, p2 = math.radians(lat), np.radians(lats)
    a = np.sin((p2 - p1) / 2) ** 2 + math.cos(p1) * np.cos(p2) * np.sin(np.radians(lons - lon) / 2) ** 2
    return 2 * EARTH_RADIUS_M * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0)))


def _maybe(v: float, digits: int) -> float | None:
    return None if math.isnan(v) else round(float(v), digits)


async def build_board(conn: asyncpg.Connection, *, now: datetime | None = None, country: str) -> Board:
    """The board at ``now`` (default: the current time)."""
    now = now or datetime.now(UTC)
    inv = await series.inventory(conn)
    forecasts = await forecast(conn, facility_ids=None, as_of=now, horizons=BOARD_HORIZONS, country=country)
    by_id = {f.facility_id: f for f in forecasts}
    p_any = np.array([[np.nan if v is None else v for v in by_id[f].p_any] for f in inv.ids]).reshape(
        len(inv.ids), len(BOARD_HORIZONS))
    free = np.array([[np.nan if v is None else v for v in by_id[f].free] for f in inv.ids]).reshape(
        len(inv.ids), len(BOARD_HORIZONS))
    return Board(now, by_id, inv.ids, inv.names, inv.lat, inv.lon, p_any, free)


_CURRENT: list[Board] = []


def current() -> Board | None:
    """The process's latest board (None before the first is built)."""
    return _CURRENT[0] if _CURRENT else None


def publish(board: Board | None) -> None:
    """Make ``board`` the process's current one (None: forget it)."""
    _CURRENT[:] = [board] if board is not None else []


def goal_for_far_driver(request: Any, board: Board | None = None) -> tuple[float, float] | None:
    """Where to seek spaces for a driver still far from the destination: the entrance of the
    facility near the destination where a space is likeliest to be free on arrival (ties within
    5 points of probability go to the nearest). None when the driver is near, has no
    destination, or there is no forecast: the caller keeps its usual goal.

    ``request`` has ``lat, lon, dest_lat, dest_lon, radius_m`` and optionally ``eta_min``.
    """
    board = board if board is not None else current()
    if board is None or request.dest_lat is None or request.dest_lon is None:
        return None
    eta = getattr(request, "eta_min", None)
    if eta is None:
        eta = haversine_m(request.lat, request.lon, request.dest_lat, request.dest_lon) / DRIVE_M_PER_MIN
    if eta < FAR_ETA_MIN[0]:
        return None
    ranked = board.near(lat=request.dest_lat, lon=request.dest_lon, radius_m=request.radius_m, eta_min=eta)
    ranked = [r for r in ranked if r["p_any_free"] is not None]
    if not ranked:
        return None
    best = max(r["p_any_free"] for r in ranked)
    pick = min((r for r in ranked if r["p_any_free"] >= best - 0.05), key=lambda r: r["distance_m"])
    i = board.ids.index(pick["id"])
    return float(board.lat[i]), float(board.lon[i])


FAR_ETA_MIN = [10.0]  # set from CITYPARK_FORECAST_FAR_ETA_MIN when the API starts
