"""Settings from the environment (CITYPARK_*), each with a working local default.

The four variables of CONTRACT.md keep their names and defaults; the rest are additions.
"""

from __future__ import annotations

from functools import lru_cache
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEV_PLATE_KEY = "citypark-development-plate-key"
DEV_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/citypark"
# passwords of the examples (deploy/docker-compose.yml, deploy/k8s, deploy/mosquitto) and the usual guesses
EXAMPLE_PASSWORDS = frozenset({"change-me", "changeme", "citypark", "postgres", "password", "secret", "admin",
                               "example", "test"})


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CITYPARK_", extra="ignore")

    # --- CONTRACT.md ---
    database_url: str = DEV_DATABASE_URL
    mqtt_url: str = "mqtt://127.0.0.1:1883"
    mqtt_topic_root: str = "parking"
    rate_limit: str = "120/minute"

    # --- additions ---
    env: str = "development"
    timezone: str = "Asia/Shanghai"
    cors_origins: list[str] = Field(default_factory=lambda: ["*"])
    # proxies (IPs or CIDRs, comma-separated) whose X-Forwarded-For names the client, which the
    # rate limit keys anonymous callers by; empty: the connection's own address ("*" is refused in production)
    forwarded_allow_ips: str = ""
    max_body_bytes: int = 5 * 1024 * 1024
    # PUT /v1/operators/{op}/inventory: ~250 bytes a space, so 64 MiB is ~250,000 spaces; bigger files
    # go through `citypark import`, which streams them.
    inventory_max_body_bytes: int = 64 * 1024 * 1024
    otel: bool = False  # FastAPI's native OpenTelemetry (spans, metrics, logs) for a configured provider
    db_pool_size: int = 10
    # ingest
    mqtt_share_group: str = "citypark"
    mqtt_session_expiry_s: int = 3600
    ingest_batch_size: int = 2000
    ingest_flush_ms: int = 100
    stale_after_s: int = 1800
    # a crashed ingest worker (--workers > 1) is restarted after a growing delay with jitter;
    # this many failures in a row (none after a stable run) make `citypark ingest` give up, exit 1
    ingest_restart_backoff_s: float = Field(default=0.5, gt=0)
    ingest_restart_backoff_max_s: float = Field(default=60.0, gt=0)
    ingest_restart_max_failures: int = Field(default=8, ge=1)
    ingest_restart_stable_s: float = Field(default=120.0, gt=0)
    max_clock_skew_s: int = 300
    rejected_retention_days: int = Field(default=30, ge=1)  # rejected_messages older than this are deleted
    # matching
    hold_seconds: int = 600
    batch_window_ms: int = 200
    batch_max: int = Field(default=16, ge=1)  # a batch this full is solved without waiting out the window
    arrival_radius_m: float = 150.0
    max_radius_m: float = 5000.0
    default_radius_m: float = 1000.0
    # enforcement
    no_parking_grace_s: int = 300
    # management (issue 16): a reading holds until the next one of its space or facility, for at
    # most this long; after that silence the space is stale (neither free nor occupied)
    management_hold_s: int = Field(default=43200, ge=60, le=86400)
    # an API answer refreshes the rollups itself only when that is at most this many hours of
    # work; a longer backlog (first start on a long history) is for `citypark rollup`
    management_refresh_max_hours: int = Field(default=24 * 14, ge=0)
    # web map: base-map tiles ({z}/{x}/{y} template; empty = plain background, layers still drawn)
    tile_url: str = ""
    tile_attribution: str = "© OpenStreetMap contributors"
    # forecasts (issue 17)
    forecast_holidays: str = "CN"  # python-holidays country code of public holidays; empty: none
    forecast_board_s: float = 60.0  # how often an API process recomputes every facility's forecast; 0: never
    forecast_train_days: int = 90  # training window of `citypark forecast train`
    forecast_max_samples: int = 300_000  # training samples drawn from that window
    forecast_far_eta_min: float = 10.0  # drivers at least this far away are sent where a space is likeliest
    # issue 18: hostile input and a demo a newcomer understands
    # inventory and zone geometries must lie in this lon/lat box (minlon,minlat,maxlon,maxlat;
    # empty = anywhere); the default covers the demo district (铁东, Anshan) with a wide margin
    service_area: str = "122.80,40.95,123.25,41.30"
    max_holds_per_driver: int = Field(default=1, ge=1)  # active holds per driver key (a key's max_holds overrides)
    # /readyz keeps its result this long (anonymous and unlimited: a flood costs one check a period)
    readyz_cache_s: float = Field(default=1.0, ge=0, le=10)
    metrics_host: str = "127.0.0.1"  # where ingest workers serve Prometheus metrics (0.0.0.0: every interface)
    # --- more than one process (issue 13) ---
    # rate limits shared by every API process; Redis down → each process limits alone (logged, metered)
    rate_limit_storage: str = "redis://127.0.0.1:6379/0"
    rate_limit_prefix: str = ""  # Redis key prefix; empty: "citypark:<database name>"
    # an authenticated key is trusted this long while revocations arrive by LISTEN/NOTIFY (1 s when not)
    key_cache_ttl_s: float = Field(default=300.0, gt=0)
    # direct PostgreSQL URL for LISTEN connections when CITYPARK_DATABASE_URL is a transaction-mode
    # PgBouncer (which cannot LISTEN); empty = CITYPARK_DATABASE_URL
    database_direct_url: str = ""
    # asyncpg's prepared-statement cache; 0 behind PgBouncer in transaction mode (and unique
    # statement names, so two app connections sharing one server connection never collide)
    db_statement_cache_size: int = Field(default=100, ge=0)
    # availability reads (facility list/detail/history) from a streaming replica; empty = primary
    database_read_url: str = ""
    read_max_lag_s: float = Field(default=5.0, gt=0)  # a replica further behind is not read from
    # real inputs (LoRaWAN network servers, gate passages): CONTRACT.md "Real inputs"
    lorawan_mqtt_url: str = ""  # broker of the network servers; empty = mqtt_url
    lorawan_formats: str = "chirpstack,tts"  # envelopes to subscribe to; empty turns them off
    lorawan_fallback_dedup_s: int = 600  # uplinks timed by their arrival: same fCnt this close = one event
    # an uplink's sensor row (last_seen, radio, battery, ...) is written at most this often per
    # sensor and ingest process (report time; resets at once); 0 = on every uplink
    sensor_report_interval_s: float = Field(default=30.0, ge=0)
    plate_key: str = DEV_PLATE_KEY  # secret of the plates' keyed hash
    plate_retention_days: int = Field(default=30, ge=1)
    # NGSI-LD notifications (citypark notify): endpoint allow-list (hosts, IPs or CIDRs, comma-separated;
    # loopback and private addresses are refused unless listed), per-request timeout, delivery attempts
    notify_allow: str = ""
    notify_timeout_s: float = 5.0
    notify_attempts: int = Field(default=6, ge=1)
    # the notifier's CPU priority below ingest and the API on a shared host (os.nice increment; 0: none)
    notify_nice: int = Field(default=10, ge=0, le=19)
    # NGSI-LD ParkingSpot queries from the process's free-space index (False: always PostGIS)
    ngsi_index: bool = True
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

    @field_validator("service_area")
    @classmethod
    def _service_area(cls, value: str) -> str:
        parse_bbox(value)
        return value

    @property
    def service_area_bbox(self) -> Bbox | None:
        """``service_area`` as (minlon, minlat, maxlon, maxlat); None = anywhere."""
        return parse_bbox(self.service_area)
    @field_validator("lorawan_mqtt_url")
    @classmethod
    def _lorawan_scheme(cls, value: str) -> str:
        if value and urlsplit(value).scheme not in {"mqtt", "mqtts"}:
            raise ValueError("CITYPARK_LORAWAN_MQTT_URL must start with mqtt:// or mqtts://")
        return value

    @model_validator(mode="after")
    def _nothing_of_development_in_production(self) -> Settings:
        if self.env == "production" and (problems := production_problems(self)):
            raise ValueError("CITYPARK_ENV=production refuses " + "; ".join(problems))
        return self

    @property
    def lorawan_url(self) -> str:
        """The network servers' broker: CITYPARK_LORAWAN_MQTT_URL, else CITYPARK_MQTT_URL."""
        return self.lorawan_mqtt_url or self.mqtt_url

    @property
    def lorawan_format_set(self) -> frozenset[str]:
        return frozenset(f.strip().lower() for f in self.lorawan_formats.split(",") if f.strip())

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
    def listen_dsn(self) -> str:
        """Where LISTEN connections go: ``database_direct_url`` when set (PgBouncer can't LISTEN)."""
        return (self.database_direct_url or self.asyncpg_dsn).replace("postgresql+asyncpg://", "postgresql://", 1)

    @property
    def asyncpg_options(self) -> dict[str, int]:
        """Keyword arguments for ``asyncpg.connect``/``create_pool`` (the statement cache)."""
        return {"statement_cache_size": self.db_statement_cache_size}

    @property
    def database_name(self) -> str:
        return urlsplit(self.asyncpg_dsn).path.lstrip("/") or "postgres"


def production_problems(settings: Settings) -> list[str]:
    """What a production deployment must not run with: ``*`` CORS origins, the development
    plate key, the development database URL, and example or default passwords in any URL."""
    problems = []
    if "*" in settings.cors_origins:
        problems.append('CITYPARK_CORS_ORIGINS ["*"]: list the origins of your apps, e.g. ["https://app.example.city"]')
    if settings.plate_key == DEV_PLATE_KEY or settings.plate_key.lower().startswith("change-me"):
        problems.append("the development CITYPARK_PLATE_KEY: set CITYPARK_PLATE_KEY to a secret of your own")
    if settings.forwarded_allow_ips.strip() == "*":
        problems.append('CITYPARK_FORWARDED_ALLOW_IPS "*": any client could name its own address; list your proxies')
    if settings.database_url == DEV_DATABASE_URL:
        problems.append("the development CITYPARK_DATABASE_URL (postgres without a password on 127.0.0.1)")
    urls = {"CITYPARK_DATABASE_URL": settings.database_url, "CITYPARK_DATABASE_READ_URL": settings.database_read_url,
            "CITYPARK_DATABASE_DIRECT_URL": settings.database_direct_url, "CITYPARK_MQTT_URL": settings.mqtt_url,
            "CITYPARK_LORAWAN_MQTT_URL": settings.lorawan_mqtt_url}
    for name, url in urls.items():
        password = urlsplit(url).password if url else None
        if password is not None and password.lower() in EXAMPLE_PASSWORDS:
            problems.append(f"{name} with the example password {password!r}: set a real one")
    return problems


Bbox = tuple[float, float, float, float]


def parse_bbox(text: str) -> Bbox | None:
    """``"minlon,minlat,maxlon,maxlat"`` → a bbox; empty → None (anywhere)."""
    if not text.strip():
        return None
    try:
        minx, miny, maxx, maxy = (float(p) for p in text.split(","))
    except ValueError:
        raise ValueError(f"service area {text!r}: give minlon,minlat,maxlon,maxlat") from None
    if not (-180 <= minx < maxx <= 180 and -90 <= miny < maxy <= 90):
        raise ValueError(f"service area {text!r}: not a lon/lat box")
    return minx, miny, maxx, maxy


@lru_cache
def get_settings() -> Settings:
    return Settings()
