"""Hypothesis strategies for hostile input: ids, strings with control characters, geometries
with Z and odd rings, numbers in every notation."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

CONTROL = "".join(chr(c) for c in [*range(0, 32), 127, 0x85, 0x2028, 0x2029, 0xFEFF, 0x202E])
SPECIAL_IDS = ["a/b/#/+", "#", "+", "$SYS", "a b", "../x", "%00", "a\x00b", "ä", "x" * 101, "", "-lead",
               "a?b=c", "a%2Fb", "😀", "\u202eevil", "null", "zqgc-lot", "mag-000001"]
NUMBER_TEXT = ["1e3", "1E-3", "0x10", "0o17", "0b11", "1_000", "+1", "-0", ".5", "5.", "٣", "１２",
               "NaN", "nan", "Infinity", "-Infinity", "1e400", "41.1", " 41.1", "41,1", "", "true"]

control_text = st.text(alphabet=st.characters(codec="utf-8") | st.sampled_from(CONTROL), max_size=40)
ids = st.one_of(st.sampled_from(SPECIAL_IDS), st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9_.:-]{0,20}\Z"), control_text)
numbers: st.SearchStrategy[Any] = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),  # JSON cannot carry NaN or infinities
    st.sampled_from(NUMBER_TEXT), st.booleans(), st.none(), st.just([41.1]), st.just({"value": 1}),
)
coordinate = st.one_of(st.floats(min_value=-200, max_value=200, allow_nan=False), numbers)


def _ring(centre: tuple[float, float] = (122.99, 41.11)) -> st.SearchStrategy[list[list[Any]]]:
    x, y = centre
    square = [[x, y], [x + 0.001, y], [x + 0.001, y + 0.001], [x, y + 0.001], [x, y]]
    return st.one_of(
        st.just(square),
        st.just([[*p, 12.5] for p in square]),  # Z
        st.just([[*p, 12.5, 3] for p in square]),  # Z and M
        st.just(square[:-1]),  # not closed
        st.just(square[:3]),  # too short
        st.just([square[0], square[2], square[1], square[3], square[0]]),  # bow tie
        st.just([]),
        st.lists(st.lists(coordinate, min_size=0, max_size=4), max_size=6),
    )


geometries: st.SearchStrategy[Any] = st.one_of(
    st.builds(lambda r: {"type": "Polygon", "coordinates": [r]}, _ring()),
    st.builds(lambda r: {"type": "Polygon", "coordinates": [r, r]}, _ring()),
    st.builds(lambda r: {"type": "MultiPolygon", "coordinates": [[r]]}, _ring()),
    st.builds(lambda r: {"type": "LineString", "coordinates": r}, _ring()),
    st.builds(lambda c: {"type": "Point", "coordinates": c}, st.lists(coordinate, max_size=5)),
    st.just({"type": "Polygon", "coordinates": [[[[[[1, 2]]]]]]}),
    st.just({"type": "Polygon", "coordinates": [[[-180, -90], [180, -90], [180, 90], [-180, 90], [-180, -90]]]}),
    st.just({"type": "GeometryCollection", "geometries": []}),
    st.just({"type": "Polygon"}), st.none(), st.just("POLYGON((0 0,1 0,1 1,0 0))"),
)
json_values: st.SearchStrategy[Any] = st.recursive(
    st.one_of(numbers, control_text),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(control_text, inner, max_size=3), max_leaves=8)


def facility_feature() -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({
        "type": st.just("Feature"), "id": ids, "geometry": geometries,
        "properties": st.fixed_dictionaries({
            "feature": st.sampled_from(["facility", "space", "x"]), "name": control_text,
            "kind": st.sampled_from(["lot", "garage", "curb", "LOT"]), "capacity": numbers,
            "counted": st.one_of(st.booleans(), numbers), "fee": control_text,
            "facility_id": ids, "sensor_id": ids, "accessible": st.one_of(st.booleans(), st.just("yes")),
            "opening_hours": st.one_of(st.just("Mo-Su 00:00-24:00"), control_text),
        }),
    })


inventories = st.fixed_dictionaries({"type": st.just("FeatureCollection"),
                                     "features": st.lists(facility_feature(), min_size=1, max_size=3)})
rules = st.fixed_dictionaries({}, optional={
    "facility_id": ids, "space_id": ids, "zone": geometries, "max_stay_minutes": numbers,
    "no_parking": st.one_of(st.booleans(), numbers), "days": control_text, "from": control_text, "to": control_text,
    "timezone": control_text, "note": control_text})
keys = st.fixed_dictionaries({"role": st.one_of(st.sampled_from(["driver", "operator", "admin", "enforcement"]),
                                                control_text)},
                             optional={"operator_id": ids, "name": control_text, "max_holds": numbers})
occupancy_bodies = st.fixed_dictionaries({}, optional={
    "occupied": st.one_of(st.booleans(), numbers, control_text), "observed_at": st.one_of(control_text, numbers),
    "seq": numbers, "battery_v": numbers})
count_bodies = st.fixed_dictionaries({}, optional={"free": numbers, "total": numbers,
                                                   "observed_at": st.one_of(control_text, numbers)})
positions = st.fixed_dictionaries({}, optional={"lat": coordinate, "lon": coordinate,
                                                "accessible": st.one_of(st.booleans(), numbers, control_text),
                                                "dest_lat": coordinate, "dest_lon": coordinate,
                                                "radius_m": numbers, "stay_minutes": numbers})


# --- query strings of the hot routes: every kind of digit, escape and repetition ---------------
DIGITS = ["²", "³", "¹", "٣", "۴", "१", "১", "１２", "⑤", "Ⅻ", "𝟗", "٫", "−1", "1" * 5000, "9" * 400, "0" * 30 + "5",
          "1e309", "-1e309", "4.1e1", "0x29", "41\u00001", "%00", "%C2%B2", "%D9%A3", "%FF", "%", "%%", "%2", "41%2E1"]
query_names = st.sampled_from(["lat", "lon", "limit", "radius_m", "accessible", "ev", "format", "kind", "q",
                               "LAT", "lat[]", "", "dest_lat", "x"])
query_values = st.one_of(st.sampled_from(DIGITS + NUMBER_TEXT + ["41.1068", "122.9952", "true", "false", "geojson",
                                                                 "fiware", "lot", "kml"]),
                         control_text, st.integers().map(str), st.floats().map(str))


def _query_string(pairs: list[tuple[str, str]], separators: list[str]) -> str:
    return "".join(f"{sep if i else ''}{k}={v}" for i, ((k, v), sep) in enumerate(zip(pairs, separators, strict=False)))


query_strings = st.builds(
    _query_string, st.lists(st.tuples(query_names, query_values), max_size=8),
    st.lists(st.sampled_from(["&", "&", "&", ";", "&&"]), min_size=8, max_size=8))
content_types = st.one_of(st.sampled_from([
    "application/json", "application/json; charset=utf-8", "APPLICATION/JSON", "application/geo+json",
    "application/ld+json", "text/plain", "text/json", "application/x-www-form-urlencoded", "multipart/form-data",
    "", ";", "application/json;;", "application/jsonx"]), control_text)
raw_bodies = st.one_of(
    st.binary(max_size=200),
    st.builds(lambda b: b.encode("utf-8", "surrogatepass"), control_text),
    st.builds(lambda v: __import__("json").dumps(v, ensure_ascii=False).encode("utf-8", "surrogatepass"), json_values),
    st.sampled_from([b"", b"null", b"{}", b"[]", b'{"lat": 1e999, "lon": 1}', b'{"lat": 41.1, "lon": 122.99, "lat": 2}',
                     b'{"lat": NaN, "lon": 1}', b"\xef\xbb\xbf{}", b'{"lat": 41.1, "lon": 122.99}' + b" " * 10]),
)
