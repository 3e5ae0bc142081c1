"""A real NGSI-LD client library (ngsildclient, Orange's Python client) reads citypark as it
would read a context broker: over HTTP, with its own query, count and pagination logic."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn
from ngsildclient import Client

from app.api.main import create_app
from app.core.settings import Settings
from tests.ingest.harness import free_port, wait_port


@pytest.fixture(scope="module")
def served(db_settings: Settings) -> Iterator[int]:
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(db_settings), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
    thread.start()
    wait_port(port, timeout=30)
    yield port
    server.should_exit = True
    thread.join(timeout=10)


def _count(entities: list[Any]) -> int:
    return len({e.id for e in entities})


def test_ngsildclient_queries_citypark(served: int) -> None:
    client = Client(hostname="127.0.0.1", port=served, verbose=False)
    try:
        assert client.is_connected()
        total = client.entities.count(type="ParkingSpot")
        assert total > 1000
        spots = client.query(type="ParkingSpot")  # the client pages through with limit/offset itself
        assert _count(spots) == len(spots) == total
        one = spots[0]
        assert one.type == "ParkingSpot"
        assert one.id.startswith("urn:ngsi-ld:ParkingSpot:")
        assert one["refParkingSite"].value.startswith("urn:ngsi-ld:")
        again = client.get(one.id)
        assert again.id == one.id
        assert again.to_dict()["location"] == one.to_dict()["location"]
        lots = client.query(type="OffStreetParking", q="totalSpotNumber>50")
        assert lots
        assert all(e["totalSpotNumber"].value > 50 for e in lots)
        assert client.entities.count(type="OffStreetParking", q="totalSpotNumber>50") == len(lots)
        assert set(client.types.list()) == {"OffStreetParking", "OnStreetParking", "ParkingGroup", "ParkingSpot"}
    finally:
        client.close()
