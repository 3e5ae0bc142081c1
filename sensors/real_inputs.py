"""The writer's stage for CONTRACT.md's "Real inputs": network-server uplinks (ChirpStack,
The Things Stack) and gate passages, next to citypark's own messages in the same batches.

``prepare`` turns a batch's uplink and passage messages into occupancy events (written by
``app.occupancy.service.write_batch`` with the rest), device reports, passages and rejections;
``commit`` writes the reports and passages in the batch's transaction, after the events. The
same validation, idempotency, ack-after-commit and rejection rules hold as for citypark's
JSON: nothing here can stop the worker.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from app.core.settings import Settings
from app.devices import service as devices
from app.occupancy.messages import Directory, Event, Occupancy, Rejected, Rejection
from app.passages import messages as passage_messages
from app.passages import service as passages
from sensors.lorawan import envelopes, uplinks

Raw = tuple[str, bytes]
WithDb = Callable[[Callable[[asyncpg.Connection], Awaitable[Any]], str], Awaitable[Any]]
PURGE_EVERY_S = 3600.0


@dataclass(slots=True)
class Extra:
    events: list[tuple[Raw, Event]] = field(default_factory=list)
    reports: list[devices.DeviceReport] = field(default_factory=list)
    passages: list[passage_messages.PassageIn] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)
    redelivered: int = 0


class RealInputs:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.formats = settings.lorawan_format_set
        self.devices = devices.DeviceDirectory()
        self._purged_at = 0.0
        self._arrival_timed: list[int] = []  # events of the batch in hand timed by their arrival
        interval = settings.sensor_report_interval_s
        self.throttle = devices.ReportThrottle(interval) if interval > 0 else None

    def claims(self, topic: str) -> bool:
        """Whether a topic is an uplink or a passage (handled here, not by the JSON parser)."""
        network = envelopes.network_of(topic)
        if network is not None:
            return network in self.formats
        return passage_messages.topic_ids(topic, self.settings.mqtt_topic_root) is not None

    async def prepare(self, items: Sequence[Raw], directory: Directory, with_db: WithDb) -> Extra:
        extra = Extra()
        now = datetime.now(UTC)
        parsed_uplinks, parsed_passages = self._parse(items, now, extra)
        await self._look_up(parsed_uplinks, parsed_passages, directory, with_db)
        self._accept_uplinks(parsed_uplinks, now, extra)
        self._accept_passages(parsed_passages, directory, now, extra)
        await self._drop_redelivered(extra, with_db)
        return extra

    def _parse(self, items: Sequence[Raw], now: datetime, extra: Extra) -> tuple[list[Any], list[Any]]:
        ups, pas = [], []
        root = self.settings.mqtt_topic_root
        for item in items:
            topic, payload = item
            ids = passage_messages.topic_ids(topic, root)
            try:
                if ids:
                    pas += [(item, ids, body) for body in passage_messages.decode(payload, allow_list=True)]
                else:
                    ups.append((item, envelopes.parse(topic, payload, received_at=now)))
            except Rejected as rej:
                extra.rejections.append(_rejection(item, rej, passage=ids is not None))
        return ups, pas

    async def _look_up(self, ups: list[Any], pas: list[Any], directory: Directory, with_db: WithDb) -> None:
        euis = self.devices.wanted(u.dev_eui for _, u in ups)
        facilities = sorted({ids[1] for _, ids, _ in pas} - directory.facilities.keys())
        if not euis and not facilities:
            return

        async def fetch(conn: asyncpg.Connection) -> None:
            await self.devices.fetch(conn, euis)
            if facilities:
                await directory.fetch(conn, facility_ids=facilities)

        await with_db(fetch, "look up devices and facilities")

    def _accept_uplinks(self, ups: list[Any], now: datetime, extra: Extra) -> None:
        skew = self.settings.max_clock_skew_s
        self._arrival_timed = []
        for item, uplink in ups:
            try:
                accepted = uplinks.accept(uplink, directory=self.devices, now=now, max_clock_skew_s=skew)
            except Rejected as rej:
                extra.rejections.append(_rejection(item, rej))
                continue
            if accepted.timed_by_arrival:
                self._arrival_timed.append(len(extra.events))
            extra.events.append((item, accepted.event))
            extra.reports.append(accepted.report)

    def _accept_passages(self, pas: list[Any], directory: Directory, now: datetime, extra: Extra) -> None:
        for item, (operator_id, facility_id), body in pas:
            try:
                passage_messages.check_facility(directory.facilities.get(facility_id), facility_id=facility_id,
                                                operator_id=operator_id)
                extra.passages.append(passage_messages.validate(
                    body, facility_id=facility_id, now=now, max_clock_skew_s=self.settings.max_clock_skew_s,
                    plate_key=self.settings.plate_key))
            except Rejected as rej:
                extra.rejections.append(Rejection(item[0], passage_messages.redact_item(body), rej.stored_reason))

    async def _drop_redelivered(self, extra: Extra, with_db: WithDb) -> None:
        """Uplinks timed by their arrival: a copy of a frame whose (sensor, fCnt) is already in
        the recent history is a re-delivery, not a new event."""
        timed = {i: e for i in self._arrival_timed if isinstance(e := extra.events[i][1], Occupancy)}
        if not timed:
            return
        since = datetime.now(UTC) - timedelta(seconds=self.settings.lorawan_fallback_dedup_s)
        sensor_ids = [e.sensor_id for e in timed.values()]
        seen = await with_db(lambda conn: devices.recent_seqs(conn, sensor_ids, since), "look up recent frames")
        drop = {i for i, e in timed.items() if (e.sensor_id, e.seq) in seen}
        if drop:
            extra.events = [e for i, e in enumerate(extra.events) if i not in drop]
            extra.reports = [r for i, r in enumerate(extra.reports) if i not in drop]
            extra.redelivered = len(drop)

    async def commit(self, conn: asyncpg.Connection, extra: Extra, counted_facilities: Sequence[str]) -> None:
        """Reports and passages, in the batch's transaction (after ``write_batch``); call
        :meth:`committed` once the transaction has committed."""
        await devices.write_reports(conn, extra.reports, throttle=self.throttle)
        if extra.passages or counted_facilities:
            await passages.write_passages(conn, extra.passages, counted_facilities=counted_facilities)
        if time.monotonic() - self._purged_at > PURGE_EVERY_S:
            await passages.purge_plates(conn, retention_days=self.settings.plate_retention_days)
            self._purged_at = time.monotonic()


    def committed(self) -> None:
        """The batch given to :meth:`commit` is committed (the report throttle moves on)."""
        if self.throttle is not None:
            self.throttle.committed()


def _rejection(item: Raw, rej: Rejected, *, passage: bool = False) -> Rejection:
    payload: bytes | str = passage_messages.redact(item[1]) if passage else item[1]
    return Rejection(item[0], payload, rej.stored_reason)
