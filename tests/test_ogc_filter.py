"""OGC API - Features Part 3 and CQL2 over HTTP: queryables, filter (text and JSON), sortby, properties, ids.

One test per advertised class (or group of them), each against known data: the shipped Salang
projects plus the projects posted by the `projects` fixture.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.conftest import AUTH, point_feature

ITEMS = "/collections/projects/items"
# name -> (lon, lat, extra properties)
POSTED: dict[str, tuple[float, float, dict[str, Any]]] = {
    "Kabul school": (69.1723, 34.5281, {"category": "school", "status": "proposed", "budget_usd": 250_000,
                                        "start_date": "2026-03-01", "end_date": "2027-06-30"}),
    "Herat clinic": (62.2, 34.35, {"category": "health", "status": "planned", "budget_usd": 900_000,
                                   "start_date": "2027-01-01", "end_date": "2028-12-31"}),
    "Kandahar housing": (65.71, 31.61, {"category": "housing", "status": "approved"}),
    "Mazar water": (67.11, 36.71, {"category": "water", "status": "under_construction",
                                   "budget_usd": 4_000_000, "start_date": "2024-05-01"}),
}


@pytest.fixture
def projects(client: TestClient) -> TestClient:
    """The client, with four known projects added."""
    for name, (lon, lat, props) in POSTED.items():
        response = client.post(ITEMS, headers=AUTH, json=point_feature(lon, lat, name=name, **props))
        assert response.status_code == 201, response.text
    return client


def _names(client: TestClient, path: str = ITEMS, **params: Any) -> list[str]:
    response = client.get(path, params={"limit": 1000, **params})
    assert response.status_code == 200, response.text
    return [f["properties"].get("name", f["id"]) for f in response.json()["features"]]


def _problem(client: TestClient, field: str, path: str = ITEMS, **params: Any) -> dict[str, Any]:
    response = client.get(path, params=params)
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem: dict[str, Any] = response.json()
    assert field in [e["field"] for e in problem["errors"]], problem
    return problem


# --- queryables ---------------------------------------------------------------------------------

def test_queryables_are_a_json_schema(projects: TestClient) -> None:
    doc = projects.get("/collections/projects/queryables").json()
    assert doc["$schema"] == "https://json-schema.org/draft/2020-12/schema" and doc["type"] == "object"
    assert doc["$id"].endswith("/collections/projects/queryables")
    props = doc["properties"]
    assert props["status"]["enum"][0] == "proposed" and props["budget_usd"]["type"] == "number"
    assert props["start_date"] == {"title": "Start date", "type": "string", "format": "date"}
    assert props["geometry"]["format"] == "geometry-any"
    provinces = projects.get("/collections/provinces/queryables").json()["properties"]
    assert provinces["area_km2"]["type"] == "number" and provinces["code"]["type"] == "string"
    assert projects.get("/collections/nope/queryables").status_code == 404


# Who has each queryable, read by hand from layers/salang.geojson, projects.geojson (T: the second
# Salang tunnel, R: the highway reconstruction) and POSTED; every province has all seven.
T, R = "Second Salang Tunnel", "Salang highway reconstruction"
KS, HC, KH, MW = POSTED
EVERY_PROJECT = [T, R, KS, HC, KH, MW]
HAVING = {
    "projects": {
        "id": EVERY_PROJECT, "name": EVERY_PROJECT, "name_prs": [T], "name_ps": [], "category": EVERY_PROJECT,
        "status": EVERY_PROJECT, "description": [T, R], "budget_usd": [T, KS, HC, MW],
        "start_date": [R, KS, HC, MW], "end_date": [KS, HC], "source_url": [T, R], "source_note": [T, R],
        "geometry_quality": [T, R], "province": EVERY_PROJECT, "province_name": EVERY_PROJECT,
        "created_at": EVERY_PROJECT, "updated_at": EVERY_PROJECT},
    "salang": {
        **{name: ["salang-tunnel", "salang-tunnel-2"] for name in (
            "id", "name", "name_prs", "kind", "status", "provinces", "length_km", "history",
            "geometry_quality", "geometry_note")},
        **{name: ["salang-tunnel"] for name in (
            "name_prs_latn", "name_ps", "altitude_m", "width_m", "construction", "opened")},
        "estimated_cost_usd": ["salang-tunnel-2"]},
}


@pytest.mark.parametrize("cid", ["projects", "salang", "provinces"])
def test_every_queryable_can_be_filtered_on(projects: TestClient, cid: str) -> None:
    props = projects.get(f"/collections/{cid}/queryables").json()["properties"]
    path = f"/collections/{cid}/items"
    if cid == "provinces":
        assert sorted(props) == ["area_km2", "code", "geometry", "id", "name", "name_iso", "shape_id",
                                 "source_code", "source_name"]
        for name in props:
            if name != "geometry":
                assert len(_names(projects, path, filter=f"{name} IS NOT NULL")) == 34, name
                assert _names(projects, path, filter=f"{name} IS NULL") == [], name
        return
    having = HAVING[cid]
    assert sorted(props) == sorted([*having, "geometry"])
    for name, expected in having.items():
        if cid == "salang":  # _names gives the name, which two features share: compare ids
            found = [f["id"] for f in projects.get(path, params={"filter": f"{name} IS NOT NULL"}).json()[
                "features"]]
        else:
            found = _names(projects, path, filter=f"{name} IS NOT NULL")
        assert found == expected, name


# --- basic-cql2 and cql2-text --------------------------------------------------------------------

@pytest.mark.parametrize("expression, expected", [
    ("category = 'school'", ["Kabul school"]),
    ("category <> 'transport' AND status <> 'approved'", ["Kabul school", "Herat clinic", "Mazar water"]),
    ("budget_usd > 900000", ["Second Salang Tunnel", "Mazar water"]),
    ("budget_usd >= 900000 AND budget_usd < 1000000000", ["Herat clinic", "Mazar water"]),
    ("budget_usd <= 250000", ["Kabul school"]),
    ("NOT (status = 'proposed') AND category <> 'transport'", ["Herat clinic", "Kandahar housing",
                                                               "Mazar water"]),
    ("category = 'health' OR category = 'water'", ["Herat clinic", "Mazar water"]),
    ("budget_usd IS NULL AND category <> 'transport'", ["Kandahar housing"]),
    # Three-valued logic: a missing budget is neither > nor NOT >.
    ("NOT (budget_usd > 1000000)", ["Kabul school", "Herat clinic"]),
    ("end_date IS NOT NULL", ["Kabul school", "Herat clinic"]),
    ("start_date >= DATE('2026-01-01')", ["Kabul school", "Herat clinic"]),
    ("start_date < DATE('2024-01-01')", ["Salang highway reconstruction"]),
    ("created_at < TIMESTAMP('2020-01-01T00:00:00Z')", ["Second Salang Tunnel"]),
    ("province = 'AF-HER'", ["Herat clinic"]),
])
def test_basic_cql2_text(projects: TestClient, expression: str, expected: list[str]) -> None:
    assert _names(projects, filter=expression) == expected
    assert _names(projects, filter=expression, **{"filter-lang": "cql2-text"}) == expected


def test_filter_on_static_layers(projects: TestClient) -> None:
    assert _names(projects, "/collections/provinces/items", filter="code = 'AF-KAB'") == ["Kabul"]
    big = _names(projects, "/collections/provinces/items", filter="area_km2 > 50000")
    assert "Helmand" in big and "Kabul" not in big
    assert _names(projects, "/collections/salang/items", filter="length_km > 5") == [
        "Second Salang Tunnel (proposed)"]


# --- advanced-comparison-operators --------------------------------------------------------------

@pytest.mark.parametrize("expression, expected", [
    ("name LIKE 'K%'", ["Kabul school", "Kandahar housing"]),
    ("name LIKE '%water'", ["Mazar water"]),
    ("name NOT LIKE '%a%'", []),
    ("budget_usd BETWEEN 200000 AND 1000000", ["Kabul school", "Herat clinic"]),
    ("budget_usd NOT BETWEEN 200000 AND 1000000", ["Second Salang Tunnel", "Mazar water"]),
    ("status IN ('planned', 'approved')", ["Herat clinic", "Kandahar housing"]),
    ("category NOT IN ('transport', 'school')", ["Herat clinic", "Kandahar housing", "Mazar water"]),
])
def test_advanced_comparison_operators(projects: TestClient, expression: str, expected: list[str]) -> None:
    assert _names(projects, filter=expression) == expected


# --- spatial functions ---------------------------------------------------------------------------

AROUND_KABUL = "POLYGON((68.5 34, 70 34, 70 35, 68.5 35, 68.5 34))"


@pytest.mark.parametrize("expression, expected", [
    # basic-spatial-functions: S_INTERSECTS with a point or a BBOX.
    ("S_INTERSECTS(geometry, POINT(62.2 34.35))", ["Herat clinic"]),
    ("S_INTERSECTS(geometry, BBOX(61, 31, 66, 35))", ["Herat clinic", "Kandahar housing"]),
    # basic-spatial-functions-plus: S_INTERSECTS with other geometry types.
    (f"S_INTERSECTS(geometry, {AROUND_KABUL})", ["Kabul school"]),
    ("S_INTERSECTS(geometry, LINESTRING(68.9 35.2, 69.2 35.4))", ["Second Salang Tunnel"]),
    # spatial-functions: the other predicates, either way round.
    (f"S_WITHIN(geometry, {AROUND_KABUL})", ["Kabul school"]),
    (f"S_CONTAINS({AROUND_KABUL}, geometry)", ["Kabul school"]),
    ("S_CONTAINS(geometry, POINT(62.2 34.35))", ["Herat clinic"]),
    ("S_DISJOINT(geometry, BBOX(60, 29, 68, 38)) AND category <> 'transport'", ["Kabul school"]),
    ("S_EQUALS(geometry, POINT(65.71 31.61))", ["Kandahar housing"]),
    ("S_CROSSES(geometry, LINESTRING(68.9 35.2, 69.2 35.4))", ["Second Salang Tunnel"]),
    ("S_TOUCHES(geometry, LINESTRING(62.2 34.35, 63 35))", ["Herat clinic"]),
])
def test_spatial_functions(projects: TestClient, expression: str, expected: list[str]) -> None:
    assert _names(projects, filter=expression) == expected


def test_spatial_filter_on_provinces(projects: TestClient) -> None:
    assert _names(projects, "/collections/provinces/items",
                  filter="S_INTERSECTS(geometry, POINT(69.1723 34.5281))") == ["Kabul"]


# --- property-property and arithmetic ------------------------------------------------------------

def test_property_property_comparison(projects: TestClient) -> None:
    # Herat's clinic ends 2028-12-31, after its start; Kabul's school too; nobody ends before starting.
    assert _names(projects, filter="start_date < end_date") == ["Kabul school", "Herat clinic"]
    assert _names(projects, filter="end_date < start_date") == []
    assert _names(projects, filter="province = 'AF-BAL' AND name <> province_name") == ["Mazar water"]


def test_arithmetic(projects: TestClient) -> None:
    expression = "budget_usd / 1000 > 3000 AND budget_usd * 2 < 1000000000"
    assert _names(projects, filter=expression) == ["Mazar water"]
    assert _names(projects, filter="budget_usd - 250000 = 0") == ["Kabul school"]
    assert _names(projects, filter="budget_usd + 100000 = 1000000") == ["Herat clinic"]


# --- cql2-json -----------------------------------------------------------------------------------

def _prop(name: str) -> dict[str, str]:
    return {"property": name}


# Each filter in both encodings, against the names worked out by hand (both encodings are read into
# one form, so comparing them with each other would prove nothing; tests/test_cql2.py has every class).
@pytest.mark.parametrize("doc, text, expected", [
    ({"op": "=", "args": [_prop("category"), "school"]}, "category = 'school'", [KS]),
    ({"op": "and", "args": [{"op": ">", "args": [_prop("budget_usd"), 200000]},
                            {"op": "<", "args": [_prop("budget_usd"), 1000000]}]},
     "budget_usd > 200000 AND budget_usd < 1000000", [KS, HC]),
    ({"op": "or", "args": [{"op": "=", "args": [_prop("status"), "approved"]},
                           {"op": "isNull", "args": [_prop("budget_usd")]}]},
     "status = 'approved' OR budget_usd IS NULL", [R, KH]),
    ({"op": "not", "args": [{"op": "=", "args": [_prop("category"), "transport"]}]},
     "NOT (category = 'transport')", [KS, HC, KH, MW]),
    ({"op": "like", "args": [_prop("name"), "K%"]}, "name LIKE 'K%'", [KS, KH]),
    ({"op": "between", "args": [_prop("budget_usd"), 200000, 1000000]},
     "budget_usd BETWEEN 200000 AND 1000000", [KS, HC]),
    ({"op": "in", "args": [_prop("status"), ["planned", "approved"]]}, "status IN ('planned', 'approved')",
     [HC, KH]),
    ({"op": ">=", "args": [_prop("start_date"), {"date": "2026-01-01"}]}, "start_date >= DATE('2026-01-01')",
     [KS, HC]),
    ({"op": "<", "args": [_prop("created_at"), {"timestamp": "2020-01-01T00:00:00Z"}]},
     "created_at < TIMESTAMP('2020-01-01T00:00:00Z')", [T]),
    ({"op": "s_intersects", "args": [_prop("geometry"), {"bbox": [61, 31, 66, 35]}]},
     "S_INTERSECTS(geometry, BBOX(61, 31, 66, 35))", [HC, KH]),
    ({"op": "s_intersects", "args": [_prop("geometry"), {"type": "Point", "coordinates": [62.2, 34.35]}]},
     "S_INTERSECTS(geometry, POINT(62.2 34.35))", [HC]),
    ({"op": "s_within", "args": [_prop("geometry"), {"type": "Polygon", "coordinates": [
        [[68.5, 34], [70, 34], [70, 35], [68.5, 35], [68.5, 34]]]}]}, f"S_WITHIN(geometry, {AROUND_KABUL})",
     [KS]),
    ({"op": "<", "args": [_prop("start_date"), _prop("end_date")]}, "start_date < end_date", [KS, HC]),
    ({"op": ">", "args": [{"op": "*", "args": [_prop("budget_usd"), 2]}, 1000000]},
     "budget_usd * 2 > 1000000", [T, HC, MW]),
])
def test_cql2_json_and_cql2_text(projects: TestClient, doc: dict[str, Any], text: str,
                                 expected: list[str]) -> None:
    assert _names(projects, filter=json.dumps(doc), **{"filter-lang": "cql2-json"}) == expected
    assert _names(projects, filter=text) == expected


# --- features-filter: combined with the other parameters, and with paging ------------------------

def test_filter_combines_with_other_parameters_and_pages(projects: TestClient) -> None:
    params = {"filter": "category <> 'transport'", "bbox": "60,30,70,37",
              "status": "proposed,planned,approved"}
    assert _names(projects, **params) == ["Kabul school", "Herat clinic", "Kandahar housing"]
    first = projects.get(ITEMS, params={**params, "limit": 2}).json()
    assert first["numberMatched"] == 3 and first["numberReturned"] == 2
    nxt = next(ln["href"] for ln in first["links"] if ln["rel"] == "next")
    assert "filter=" in nxt
    second = projects.get(nxt.replace("http://testserver", "")).json()
    assert [f["properties"]["name"] for f in second["features"]] == ["Kandahar housing"]


def test_downloads_filter_through_the_same_parameters(projects: TestClient) -> None:
    body = projects.get("/layers/projects.geojson", params={"filter": "budget_usd > 900000"}).json()
    assert [f["properties"]["name"] for f in body["features"]] == ["Second Salang Tunnel", "Mazar water"]


@pytest.mark.parametrize("params, field", [
    ({"filter": "status = "}, "filter"),
    ({"filter": "colour = 'red'"}, "filter"),
    ({"filter": "status > 5"}, "filter"),
    ({"filter": "budget_usd LIKE 'x%'"}, "filter"),
    ({"filter": "T_AFTER(start_date, DATE('2020-01-01'))"}, "filter"),
    ({"filter": "S_INTERSECTS(geometry, name)"}, "filter"),
    ({"filter": "FOO(name) = 'x'"}, "filter"),
    ({"filter": "budget_usd + 1"}, "filter"),
    ({"filter": "{not json", "filter-lang": "cql2-json"}, "filter"),
    ({"filter": "[1, 2]", "filter-lang": "cql2-json"}, "filter"),
    ({"filter": '{"op": "nope", "args": []}', "filter-lang": "cql2-json"}, "filter"),
    ({"filter": "status = 'proposed'", "filter-lang": "ecql"}, "filter-lang"),
    ({"filter": "status = 'proposed'", "filter-crs": "EPSG:3857"}, "filter-crs"),
])
def test_bad_filters_are_400_problems_naming_the_parameter(projects: TestClient, params: dict[str, str],
                                                           field: str) -> None:
    before = projects.get(ITEMS).json()["numberMatched"]
    _problem(projects, field, **params)
    assert projects.get(ITEMS).json()["numberMatched"] == before


# --- sortby, properties, ids ---------------------------------------------------------------------

def test_sortby(projects: TestClient) -> None:
    names = sorted(["Kabul school", "Herat clinic", "Kandahar housing", "Mazar water",
                    "Second Salang Tunnel", "Salang highway reconstruction"])
    assert _names(projects, sortby="name") == names
    assert _names(projects, sortby="-name") == names[::-1]
    # Missing budgets come last, whichever the direction.
    by_budget = _names(projects, sortby="-budget_usd")
    assert by_budget[:4] == ["Second Salang Tunnel", "Mazar water", "Herat clinic", "Kabul school"]
    assert set(by_budget[4:]) == {"Salang highway reconstruction", "Kandahar housing"}
    assert _names(projects, sortby="+budget_usd")[:4] == ["Kabul school", "Herat clinic", "Mazar water",
                                                         "Second Salang Tunnel"]
    # Two keys: category first, then name descending.
    assert _names(projects, sortby="category,-name")[:2] == ["Herat clinic", "Kandahar housing"]
    assert _names(projects, sortby="start_date")[0] == "Salang highway reconstruction"
    assert _names(projects, "/collections/provinces/items", sortby="-area_km2")[0] == "Helmand"


def test_sortby_pages_consistently_and_filters(projects: TestClient) -> None:
    whole = _names(projects, sortby="-name", filter="category <> 'transport'")
    pages = [_names(projects, sortby="-name", filter="category <> 'transport'", limit=1, offset=n)
             for n in range(len(whole))]
    assert [p[0] for p in pages] == whole


def test_properties_selection(projects: TestClient) -> None:
    doc = projects.get(ITEMS, params={"properties": "name,status", "limit": 100}).json()
    for feature in doc["features"]:
        assert set(feature["properties"]) == {"name", "status"}
        assert feature["id"] and feature["geometry"]["type"]
    one = projects.get("/collections/provinces/items", params={"properties": "name", "ids": "AF-KAB"}).json()
    assert one["features"][0]["properties"] == {"name": "Kabul"}
    html = projects.get(ITEMS, params={"properties": "name", "f": "html"}).text
    assert "<th>name</th>" in html and "<th>status</th>" not in html
    _problem(projects, "properties", properties="name,colour")


def test_ids(projects: TestClient) -> None:
    # Results keep the layer's order, not the order of `ids`.
    assert sorted(_names(projects, "/collections/provinces/items", ids="AF-KAB,AF-HER")) == ["Herat", "Kabul"]
    assert _names(projects, ids="salang-tunnel-2,does-not-exist") == ["Second Salang Tunnel"]
    assert _names(projects, ids="salang-tunnel-2", filter="status = 'approved'") == []
    assert _names(projects, ids="salang-tunnel-2,salang-highway-reconstruction", sortby="name") == [
        "Salang highway reconstruction", "Second Salang Tunnel"]


def test_bad_sortby_is_a_problem(projects: TestClient) -> None:
    _problem(projects, "sortby", sortby="colour")
    _problem(projects, "sortby", sortby="-")
    _problem(projects, "sortby", sortby="geometry")


# --- a filter from anyone: faults and limits ----------------------------------------------------

ZEROS = "0" * 400


@pytest.mark.parametrize("params, why", [
    ({"filter": "1/0 = 1"}, "divides by zero"),
    ({"filter": "budget_usd / 0 > 1"}, "divides by zero"),
    ({"filter": f"budget_usd > 1{ZEROS}"}, "401 digits"),
    ({"filter": "created_at > TIMESTAMP('0001-01-01T00:00:00+01:00')"}, "years 1 to 9999"),
    ({"filter": "created_at < TIMESTAMP('9999-12-31T23:59:59-01:00')"}, "years 1 to 9999"),
    ({"filter": "start_date > DATE('2020-02-30')"}, "not a valid cql2-text expression"),
    ({"filter": "1=1" + " AND 1=1" * 600}, "more than 100 deep"),
    ({"filter": "name = '" + "x" * 9000 + "'"}, "filters are at most 8192"),
    ({"filter": "CASEI(budget_usd) = 'a'"}, "CASEI takes text, and budget_usd is a number"),
    ({"filter": "LOWER(name) = 'a'"}, "unknown function or operator 'LOWER'"),
    ({"filter": json.dumps({"op": "s_intersects",
                            "args": [_prop("geometry"), {"type": "Foo", "coordinates": [1, 2]}]}),
      "filter-lang": "cql2-json"}, "'Foo' is not a GeoJSON geometry type"),
    ({"filter": '{"op":"not","args":[' * 300 + '{"op":"=","args":[1,1]}' + "]}" * 300,
      "filter-lang": "cql2-json"}, "more than 100 deep"),
    ({"filter": json.dumps({"property": "name"}), "filter-lang": "cql2-json"},
     "name is text, not a condition"),
])
def test_filter_faults_are_400_problems_saying_why(projects: TestClient, params: dict[str, str],
                                                   why: str) -> None:
    assert why in _problem(projects, "filter", **params)["detail"]


def test_filter_limits_are_exact(projects: TestClient) -> None:
    from geo.query.cql import MAX_DEPTH, MAX_LENGTH

    longest = "name = '" + "x" * (MAX_LENGTH - len("name = ''")) + "'"
    assert len(longest) == MAX_LENGTH and _names(projects, filter=longest) == []
    _problem(projects, "filter", filter=longest + " ")
    # MAX_DEPTH conditions joined by AND nest MAX_DEPTH deep (AND is left-associative).
    deepest = " AND ".join(["budget_usd > 0"] * MAX_DEPTH)
    assert _names(projects, filter=deepest) == ["Second Salang Tunnel", "Kabul school", "Herat clinic",
                                                "Mazar water"]
    _problem(projects, "filter", filter=deepest + " AND budget_usd > 0")


def test_numbers_beyond_a_float_are_answers_where_they_have_one(projects: TestClient) -> None:
    with_budget = ["Second Salang Tunnel", "Kabul school", "Herat clinic", "Mazar water"]
    # Infinity exceeds every budget: a 100-digit literal is compared as the float it is.
    assert _names(projects, filter="budget_usd > 1" + "0" * 100) == []
    assert _names(projects, filter="budget_usd * 1e308 * 10 > 1") == with_budget
    assert _names(projects, filter="budget_usd < 9223372036854775808") == with_budget  # 2**63


def test_the_text_parser_writes_nothing_on_bad_input(capfd: pytest.CaptureFixture[str]) -> None:
    # The parser pygeofilter built had lark's debug=True: a bad date used to print ~9 kB to stdout.
    import logging

    from geo.errors import InvalidInput
    from geo.query import cql

    with pytest.raises(InvalidInput):
        cql.parse("start_date > DATE('2020-02-30')", "cql2-text")
    assert capfd.readouterr() == ("", "")
    assert logging.getLogger("lark").getEffectiveLevel() >= logging.WARNING
