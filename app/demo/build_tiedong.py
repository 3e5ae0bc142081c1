"""Builds the demo district ``tiedong`` as inventory files, one per operator.

Run ``python -m app.demo.build_tiedong`` to regenerate ``app/demo/tiedong/*.geojson``; the
output is deterministic. Places are modelled on those the district's plan names (站前广场,
站前地下街, 市府广场, 常青广场, 二一九路, 五一路, 烈士山公园, 静湖公园); coordinates are
illustrative, not surveyed.
"""

from __future__ import annotations

import json
import math
import random
from pathlib import Path
from typing import Any

OUT = Path(__file__).with_name("tiedong")
M_PER_DEG_LAT = 111_320.0
M_PER_DEG_LON = M_PER_DEG_LAT * math.cos(math.radians(41.115))
CURB_RULE = {"max_stay_minutes": 120, "days": "Mo-Sa", "from": "08:00", "to": "20:00"}

# (id, name, kind, centre lon, lat, rows, cols, fee, public_hours, rules, counted capacity)
LOTS: dict[str, list[tuple[Any, ...]]] = {
    "tiedong-city": [
        ("zqgc-lot", "站前广场停车场", "lot", 122.9952, 41.1068, 10, 22, "5元/小时", None, [], 0),
        ("sfgc-lot", "市府广场停车场", "lot", 122.9985, 41.1158, 8, 20, "3元/小时", None,
         [{"max_stay_minutes": 240, "days": "Mo-Fr", "from": "08:00", "to": "18:00"}], 0),
        ("lss-lot", "烈士山公园停车场", "lot", 122.9838, 41.1232, 8, 15, "2元/小时", None, [], 0),
        ("jh-lot", "静湖公园停车场", "lot", 123.0108, 41.1268, 7, 15, "2元/小时", None, [], 0),
        ("td-hospital-lot", "铁东医院停车场", "lot", 123.0046, 41.1105, 8, 18, "4元/小时", None,
         [{"max_stay_minutes": 180, "days": "Mo-Su", "from": "07:00", "to": "22:00"}], 0),
    ],
    "zhanqian-underground": [
        ("zqdxj-garage", "站前地下街地下停车场", "garage", 122.9968, 41.1082, 0, 0, "6元/小时",
         None, [], 420),
        ("cqgc-garage", "常青广场地下停车场", "garage", 123.0021, 41.1189, 0, 0, "5元/小时",
         None, [], 300),
        ("cqgc-lot", "常青广场地面停车场", "lot", 123.0029, 41.1177, 10, 24, "5元/小时", None, [], 0),
    ],
    "shared-parking": [
        ("sf-office-lot", "市政府办公楼停车场（共享）", "lot", 122.9972, 41.1169, 8, 15,
         "夜间共享 2元/小时", "Mo-Fr 18:30-07:30; Sa,Su 00:00-24:00", [], 0),
        ("bank-tower-lot", "银行大厦停车场（共享）", "lot", 123.0062, 41.1142, 6, 15,
         "夜间共享 2元/小时", "Mo-Fr 19:00-07:00; Sa,Su 00:00-24:00", [], 0),
        ("xiangyang-res-lot", "向阳小区停车场（日间共享）", "lot", 122.9889, 41.1117, 7, 14,
         "日间共享 3元/小时", "Mo-Fr 08:30-17:30", [], 0),
        ("lss-counted-lot", "烈士山南门停车场", "lot", 122.9861, 41.1208, 0, 0, "2元/小时",
         None, [], 160),
    ],
}
# (id prefix, street name, lon0, lat0, dlon, dlat per segment, segments, spaces per segment)
STREETS = [
    ("s219", "二一九路", 122.9760, 41.1140, 0.0036, 0.0, 10, 40),
    ("s51", "五一路", 122.9935, 41.1015, 0.0, 0.0027, 10, 40),
]
# 二一九路's first three segments are LoRaWAN curb sensors behind the city's network server,
# one model per segment (DevEUI: the vendor's OUI-style prefix + the sensor number).
LORAWAN_SEGMENTS = {"s219-00": ("bosch-tps110", "fc0fe7fffe"), "s219-01": ("nwave-nps310", "70b3d5e75e"),
                    "s219-02": ("netvox-r719a", "00137a1000")}
NO_PARKING_SEGMENT = "s51-04"  # 五一路 stretch by the school gate: no parking at any time
SCHOOL_SEGMENT = "s51-05"


def _m(lon: float, lat: float, dx: float, dy: float) -> list[float]:
    return [round(lon + dx / M_PER_DEG_LON, 7), round(lat + dy / M_PER_DEG_LAT, 7)]


def _feature(fid: str, geometry: dict[str, Any], props: dict[str, Any]) -> dict[str, Any]:
    return {"type": "Feature", "id": fid, "geometry": geometry, "properties": props}


def _space(fid: str, facility: str, coords: list[float], sensor: str, rng: random.Random,
           **flags: Any) -> dict[str, Any]:
    props = {"feature": "space", "facility_id": facility, "sensor_id": sensor,
             "accessible": flags.get("accessible", False), "ev": flags.get("ev", False),
             "loading": flags.get("loading", False), "no_parking": flags.get("no_parking", False)}
    if flags.get("rules"):
        props["rules"] = flags["rules"]
    if flags.get("lorawan"):
        model, prefix = flags["lorawan"]
        props["dev_eui"] = f"{prefix}{int(sensor.split('-')[1]):06x}"
        props["sensor_model"] = model
    return _feature(fid, {"type": "Point", "coordinates": coords}, props)


def _lot(spec: tuple[Any, ...], rng: random.Random, counter: list[int]) -> list[dict[str, Any]]:
    fid, name, kind, lon, lat, rows, cols, fee, public, rules, counted_cap = spec
    width, height = max(cols, 10) * 3.0 + 10, max(rows, 6) * 6.0 + 10
    ring = [_m(lon, lat, sx * width / 2, sy * height / 2)
            for sx, sy in ((-1, -1), (1, -1), (1, 1), (-1, 1), (-1, -1))]
    capacity = counted_cap or rows * cols
    facility = _feature(fid, {"type": "Polygon", "coordinates": [ring]}, {
        "feature": "facility", "name": name, "kind": kind, "capacity": capacity,
        "counted": bool(counted_cap), "opening_hours": "Mo-Su 00:00-24:00",
        "public_hours": public, "fee": fee, "entrance": _m(lon, lat, 0, -height / 2),
        "rules": rules})
    spaces = []
    for r in range(rows):
        for c in range(cols):
            counter[0] += 1
            spaces.append(_space(
                f"{fid}-{r * cols + c + 1:03d}", fid,
                _m(lon, lat, -width / 2 + 5 + 3.0 * c + 1.5, -height / 2 + 5 + 6.0 * r + 3),
                f"bay-{counter[0]:06d}", rng, accessible=r == 0 and c < 3,
                ev=r == rows - 1 and c < 4))
    return [facility, *spaces]


def _curb(street: tuple[Any, ...], seg: int, rng: random.Random,
          counter: list[int]) -> list[dict[str, Any]]:
    prefix, name, lon0, lat0, dlon, dlat, _, per_segment = street
    fid = f"{prefix}-{seg:02d}"
    start = [lon0 + dlon * seg, lat0 + dlat * seg]
    length_m = per_segment * 6.0
    ux, uy = (1.0, 0.0) if dlon else (0.0, 1.0)
    end = _m(start[0], start[1], ux * length_m, uy * length_m)
    no_parking = fid == NO_PARKING_SEGMENT
    rules: list[dict[str, Any]] = [] if no_parking else [CURB_RULE]
    if no_parking:
        rules = [{"no_parking": True, "days": "Mo-Su", "from": "00:00", "to": "24:00"}]
    if fid == SCHOOL_SEGMENT:
        rules = [*rules, {"no_parking": True, "days": "Mo-Fr", "from": "07:00", "to": "08:30"}]
    facility = _feature(fid, {"type": "LineString", "coordinates": [_m(start[0], start[1], 0, 0), end]}, {
        "feature": "facility", "name": f"{name}路侧停车 {seg + 1}段", "kind": "curb",
        "capacity": per_segment, "counted": False, "opening_hours": "Mo-Su 00:00-24:00",
        "public_hours": None, "fee": "首小时免费，之后2元/小时" if seg % 2 else "2元/小时",
        "rules": rules})
    spaces = []
    for i in range(per_segment):
        counter[0] += 1
        loading = not no_parking and i in (0, 1)
        spaces.append(_space(
            f"{fid}-{i + 1:03d}", fid, _m(start[0], start[1], ux * (3 + 6.0 * i), uy * (3 + 6.0 * i)),
            f"mag-{counter[0]:06d}", rng, accessible=i == per_segment - 1, loading=loading,
            no_parking=no_parking, lorawan=LORAWAN_SEGMENTS.get(fid),
            rules=[{"max_stay_minutes": 30, "days": "Mo-Su", "from": "07:00", "to": "19:00"}]
            if loading else None))
    return [facility, *spaces]


def build() -> dict[str, dict[str, Any]]:
    """Return ``{operator_id: FeatureCollection}`` for the demo district."""
    rng, counter = random.Random(20261129), [0]
    names = {"tiedong-city": "铁东区城市停车管理中心", "zhanqian-underground": "站前地下街商业管理公司",
             "shared-parking": "铁东区停车资源共享联盟"}
    out: dict[str, dict[str, Any]] = {}
    for operator, lots in LOTS.items():
        features = [f for spec in lots for f in _lot(spec, rng, counter)]
        if operator == "tiedong-city":
            features += [f for st in STREETS for seg in range(st[6]) for f in _curb(st, seg, rng, counter)]
        out[operator] = {"type": "FeatureCollection", "name": names[operator], "features": features}
    return out


def main() -> None:
    OUT.mkdir(exist_ok=True)
    for operator, collection in build().items():
        text = json.dumps(collection, ensure_ascii=False, separators=(",", ":"))
        (OUT / f"{operator}.geojson").write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
