"""A city-sized inventory file for load tests and the import benchmark (``bench/bench_import.py``).

``write_city(path, spaces=250_000)``: lots of ``per_facility`` sensor-equipped spaces each, on a
grid over the demo district, every facility with a time-limit rule, every 10th space with its
own rule and every 50th with a LoRaWAN DevEUI — the shapes a real operator's file has. Written
feature by feature (never the whole document in memory); ``tail`` adds raw features at the end.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

ORIGIN = (122.971, 41.101)  # lon, lat: the demo district's south-west corner
CELL = (0.00125, 0.0009)  # degrees between two lots
LOT = (0.0008, 0.0006)  # a lot's extent (about 67 m × 67 m)
MAX_COLUMNS = 40


def write_city(path: Path, *, spaces: int, per_facility: int = 250, prefix: str = "city",
               tail: list[dict[str, Any]] | None = None) -> int:
    """Write the file; returns the number of facilities."""
    n_fac = math.ceil(spaces / per_facility)
    columns = min(MAX_COLUMNS, n_fac)
    with path.open("w", encoding="utf-8") as out:
        out.write('{"type": "FeatureCollection", "name": "a synthetic city", "features": [\n')
        first = True
        for f in range(n_fac):
            x0 = ORIGIN[0] + (f % columns) * CELL[0] * (MAX_COLUMNS / columns)
            y0 = ORIGIN[1] + (f // columns) * CELL[1]
            out.write(("" if first else ",\n") + _facility(f"{prefix}-f{f:05d}", x0, y0, per_facility))
            first = False
            for k in range(min(per_facility, spaces - f * per_facility)):
                out.write(",\n" + _space(prefix, f, k, x0, y0, per_facility))
        for feature in tail or []:
            out.write(",\n" + json.dumps(feature, ensure_ascii=False))
        out.write("\n]}\n")
    return n_fac


def _facility(fid: str, x0: float, y0: float, capacity: int) -> str:
    x1, y1 = x0 + LOT[0], y0 + LOT[1]
    ring = f"[[{x0:.7f},{y0:.7f}],[{x1:.7f},{y0:.7f}],[{x1:.7f},{y1:.7f}],[{x0:.7f},{y1:.7f}],[{x0:.7f},{y0:.7f}]]"
    return (f'{{"type":"Feature","id":"{fid}","geometry":{{"type":"Polygon","coordinates":[{ring}]}},'
            f'"properties":{{"feature":"facility","name":"城市停车场 {fid}","kind":"lot","capacity":{capacity},'
            f'"fee":"5元/小时","rules":[{{"max_stay_minutes":120,"days":"Mo-Sa","from":"08:00","to":"20:00"}}]}}}}')


def _space(prefix: str, f: int, k: int, x0: float, y0: float, per_facility: int) -> str:
    side = math.ceil(math.sqrt(per_facility))
    lon = x0 + LOT[0] * ((k % side) + 0.5) / side
    lat = y0 + LOT[1] * ((k // side) + 0.5) / side
    n = f * per_facility + k
    extra = ""
    if n % 10 == 0:
        extra += ',"rules":[{"no_parking":true,"days":"Mo-Fr","from":"07:00","to":"09:00"}]'
    if n % 50 == 0:
        extra += f',"dev_eui":"c1{n:014x}","sensor_model":"bosch-tps110"'
    return (f'{{"type":"Feature","id":"{prefix}-f{f:05d}-{k:03d}","geometry":{{"type":"Point","coordinates":'
            f'[{lon:.7f},{lat:.7f}]}},"properties":{{"feature":"space","facility_id":"{prefix}-f{f:05d}",'
            f'"sensor_id":"{prefix}-m{n:07d}","accessible":{"true" if k % 25 == 0 else "false"}{extra}}}}}')
