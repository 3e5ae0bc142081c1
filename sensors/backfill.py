"""``citypark simulate --backfill-hours H``: a simulated past for a district that has none.

At the demo's first start the district has no history, so the 24-hour charts are empty and
enforcement has nothing to show for a long while. The backfill plays the same model as the
live simulation (demand by local time, log-normal stays, overstays, cars on no-parking
spaces) over the last ``H`` hours and publishes those events with their past ``observed_at``,
in time order, ending in the district's current state; gate-counted lots get a count every
15 minutes. A few violations are seeded so that they are in force now: cars past their time
limit on time-limited spaces and cars on no-parking spaces for longer than the grace period.

It runs **once**: only when none of the district's spaces has a reported state yet
(:func:`has_history`). A restart resumes from the stored states instead (``resume``), so it
never publishes events before the ones already stored — the impossible overstays a second
backfill would make.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime, timedelta

import asyncpg

from app.core.settings import Settings
from sensors import sim_payloads
from sensors.simulator import NO_PARKING_DEMAND, Simulation, Spot, demand

SEEDED_OVERSTAYS = 4
SEEDED_NO_PARKING = 2
COUNT_STEP = timedelta(minutes=15)
HAS_HISTORY_SQL = """
SELECT EXISTS (SELECT 1 FROM space_state st JOIN sensors se ON se.space_id = st.space_id
               WHERE st.observed_at IS NOT NULL)
"""
STATES_SQL = """
SELECT se.id AS sensor_id, st.occupied, st.observed_at, st.seq
FROM sensors se JOIN space_state st ON st.space_id = se.space_id
WHERE st.occupied IS NOT NULL
"""


async def has_history(conn: asyncpg.Connection) -> bool:
    """Whether any sensor-equipped space has reported (then the district is not new)."""
    return bool(await conn.fetchval(HAS_HISTORY_SQL))


async def stored_states(conn: asyncpg.Connection) -> dict[str, tuple[bool, datetime, int]]:
    """sensor id → (occupied, observed_at, seq) as stored."""
    return {r["sensor_id"]: (r["occupied"], r["observed_at"], r["seq"] or 0) for r in await conn.fetch(STATES_SQL)}


def backfill(sim: Simulation, now: datetime, hours: float) -> list[tuple[str, bytes]]:
    """The past ``hours`` of the district's events in time order; leaves ``sim`` in the state at ``now``.

    """
    start = now - timedelta(hours=hours)
    timeline: list[tuple[datetime, int, bool]] = []
    for i, spot in enumerate(sim.spots):
        timeline += _spot_past(sim, spot, i, start, now)
    timeline = _seed_violations(sim, timeline, now)
    timeline.sort(key=lambda e: (e[0], e[1]))
    out = []
    for at, i, occupied in timeline:
        spot = sim.spots[i]
        spot.occupied = occupied
        out.append(sim._occupancy(spot, at))
    out += _gate_past(sim, start, now)
    return out


def _spot_past(sim: Simulation, spot: Spot, i: int, start: datetime, now: datetime) -> list[tuple[datetime, int, bool]]:
    p0 = NO_PARKING_DEMAND if spot.no_parking else demand(start.astimezone(sim_payloads.LOCAL))
    occupied = sim.rng.random() < p0
    at = start
    events = [(at, i, occupied)]
    while True:
        minutes = sim.stay_min(spot) if occupied else sim.gap_min(spot, at)
        at = at + timedelta(minutes=max(minutes, 1.0))
        if at >= now:
            return events
        occupied = not occupied
        events.append((at, i, occupied))


def _seed_violations(sim: Simulation, timeline: list[tuple[datetime, int, bool]],
                     now: datetime) -> list[tuple[datetime, int, bool]]:
    """Cars in violation now: past the limit on a few time-limited spaces, on a few no-parking ones."""
    limited = [i for i, s in enumerate(sim.spots) if s.max_stay and not s.no_parking]
    banned = [i for i, s in enumerate(sim.spots) if s.no_parking and not s.max_stay]  # no parking at any hour
    chosen = {i: now - timedelta(minutes=(sim.spots[i].max_stay or 60) * sim.rng.uniform(1.2, 1.6))
              for i in sim.rng.sample(limited, min(SEEDED_OVERSTAYS, len(limited)))}
    chosen |= {i: now - timedelta(minutes=sim.rng.uniform(10, 20))
               for i in sim.rng.sample(banned, min(SEEDED_NO_PARKING, len(banned)))}
    kept = [e for e in timeline if e[1] not in chosen or e[0] < chosen[e[1]] - timedelta(minutes=2)]
    for i, arrived in chosen.items():
        kept += [(arrived - timedelta(minutes=1), i, False), (arrived, i, True)]
    sim.seeded = set(chosen)
    return kept


def _gate_past(sim: Simulation, start: datetime, now: datetime) -> list[tuple[str, bytes]]:
    out = []
    at = start
    while at < now:
        target = 1 - demand(at.astimezone(sim_payloads.LOCAL))
        for g in sim.gates:
            g.free = max(0, min(g.capacity, round(g.capacity * target + sim.rng.gauss(0, g.capacity * 0.02))))
            topic = sim_payloads.count_topic(sim.root, g.operator_id, g.facility_id)
            out.append((topic, sim_payloads.count(g.free, at, g.capacity)))
        at += COUNT_STEP
    return out


def live_schedule(sim: Simulation, now: datetime, seeded: set[int] | None = None) -> None:
    """After a backfill or a resume: each space's next transition, from the state it is in now.

    A seeded violation lasts at least a quarter of an hour of simulated time.
    """
    for i, spot in enumerate(sim.spots):
        if spot.occupied:
            minutes = sim.stay_min(spot) * sim.rng.uniform(0.2, 1.0)
            minutes = max(minutes, 15.0) if seeded and i in seeded else minutes
        else:
            minutes = sim.gap_min(spot, now)
        sim.schedule(i, minutes)


def reports_now(sim: Simulation, now: datetime) -> list[tuple[str, bytes]]:
    """Every sensor re-reports its state now, so no space reads "unknown" after a start."""
    return [sim._occupancy(spot, now) for spot in sim.spots]


def begin(settings: Settings, hours: float) -> Callable[[Simulation, datetime], list[tuple[str, bytes]]]:
    """The simulator's first messages: a backfill of ``hours`` for a new district, else a resume.

    A district with stored states resumes from them (never a second backfill); a new one gets
    the simulated past (``hours`` > 0) or the plain start of :meth:`Simulation.start`.
    """
    def first(sim: Simulation, now: datetime) -> list[tuple[str, bytes]]:
        stored, fresh = asyncio.run(_stored(settings))
        if not fresh:
            return resume(sim, now, stored)
        if hours <= 0:
            return sim.start(now)
        past = backfill(sim, now, hours)
        live_schedule(sim, now, sim.seeded)
        return reports_now(sim, now) + past  # the present first: the map is live at once, the past follows

    return first


async def _stored(settings: Settings) -> tuple[dict[str, tuple[bool, datetime, int]], bool]:
    conn = await asyncpg.connect(settings.asyncpg_dsn)
    try:
        if not await has_history(conn):
            return {}, True
        return await stored_states(conn), False
    finally:
        await conn.close()


def resume(sim: Simulation, now: datetime, stored: dict[str, tuple[bool, datetime, int]]) -> list[tuple[str, bytes]]:
    """Continue from the stored states: nothing is published before what is stored."""
    for spot in sim.spots:
        state = stored.get(spot.sensor_id)
        if state is not None:
            spot.occupied, _, spot.seq = state[0], state[1], state[2]
        else:
            spot.occupied = sim.rng.random() < demand(now.astimezone(sim_payloads.LOCAL))
    live_schedule(sim, now)
    for gate in sim.gates:
        gate.free = round(gate.capacity * (1 - demand(now.astimezone(sim_payloads.LOCAL))))
    return reports_now(sim, now)
