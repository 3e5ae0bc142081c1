"""Detection on real rules: a sample of Melbourne's signed bay restrictions, checked minute by minute.

The bays and restrictions (``../shared/data/melbourne`` beside the project) become an inventory file (one curb
per bay), go through the importer like any operator's file, and get the Australia/Melbourne
time zone. Stays over a week are checked against an independent oracle that walks every
minute of each stay through every restriction.
"""

from __future__ import annotations

import csv
import random
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import text

from app.inventory import service as inventory
from tests.conftest import shared_path
from tests.enforcement.helpers import add_events, detect, stored

DATA = shared_path("data", "melbourne")
MELBOURNE = ZoneInfo("Australia/Melbourne")
DAY_NAMES = ("Su", "Mo", "Tu", "We", "Th", "Fr", "Sa")  # the data's 0 = Sunday
BANNED = ("clearway", "no stop", "no park", "tow away")
WEEK = datetime(2026, 6, 1, tzinfo=MELBOURNE)  # a Monday, standard time
GRACE_MIN = 5


def _clock(value: str) -> str:
    hh, mm, ss = (int(x) for x in value.strip().split(":"))
    return "24:00" if (hh, mm) == (23, 59) and ss == 59 else f"{hh:02d}:{mm:02d}"


def restrictions(row: dict[str, str]) -> list[dict]:  # type: ignore[type-arg]
    """The bay's restrictions as inventory rules."""
    rules = []
    for k in range(1, 7):
        kind = row[f"TypeDesc{k}"].strip()
        if not kind:
            continue
        first, last = int(row[f"FromDay{k}"]), int(row[f"ToDay{k}"])
        days = DAY_NAMES[first] if first == last else f"{DAY_NAMES[first]}-{DAY_NAMES[last]}"
        rule = {"days": days, "from": _clock(row[f"StartTime{k}"]), "to": _clock(row[f"EndTime{k}"]),
                "note": kind}
        duration = int(row[f"Duration{k}"] or 0)
        if duration <= 2 or any(word in kind.lower() for word in BANNED):
            rule["no_parking"] = True
        else:
            rule["max_stay_minutes"] = duration
        rules.append(rule)
    return rules


def sample_bays(n: int = 30) -> list[tuple[str, float, float, list[dict]]]:  # type: ignore[type-arg]
    """Bays with a position and restrictions, chosen to cover every kind of sign first."""
    where = {}
    with (DATA / "bay_snapshots.csv").open(encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            where[row["bay_id"]] = (float(row["lat"]), float(row["lon"]))
    seen_kinds: set[str] = set()
    picked, rest = [], []
    with (DATA / "bay_restrictions.csv").open(encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            if row["BayID"] not in where or not (rules := restrictions(row)):
                continue
            item = (row["BayID"], *where[row["BayID"]], rules)
            signature = "|".join(sorted(r["note"] for r in rules))
            (rest if signature in seen_kinds else picked).append(item)
            seen_kinds.add(signature)
    banned = [b for b in picked if any(r.get("no_parking") for r in b[3])][:n // 4]
    return (banned + [b for b in picked + rest if b not in banned])[:n]


def inventory_doc(bays: list[tuple[str, float, float, list[dict]]]) -> dict:  # type: ignore[type-arg]
    features = []
    for bay, lat, lon, rules in bays:
        features.append({"type": "Feature", "id": f"mel-{bay}", "geometry": {
            "type": "LineString", "coordinates": [[lon - 0.00005, lat], [lon + 0.00005, lat]]},
            "properties": {"feature": "facility", "name": f"Melbourne bay {bay}", "kind": "curb",
                           "capacity": 1}})
        features.append({"type": "Feature", "id": f"mel-{bay}-1", "geometry": {
            "type": "Point", "coordinates": [lon, lat]},
            "properties": {"feature": "space", "facility_id": f"mel-{bay}", "sensor_id": f"mel-sensor-{bay}",
                           "rules": rules}})
    return {"type": "FeatureCollection", "features": features}


# --- the oracle: minute by minute, written without the engine's windows ---------------------

def _in_force(rule: dict, when: datetime) -> bool:  # type: ignore[type-arg]
    days = rule["days"].split("-")
    first, last = DAY_NAMES.index(days[0]), DAY_NAMES.index(days[-1])
    start = int(rule["from"][:2]) * 60 + int(rule["from"][3:])
    end = int(rule["to"][:2]) * 60 + int(rule["to"][3:])
    length = (end - start) % 1440 or 1440
    for back in (0, 1):
        day = (when - timedelta(days=back)).date()
        weekday = (day.weekday() + 1) % 7  # 0 = Sunday, as in the data
        if (weekday - first) % 7 <= (last - first) % 7:
            opens = datetime(day.year, day.month, day.day, tzinfo=MELBOURNE) + timedelta(minutes=start)
            if opens <= when < opens + timedelta(minutes=length):
                return True
    return False


def oracle(rules: list[dict], arrive: datetime, leave: datetime) -> dict[str, set[datetime]]:  # type: ignore[type-arg]
    """The minutes of the stay in violation, by kind."""
    out: dict[str, set[datetime]] = {"overstay": set(), "no_parking": set()}
    minutes = [arrive + timedelta(minutes=m) for m in range(int((leave - arrive).total_seconds() // 60))]
    for rule in rules:
        kind = "no_parking" if rule.get("no_parking") else "overstay"
        allowed = GRACE_MIN if kind == "no_parking" else rule["max_stay_minutes"]
        counted = 0
        for minute in minutes:
            counted = counted + 1 if _in_force(rule, minute) else 0
            if counted > allowed:
                out[kind].add(minute)
    return out


def _into_a_window(rule: dict, after: datetime) -> tuple[datetime, datetime]:  # type: ignore[type-arg]
    """A stay arriving 20 min before the rule's next window and staying past its limit."""
    hh, mm = int(rule["from"][:2]), int(rule["from"][3:])
    for days in range(1, 9):
        day = (after + timedelta(days=days)).date()
        opens = datetime(day.year, day.month, day.day, hh % 24, mm, tzinfo=MELBOURNE)
        if _in_force(rule, opens):
            allowed = GRACE_MIN if rule.get("no_parking") else rule["max_stay_minutes"]
            return opens - timedelta(minutes=20), opens + timedelta(minutes=allowed + 40)
    raise AssertionError(f"rule {rule} never in force")


def violating_minutes(rows: list[dict]) -> dict[str, set[datetime]]:  # type: ignore[type-arg]
    out: dict[str, set[datetime]] = {"overstay": set(), "no_parking": set()}
    for row in rows:
        span = int((row["ended_at"] - row["started_at"]).total_seconds() // 60)
        out[row["kind"]] |= {row["started_at"] + timedelta(minutes=m) for m in range(span)}
    return out


async def test_detection_on_melbourne_bays_matches_a_minute_by_minute_oracle(db, db_settings) -> None:  # type: ignore[no-untyped-def]
    bays = sample_bays()
    assert len(bays) == 30
    result = await inventory.import_inventory(db, operator_id="melbourne", doc=inventory_doc(bays))
    assert result.rules >= 30
    await db.execute(text("UPDATE parking_rules SET timezone = 'Australia/Melbourne' "
                          "WHERE space_id LIKE 'mel-%'"))
    settings = db_settings.model_copy(update={"no_parking_grace_s": GRACE_MIN * 60})
    rng = random.Random(2018)
    checked = {"overstay": 0, "no_parking": 0}
    for bay, _, _, rules in bays:
        space = f"mel-{bay}-1"
        stays = []
        cursor = WEEK + timedelta(minutes=rng.randrange(0, 600))
        for _ in range(4):
            arrive = cursor + timedelta(minutes=rng.randrange(30, 900))
            leave = arrive + timedelta(minutes=rng.choice([8, 25, 70, 150, 250, 600]))
            stays.append((arrive, leave))
            cursor = leave
        stays.append(_into_a_window(rng.choice(rules), cursor))
        cursor = stays[-1][1]
        await add_events(db, space, [e for a, b in stays for e in ((a, True), (b, False))])
        await detect(db, settings, space, now=cursor + timedelta(days=1), since=WEEK - timedelta(days=1))
        expected: dict[str, set[datetime]] = {"overstay": set(), "no_parking": set()}
        for arrive, leave in stays:
            for kind, found in oracle(rules, arrive, leave).items():
                expected[kind] |= found
        assert violating_minutes(await stored(db, space)) == expected, (bay, rules, stays)
        checked = {k: checked[k] + bool(expected[k]) for k in checked}
    assert checked["overstay"] >= 5  # the sample does exercise both kinds
    assert checked["no_parking"] >= 1
