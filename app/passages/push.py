"""``POST /v1/operators/{operator_id}/facilities/{facility_id}/passages``: one passage or a list,
through the same validation and writer as the MQTT ``…/passage`` messages."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.core.settings import Settings
from app.occupancy import service as occupancy_service
from app.occupancy.messages import Directory, Rejected, Rejection
from app.passages import messages, service


@dataclass
class PushResult:
    accepted: int = 0
    duplicates: int = 0
    voided: int = 0
    rejected: list[dict[str, Any]] = field(default_factory=list)


async def push_passages(session: AsyncSession, *, settings: Settings, operator_id: str, facility_id: str,
                        body: bytes) -> PushResult:
    """Validate and write the passages of ``body`` (the caller commits).

    A problem of the whole request (bad JSON, unknown facility, another operator's, a lot that
    does not count at the gate, a single invalid passage) raises the domain error of its 4xx;
    in a list, each invalid passage is rejected alone (kept in ``rejected_messages``, plate
    blanked) and reported by index, and the others are written.
    """
    topic = f"{settings.mqtt_topic_root}/{operator_id}/facilities/{facility_id}/passage"
    conn = await occupancy_service.driver_connection(session)
    try:
        items = messages.decode(body, allow_list=True)
        directory = Directory()
        await directory.fetch(conn, facility_ids=[facility_id])
        messages.check_facility(directory.facilities.get(facility_id), facility_id=facility_id,
                                operator_id=operator_id)
    except Rejected as rej:
        await record(session, topic, body, rej)
        raise rej.as_domain_error() from None
    single = not body.lstrip().startswith(b"[")
    result, valid = PushResult(), []
    now = datetime.now(UTC)
    for index, item in enumerate(items):
        try:
            valid.append(messages.validate(item, facility_id=facility_id, now=now,
                                           max_clock_skew_s=settings.max_clock_skew_s,
                                           plate_key=settings.plate_key, source="http"))
        except Rejected as rej:
            await record(session, topic, messages.redact_item(item), rej)
            if single:
                raise rej.as_domain_error() from None
            result.rejected.append({"index": index, "error": rej.reason, "detail": rej.detail})
    written = await service.write_passages(conn, valid)
    result.accepted, result.duplicates, result.voided = written.inserted, written.duplicates, written.voided
    return result


async def record(session: AsyncSession, topic: str, payload: bytes | str, rej: Rejected) -> None:
    """Keep a rejected passage (plates blanked) in ``rejected_messages``, source ``http``."""
    await occupancy_service.record_rejection(session, Rejection(
        topic, messages.redact(payload), rej.stored_reason, source="http"))
