"""SQLAlchemy models, one module per domain; importing this package registers them all."""

from app.models.assignments import Assignment
from app.models.events import CountEvent, OccupancyEvent, RejectedMessage
from app.models.inventory import Facility, Operator, Sensor, Space
from app.models.keys import ApiKey
from app.models.rules import ParkingRule, Violation
from app.models.state import FacilityCount, SpaceState

__all__ = [
    "ApiKey",
    "Assignment",
    "CountEvent",
    "Facility",
    "FacilityCount",
    "OccupancyEvent",
    "Operator",
    "ParkingRule",
    "RejectedMessage",
    "Sensor",
    "Space",
    "SpaceState",
    "Violation",
]
