"""LoRaWAN devices in the inventory: dev_eui (any case, unique, per operator) and sensor_model."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.errors import Forbidden, InvalidInput
from app.inventory import service as inventory
from app.inventory.models import Sensor
from tests.test_inventory import collection, lot, space

EUI = "A84041000181C0DE"


async def devices(db: AsyncSession) -> dict[str, tuple[str | None, str | None]]:
    rows = await db.execute(select(Sensor.id, Sensor.dev_eui, Sensor.sensor_model).where(Sensor.id.like("s-d%")))
    return {r[0]: (r[1], r[2]) for r in rows}


async def test_dev_eui_is_stored_lower_case_and_can_move_between_sensors(db: AsyncSession) -> None:
    doc = collection(lot(), space("d1", dev_eui=EUI, sensor_model="bosch-tps110"), space("d2"))
    await inventory.import_inventory(db, operator_id="op-t", doc=doc)
    assert await devices(db) == {"s-d1": (EUI.lower(), "bosch-tps110"), "s-d2": (None, None)}
    moved = collection(lot(), space("d1"), space("d2", dev_eui=EUI.lower(), sensor_model="decoded"))
    await inventory.import_inventory(db, operator_id="op-t", doc=moved)
    assert (await devices(db))["s-d2"] == (EUI.lower(), "decoded")
    assert (await devices(db))["s-d1"][0] is None


@pytest.mark.parametrize(("props", "message"), [
    ({"dev_eui": EUI}, "go together"),
    ({"sensor_model": "nwave-nps310"}, "go together"),
    ({"dev_eui": "12345", "sensor_model": "nwave-nps310"}, "dev_eui"),
    ({"dev_eui": EUI, "sensor_model": "acme-9000"}, "sensor_model"),
])
async def test_bad_device_properties_reject_the_file(db: AsyncSession, props: dict[str, str], message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        await inventory.import_inventory(db, operator_id="op-t", doc=collection(lot(), space("d1", **props)))


async def test_one_dev_eui_on_two_sensors_is_refused(db: AsyncSession) -> None:
    doc = collection(lot(), space("d1", dev_eui=EUI, sensor_model="decoded"),
                     space("d2", dev_eui=EUI.lower(), sensor_model="decoded"))
    with pytest.raises(InvalidInput, match="more than one sensor"):
        await inventory.import_inventory(db, operator_id="op-t", doc=doc)


async def test_another_operators_dev_eui_is_forbidden(db: AsyncSession) -> None:
    with pytest.raises(Forbidden, match="another operator"):  # a demo district Bosch device
        await inventory.import_inventory(db, operator_id="op-t", doc=collection(
            lot(), space("d1", dev_eui="FC0FE7FFFE0002EE", sensor_model="bosch-tps110")))
