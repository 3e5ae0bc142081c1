"""PostgreSQL stops and starts mid-stream: the worker keeps the MQTT session, acknowledges
nothing it has not committed, retries with backoff and resumes without loss."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from app.core import migrate as database
from app.core.db import create_engine
from app.core.settings import Settings
from app.inventory import seed as seed_service
from tests.conftest import make_settings, poll
from tests.ingest.harness import (
    PrivatePostgres,
    Publisher,
    assert_history_and_state,
    count_rows,
    make_truth,
    sensors_of,
)

pytestmark = pytest.mark.slow


@pytest.fixture
def private_pg() -> Iterator[PrivatePostgres]:
    pg = PrivatePostgres()
    pg.start()
    yield pg
    pg.remove()


async def _seeded_database(pg: PrivatePostgres, name: str) -> Settings:
    """A migrated database with the demo district on the private cluster."""
    settings = make_settings(name, database_url=pg.dsn(name))
    await database.migrate(settings)
    engine = create_engine(settings, pool_size=1)
    async with AsyncSession(engine) as session, session.begin():
        await seed_service.seed_demo(session, name="tiedong")
    await engine.dispose()
    return settings


async def test_database_stop_and_start_mid_stream(private_pg: PrivatePostgres, broker: Any,
                                                  ingest_factory: Any) -> None:
    settings = await _seeded_database(private_pg, "citypark_outage")

    ingest = ingest_factory(settings, broker.url)
    await poll(ingest.subscribed, timeout=20)
    truth = make_truth(settings, await sensors_of(settings, 200), 15, seed=5)
    third = len(truth.messages) // 3
    publisher = Publisher(broker.url)
    publisher.publish(truth.messages[:third])
    await poll(lambda: count_rows(settings, "SELECT count(*) FROM occupancy_events"), timeout=20)
    private_pg.stop()
    publisher.publish(truth.messages[third:])  # arrives while the database is down
    await poll(lambda: ingest.log().count("could not ") >= 4, timeout=20)  # a few backoff rounds
    assert ingest.alive()
    private_pg.start()
    await poll(lambda: _all_there(settings, len(truth.events)), timeout=40)
    publisher.close()
    await assert_history_and_state(settings, truth)
    assert ingest.alive()


async def _all_there(settings: Any, n: int) -> bool:
    try:
        return await count_rows(settings, "SELECT count(*) FROM occupancy_events") >= n
    except OSError:
        return False


async def test_stop_while_database_is_down_keeps_the_batch_for_the_next_start(
        private_pg: PrivatePostgres, broker: Any, ingest_factory: Any) -> None:
    settings = await _seeded_database(private_pg, "citypark_outage_stop")

    ingest = ingest_factory(settings, broker.url)
    await poll(ingest.subscribed, timeout=20)
    truth = make_truth(settings, await sensors_of(settings, 100), 5, seed=7)
    private_pg.stop()
    publisher = Publisher(broker.url)
    publisher.publish(truth.messages)  # nothing can be written: the writer retries
    await poll(lambda: ingest.log().count("could not ") >= 2, timeout=20)
    assert ingest.stop() == 0  # stops promptly, acknowledging nothing
    assert "the broker keeps it" in ingest.log()
    private_pg.start()
    ingest.start()  # the same client id: the persistent session resends what was not acknowledged
    await poll(lambda: _all_there(settings, len(truth.events)), timeout=40)
    publisher.close()
    await assert_history_and_state(settings, truth)
    assert ingest.alive()
