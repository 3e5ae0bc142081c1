"""Settings of the real inputs: the network servers' broker defaults to the sensors'; the plate
key must be a secret of one's own in production."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from app.core.settings import Settings


def test_lorawan_broker_defaults_to_the_sensors_broker() -> None:
    assert Settings(mqtt_url="mqtt://broker:1883").lorawan_url == "mqtt://broker:1883"
    own = Settings(mqtt_url="mqtt://broker:1883", lorawan_mqtt_url="mqtts://u:p@ns.example:8883")
    assert own.lorawan_url == "mqtts://u:p@ns.example:8883"
    assert Settings(lorawan_formats=" TTS, chirpstack ").lorawan_format_set == {"tts", "chirpstack"}
    assert Settings(lorawan_formats="").lorawan_format_set == frozenset()


def test_bad_lorawan_url_is_refused() -> None:
    with pytest.raises(ValidationError, match="LORAWAN_MQTT_URL"):
        Settings(lorawan_mqtt_url="http://ns.example")


def test_production_needs_its_own_plate_key() -> None:
    with pytest.raises(ValidationError, match="PLATE_KEY"):
        Settings(env="production")
    assert Settings(env="production", plate_key="s3cret-of-the-city", cors_origins=["https://app.example.city"],
                    database_url="postgresql://citypark:Kq7-x@db:5432/citypark").plate_retention_days == 30
