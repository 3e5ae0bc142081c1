"""History import: live validation rules, reasons and summary, duplicates, old partitions,
all or nothing, progress, a million rows."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import numpy as np
import pytest

from app.core.db import raw_connection
from app.core.settings import Settings
from app.forecast import synthetic
from app.history import cli as history_cli
from app.history import service as history
from tests.forecast.conftest import OPERATOR

HEADER = "facility_id,observed_at,free,total\n"


def fit_lots(hist: synthetic.History) -> synthetic.History:
    """The generated history rescaled to the fixture's lots (capacities 100 and 50)."""
    caps = np.array([100.0, 50.0])
    hist.free = np.round(hist.free / hist.capacity[:, None] * caps[:, None])
    hist.capacity = caps
    return hist


async def run(settings: Settings, path: Path, **kw: Any) -> history.ImportReport:
    async with raw_connection(settings) as conn:
        try:
            async with conn.transaction():
                return await history.import_history(conn, path, operator_id=OPERATOR, **kw)
        except history.ImportFailed as exc:
            return exc.report


async def count(settings: Settings, sql: str, *args: Any) -> Any:
    conn = await asyncpg.connect(settings.asyncpg_dsn)
    try:
        return await conn.fetchval(sql, *args)
    finally:
        await conn.close()


DIRTY = HEADER + "".join([
    "imp-0000,2016-10-04T08:00:00+08:00,40,\n",
    "imp-0000 ,2016-10-04 08:15:00 ,41 ,\n",           # trailing whitespace, local time
    "imp-0000,2016-10-04T08:00:00+08:00,40,\n",         # duplicate
    "imp-0000,2016-10-04T08:30:00+08:00,101,\n",        # over capacity
    "imp-0000,2016-10-04T08:45:00+08:00,-3,\n",         # negative
    "imp-0000,2016-10-04T09:00:00+08:00,many,\n",       # not a number
    "imp-0001,2016-11-01 09:00:00,10,\n",               # London local time
    "nope,2016-10-04T08:00:00+08:00,3,\n",              # unknown facility
    "imp-0000,2016-13-40 00:00:00,3,\n",                # bad timestamp
    "imp-0000,2099-01-01T00:00:00Z,3,\n",               # in the future
    "imp-0000,2016-10-04T10:00:00+08:00\n",             # short row
])
REASONS = {"free_above_capacity": 1, "free_negative": 1, "invalid_field": 1, "unknown_facility": 1,
           "bad_timestamp": 1, "timestamp_in_future": 1, "bad_row": 1}


async def test_a_dirty_file_is_all_or_nothing(lots: Settings, tmp_path: Path) -> None:
    path = tmp_path / "dirty.csv"
    path.write_text(DIRTY)
    before = await count(lots, "SELECT count(*) FROM count_events")
    report = await run(lots, path)
    assert not report.written
    assert dict(report.reasons) == REASONS
    assert report.rows == 11
    assert report.accepted == 4
    assert await count(lots, "SELECT count(*) FROM count_events") == before
    text = history_cli.summary(report)
    assert "nothing imported" in text
    assert "free_above_capacity" in text
    assert "line 5:" in text


async def test_skip_bad_stores_the_good_rows_once_and_the_rejections(lots: Settings, tmp_path: Path) -> None:
    path = tmp_path / "dirty.csv"
    path.write_text(DIRTY)
    report = await run(lots, path, skip_bad=True)
    assert report.written
    assert report.inserted == 3
    assert report.duplicates_in_file == 1
    rows = await count(lots, "SELECT array_agg(observed_at ORDER BY observed_at) FROM count_events "
                             "WHERE facility_id LIKE 'imp-%' AND source = 'import'")
    assert [r.astimezone(UTC) for r in rows] == [
        datetime(2016, 10, 4, 0, 0, tzinfo=UTC), datetime(2016, 10, 4, 0, 15, tzinfo=UTC),
        datetime(2016, 11, 1, 9, 0, tzinfo=UTC)]  # London is on GMT on 1 November
    assert await count(lots, "SELECT count(*) FROM rejected_messages WHERE source = 'import'") == 7
    assert await count(lots, "SELECT to_regclass('count_events_p201610') IS NOT NULL")
    assert await count(lots, "SELECT count(*) FROM ONLY count_events_default WHERE facility_id LIKE 'imp-%'") == 0
    again = await run(lots, path, skip_bad=True)
    assert again.inserted == 0
    assert again.already_stored == 3


async def test_occupied_counts_and_a_wrong_header(lots: Settings, tmp_path: Path) -> None:
    path = tmp_path / "occ.csv"
    path.write_text("facility_id,observed_at,occupied\nimp-0001,2017-02-01T10:00:00Z,20\n"
                    "imp-0001,2017-02-01T10:15:00Z,51\nimp-0001,2017-02-01T10:30:00Z,-1\n")
    report = await run(lots, path)
    assert dict(report.reasons) == {"occupied_above_capacity": 1, "occupied_negative": 1}
    path.write_text("facility_id,observed_at,occupied\nimp-0001,2017-02-01T10:00:00Z,20\n")
    assert (await run(lots, path)).written
    assert await count(lots, "SELECT free FROM count_events WHERE facility_id = 'imp-0001' "
                             "AND observed_at = '2017-02-01T10:00:00Z'") == 30
    path.write_text("lot,when,free\nx,y,1\n")
    with pytest.raises(history.ImportFailed, match="facility_id"):
        async with raw_connection(lots) as conn, conn.transaction():
            await history.import_history(conn, path, operator_id=OPERATOR)


async def test_sensor_events_move_state_forward_only(fresh_db: Callable[..., Any], tmp_path: Path) -> None:
    settings: Settings = await fresh_db(forecast_board_s=0)
    conn = await asyncpg.connect(settings.asyncpg_dsn)
    try:
        sensor, operator, space = await conn.fetchrow(
            "SELECT id, operator_id, space_id FROM sensors WHERE space_id IS NOT NULL ORDER BY id LIMIT 1")
    finally:
        await conn.close()
    path = tmp_path / "events.csv"
    path.write_text("sensor_id,observed_at,occupied,seq\n"
                    f"{sensor},2019-05-01T08:00:00Z,true,1\n{sensor},2019-05-01T09:00:00Z,0,2\n"
                    f"{sensor},2019-05-01T09:00:00Z,0,2\n{sensor},2019-05-01T10:00:00Z,maybe,3\n")
    async with raw_connection(settings) as c:
        async with c.transaction():
            report = await history.import_history(c, path, operator_id=operator, skip_bad=True)
    assert report.inserted == 2
    assert report.duplicates_in_file == 1
    assert dict(report.reasons) == {"invalid_field": 1}
    assert await count(settings, "SELECT count(*) FROM occupancy_events WHERE sensor_id = $1", sensor) == 2
    assert await count(settings, "SELECT occupied FROM space_state WHERE space_id = $1", space) is False
    assert await count(settings, "SELECT to_regclass('occupancy_events_p201905') IS NOT NULL")


async def test_progress_is_reported_and_quiet_off_a_terminal(lots: Settings, tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    hist = fit_lots(synthetic.generate(2, 3, start=datetime(2018, 3, 1, tzinfo=UTC), prefix="imp", closures=False))
    path = tmp_path / "three-days.csv"
    synthetic.write_counts_csv(hist, path)
    seen: list[tuple[str, int, int]] = []
    report = await run(lots, path, progress=lambda *a: seen.append(a))
    assert report.written
    assert report.inserted == 2 * 3 * 96
    assert seen[-1][0] == "store"
    assert seen[-1][1] == seen[-1][2] == report.accepted
    reads = [s for s in seen if s[0] == "read"]
    assert reads
    assert reads[-1][1] == path.stat().st_size
    from rich.console import Console

    console = Console(file=__import__("io").StringIO(), force_terminal=False)
    again = await history_cli._run(lots, path, OPERATOR, False, console)
    assert again.already_stored == report.accepted
    assert console.file.getvalue() == ""  # type: ignore[attr-defined]  # no bar when not a terminal


@pytest.mark.slow
async def test_a_million_rows(lots: Settings, tmp_path: Path) -> None:
    hist = fit_lots(synthetic.generate(2, 5209, start=datetime(2005, 1, 1, tzinfo=UTC), prefix="imp",
                                       closures=False))
    path = tmp_path / "million.csv"
    stats = synthetic.write_counts_csv(hist, path, dirty=0.01)
    assert stats["rows"] >= 1_000_000
    report = await run(lots, path, skip_bad=True)
    bad = stats["over_capacity"] + stats["negative"]
    assert report.rows == stats["rows"]
    assert report.rejected == bad
    assert report.inserted + report.already_stored == stats["good"]  # a few 2016 rows came from other tests
    assert report.duplicates_in_file == stats["duplicates"]
    assert report.partitions_made >= 12 * 14
    assert await count(lots, "SELECT count(*) FROM count_events WHERE observed_at >= '2005-01-01' "
                             "AND observed_at < '2020-01-01' AND facility_id LIKE 'imp-%'") >= report.inserted
    assert await count(lots, "SELECT count(*) FROM ONLY count_events_default") == 0  # all in month partitions
