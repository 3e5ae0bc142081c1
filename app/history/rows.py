"""CSV rows of a history file → the live input's messages (``app.occupancy.messages``).

A row is turned into the JSON body the MQTT message would carry (``{"free", "observed_at",
"total"}`` or ``{"occupied", "observed_at", "seq"}``) and then validated by
``messages.validate`` itself, so an imported row is accepted or rejected exactly as the same
reading arriving live would be. Only what live messages cannot express is checked here: the
CSV's own syntax, the ``occupied`` form of a count (turned into ``free``) and local timestamps
(``YYYY-MM-DD HH:MM:SS`` in the facility's time zone, turned into RFC 3339).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo

from app.occupancy.messages import Message, Rejected

Kind = Literal["counts", "events"]
COUNT_COLUMNS = {"facility_id", "observed_at", "free", "occupied", "total"}
EVENT_COLUMNS = {"sensor_id", "observed_at", "occupied", "seq"}
TRUE, FALSE = {"true", "1", "t", "yes"}, {"false", "0", "f", "no"}


@dataclass(frozen=True)
class Layout:
    """Which file it is and where its columns are."""

    kind: Kind
    index: dict[str, int]

    @property
    def id_column(self) -> str:
        return "facility_id" if self.kind == "counts" else "sensor_id"


class BadHeader(ValueError):
    pass


def layout(header: Sequence[str]) -> Layout:
    """The file's kind from its header (facility counts or sensor events); BadHeader if neither."""
    names = [h.strip().lower() for h in header]
    index = {n: i for i, n in enumerate(names)}
    if len(index) != len(names):
        raise BadHeader("a column appears twice in the header")
    if "facility_id" in index:
        kind: Kind = "counts"
        allowed, need = COUNT_COLUMNS, {"facility_id", "observed_at"}
        if ("free" in index) == ("occupied" in index):
            raise BadHeader("a counts file has either a free or an occupied column")
    elif "sensor_id" in index:
        kind, allowed, need = "events", EVENT_COLUMNS, {"sensor_id", "observed_at", "occupied"}
    else:
        raise BadHeader("the header needs facility_id (counts) or sensor_id (events)")
    if missing := sorted(need - set(index)):
        raise BadHeader(f"missing column(s): {', '.join(missing)}")
    if extra := sorted(set(index) - allowed):
        raise BadHeader(f"unknown column(s): {', '.join(extra)}")
    return Layout(kind, index)


def to_message(row: Sequence[str], lay: Layout, *, operator_id: str, zones: Mapping[str, ZoneInfo],
               capacities: Mapping[str, int]) -> Message:
    """The live message a CSV row stands for (its values still to be validated)."""
    if len(row) != len(lay.index):
        raise Rejected("bad_row", f"{len(row)} fields, the header has {len(lay.index)}")
    get = {name: row[i].strip() for name, i in lay.index.items()}
    target_id = get[lay.id_column]
    if not target_id:
        raise Rejected("bad_row", f"empty {lay.id_column}")
    body: dict[str, Any] = {"observed_at": _timestamp(get["observed_at"], zones.get(target_id))}
    if lay.kind == "counts":
        _count_body(body, get, capacities.get(target_id))
        return Message(operator_id, "facilities", target_id, "count", body)
    body["occupied"] = _flag(get["occupied"])
    if get.get("seq"):
        body["seq"] = _number(get["seq"])
    return Message(operator_id, "sensors", target_id, "occupancy", body)


def _count_body(body: dict[str, Any], get: dict[str, str], capacity: int | None) -> None:
    if get.get("total"):
        body["total"] = _number(get["total"])
    if "free" in get:
        body["free"] = _number(get["free"])
        return
    occupied = _number(get["occupied"])
    total = body.get("total") if isinstance(body.get("total"), int) else capacity
    if not isinstance(occupied, int) or total is None:
        body["free"] = occupied  # validation names what is wrong (type, unknown facility)
        return
    if occupied < 0:
        raise Rejected("occupied_negative", f"occupied is {occupied}")
    if occupied > total:
        raise Rejected("occupied_above_capacity", f"occupied {occupied} > capacity {total}")
    body["free"] = total - occupied


def _timestamp(raw: str, zone: ZoneInfo | None) -> str:
    """RFC 3339 as given; a timestamp without offset is local time in the facility's zone."""
    if not raw or len(raw) > 40:
        return raw  # validation rejects it
    try:
        value = datetime.fromisoformat(raw)
    except ValueError:
        return raw
    if value.tzinfo is None and zone is not None:
        return value.replace(tzinfo=zone).isoformat()
    return raw


def _number(raw: str) -> int | str:
    try:
        return int(raw)
    except ValueError:
        return raw  # validation rejects it as invalid_field


def _flag(raw: str) -> bool | str:
    low = raw.lower()
    if low in TRUE:
        return True
    if low in FALSE:
        return False
    return raw
