"""Trained models in the database (``forecast_models``), loaded once per process.

The artifact is a pickle written by ``citypark forecast train`` into this service's own
database and read back only from there (never from user input).
"""

from __future__ import annotations

import pickle
from collections import OrderedDict
from datetime import datetime
from typing import Any

import asyncpg
import orjson

from app.forecast.model import Artifact

KEEP_MODELS = 20  # older rows are deleted by training; backtests before them use the profile
_LOADED: OrderedDict[int, Artifact] = OrderedDict()
_CACHE_SIZE = 3


async def save(conn: asyncpg.Connection, art: Artifact, metrics: dict[str, Any]) -> int:
    """Store a trained model; keeps the newest ``KEEP_MODELS``."""
    model_id: int = await conn.fetchval(
        "INSERT INTO forecast_models (kind, train_since, train_until, facilities, samples, metrics, artifact) "
        "VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7) RETURNING id",
        art.kind, art.train_since, art.train_until, len(art.ids), int(metrics.get("samples", 0)),
        orjson.dumps(metrics, option=orjson.OPT_SERIALIZE_NUMPY).decode(), pickle.dumps(art, protocol=5))
    await conn.execute("DELETE FROM forecast_models WHERE id NOT IN "
                       "(SELECT id FROM forecast_models ORDER BY id DESC LIMIT $1)", KEEP_MODELS)
    return model_id


async def newest_before(conn: asyncpg.Connection, as_of: datetime) -> tuple[int, datetime] | None:
    """(id, trained_at) of the newest model trained only on data before ``as_of``."""
    row = await conn.fetchrow("SELECT id, trained_at FROM forecast_models WHERE train_until <= $1 "
                              "ORDER BY train_until DESC, id DESC LIMIT 1", as_of)
    return (row["id"], row["trained_at"]) if row else None


async def load(conn: asyncpg.Connection, model_id: int) -> Artifact:
    """The model with that id (cached per process: a model never changes once stored)."""
    if model_id in _LOADED:
        _LOADED.move_to_end(model_id)
        return _LOADED[model_id]
    blob = await conn.fetchval("SELECT artifact FROM forecast_models WHERE id = $1", model_id)
    art: Artifact = pickle.loads(blob)  # noqa: S301 - our own table, written by forecast train
    _LOADED[model_id] = art
    while len(_LOADED) > _CACHE_SIZE:
        _LOADED.popitem(last=False)
    return art


async def listing(conn: asyncpg.Connection) -> list[dict[str, Any]]:
    """Stored models, newest first, without their artifacts."""
    rows = await conn.fetch("SELECT id, kind, trained_at, train_since, train_until, facilities, samples, metrics "
                            "FROM forecast_models ORDER BY id DESC")
    return [dict(r) for r in rows]
