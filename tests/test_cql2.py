"""CQL2 (OGC 21-065r2) to the letter, over HTTP, on six hand-written projects.

Every case gives a filter in CQL2 text and the same filter in CQL2 JSON, each compared with ids worked
out by hand from the FEATURES table below (never with the code under test, and never text against
JSON). Tests are named after the requirement classes and requirements (/req/...) they check.
Some cases are text only: the text encoding's own rules (escaping, precedence, keywords' case).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from geo.app import create_app
from geo.store.geojson_file import encode_store
from tests.conftest import KEY, workspace

ITEMS = "/collections/projects/items"

# Short names, in the store's order: K kabul-school, H herat-clinic, S salang-road, D kandahar-housing,
# M mazar-water, F solar-farm.
K, H, S, D, M, F = ("kabul-school", "herat-clinic", "salang-road", "kandahar-housing", "mazar-water",
                    "solar-farm")
ALL = [K, H, S, D, M, F]


def _feature(fid: str, geometry: dict[str, Any], **props: Any) -> dict[str, Any]:
    return {"type": "Feature", "id": fid, "geometry": geometry, "properties": props}


def _point(x: float, y: float) -> dict[str, Any]:
    return {"type": "Point", "coordinates": [x, y]}


FEATURES = [
    # a point in Kabul
    _feature(K, _point(69.17, 34.53), name="Kabul school", category="school", status="proposed",
             budget_usd=250000, start_date="2026-03-01", end_date="2027-06-30",
             created_at="2026-01-10T08:00:00Z"),
    # a point in Herat; an accented name
    _feature(H, _point(62.2, 34.35), name="Hérat clinic", category="health", status="planned",
             budget_usd=900000, start_date="2027-01-01", end_date="2028-12-31",
             created_at="2026-02-01T00:00:00Z"),
    # a north-south line at longitude 69 from latitude 35.2 to 35.4; a quote in the name; no end date
    _feature(S, {"type": "LineString", "coordinates": [[69.0, 35.2], [69.0, 35.4]]}, name="Salang's road",
             category="transport", status="under_construction", budget_usd=1600000, start_date="2023-07-12",
             created_at="2023-07-12T06:30:00Z"),
    # a square, longitudes 65.6 to 65.8, latitudes 31.5 to 31.7; no budget, no dates
    _feature(D, {"type": "Polygon", "coordinates": [[[65.6, 31.5], [65.8, 31.5], [65.8, 31.7], [65.6, 31.7],
                                                     [65.6, 31.5]]]},
             name="Kandahar housing", category="housing", status="approved",
             created_at="2025-05-05T12:00:00Z"),
    # a point in Mazar-i-Sharif; no end date
    _feature(M, _point(67.11, 36.71), name="Mazar water", category="water", status="under_construction",
             budget_usd=4000000, start_date="2024-05-01", created_at="2024-04-01T00:00:00Z"),
    # a point; LIKE's wildcards in the name; a budget of 7 for the arithmetic
    _feature(F, _point(64.5, 33.0), name="100% solar_farm", category="energy", status="planned", budget_usd=7,
             start_date="2025-01-01", end_date="2025-12-31", created_at="2024-12-31T23:59:59Z"),
]


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory, provinces_cache: Path) -> Iterator[TestClient]:
    """The service on a store holding just FEATURES."""
    settings = workspace(tmp_path_factory.mktemp("cql2"), provinces_cache, api_keys=KEY)
    settings.projects.write_bytes(encode_store(FEATURES))
    with TestClient(create_app(settings)) as client:
        yield client


def _ids(api: TestClient, text: str, lang: str = "cql2-text") -> list[str]:
    response = api.get(ITEMS, params={"filter": text, "filter-lang": lang, "limit": 100})
    assert response.status_code == 200, (text, response.text)
    return [f["id"] for f in response.json()["features"]]


def _check(api: TestClient, text: str, doc: Any, expected: list[str]) -> None:
    assert _ids(api, text) == expected, text
    if doc is not None:
        assert _ids(api, json.dumps(doc), "cql2-json") == expected, doc


def _problem(api: TestClient, text: str, lang: str = "cql2-text") -> str:
    response = api.get(ITEMS, params={"filter": text, "filter-lang": lang})
    assert response.status_code == 400, (text, response.text)
    problem = response.json()
    assert [e["field"] for e in problem["errors"]] == ["filter"], problem
    detail: str = problem["detail"]
    return detail


# CQL2 JSON, written out.
def p(name: str) -> dict[str, str]:
    return {"property": name}


def op(name: str, *args: Any) -> dict[str, Any]:
    return {"op": name, "args": list(args)}


def date(text: str) -> dict[str, str]:
    return {"date": text}


def ts(text: str) -> dict[str, str]:
    return {"timestamp": text}


def geo(kind: str, coordinates: Any) -> dict[str, Any]:
    return {"type": kind, "coordinates": coordinates}


KABUL_BOX = [[[68.5, 34], [70, 34], [70, 35], [68.5, 35], [68.5, 34]]]
KABUL_WKT = "POLYGON((68.5 34, 70 34, 70 35, 68.5 35, 68.5 34))"
Case = tuple[str, Any, list[str]]


def cases(table: list[Case]) -> Any:
    """Parametrize over (text, json, expected), each case named by its text."""
    return pytest.mark.parametrize("text, doc, expected", table, ids=[t for t, _, _ in table])


# --- /req/basic-cql2 -------------------------------------------------------------------------------

BINARY_COMPARISON: list[Case] = [
    ("category = 'school'", op("=", p("category"), "school"), [K]),
    ("category <> 'school'", op("<>", p("category"), "school"), [H, S, D, M, F]),
    ("budget_usd < 900000", op("<", p("budget_usd"), 900000), [K, F]),
    ("budget_usd <= 900000", op("<=", p("budget_usd"), 900000), [K, H, F]),
    ("budget_usd > 900000", op(">", p("budget_usd"), 900000), [S, M]),
    ("budget_usd >= 1600000", op(">=", p("budget_usd"), 1600000), [S, M]),
    # C: a comparison with a missing value is NULL, so D (no budget) is in neither of these.
    ("budget_usd <> 7", op("<>", p("budget_usd"), 7), [K, H, S, M]),
    ("NOT (budget_usd > 1000000)", op("not", op(">", p("budget_usd"), 1000000)), [K, H, F]),
    ("name = 'Kabul school'", op("=", p("name"), "Kabul school"), [K]),
    ("name > 'M'", op(">", p("name"), "M"), [S, M]),
    ("7 = budget_usd", op("=", 7, p("budget_usd")), [F]),
    ("id = 'mazar-water'", op("=", p("id"), "mazar-water"), [M]),
    ("\"category\" = 'water'", op("=", p("category"), "water"), [M]),
]


@cases(BINARY_COMPARISON)
def test_req_basic_cql2_binary_comparison_predicate(api: TestClient, text: str, doc: Any,
                                                    expected: list[str]) -> None:
    _check(api, text, doc, expected)


NULL_AND_LOGIC: list[Case] = [
    ("budget_usd IS NULL", op("isNull", p("budget_usd")), [D]),
    ("budget_usd IS NOT NULL", op("not", op("isNull", p("budget_usd"))), [K, H, S, M, F]),
    ("end_date IS NULL", op("isNull", p("end_date")), [S, D, M]),
    ("category = 'school' OR category = 'water'",
     op("or", op("=", p("category"), "school"), op("=", p("category"), "water")), [K, M]),
    ("status = 'planned' AND budget_usd > 100",
     op("and", op("=", p("status"), "planned"), op(">", p("budget_usd"), 100)), [H]),
    # AND binds tighter than OR.
    ("category = 'school' AND NOT status = 'planned' OR budget_usd IS NULL",
     op("or", op("and", op("=", p("category"), "school"), op("not", op("=", p("status"), "planned"))),
        op("isNull", p("budget_usd"))), [K, D]),
    ("category = 'school' AND (status = 'planned' OR budget_usd < 300000)",
     op("and", op("=", p("category"), "school"),
        op("or", op("=", p("status"), "planned"), op("<", p("budget_usd"), 300000))), [K]),
    # An AND of three in one JSON operation.
    ("status = 'planned' AND budget_usd > 1 AND budget_usd < 10",
     op("and", op("=", p("status"), "planned"), op(">", p("budget_usd"), 1), op("<", p("budget_usd"), 10)),
     [F]),
]


@cases(NULL_AND_LOGIC)
def test_req_basic_cql2_null_predicate_and_logic(api: TestClient, text: str, doc: Any,
                                                 expected: list[str]) -> None:
    _check(api, text, doc, expected)


BOOLEANS: list[Case] = [
    ("true", True, ALL),
    ("FALSE", False, []),
    ("TRUE AND category = 'energy'", op("and", True, op("=", p("category"), "energy")), [F]),
    ("category = 'energy' OR false", op("or", op("=", p("category"), "energy"), False), [F]),
    ("NOT FALSE", op("not", False), ALL),
]


@cases(BOOLEANS)
def test_req_basic_cql2_cql2_filter_boolean_literals(api: TestClient, text: str, doc: Any,
                                                     expected: list[str]) -> None:
    _check(api, text, doc, expected)


TEMPORAL_LITERALS: list[Case] = [
    ("start_date = DATE('2023-07-12')", op("=", p("start_date"), date("2023-07-12")), [S]),
    ("start_date >= DATE('2026-01-01')", op(">=", p("start_date"), date("2026-01-01")), [K, H]),
    ("start_date < DATE('2025-01-01')", op("<", p("start_date"), date("2025-01-01")), [S, M]),
    ("created_at = TIMESTAMP('2024-12-31T23:59:59Z')",
     op("=", p("created_at"), ts("2024-12-31T23:59:59Z")), [F]),
    ("created_at > TIMESTAMP('2024-12-31T23:59:58Z')",
     op(">", p("created_at"), ts("2024-12-31T23:59:58Z")), [K, H, D, F]),
    ("created_at < TIMESTAMP('2024-04-01T00:00:00.001Z')",
     op("<", p("created_at"), ts("2024-04-01T00:00:00.001Z")), [S, M]),
    # Beyond the letter (RFC 3339): an offset, converted to UTC.
    ("created_at = TIMESTAMP('2024-12-31T19:29:59-04:30')",
     op("=", p("created_at"), ts("2024-12-31T19:29:59-04:30")), [F]),
]


@cases(TEMPORAL_LITERALS)
def test_req_basic_cql2_temporal_literals(api: TestClient, text: str, doc: Any, expected: list[str]) -> None:
    _check(api, text, doc, expected)


# --- /req/cql2-text: keywords' case, escaping, precedence (text only) -------------------------------

TEXT_ONLY: list[tuple[str, list[str]]] = [
    # Clause 8: keywords are case-insensitive.
    ("category = 'school' and not status = 'planned' or budget_usd is null", [K, D]),
    ("start_date = date('2023-07-12')", [S]),
    ("created_at = Timestamp('2024-12-31T23:59:59Z')", [F]),
    ("s_intersects(geometry, point(62.2 34.35))", [H]),
    ("S_Intersects(geometry, Point(62.2 34.35))", [H]),
    ("budget_usd Div 2 = 3", [F]),
    ("True", ALL),
    # /req/cql2-text/escaping B: '' and \' are a quote inside a string.
    ("name = 'Salang''s road'", [S]),
    ("name = 'Salang\\'s road'", [S]),
    # C: \t is one character (a tab), so the literal is three characters long.
    ("'a\\tb' LIKE 'a_b'", ALL),
    ("'a\\tb' LIKE 'a__b'", []),
    # Annex B: the sign belongs to the factor, so -2 ^ 2 is 4.
    ("budget_usd = -2 ^ 2 + 3", [F]),
    # Left-associative: (7 - 3) - 2 and (7 / 7) * 2.
    ("budget_usd - 3 - 2 = 2", [F]),
    ("budget_usd / 7 * 2 = 2", [F]),
    ("budget_usd + 3 * 2 ^ 2 = 19", [F]),
    ("(budget_usd + 3) * 2 = 20", [F]),
    # Numbers as Annex B writes them.
    ("budget_usd = 7.", [F]),
    ("budget_usd / 14 = .5", [F]),
    ("budget_usd = 7E0", [F]),
    ("budget_usd = +7", [F]),
    # A 3D point; a 3D polygon.
    ("S_INTERSECTS(geometry, POINT Z(62.2 34.35 950))", [H]),
    ("S_INTERSECTS(geometry, POLYGON Z((68.5 34 0, 70 34 0, 70 35 0, 68.5 35 0, 68.5 34 0)))", [K]),
    # WKT's MULTIPOINT without inner parentheses is read too.
    ("S_INTERSECTS(geometry, MULTIPOINT(62.2 34.35, 67.11 36.71))", [H, M]),
    # This service's older BBOX predicate: S_INTERSECTS with a box.
    ("BBOX(geometry, 61, 31, 66, 35)", [H, D, F]),
]


@pytest.mark.parametrize("text, expected", TEXT_ONLY, ids=[t for t, _ in TEXT_ONLY])
def test_req_cql2_text(api: TestClient, text: str, expected: list[str]) -> None:
    assert _ids(api, text) == expected


# --- /req/advanced-comparison-operators ------------------------------------------------------------

LIKE: list[Case] = [
    ("name LIKE 'K%'", op("like", p("name"), "K%"), [K, D]),
    ("name LIKE '%water'", op("like", p("name"), "%water"), [M]),
    ("name LIKE 'Kabul school'", op("like", p("name"), "Kabul school"), [K]),
    # H, I: _ is one character, and . is just a dot.
    ("name LIKE 'Kabul_school'", op("like", p("name"), "Kabul_school"), [K]),
    ("name LIKE 'Kabul.school'", op("like", p("name"), "Kabul.school"), []),
    ("name LIKE '_____ water'", op("like", p("name"), "_____ water"), [M]),
    ("name LIKE '%_%'", op("like", p("name"), "%_%"), ALL),
    # K: the backslash makes % and _ literal.
    ("name LIKE '%\\_%'", op("like", p("name"), "%\\_%"), [F]),
    ("name LIKE '100\\% solar\\_farm'", op("like", p("name"), "100\\% solar\\_farm"), [F]),
    ("name LIKE '1__\\%%'", op("like", p("name"), "1__\\%%"), [F]),
    ("name LIKE '%''%'", op("like", p("name"), "%'%"), [S]),
    ("name LIKE 'kabul%'", op("like", p("name"), "kabul%"), []),
    ("name NOT LIKE '%o%'", op("not", op("like", p("name"), "%o%")), [H, M]),
    ("name LIKE 'K%' AND name LIKE '%g'",
     op("and", op("like", p("name"), "K%"), op("like", p("name"), "%g")), [D]),
]


@cases(LIKE)
def test_req_advanced_comparison_operators_like_predicate(api: TestClient, text: str, doc: Any,
                                                          expected: list[str]) -> None:
    _check(api, text, doc, expected)


BETWEEN_IN: list[Case] = [
    ("budget_usd BETWEEN 250000 AND 1600000", op("between", p("budget_usd"), 250000, 1600000), [K, H, S]),
    ("budget_usd NOT BETWEEN 250000 AND 1600000",
     op("not", op("between", p("budget_usd"), 250000, 1600000)), [M, F]),
    ("budget_usd BETWEEN 8 AND 249999", op("between", p("budget_usd"), 8, 249999), []),
    ("status IN ('planned', 'approved')", op("in", p("status"), ["planned", "approved"]), [H, D, F]),
    ("category NOT IN ('transport', 'school')", op("not", op("in", p("category"), ["transport", "school"])),
     [H, D, M, F]),
    ("budget_usd IN (7, 250000)", op("in", p("budget_usd"), [7, 250000]), [K, F]),
    ("budget_usd NOT IN (7, 250000)", op("not", op("in", p("budget_usd"), [7, 250000])), [H, S, M]),
    ("id IN ('kabul-school', 'solar-farm')", op("in", p("id"), ["kabul-school", "solar-farm"]), [K, F]),
    ("start_date IN (DATE('2024-05-01'), DATE('2023-07-12'))",
     op("in", p("start_date"), [date("2024-05-01"), date("2023-07-12")]), [S, M]),
]


@cases(BETWEEN_IN)
def test_req_advanced_comparison_operators_between_and_in_predicates(api: TestClient, text: str, doc: Any,
                                                                     expected: list[str]) -> None:
    _check(api, text, doc, expected)


# --- /req/case-insensitive-comparison and /req/accent-insensitive-comparison -----------------------

FOLDING: list[Case] = [
    ("name = 'mazar water'", op("=", p("name"), "mazar water"), []),
    ("CASEI(name) = casei('MAZAR WATER')", op("=", op("casei", p("name")), op("casei", "MAZAR WATER")), [M]),
    ("CASEI(name) LIKE CASEI('KABUL%')", op("like", op("casei", p("name")), op("casei", "KABUL%")), [K]),
    ("CASEI(category) IN (CASEI('SCHOOL'), CASEI('Water'))",
     op("in", op("casei", p("category")), [op("casei", "SCHOOL"), op("casei", "Water")]), [K, M]),
    # casei-function E: full case folding (ß folds to ss).
    ("CASEI('Straße') = CASEI('STRASSE')", op("=", op("casei", "Straße"), op("casei", "STRASSE")), ALL),
    ("name = 'Herat clinic'", op("=", p("name"), "Herat clinic"), []),
    ("ACCENTI(name) = ACCENTI('Herat clinic')",
     op("=", op("accenti", p("name")), op("accenti", "Herat clinic")),
     [H]),
    ("ACCENTI(CASEI(name)) LIKE ACCENTI(CASEI('HÉR%'))",
     op("like", op("accenti", op("casei", p("name"))), op("accenti", op("casei", "HÉR%"))), [H]),
]


@cases(FOLDING)
def test_req_case_and_accent_insensitive_comparison(api: TestClient, text: str, doc: Any,
                                                    expected: list[str]) -> None:
    _check(api, text, doc, expected)


# --- /req/basic-spatial-functions(-plus) and /req/spatial-functions ---------------------------------

SPATIAL_LITERALS: list[Case] = [
    ("S_INTERSECTS(geometry, POINT(62.2 34.35))",
     op("s_intersects", p("geometry"), geo("Point", [62.2, 34.35])),
     [H]),
    ("S_INTERSECTS(geometry, BBOX(61, 31, 66, 35))",
     op("s_intersects", p("geometry"), {"bbox": [61, 31, 66, 35]}),
     [H, D, F]),
    ("S_INTERSECTS(geometry, BBOX(61, 31, -100, 66, 35, 9000))",
     op("s_intersects", p("geometry"), {"bbox": [61, 31, -100, 66, 35, 9000]}), [H, D, F]),
    # West greater than east crosses the antimeridian: 68..180 and -180..60, which leaves out H at 62.2.
    ("S_INTERSECTS(geometry, BBOX(68, 34, 60, 35))",
     op("s_intersects", p("geometry"), {"bbox": [68, 34, 60, 35]}),
     [K]),
    ("S_INTERSECTS(geometry, LINESTRING(68.9 35.3, 69.1 35.3))",
     op("s_intersects", p("geometry"), geo("LineString", [[68.9, 35.3], [69.1, 35.3]])), [S]),
    (f"S_INTERSECTS(geometry, {KABUL_WKT})",
     op("s_intersects", p("geometry"), geo("Polygon", KABUL_BOX)), [K]),
    ("S_INTERSECTS(geometry, MULTIPOINT((62.2 34.35), (67.11 36.71)))",
     op("s_intersects", p("geometry"), geo("MultiPoint", [[62.2, 34.35], [67.11, 36.71]])), [H, M]),
    ("S_INTERSECTS(geometry, MULTILINESTRING((68.9 35.3, 69.1 35.3), (65.5 31.6, 65.9 31.6)))",
     op("s_intersects", p("geometry"),
        geo("MultiLineString", [[[68.9, 35.3], [69.1, 35.3]], [[65.5, 31.6], [65.9, 31.6]]])), [S, D]),
    ("S_INTERSECTS(geometry, MULTIPOLYGON(((68.5 34, 70 34, 70 35, 68.5 35, 68.5 34)), "
     "((64 32.5, 65 32.5, 65 33.5, 64 33.5, 64 32.5))))",
     op("s_intersects", p("geometry"), geo("MultiPolygon", [
         KABUL_BOX, [[[64, 32.5], [65, 32.5], [65, 33.5], [64, 33.5], [64, 32.5]]]])), [K, F]),
    ("S_INTERSECTS(geometry, GEOMETRYCOLLECTION(POINT(67.11 36.71), LINESTRING(65.5 31.6, 65.9 31.6)))",
     op("s_intersects", p("geometry"), {"type": "GeometryCollection", "geometries": [
         geo("Point", [67.11, 36.71]), geo("LineString", [[65.5, 31.6], [65.9, 31.6]])]}), [D, M]),
    ("S_INTERSECTS(geometry, POINT Z(67.11 36.71 380))",
     op("s_intersects", p("geometry"), geo("Point", [67.11, 36.71, 380])), [M]),
    # A literal first (/per/basic-spatial-functions/spatial-predicates A is withdrawn).
    ("S_INTERSECTS(POINT(62.2 34.35), geometry)",
     op("s_intersects", geo("Point", [62.2, 34.35]), p("geometry")),
     [H]),
]


@cases(SPATIAL_LITERALS)
def test_req_basic_spatial_functions_plus_spatial_data_types(api: TestClient, text: str, doc: Any,
                                                             expected: list[str]) -> None:
    _check(api, text, doc, expected)


SPATIAL_FUNCTIONS: list[Case] = [
    ("S_EQUALS(geometry, POINT(67.11 36.71))",
     op("s_equals", p("geometry"), geo("Point", [67.11, 36.71])), [M]),
    # Equal as point sets: the road drawn the other way round.
    ("S_EQUALS(geometry, LINESTRING(69 35.4, 69 35.2))",
     op("s_equals", p("geometry"), geo("LineString", [[69, 35.4], [69, 35.2]])), [S]),
    ("S_DISJOINT(geometry, BBOX(60, 29, 68, 38))",
     op("s_disjoint", p("geometry"), {"bbox": [60, 29, 68, 38]}),
     [K, S]),
    # D shares its east edge with this square; H is the end of this line.
    ("S_TOUCHES(geometry, POLYGON((65.8 31.5, 66 31.5, 66 31.7, 65.8 31.7, 65.8 31.5)))",
     op("s_touches", p("geometry"), geo("Polygon", [[[65.8, 31.5], [66, 31.5], [66, 31.7], [65.8, 31.7],
                                                    [65.8, 31.5]]])), [D]),
    ("S_TOUCHES(geometry, LINESTRING(62.2 34.35, 63 35))",
     op("s_touches", p("geometry"), geo("LineString", [[62.2, 34.35], [63, 35]])), [H]),
    (f"S_WITHIN(geometry, {KABUL_WKT})", op("s_within", p("geometry"), geo("Polygon", KABUL_BOX)), [K]),
    ("S_WITHIN(geometry, BBOX(68, 35, 70, 36))",
     op("s_within", p("geometry"), {"bbox": [68, 35, 70, 36]}), [S]),
    ("S_CONTAINS(geometry, POINT(65.7 31.6))",
     op("s_contains", p("geometry"), geo("Point", [65.7, 31.6])), [D]),
    (f"S_CONTAINS({KABUL_WKT}, geometry)", op("s_contains", geo("Polygon", KABUL_BOX), p("geometry")), [K]),
    ("S_OVERLAPS(geometry, POLYGON((65.7 31.6, 66 31.6, 66 32, 65.7 32, 65.7 31.6)))",
     op("s_overlaps", p("geometry"), geo("Polygon", [[[65.7, 31.6], [66, 31.6], [66, 32], [65.7, 32],
                                                     [65.7, 31.6]]])), [D]),
    ("S_CROSSES(geometry, LINESTRING(68.9 35.3, 69.1 35.3))",
     op("s_crosses", p("geometry"), geo("LineString", [[68.9, 35.3], [69.1, 35.3]])), [S]),
    ("S_CROSSES(geometry, LINESTRING(65.5 31.6, 65.9 31.6))",
     op("s_crosses", p("geometry"), geo("LineString", [[65.5, 31.6], [65.9, 31.6]])), [D]),
]


@cases(SPATIAL_FUNCTIONS)
def test_req_spatial_functions_spatial_functions(api: TestClient, text: str, doc: Any,
                                                 expected: list[str]) -> None:
    _check(api, text, doc, expected)


# --- /req/property-property/withdraw-permissions ---------------------------------------------------

PROPERTY_PROPERTY: list[Case] = [
    ("start_date < end_date", op("<", p("start_date"), p("end_date")), [K, H, F]),
    ("end_date < start_date", op("<", p("end_date"), p("start_date")), []),
    ("budget_usd * 2 > budget_usd + 1000000",
     op(">", op("*", p("budget_usd"), 2), op("+", p("budget_usd"), 1000000)), [S, M]),
    ("S_INTERSECTS(geometry, geometry)", op("s_intersects", p("geometry"), p("geometry")), ALL),
    ("S_EQUALS(geometry, geometry)", op("s_equals", p("geometry"), p("geometry")), ALL),
    ("S_DISJOINT(geometry, geometry)", op("s_disjoint", p("geometry"), p("geometry")), []),
    ("'school' IN (category, status)", op("in", "school", [p("category"), p("status")]), [K]),
    # Literals where the Basic CQL2 permissions let a server refuse them.
    ("5 BETWEEN 1 AND 9", op("between", 5, 1, 9), ALL),
    ("250000 BETWEEN budget_usd AND 1000000", op("between", 250000, p("budget_usd"), 1000000), [K, F]),
    ("'a' IN ('a', 'b')", op("in", "a", ["a", "b"]), ALL),
    ("'Kabul' LIKE 'K%'", op("like", "Kabul", "K%"), ALL),
    ("1 IS NULL", op("isNull", 1), []),
    ("1 = 1", op("=", 1, 1), ALL),
]


@cases(PROPERTY_PROPERTY)
def test_req_property_property_withdraw_permissions(api: TestClient, text: str, doc: Any,
                                                    expected: list[str]) -> None:
    _check(api, text, doc, expected)


# --- /req/arithmetic -------------------------------------------------------------------------------

ARITHMETIC: list[Case] = [
    ("budget_usd + 1 = 8", op("=", op("+", p("budget_usd"), 1), 8), [F]),
    ("budget_usd - 7 = 0", op("=", op("-", p("budget_usd"), 7), 0), [F]),
    ("budget_usd * 2 = 500000", op("=", op("*", p("budget_usd"), 2), 500000), [K]),
    ("budget_usd / 2 = 3.5", op("=", op("/", p("budget_usd"), 2), 3.5), [F]),
    ("budget_usd % 2 = 1", op("=", op("%", p("budget_usd"), 2), 1), [F]),
    ("budget_usd % 300000 = 0", op("=", op("%", p("budget_usd"), 300000), 0), [H]),
    ("budget_usd div 2 = 3", op("=", op("div", p("budget_usd"), 2), 3), [F]),
    ("budget_usd div 1000000 = 1", op("=", op("div", p("budget_usd"), 1000000), 1), [S]),
    ("budget_usd ^ 2 = 49", op("=", op("^", p("budget_usd"), 2), 49), [F]),
    ("2 ^ budget_usd = 128", op("=", op("^", 2, p("budget_usd")), 128), [F]),
    # % and div truncate towards zero: -7 % 2 is -1, -7 div 2 is -3.
    ("(0 - budget_usd) % 2 = -1", op("=", op("%", op("-", 0, p("budget_usd")), 2), -1), [F]),
    ("-budget_usd div 2 = -3", op("=", op("div", op("*", -1, p("budget_usd")), 2), -3), [F]),
    # The test data's example shape: 1600000 - (21 div 10).
    ("budget_usd > 1600000 - 21 div 10",
     op(">", p("budget_usd"), op("-", 1600000, op("div", 21, 10))), [S, M]),
    ("budget_usd BETWEEN 1000000 / 4 AND (3 * (900000 + 100000))",
     op("between", p("budget_usd"), op("/", 1000000, 4), op("*", 3, op("+", 900000, 100000))), [K, H, S]),
    # B: NULL in, NULL out. Dividing by a column's zero is NULL too, never infinity.
    ("budget_usd + 1 IS NULL", op("isNull", op("+", p("budget_usd"), 1)), [D]),
    ("budget_usd / (budget_usd - budget_usd) IS NULL",
     op("isNull", op("/", p("budget_usd"), op("-", p("budget_usd"), p("budget_usd")))), ALL),
    ("NOT (budget_usd / (budget_usd - budget_usd) > 0)",
     op("not", op(">", op("/", p("budget_usd"), op("-", p("budget_usd"), p("budget_usd"))), 0)), []),
]


@cases(ARITHMETIC)
def test_req_arithmetic_arithmetic(api: TestClient, text: str, doc: Any, expected: list[str]) -> None:
    _check(api, text, doc, expected)


# --- what is refused, and how ----------------------------------------------------------------------

@pytest.mark.parametrize("text, doc, words", [
    # A number compared with text names both sides (/req/basic-cql2/binary-comparison-predicate D).
    ("budget_usd > 'abc'", op(">", p("budget_usd"), "abc"), "budget_usd is a number and 'abc' is text"),
    ("status > 5", op(">", p("status"), 5), "status is text and 5 is a number"),
    ("start_date > '2020-01-01'", op(">", p("start_date"), "2020-01-01"), "start_date is a date"),
    # One-letter names are read; this one is not a queryable (/req/basic-cql2/property A).
    ("x = 1", op("=", p("x"), 1), "'x' is not a queryable"),
    ("budget_usd / 0 > 1", op(">", op("/", p("budget_usd"), 0), 1), "divides by zero"),
    ("budget_usd div (1 - 1) > 1", op(">", op("div", p("budget_usd"), op("-", 1, 1)), 1), "divides by zero"),
    ("name LIKE category", op("like", p("name"), p("category")), "LIKE takes a text pattern"),
    ("budget_usd LIKE '7'", op("like", p("budget_usd"), "7"), "LIKE compares text"),
    ("S_INTERSECTS(geometry, name)", op("s_intersects", p("geometry"), p("name")), "compares geometries"),
    ("name + 1 > 2", op(">", op("+", p("name"), 1), 2), "+ takes numbers"),
    ("budget_usd + 1", op("+", p("budget_usd"), 1), "not a condition"),
    ("CASEI(budget_usd) = 'a'", op("=", op("casei", p("budget_usd")), "a"), "CASEI takes text"),
    ("T_AFTER(start_date, DATE('2020-01-01'))", op("t_after", p("start_date"), date("2020-01-01")),
     "temporal operator t_after is not offered"),
    ("FOO(name) = 'x'", op("=", op("FOO", p("name")), "x"), "unknown function"),
    ("S_INTERSECTS(geometry, BBOX(61, 35, 66, 31))",
     op("s_intersects", p("geometry"), {"bbox": [61, 35, 66, 31]}),
     "south 35 is above its north 31"),
    ("start_date > DATE('2020-02-30')", op(">", p("start_date"), date("2020-02-30")), "is not a date"),
    ("created_at > TIMESTAMP('2020-01-01T25:00:00Z')", op(">", p("created_at"), ts("2020-01-01T25:00:00Z")),
     "is not a timestamp"),
    # Digits are ASCII, as in every other parameter (Python's int() reads Arabic-Indic digits too).
    ("start_date > DATE('\u0662\u0660\u0662\u0660-01-01')",
     op(">", p("start_date"), date("\u0662\u0660\u0662\u0660-01-01")), "is not a date"),
    ("created_at > TIMESTAMP('2020-01-01T10:00:00.\u0661Z')",
     op(">", p("created_at"), ts("2020-01-01T10:00:00.\u0661Z")), "is not a timestamp"),
])
def test_faults_are_400_problems_saying_why(api: TestClient, text: str, doc: Any, words: str) -> None:
    assert words in _problem(api, text)
    assert words in _problem(api, json.dumps(doc), "cql2-json")


@pytest.mark.parametrize("text, words", [
    ("name = 'a' AND", "ends before the expression is complete"),
    ("category = = 'school'", "unexpected '=' at character 12"),
    ("2 ^ 3 ^ 2 = 64", "unexpected '^' at character 7"),
    ("S_INTERSECTS(geometry, POINT X(1 2))", "only Z may follow"),
    ("S_INTERSECTS(geometry, POLYGON((1 2, 3 4)))", "POLYGON takes lists of at least 4 positions"),
    ("budget_usd > 1" + "0" * 400, "(401 digits) is beyond the range of a 64-bit float"),
    ("name = 'unterminated", "unexpected"),
    # The grammar is linear: parentheses that never close are refused at once.
    ("(" * 4000 + "1=1", "ends before the expression is complete"),
    ("(" * 20 + "1=" + ")" * 20, "unexpected ')' at character 23"),
])
def test_text_that_is_not_cql2_is_a_400_saying_where(api: TestClient, text: str, words: str) -> None:
    assert words in _problem(api, text)


def test_an_empty_filter_is_refused_by_the_parser() -> None:
    from geo.errors import InvalidInput
    from geo.query import cql

    for text in ("", "   "):
        with pytest.raises(InvalidInput, match="is empty"):
            cql.parse(text, "cql2-text")


def test_the_queryables_list_the_id_that_filters_name(api: TestClient) -> None:
    # /req/queryables/get-queryables-response G: additionalProperties is false, so every property a
    # filter may name is listed, the id included.
    doc = api.get("/collections/projects/queryables").json()
    assert doc["additionalProperties"] is False
    assert doc["properties"]["id"]["type"] == "string"
    assert _ids(api, "id <> 'kabul-school' AND id LIKE '%-%'") == [H, S, D, M, F]
