"""The decoder registry: one pure function per device family, ``(f_port, frame, decoded) → Reading``.

``frame`` is the raw FRMPayload; ``decoded`` is what the network server's own payload
formatter made of it (ChirpStack's ``object``, TTS's ``decoded_payload``), used only by the
``decoded`` family. A decoder returns a :class:`Reading` or raises :class:`FrameError` with a
stable reason code (``unknown_port``, ``short_frame``, ``bad_frame``, ``no_occupancy``); it
never raises anything else, whatever the bytes (tests/lorawan/test_decoders.py checks that
with random frames).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from sensors.lorawan.decoders import bosch_tps110, decoded, netvox_r719a, nwave_nps310
from sensors.lorawan.decoders.base import FrameError, Reading

Decoder = Callable[[int, bytes, Mapping[str, Any] | None], Reading]

DECODERS: dict[str, Decoder] = {
    "bosch-tps110": bosch_tps110.decode,
    "nwave-nps310": nwave_nps310.decode,
    "netvox-r719a": netvox_r719a.decode,
    "decoded": decoded.decode,
}


def decode(model: str, f_port: int, frame: bytes, decoded_payload: Mapping[str, Any] | None = None) -> Reading:
    """The reading of one frame of a ``model`` device; :class:`FrameError` when it has none."""
    decoder = DECODERS.get(model)
    if decoder is None:
        raise FrameError("unknown_model", f"no decoder for sensor_model {model!r}")
    try:
        return decoder(f_port, frame, decoded_payload)
    except FrameError:
        raise
    except Exception as exc:  # a decoder bug must cost one frame, never the worker
        raise FrameError("bad_frame", f"{model}: {type(exc).__name__}: {exc}"[:200]) from None


__all__ = ["DECODERS", "FrameError", "Reading", "decode"]
