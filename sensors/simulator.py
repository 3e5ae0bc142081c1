"""``citypark simulate``: a living district over MQTT.

Each sensor-equipped space alternates between free and occupied. Demand follows the local
clock (morning and evening peaks over a daytime base); stays are log-normal with a median by
facility kind; on time-limited spaces most drivers leave in time and some overstay; a few cars
stop on no-parking spaces. Counted facilities report gate counts. The rest of the ``--rate``
budget goes to heartbeats and periodic state re-reports, as real sensors send them. A small
share of messages is duplicated, reordered or malformed, as real networks and devices do.

Timestamps are the wall clock; ``--speed`` compresses stays and gaps (the demo's map moves
faster), never the clock, so observed_at is always real.
"""

from __future__ import annotations

import asyncio
import heapq
import math
import random
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

import asyncpg
import orjson

from app.core.settings import Settings
from sensors import sim_payloads
from sensors.lorawan import frames
from sensors.mqtt import connect_async, make_client

STAY_MEDIAN_MIN = {"curb": 35.0, "lot": 80.0, "garage": 120.0}
OVERSTAY_SHARE = 0.12
NO_PARKING_DEMAND = 0.04
DUPLICATE_SHARE, REORDER_SHARE, MALFORMED_SHARE = 0.01, 0.01, 0.003
COUNT_EVERY_S = 15.0
LORAWAN_APPLICATION, LORAWAN_TENANT = "tiedong-parking", "tiedong-city"
# Counted lots whose gates report each passage; their authoritative count comes every Nth round.
PASSAGE_GATES = frozenset({"lss-counted-lot"})
PASSAGE_COUNT_EVERY = 20
TICK_S = 0.1
BURST = 1000  # messages a tick may send beyond the rate while a backlog (a start, a backfill) drains

DISTRICT_SQL = """
SELECT se.id AS sensor_id, se.operator_id, se.space_id, f.kind, se.dev_eui, se.sensor_model,
       sp.no_parking OR EXISTS (
           SELECT 1 FROM parking_rules r WHERE r.kind = 'no_parking'
             AND (r.space_id = sp.id OR r.facility_id = f.id)) AS no_parking,
       (SELECT min(r.max_stay_minutes) FROM parking_rules r WHERE r.kind = 'time_limit'
          AND (r.space_id = sp.id OR r.facility_id = f.id)) AS max_stay
FROM sensors se JOIN spaces sp ON sp.id = se.space_id JOIN facilities f ON f.id = sp.facility_id
ORDER BY se.id
"""
GATES_SQL = "SELECT id, operator_id, capacity FROM facilities WHERE counted ORDER BY id"


@dataclass
class Spot:
    sensor_id: str
    operator_id: str
    kind: str
    no_parking: bool
    max_stay: int | None
    occupied: bool = False
    seq: int = 0
    battery_v: float = 3.6
    dev_eui: str | None = None  # a LoRaWAN device: speaks its network server's envelope
    model: str | None = None


@dataclass
class Gate:
    facility_id: str
    operator_id: str
    capacity: int
    free: int = 0
    inside: list[str] = field(default_factory=list)  # plates of the cars in a passage-reporting lot
    rounds: int = 0


def demand(local: datetime) -> float:
    """Share of spaces wanted at this local time: night base, morning and evening peaks."""
    h = local.hour + local.minute / 60
    peak = 0.45 * math.exp(-((h - 9.0) ** 2) / 2.0) + 0.40 * math.exp(-((h - 18.5) ** 2) / 3.0)
    day = 0.30 if 7 <= h <= 21 else 0.12
    return min(0.95, day + peak)


@dataclass
class Simulation:
    """The district's state and its next transitions (a heap of due times in sim seconds)."""

    spots: list[Spot]
    gates: list[Gate]
    rng: random.Random
    root: str
    speed: float = 1.0
    heap: list[tuple[float, int]] = field(default_factory=list)
    envelope: str = "json"  # what LoRaWAN devices speak: json, chirpstack, chirpstack-protobuf, tts
    run_id: str = field(default_factory=lambda: f"{time.time_ns():x}")  # passage ids unique across runs
    sim_s: float = 0.0
    seeded: set[int] = field(default_factory=set)  # spaces given a violation in force by a backfill
    _filler: int = 0

    def stay_min(self, spot: Spot) -> float:
        if spot.no_parking:
            return self.rng.uniform(5, 25)
        stay = self.rng.lognormvariate(math.log(STAY_MEDIAN_MIN[spot.kind]), 0.7)
        if spot.max_stay:
            if self.rng.random() < OVERSTAY_SHARE:
                return spot.max_stay * self.rng.uniform(1.1, 2.5)
            return min(stay, spot.max_stay * self.rng.uniform(0.5, 0.97))
        return stay

    def gap_min(self, spot: Spot, now: datetime) -> float:
        """Time until the next car takes a free space, so that occupancy tends to ``demand``."""
        p = NO_PARKING_DEMAND if spot.no_parking else demand(now.astimezone(sim_payloads.LOCAL))
        mean = STAY_MEDIAN_MIN[spot.kind] * (1 - p) / p
        return self.rng.expovariate(1 / mean)

    def schedule(self, i: int, minutes: float) -> None:
        heapq.heappush(self.heap, (self.sim_s + minutes * 60, i))

    def start(self, now: datetime) -> list[tuple[str, bytes]]:
        """Initial states (occupied ones backdated to their arrival) and first counts."""
        out = []
        p_now = demand(now.astimezone(sim_payloads.LOCAL))
        for i, spot in enumerate(self.spots):
            spot.battery_v = self.rng.uniform(3.0, 3.7)
            spot.occupied = self.rng.random() < (NO_PARKING_DEMAND if spot.no_parking else p_now)
            stay = self.stay_min(spot)
            elapsed = self.rng.uniform(0, stay) if spot.occupied else 0.0
            self.schedule(i, (stay - elapsed) if spot.occupied else self.gap_min(spot, now))
            at = now - timedelta(minutes=elapsed / self.speed)
            out.append(self._occupancy(spot, at, "startup"))
            if spot.model == "netvox-r719a" and self.envelope != "json":  # its version report has no state
                out.append(self._uplink(spot, at, "status"))
            if spot.occupied:  # and reports it now, or a car parked long ago reads as a stale sensor
                out.append(self._occupancy(spot, now))
        for gate in self.gates:
            gate.free = round(gate.capacity * (1 - p_now) * self.rng.uniform(0.8, 1.0))
        return out

    def advance(self, now: datetime, dt_s: float) -> list[tuple[str, bytes]]:
        """Transitions due in the next ``dt_s`` real seconds."""
        self.sim_s += dt_s * self.speed
        out = []
        while self.heap and self.heap[0][0] <= self.sim_s:
            _, i = heapq.heappop(self.heap)
            spot = self.spots[i]
            spot.occupied = not spot.occupied
            self.schedule(i, self.stay_min(spot) if spot.occupied else self.gap_min(spot, now))
            out.append(self._occupancy(spot, now))
        return out

    def counts(self, now: datetime) -> list[tuple[str, bytes]]:
        out = []
        target = 1 - demand(now.astimezone(sim_payloads.LOCAL))
        for g in self.gates:
            drift = (target * g.capacity - g.free) * 0.1 + self.rng.gauss(0, g.capacity * 0.01)
            before, g.free = g.free, max(0, min(g.capacity, round(g.free + drift)))
            if g.facility_id in PASSAGE_GATES:
                out += self._passages(g, before, now)
            if g.facility_id not in PASSAGE_GATES or g.rounds % PASSAGE_COUNT_EVERY == 0:
                out.append((sim_payloads.count_topic(self.root, g.operator_id, g.facility_id),
                            sim_payloads.count(g.free, now, g.capacity)))
            g.rounds += 1
        return out

    def _passages(self, g: Gate, before: int, now: datetime) -> list[tuple[str, bytes]]:
        """Gate passages (车辆入场/出场) for the change of a lot's free count, spread over the
        last count interval, each with a plate; exits leave with a plate that entered."""
        while len(g.inside) < g.capacity - before:  # cars there before the simulator started
            g.inside.append(self._plate())
        out = []
        for i in range(abs(g.free - before)):
            at = now - timedelta(seconds=self.rng.uniform(0, COUNT_EVERY_S))
            if g.free < before:
                plate = self._plate()
                g.inside.append(plate)
                direction = "in"
            else:
                plate = g.inside.pop(self.rng.randrange(len(g.inside))) if g.inside else self._plate()
                direction = "out"
            out.append((f"{self.root}/{g.operator_id}/facilities/{g.facility_id}/passage",
                        orjson.dumps({"direction": direction, "observed_at": sim_payloads.rfc3339(at), "plate": plate,
                                      "lane": "A" if direction == "in" else "B",
                                      "passage_id": f"{self.run_id}-{g.rounds}-{i}"})))
        return out

    def _plate(self) -> str:
        letters = "ABCDEFGHJKLMNPQRSTUVWXYZ"
        return "辽C" + self.rng.choice(letters) + "".join(self.rng.choice("0123456789") for _ in range(4))

    def fillers(self, now: datetime, n: int) -> list[tuple[str, bytes]]:
        """Heartbeats and state re-reports, round-robin over the sensors."""
        out = []
        for _ in range(min(n, len(self.spots))):
            spot = self.spots[self._filler % len(self.spots)]
            self._filler += 1
            spot.battery_v = max(2.5, spot.battery_v - 0.00001)
            if spot.dev_eui and self.envelope != "json":
                out.append(self._uplink(spot, now, "heartbeat" if self.rng.random() < 0.6 else "status"))
            elif self.rng.random() < 0.6:
                out.append((sim_payloads.sensor_topic(self.root, spot.operator_id, spot.sensor_id, "heartbeat"),
                            sim_payloads.heartbeat(now, spot.battery_v, self.rng.uniform(-115, -70))))
            else:
                out.append(self._occupancy(spot, now))
        return out

    def _occupancy(self, spot: Spot, at: datetime, kind: str = "status") -> tuple[str, bytes]:
        if spot.dev_eui and self.envelope != "json":
            return self._uplink(spot, at, kind)
        spot.seq += 1
        return (sim_payloads.sensor_topic(self.root, spot.operator_id, spot.sensor_id),
                sim_payloads.occupancy(spot.occupied, at, spot.seq, spot.battery_v))


    def _uplink(self, spot: Spot, at: datetime, kind: str) -> tuple[str, bytes]:
        """A LoRaWAN device's frame in its network server's envelope; a start-up frame restarts
        the frame counter, as a device that (re)joins does."""
        assert spot.dev_eui is not None
        assert spot.model is not None
        spot.seq = 0 if kind == "startup" else spot.seq + 1
        port, data = frames.frame(spot.model, kind, spot.occupied, battery_v=spot.battery_v,
                                  temperature_c=round(self.rng.uniform(-5, 25)))
        rssi, snr = round(self.rng.uniform(-118, -80)), round(self.rng.uniform(-8, 10), 1)
        if self.envelope == "tts":
            return (frames.tts_topic(LORAWAN_APPLICATION, spot.sensor_id, LORAWAN_TENANT),
                    frames.tts_json(LORAWAN_APPLICATION, spot.sensor_id, spot.dev_eui, port, spot.seq, data, at,
                                    rssi=rssi, snr=snr))
        build = frames.chirpstack_protobuf if self.envelope == "chirpstack-protobuf" else frames.chirpstack_json
        return (frames.chirpstack_topic(LORAWAN_APPLICATION, spot.dev_eui),
                build(LORAWAN_APPLICATION, spot.dev_eui, port, spot.seq, data, at, rssi=rssi, snr=snr))


def imperfect(messages: list[tuple[str, bytes]], rng: random.Random, root: str) -> list[tuple[str, bytes]]:
    """Duplicate, reorder (swap with the next) and corrupt a small share of messages."""
    out: list[tuple[str, bytes]] = []
    for msg in messages:
        r = rng.random()
        if r < MALFORMED_SHARE:
            topic, payload = msg
            out.append(rng.choice([(topic, payload[: len(payload) // 2]),
                                   (topic, payload.replace(b"true", b'"yes"').replace(b"false", b"0")),
                                   (f"{root}/tiedong-city/sensors/unknown-{rng.randrange(999)}/occupancy",
                                    payload)]))
            continue
        out.append(msg)
        if r < MALFORMED_SHARE + DUPLICATE_SHARE:
            out.append(msg)
        elif r < MALFORMED_SHARE + DUPLICATE_SHARE + REORDER_SHARE and len(out) >= 2:
            out[-1], out[-2] = out[-2], out[-1]
    return out


async def load_district(settings: Settings, rng: random.Random, speed: float, envelope: str = "json") -> Simulation:
    conn = await asyncpg.connect(settings.asyncpg_dsn)
    try:
        spots = [Spot(r["sensor_id"], r["operator_id"], r["kind"], r["no_parking"], r["max_stay"],
                      dev_eui=r["dev_eui"], model=r["sensor_model"] if r["sensor_model"] in frames.PORTS else None)
                 for r in await conn.fetch(DISTRICT_SQL)]
        spots = [replace(s, dev_eui=None) if s.model is None else s for s in spots]
        gates = [Gate(r["id"], r["operator_id"], r["capacity"]) for r in await conn.fetch(GATES_SQL)]
    finally:
        await conn.close()
    return Simulation(spots, gates, rng, settings.mqtt_topic_root, speed, envelope=envelope)


def run_simulator(settings: Settings, *, rate: float, duration: float, seed: int | None = None,
                  speed: float = 1.0, dry_run: bool = False, envelope: str = "json",
                  begin: Callable[[Simulation, datetime], list[tuple[str, bytes]]] | None = None) -> int:
    """Publish (or print, with ``dry_run``) for ``duration`` seconds (0 = until interrupted).

    ``begin(sim, now)`` gives the first messages (default :meth:`Simulation.start`; a backfill
    or a resume: ``sensors/backfill.py``).
    """
    rng = random.Random(seed)
    sim = asyncio.run(load_district(settings, rng, speed, envelope))
    first = (begin or Simulation.start)(sim, datetime.now(UTC))
    send, close = _printer() if dry_run else _publisher(settings)
    try:
        return _loop(sim, send, first, rate=rate, duration=duration)
    except KeyboardInterrupt:
        return 0
    finally:
        close()


def _loop(sim: Simulation, send: Callable[[str, bytes], None], first: list[tuple[str, bytes]], *,
          rate: float, duration: float) -> int:
    started = time.monotonic()
    backlog = deque(first)
    sent, budget, next_count = 0, 0.0, started
    while not duration or time.monotonic() - started < duration:
        tick = time.monotonic()
        now = datetime.now(UTC)
        budget += rate * TICK_S
        backlog.extend(sim.advance(now, TICK_S))
        if tick >= next_count:
            backlog.extendleft(sim.counts(now))
            next_count = tick + COUNT_EVERY_S
        n = min(len(backlog), max(int(budget), BURST))
        batch = [backlog.popleft() for _ in range(n)]
        batch += sim.fillers(now, int(budget) - n)
        for topic, payload in imperfect(batch, sim.rng, sim.root):
            send(topic, payload)
        sent += len(batch)
        budget -= len(batch)
        budget = max(budget, -rate)  # a burst (the initial snapshot) is not paid back forever
        time.sleep(max(0.0, TICK_S - (time.monotonic() - tick)))  # pacing to the wall clock
    return sent


def _printer() -> tuple[Callable[[str, bytes], None], Callable[[], None]]:
    def send(topic: str, payload: bytes) -> None:
        sys.stdout.write(f"{topic}\t{payload.decode('utf-8', 'replace')}\n")

    return send, sys.stdout.flush


def _publisher(settings: Settings) -> tuple[Callable[[str, bytes], None], Callable[[], None]]:
    client = make_client(settings, client_id=f"citypark-simulator-{random.randrange(16**6):06x}")
    client.max_queued_messages_set(100_000)  # bounded while the broker is away
    connect_async(client, settings, persistent=False)
    client.loop_start()

    def send(topic: str, payload: bytes) -> None:
        client.publish(topic, payload, qos=1)

    def close() -> None:
        client.disconnect()
        client.loop_stop()

    return send, close
