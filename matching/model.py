"""The plain data the engine works on: drivers, candidate spaces and current holds."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Driver:
    """A driver asking for a space, at ``(x, y)`` metres, going to ``dest`` if given.

    ``accessible`` and ``ev`` are needs (spaces without them are excluded);
    ``stay_minutes`` is the intended stay, used to avoid spaces that will close or whose
    time limit is shorter.
    """

    id: str
    x: float
    y: float
    dest_x: float | None = None
    dest_y: float | None = None
    accessible: bool = False
    ev: bool = False
    stay_minutes: float | None = None

    @property
    def goal(self) -> tuple[float, float]:
        """Where the driver walks to from the space: the destination, or the driver itself."""
        if self.dest_x is None or self.dest_y is None:
            return self.x, self.y
        return self.dest_x, self.dest_y


@dataclass(frozen=True, slots=True)
class Space:
    """A candidate: one space, or a gate-counted facility offering ``capacity`` places.

    ``available_minutes`` is how long the space stays usable from now (a sharing window
    closing, opening hours ending); ``max_stay_minutes`` is the time limit in force. ``None``
    means unlimited.
    """

    id: str
    x: float
    y: float
    accessible: bool = False
    ev: bool = False
    available_minutes: float | None = None
    max_stay_minutes: float | None = None
    capacity: int = 1


@dataclass(frozen=True, slots=True)
class Hold:
    """A driver already holding ``space``; ``candidates`` are other spaces it could move to."""

    driver: Driver
    space: Space
    candidates: tuple[Space, ...] = ()
