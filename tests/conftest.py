"""Shared fixtures: a real PostGIS database per test run, the app over ASGI, API keys.

Databases: a migrated, demo-seeded template is made once per run; ``db_settings`` is a copy
of it for the session and ``fresh_db()`` makes another copy (fast: CREATE DATABASE … TEMPLATE)
for tests whose writes must be committed or that run other processes. ``db`` and ``client``
share one connection whose transaction is rolled back after each test.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from hypothesis import settings as hypothesis_settings
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from app.api.main import create_app
from app.core import migrate as database
from app.core.db import create_engine
from app.core.settings import Settings
from app.inventory import seed as seed_service
from app.keys import service as keys_service

ROOT = Path(__file__).resolve().parent.parent
RUN_ID = f"{os.getpid()}_{secrets.token_hex(3)}"
BASE_DSN = os.environ.get("CITYPARK_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432")
MQTT_URL = os.environ.get("CITYPARK_TEST_MQTT_URL", "mqtt://127.0.0.1:1883")
OUTPUT_DIR = Path(os.environ.get("CITYPARK_TEST_OUTPUT", ROOT / "test-output"))
# ../shared beside the project, as the workplace and CI lay it out (real data, official schemas)
SHARED = Path(os.environ.get("CITYPARK_SHARED", ROOT.parent / "shared"))


# Hypothesis (schemathesis and tests/fuzz) runs derandomized by default, so CI and a local run
# try the same examples and a red CI always reproduces; CITYPARK_HYPOTHESIS_PROFILE=explore draws
# new examples each run (with CITYPARK_FUZZ_EXAMPLES=1000 for a long local search).
hypothesis_settings.register_profile("citypark", derandomize=True)
hypothesis_settings.register_profile("explore", derandomize=False)
hypothesis_settings.load_profile(os.environ.get("CITYPARK_HYPOTHESIS_PROFILE", "citypark"))


def shared_path(*parts: str) -> Path:
    """A path under ../shared; a missing one fails the test that needs it (never a silent skip)."""
    path = SHARED.joinpath(*parts)
    assert path.exists(), f"{path} is missing: the tests read ../shared beside the project root"
    return path


def make_settings(db_name: str, **overrides: Any) -> Settings:
    """Settings for a test database, a private MQTT topic root, no rate limit."""
    values: dict[str, Any] = {
        "database_url": f"{BASE_DSN.rstrip('/')}/{db_name}",
        "mqtt_url": MQTT_URL,
        "mqtt_topic_root": f"citypark-test-{RUN_ID}",
        "rate_limit": "0",
        "db_pool_size": 5,
    }
    values.update(overrides)
    return Settings(**values)


async def _drop_stale_databases() -> None:
    """Drop test databases left by runs whose process is gone (killed runs)."""
    conn = await asyncpg.connect(f"{BASE_DSN.rstrip('/')}/postgres")
    try:
        for (name,) in await conn.fetch("SELECT datname FROM pg_database WHERE datname LIKE 'citypark_t_%'"):
            pid = name.split("_")[2]
            if pid.isdigit() and not Path(f"/proc/{pid}").exists():
                await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def output_dir() -> Path:
    OUTPUT_DIR.mkdir(parents=True, exist_ok=True)
    return OUTPUT_DIR


@pytest.fixture(scope="session")
async def template_db() -> AsyncIterator[str]:
    """A migrated database with the demo district, used as the template of the others."""
    await _drop_stale_databases()
    settings = make_settings(f"citypark_t_{RUN_ID}_tpl")
    await database.migrate(settings)
    engine = create_engine(settings, pool_size=1)
    async with AsyncSession(engine) as session, session.begin():
        await seed_service.seed_demo(session, name="tiedong")
    await engine.dispose()
    yield settings.database_name
    await database.drop_database(settings)


@pytest.fixture(scope="session")
async def fresh_db(template_db: str) -> AsyncIterator[Callable[..., Any]]:
    """``await fresh_db(**settings_overrides)`` → Settings of a new seeded database."""
    made: list[Settings] = []

    async def make(**overrides: Any) -> Settings:
        settings = make_settings(f"citypark_t_{RUN_ID}_{len(made)}", **overrides)
        await database.create_database(settings, template=template_db)
        made.append(settings)
        return settings

    yield make
    for settings in made:
        await database.drop_database(settings)


@pytest.fixture(scope="session")
async def db_settings(fresh_db: Callable[..., Any]) -> Settings:
    """The session's seeded database (committed data shared by tests that only read)."""
    settings: Settings = await fresh_db()
    return settings


@pytest.fixture(scope="session")
async def db_engine(db_settings: Settings) -> AsyncIterator[Any]:
    engine = create_engine(db_settings, pool_size=2)
    yield engine
    await engine.dispose()


@pytest.fixture
async def db_connection(db_engine: Any) -> AsyncIterator[AsyncConnection]:
    async with db_engine.connect() as conn:
        transaction = await conn.begin()
        yield conn
        await transaction.rollback()


@pytest.fixture
async def db(db_connection: AsyncConnection) -> AsyncIterator[AsyncSession]:
    """A session whose work is rolled back after the test (commits become savepoints)."""
    session = AsyncSession(bind=db_connection, expire_on_commit=False,
                           join_transaction_mode="create_savepoint")
    yield session
    await session.close()


@contextlib.asynccontextmanager
async def app_client(settings: Settings, session: AsyncSession | None = None) -> AsyncIterator[httpx.AsyncClient]:
    """The app over ASGI with its lifespan running; with ``session``, each request runs in a savepoint of it."""
    app = create_app(settings)
    if session is not None:
        @contextlib.asynccontextmanager
        async def shared_transaction() -> AsyncIterator[AsyncSession]:
            # as a request's own transaction: what the test wrote before is kept (its savepoint
            # released), the request's work is committed when the handler returns and rolled back
            # when it fails, so all-or-nothing is seen as in production
            await session.commit()
            try:
                yield session
                await session.commit()
            except BaseException:
                await session.rollback()
                raise

        app.state.transaction = shared_transaction
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            client.app = app  # type: ignore[attr-defined]
            yield client


@pytest.fixture
async def client(db_settings: Settings, db: AsyncSession) -> AsyncIterator[httpx.AsyncClient]:
    """HTTP client whose requests run in the test's rolled-back transaction."""
    async with app_client(db_settings, db) as c:
        yield c


@pytest.fixture
def make_key(db: AsyncSession) -> Callable[..., Any]:
    """``await make_key("operator", "tiedong-city")`` → Authorization headers (rolled back)."""

    async def make(role: str, operator_id: str | None = None) -> dict[str, str]:
        plain, _ = await keys_service.create_key(db, role=role, operator_id=operator_id)
        return {"Authorization": f"Bearer {plain}"}

    return make


async def make_committed_key(settings: Settings, role: str, operator_id: str | None = None) -> dict[str, str]:
    """A key committed to ``settings``' database (for live apps and other processes)."""
    engine = create_engine(settings, pool_size=1)
    try:
        async with AsyncSession(engine) as session, session.begin():
            plain, _ = await keys_service.create_key(session, role=role, operator_id=operator_id)
    finally:
        await engine.dispose()
    return {"Authorization": f"Bearer {plain}"}


async def poll(check: Callable[[], Any], *, timeout: float = 10.0, interval: float = 0.05) -> Any:
    """Await ``check()`` until it returns a truthy value or the deadline passes (no sleeps-as-waits)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = check()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(f"condition not met within {timeout} s")
        await asyncio.sleep(interval)


@pytest.fixture(scope="session")
def mqtt_url() -> str:
    return MQTT_URL


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def pytest_sessionstart(session: pytest.Session) -> None:
    os.environ.setdefault("CITYPARK_RATE_LIMIT", "0")


@pytest.fixture(scope="session")
def repo_root() -> Iterator[Path]:
    return ROOT
