"""Settings from the environment (CITYPARK_*), each with a working local default.

The four variables of CONTRACT.md keep their names and defaults; the rest are additions.
"""

from __future__ import annotations

from functools import lru_cache
from urllib.parse import urlsplit

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CITYPARK_", extra="ignore")

    # --- CONTRACT.md ---
    database_url: str = "postgresql://postgres@127.0.0.1:5432/citypark"
    mqtt_url: str = "mqtt://127.0.0.1:1883"
    mqtt_topic_root: str = "parking"
    rate_limit: str = "120/minute"

    # --- additions ---
    env: str = "development"
    timezone: str = "Asia/Shanghai"
    cors_origins: list[str] = Field(default_factory=lambda: ["*"])
    max_body_bytes: int = 5 * 1024 * 1024
    otel: bool = False  # FastAPI's native OpenTelemetry (spans, metrics, logs) for a configured provider
    db_pool_size: int = 10
    # ingest
    mqtt_share_group: str = "citypark"
    mqtt_session_expiry_s: int = 3600
    ingest_batch_size: int = 2000
    ingest_flush_ms: int = 100
    stale_after_s: int = 1800
    max_clock_skew_s: int = 300
    # matching
    hold_seconds: int = 600
    batch_window_ms: int = 200
    batch_max: int = Field(default=16, ge=1)  # a batch this full is solved without waiting out the window
    arrival_radius_m: float = 150.0
    max_radius_m: float = 5000.0
    default_radius_m: float = 1000.0
    # enforcement
    no_parking_grace_s: int = 300
    # web map: base-map tiles ({z}/{x}/{y} template; empty = plain background, layers still drawn)
    tile_url: str = ""
    tile_attribution: str = "© OpenStreetMap contributors"
    # NGSI-LD notifications (citypark notify): endpoint allow-list (hosts, IPs or CIDRs, comma-separated;
    # loopback and private addresses are refused unless listed), per-request timeout, delivery attempts
    notify_allow: str = ""
    notify_timeout_s: float = 5.0
    notify_attempts: int = Field(default=6, ge=1)
    # where citypark is reached from outside (the @context URL in notifications)
    public_url: str = "http://127.0.0.1:8000"

    @field_validator("database_url")
    @classmethod
    def _postgres_only(cls, value: str) -> str:
        scheme = urlsplit(value).scheme
        if scheme not in {"postgresql", "postgres", "postgresql+asyncpg"}:
            raise ValueError(f"CITYPARK_DATABASE_URL must be a postgresql:// URL, not {scheme}://")
        return value

    @field_validator("mqtt_url")
    @classmethod
    def _mqtt_scheme(cls, value: str) -> str:
        if urlsplit(value).scheme not in {"mqtt", "mqtts"}:
            raise ValueError("CITYPARK_MQTT_URL must start with mqtt:// or mqtts://")
        return value

    @property
    def asyncpg_dsn(self) -> str:
        """The URL as asyncpg wants it (plain postgresql://)."""
        return self.database_url.replace("postgresql+asyncpg://", "postgresql://", 1)

    @property
    def sqlalchemy_url(self) -> str:
        """The URL for SQLAlchemy's async engine (postgresql+asyncpg://)."""
        dsn = self.asyncpg_dsn
        return "postgresql+asyncpg://" + dsn.split("://", 1)[1]

    @property
    def database_name(self) -> str:
        return urlsplit(self.asyncpg_dsn).path.lstrip("/") or "postgres"


@lru_cache
def get_settings() -> Settings:
    return Settings()
