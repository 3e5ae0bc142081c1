"""A generated history and an independent, brute-force reading of it, minute by minute.

The world: a sensor lot shared with the public on half-hour windows (``F1``), a curb block
with a no-parking space (``F2``), a gate-counted garage in another time zone with counts,
passages and voided passages (``F3``). Events fall on whole minutes, so a space's state over
each minute is that of its last reading at or before the minute's start; a reading holds for at
most ``HOLD`` — that is the whole rule, written here without SQL. Histories include gaps longer
than ``HOLD`` (stale sensors), repeated states, stays across midnight and events before the period.
"""

from __future__ import annotations

import bisect
import random
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg

from app.core import hours

HOLD = timedelta(hours=2)
STAY_MAX = timedelta(hours=24)
A = datetime(2026, 11, 6, tzinfo=UTC)  # Friday 08:00 in Shanghai
B = A + timedelta(days=3)
MINUTE = timedelta(minutes=1)
PUBLIC = "Mo-Fr 18:30-07:30; Sa,Su 00:00-24:00"
LON, LAT = 123.05, 41.20


@dataclass
class Fac:
    id: str
    kind: str
    tz: str
    counted: bool
    capacity: int
    fee: str | None
    public_hours: str | None
    attrs: dict[str, str]
    spaces: list[str] = field(default_factory=list)  # priced/measured spaces (no no-parking ones)
    points: dict[str, tuple[float, float]] = field(default_factory=dict)
    entrance: tuple[float, float] = (LON, LAT)


@dataclass
class World:
    facilities: dict[str, Fac]
    events: list[tuple[str, datetime, int, bool]]  # space, at, seq, occupied
    counts: list[tuple[str, datetime, int, int | None]]  # facility, at, free, total
    passages: list[dict[str, Any]]


def build(seed: int = 7) -> World:
    rnd = random.Random(seed)
    facs = {
        "F1": Fac("F1", "lot", "Asia/Shanghai", False, 6, "5元/小时", PUBLIC, {"district": "east"}),
        "F2": Fac("F2", "curb", "Asia/Shanghai", False, 4, "首小时免费，之后2元/小时，夜间1元/小时", None, {}),
        "F3": Fac("F3", "garage", "Europe/Berlin", True, 40, None, None, {"district": "east"}),
    }
    for n, fac in enumerate(facs.values()):
        fac.entrance = (LON + 0.004 * n, LAT + 0.001 * n)
        if not fac.counted:
            for i in range(fac.capacity):
                sid = f"{fac.id}-{i}"
                fac.spaces.append(sid)
                fac.points[sid] = (fac.entrance[0] + 0.0003 * i, fac.entrance[1] + 0.0002 * (i % 3))
    events = [e for fac in facs.values() for sid in fac.spaces for e in _space_events(rnd, sid)]
    counts, passages = _garage(rnd, "F3", 40)
    passages += _entries(rnd, "F1")
    return World(facs, events, counts, passages)


def _space_events(rnd: random.Random, sid: str) -> list[tuple[str, datetime, int, bool]]:
    t, seq, occupied, out = A - timedelta(hours=26), 0, rnd.random() < 0.5, []
    while t < B + timedelta(hours=2):
        out.append((sid, t, seq, occupied))
        seq += 1
        r = rnd.random()
        if r < 0.08:
            t += timedelta(minutes=rnd.randint(130, 400))  # silent longer than HOLD: stale
        elif r < 0.2:
            t += timedelta(minutes=rnd.randint(1, 30))  # the same state again (a keep-alive)
            continue
        else:
            t += timedelta(minutes=rnd.randint(3, 110))
        occupied = not occupied if rnd.random() < 0.85 else occupied
    if sid.endswith("-0"):  # one long stay across midnight, seen by keep-alives
        day = A + timedelta(hours=12)
        out = [e for e in out if not day - timedelta(hours=1) <= e[1] < day + timedelta(hours=8)]
        out += [(sid, day - timedelta(minutes=30), 9000, False), (sid, day, 9001, True),
                (sid, day + timedelta(hours=1, minutes=50), 9002, True),
                (sid, day + timedelta(hours=3, minutes=40), 9003, True), (sid, day + timedelta(hours=5), 9004, False)]
    return out


def _garage(rnd: random.Random, fid: str, cap: int) -> tuple[list[Any], list[dict[str, Any]]]:
    counts, passages, t, free, n = [], [], A - timedelta(hours=5), 20, 0
    while t < B:
        counts.append((fid, t, free, cap if rnd.random() < 0.5 else None))
        u = t + timedelta(minutes=rnd.randint(2, 40))
        for _ in range(rnd.randint(0, 4)):
            direction = rnd.choice(("in", "out"))
            free = max(0, min(cap, free + (-1 if direction == "in" else 1)))
            voided = rnd.random() < 0.15
            passages.append({"facility_id": fid, "passage_id": f"p{n}", "direction": direction, "at": u,
                             "free_after": free, "voided": voided,
                             "stay_s": rnd.randint(300, 30000) if direction == "out" else None})
            if voided:
                free = max(0, min(cap, free + (1 if direction == "in" else -1)))
            n += 1
            u += timedelta(minutes=rnd.randint(1, 15))
        gap = rnd.randint(30, 180) if rnd.random() < 0.9 else rnd.randint(150, 300)
        t = max(t + timedelta(minutes=gap), u + MINUTE)  # readings at distinct minutes
        free = max(0, min(cap, free + rnd.randint(-8, 8)))
    return counts, passages


def _entries(rnd: random.Random, fid: str) -> list[dict[str, Any]]:
    out = []
    for n in range(30):
        at = A + timedelta(minutes=rnd.randint(0, int((B - A) / MINUTE) - 1))
        out.append({"facility_id": fid, "passage_id": f"e{n}", "direction": "in", "at": at, "free_after": None,
                    "voided": n % 7 == 0, "stay_s": None})
    return out


async def store(conn: asyncpg.Connection, world: World, *, inventory: bool = True) -> None:
    """Write the inventory (unless told not to) and the history, as ingest would."""
    if inventory:
        await conn.execute("TRUNCATE facilities CASCADE")
        await conn.execute("INSERT INTO operators (id, name) VALUES ('mgmt', 'mgmt') ON CONFLICT DO NOTHING")
        for f in world.facilities.values():
            x, y = f.entrance
            await conn.execute(
                "INSERT INTO facilities (id, operator_id, name, kind, geom, entrance, capacity, counted, public_hours,"
                " fee, attrs, timezone) VALUES ($1, 'mgmt', $1 || ' 名', $2, ST_Buffer(ST_SetSRID(ST_MakePoint($3, $4),"
                " 4326), 0.001), ST_SetSRID(ST_MakePoint($3, $4), 4326), $5, $6, $7, $8, $9::jsonb, $10)",
                f.id, f.kind, x, y, f.capacity, f.counted, f.public_hours, f.fee, _json(f.attrs), f.tz)
            for sid, (px, py) in f.points.items():
                await conn.execute("INSERT INTO spaces (id, facility_id, geom) VALUES ($1, $2, "
                                   "ST_SetSRID(ST_MakePoint($3, $4), 4326))", sid, f.id, px, py)
            if f.id == "F2":  # a no-parking space: never counted
                await conn.execute("INSERT INTO spaces (id, facility_id, geom, no_parking) VALUES ('F2-np', 'F2', "
                                   "ST_SetSRID(ST_MakePoint($1, $2), 4326), true)", x, y)
    await conn.executemany(
        "INSERT INTO occupancy_events (sensor_id, observed_at, seq, space_id, occupied) VALUES ($1, $2, $3, $1, $4)",
        [(s, t, q, o) for s, t, q, o in world.events])
    await conn.executemany("INSERT INTO count_events (facility_id, observed_at, free, total) VALUES ($1, $2, $3, $4)",
                           world.counts)
    await conn.executemany(
        "INSERT INTO passages (facility_id, passage_id, direction, observed_at, free_after, stay_s, voided_by) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7)",
        [(p["facility_id"], p["passage_id"], p["direction"], p["at"], p["free_after"], p["stay_s"],
          "void" if p["voided"] else None) for p in world.passages])


def _json(value: dict[str, str]) -> str:
    import json

    return json.dumps(value)


# --- the brute force -------------------------------------------------------------------------

def readings(world: World) -> dict[str, list[tuple[datetime, int, int, int]]]:
    """Per space (sensor facilities) or facility (counted): sorted ``(at, order, k, o)``."""
    out: dict[str, list[tuple[datetime, int, int, int]]] = defaultdict(list)
    for sid, at, seq, occ in world.events:
        out[sid].append((at, seq, 1, int(occ)))
    for fid, at, free, total in world.counts:
        k = total if total is not None else world.facilities[fid].capacity
        out[fid].append((at, -1, k, max(0, min(k, k - free))))
    for p in world.passages:
        fac = world.facilities[p["facility_id"]]
        if fac.counted and not p["voided"] and p["free_after"] is not None:
            out[fac.id].append((p["at"], 0, fac.capacity,
                                max(0, min(fac.capacity, fac.capacity - p["free_after"]))))
    return {key: sorted(v, key=lambda r: (r[0], r[1])) for key, v in out.items()}


def state_at(series: list[tuple[datetime, int, int, int]], m: datetime) -> tuple[int, int]:
    """``(k, o)`` of a space or counted facility during the minute starting at ``m``."""
    i = bisect.bisect_right(series, (m, 1 << 62, 0, 0))
    last = series[i - 1] if i else None
    if last is None or m >= last[0] + HOLD:
        return 0, 0
    return last[2], last[3]


def minutes(world: World) -> dict[str, list[tuple[datetime, int, int]]]:
    """Per facility: every minute of ``[A, B)`` with its known and occupied spaces."""
    series = readings(world)
    out: dict[str, list[tuple[datetime, int, int]]] = {}
    for fac in world.facilities.values():
        members = [fac.id] if fac.counted else fac.spaces
        rows, m = [], A
        while m < B:
            ko = [state_at(series.get(x, []), m) for x in members]
            rows.append((m, sum(k for k, _ in ko), sum(o for _, o in ko)))
            m += MINUTE
        out[fac.id] = rows
    return out


def space_minutes(world: World) -> dict[str, list[tuple[int, int]]]:
    """Per space (or counted facility): ``(k, o)`` of each minute of ``[A, B)``."""
    series = readings(world)
    keys = [s for f in world.facilities.values() for s in f.spaces] + [
        f.id for f in world.facilities.values() if f.counted]
    count = int((B - A) / MINUTE)
    return {key: [state_at(series.get(key, []), A + i * MINUTE) for i in range(count)] for key in keys}


def stays(world: World) -> list[tuple[str, datetime, float]]:
    """``(facility, end, seconds)`` of every stay that ended in ``[A, B)``."""
    out = []
    for fac in world.facilities.values():
        for sid in fac.spaces:
            evs = sorted((e for e in world.events if e[0] == sid), key=lambda e: (e[1], e[2]))
            start = None
            for prev, cur in zip(evs, evs[1:], strict=False):
                if cur[1] - prev[1] > HOLD:
                    start = None
                elif cur[3] and not prev[3]:
                    start = cur[1]
                elif prev[3] and not cur[3]:
                    if start is not None and A <= cur[1] < B and cur[1] - start <= STAY_MAX:
                        out.append((fac.id, cur[1], (cur[1] - start).total_seconds()))
                    start = None
    for p in world.passages:
        fac = world.facilities[p["facility_id"]]
        if (fac.counted and p["direction"] == "out" and not p["voided"] and p["stay_s"] is not None
                and A <= p["at"] < B and p["stay_s"] <= STAY_MAX.total_seconds()):
            out.append((fac.id, p["at"], float(p["stay_s"])))
    return out


def local(fac: Fac, m: datetime) -> datetime:
    return m.astimezone(ZoneInfo(fac.tz))


def figures(world: World, key_of: Any) -> dict[str, dict[str, float | None]]:
    """The utilization items by ``key_of(fac, minute)``, computed minute by minute."""
    acc: dict[str, dict[str, Any]] = defaultdict(lambda: defaultdict(float))
    mins = minutes(world)
    for fid, rows in mins.items():
        fac = world.facilities[fid]
        n = fac.capacity
        for m, k, o in rows:
            g = acc[key_of(fac, m)]
            g["space"] += n
            g["known"] += k
            g["occ"] += o
            if k:
                g["data"] += 1
                g["full"] += o * 100 >= 85 * k
                g["idle"] += o * 100 < 30 * k
                g["peak"] = max(g.get("peak", 0.0), o / k)
    lengths: dict[str, list[float]] = defaultdict(list)
    for fid, end, secs in stays(world):
        lengths[key_of(world.facilities[fid], end.replace(second=0))].append(secs)
    return {key: _item(g, lengths.get(key, [])) for key, g in acc.items()}


def _item(g: dict[str, Any], secs: list[float]) -> dict[str, float | None]:
    whole = sorted(int(s // 60) for s in secs)
    return {
        "mean_occupancy": g["occ"] / g["known"] if g["known"] else None,
        "peak_occupancy": g.get("peak") if g["data"] else None,
        "full_share": g["full"] / g["data"] if g["data"] else None,
        "idle_share": g["idle"] / g["data"] if g["data"] else None,
        "unknown_share": 1 - g["known"] / g["space"],
        "turnover_per_space_day": len(secs) / (g["known"] / 1440) if g["known"] else None,
        "mean_stay_minutes": sum(secs) / len(secs) / 60 if secs else None,
        "median_stay_minutes": whole[(len(whole) - 1) // 2] if whole else None,
        "stays": len(secs),
    }


def in_public(fac: Fac, m: datetime) -> bool:
    return hours.is_open(fac.public_hours, local(fac, m))
