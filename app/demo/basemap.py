"""The demo district's offline base map, drawn from the demo data (no tile server needed).

``python -m app.demo.basemap`` (and ``python -m app.demo.build_tiedong``) writes
``app/api/static/basemap/tiedong.geojson``: the streets the curbs line (二一九路, 五一路) with
their names, the squares and parks the plan names (站前广场, 市府广场, 常青广场, 烈士山公园,
静湖公园) around the car parks named after them, and the buildings the other car parks serve.
Each feature has ``kind`` (``district``, ``park``, ``square``, ``residential``, ``building``,
``street``) and ``name``. Like the inventory, the shapes are illustrative, not surveyed: they
are placed from the inventory's own coordinates so that the map reads right.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from shapely.geometry import LineString, MultiPoint, Point, box, mapping
from shapely.geometry.base import BaseGeometry

from app.demo.build_tiedong import LOTS, M_PER_DEG_LAT, M_PER_DEG_LON, STREETS

OUT = Path(__file__).resolve().parent.parent / "api" / "static" / "basemap" / "tiedong.geojson"
# (kind, name, the car parks it is drawn around)
PLACES = [
    ("square", "站前广场", ["zqgc-lot", "zqdxj-garage"]),
    ("square", "市府广场", ["sfgc-lot"]),
    ("square", "常青广场", ["cqgc-garage", "cqgc-lot"]),
    ("park", "烈士山公园", ["lss-lot", "lss-counted-lot"]),
    ("park", "静湖公园", ["jh-lot"]),
    ("residential", "向阳小区", ["xiangyang-res-lot"]),
    ("building", "铁东医院", ["td-hospital-lot"]),
    ("building", "市政府", ["sf-office-lot"]),
    ("building", "银行大厦", ["bank-tower-lot"]),
]
# how each kind of place sits around its car parks: (padding m, offset north m, minimum size m)
LAYOUT = {"square": (45.0, 0.0, (0.0, 0.0)), "park": (120.0, 200.0, (480.0, 340.0)),
          "residential": (30.0, 110.0, (220.0, 150.0)), "building": (10.0, 55.0, (70.0, 40.0))}
STREET_OVERHANG_M = 250.0
STREET_OFFSET_M = 7.0  # the carriageway's centre line, beside the curb spaces
STREET_LABELS_AT = (0.2, 0.8)  # along the street (the two streets cross near the middle)


def _to_m(lon: float, lat: float, lon0: float, lat0: float) -> tuple[float, float]:
    return (lon - lon0) * M_PER_DEG_LON, (lat - lat0) * M_PER_DEG_LAT


def _to_deg(x: float, y: float, lon0: float, lat0: float) -> tuple[float, float]:
    return round(lon0 + x / M_PER_DEG_LON, 7), round(lat0 + y / M_PER_DEG_LAT, 7)


def _lot_centres() -> dict[str, tuple[float, float]]:
    return {spec[0]: (spec[3], spec[4]) for lots in LOTS.values() for spec in lots}


def _place(kind: str, lots: list[tuple[float, float]]) -> BaseGeometry:
    """The place's outline in degrees, around (or beside) the centres of its car parks."""
    lon0, lat0 = lots[0]
    pad, north, (min_w, min_h) = LAYOUT[kind]
    hull = MultiPoint([_to_m(lon, lat, lon0, lat0) for lon, lat in lots]).envelope.buffer(40.0, join_style="mitre")
    minx, miny, maxx, maxy = hull.bounds
    cx, cy = (minx + maxx) / 2, (miny + maxy) / 2 + north
    w, h = max(maxx - minx + 2 * pad, min_w), max(maxy - miny + 2 * pad, min_h)
    shape = box(cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)
    if kind == "park":  # softer corners for green space
        shape = shape.buffer(-30.0).buffer(30.0)
    return _degrees(shape, lon0, lat0)


def _degrees(geom: BaseGeometry, lon0: float, lat0: float) -> BaseGeometry:
    from shapely import transform

    return transform(geom, lambda xy: [_to_deg(x, y, lon0, lat0) for x, y in xy])


def _street(spec: tuple[Any, ...]) -> LineString:
    """The street the curb segments line (as ``build_tiedong._curb`` lays them), a little longer."""
    _, _, lon0, lat0, dlon, dlat, segments, per_segment = spec
    along = (1.0, 0.0) if dlon else (0.0, 1.0)
    side = (along[1], -along[0])  # the carriageway: right of the curbs' direction of travel
    last_x, last_y = _to_m(lon0 + dlon * (segments - 1), lat0 + dlat * (segments - 1), lon0, lat0)
    length = max(last_x, last_y) + per_segment * 6.0
    ends = [(-STREET_OVERHANG_M, ), (length + STREET_OVERHANG_M, )]
    points = [(t * along[0] + STREET_OFFSET_M * side[0], t * along[1] + STREET_OFFSET_M * side[1]) for (t,) in ends]
    return LineString([_to_deg(x, y, lon0, lat0) for x, y in points])


def build() -> dict[str, Any]:
    """The base map as an RFC 7946 FeatureCollection."""
    centres = _lot_centres()
    features: list[dict[str, Any]] = []
    for kind, name, lot_ids in PLACES:
        features.append(_feature(kind, name, _place(kind, [centres[i] for i in lot_ids])))
    streets = [(spec[1], _street(spec)) for spec in STREETS]
    features += [_feature("street", name, line) for name, line in streets]
    everything = MultiPoint([Point(c) for c in centres.values()] + [Point(p) for _, s in streets for p in s.coords])
    minx, miny, maxx, maxy = everything.bounds
    pad = 0.004
    district = box(minx - pad, miny - pad * 0.75, maxx + pad, maxy + pad * 0.75)
    order = {"district": 0, "park": 1, "square": 2, "residential": 3, "building": 4, "street": 5}
    features.append(_feature("district", "铁东区（示意）", district))
    features.sort(key=lambda f: order[f["properties"]["kind"]])
    return {"type": "FeatureCollection", "name": "tiedong basemap (illustrative)", "features": features}


def _feature(kind: str, name: str, geom: BaseGeometry) -> dict[str, Any]:
    """A place with where to write its name (a street twice, away from the crossing)."""
    if geom.geom_type == "LineString":
        points = [geom.interpolate(at, normalized=True) for at in STREET_LABELS_AT]
    else:
        points = [geom.representative_point()]
    return {"type": "Feature", "id": f"{kind}:{name}", "geometry": mapping(geom),
            "properties": {"kind": kind, "name": name,
                           "label_at": [[round(p.x, 7), round(p.y, 7)] for p in points]}}


def main() -> None:
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(build(), ensure_ascii=False, separators=(",", ":")) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
