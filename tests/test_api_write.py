"""Adding projects through POST: auth, validation, province assignment, and visibility everywhere."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from geo.app import create_app
from geo.settings import Settings
from tests.conftest import AUTH, point_feature

ITEMS = "/collections/projects/items"


def test_create_returns_201_with_location_and_server_fields(client: TestClient) -> None:
    body = point_feature(budget_usd=250000, funders=["Ministry of Education"], start_date="2027-03-01",
                         source_url="https://example.org/school", province="AF-HER", id="mine",
                         created_at="1999-01-01T00:00:00Z")
    response = client.post(ITEMS, json=body, headers=AUTH)
    assert response.status_code == 201
    created = response.json()
    assert response.headers["location"].endswith(f"{ITEMS}/{created['id']}")
    props = created["properties"]
    # Server-set fields are never taken from the client.
    assert created["id"] != "mine" and props["province"] == "AF-KAB" and props["province_name"] == "Kabul"
    assert props["created_at"] == props["updated_at"] != "1999-01-01T00:00:00Z"
    # `by` (the key's name, when keys have one) is geo/workflow.py's; tests/test_workflow.py checks it.
    assert [{k: h[k] for k in ("status", "at")} for h in props["status_history"]] == [
        {"status": "proposed", "at": props["created_at"]}]
    fetched = client.get(response.headers["location"].replace("http://testserver", ""))
    assert fetched.json()["properties"]["name"] == "Girls' secondary school"


def test_new_project_shows_in_items_map_and_download(client: TestClient) -> None:
    created = client.post(ITEMS, json=point_feature(name="Mazar water network", lon=67.11, lat=36.71,
                                                    category="water"), headers=AUTH).json()
    ids = [f["id"] for f in client.get(ITEMS, params={"limit": 100}).json()["features"]]
    assert created["id"] in ids
    # The map page holds no data: it fetches the items (checked above) and its figures from /stats.
    assert client.get("/map").status_code == 200
    assert client.get("/stats", params={"province": "AF-BAL"}).json()["by_category"]["water"]["count"] == 1
    download = client.get("/layers/projects.geojson").json()
    assert created["id"] in [f["id"] for f in download["features"]]
    assert created["properties"]["province"] == "AF-BAL"


def test_line_across_provinces_goes_to_the_province_holding_most_of_it(client: TestClient) -> None:
    # A road from Kabul province north into Parwan: ~0.15 degrees in Kabul, ~0.40 in Parwan.
    road = {"type": "Feature", "geometry": {"type": "LineString",
                                            "coordinates": [[69.17, 34.75], [69.17, 35.3]]},
            "properties": {"name": "Road", "category": "transport", "status": "planned"}}
    created = client.post(ITEMS, json=road, headers=AUTH)
    assert created.status_code == 201
    assert created.json()["properties"]["province"] == "AF-PAR"


def test_point_in_the_paktia_paktika_gap_gets_the_nearest_province(client: TestClient) -> None:
    index_province = client.app.state.catalogue  # type: ignore[attr-defined]
    table = index_province.get("provinces").table()
    import shapely

    paktia = table.geometries[table.position["AF-PIA"]]
    paktika = table.geometries[table.position["AF-PKA"]]
    gap = shapely.difference(shapely.envelope(shapely.union(paktia, paktika)),
                             shapely.union_all(table.geometries))
    # The sliver between the two: a piece of the gap that touches both polygons.
    pieces = [g for g in getattr(gap, "geoms", [gap])
              if g.distance(paktia) < 1e-9 and g.distance(paktika) < 1e-9 and g.area > 0]
    assert pieces, "the source's Paktia/Paktika sliver gap was not found"
    point = max(pieces, key=lambda g: g.area).representative_point()
    assert not shapely.union_all(table.geometries).covers(point)
    response = client.post(ITEMS, json=point_feature(lon=point.x, lat=point.y), headers=AUTH)
    assert response.status_code == 201
    assert response.json()["properties"]["province"] in ("AF-PIA", "AF-PKA")


def _problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem: dict[str, Any] = response.json()
    assert problem["status"] == status and problem["detail"]
    return problem


@pytest.mark.parametrize("mutate, field", [
    (lambda f: f["properties"].pop("name"), "properties.name"),
    (lambda f: f["properties"].update(category="castle"), "properties.category"),
    (lambda f: f["properties"].update(status="finished"), "properties.status"),
    (lambda f: f["properties"].update(budget_usd=-5), "properties.budget_usd"),
    (lambda f: f["properties"].update(budget_usd="lots"), "properties.budget_usd"),
    (lambda f: f["properties"].update(start_date="2027-13-45"), "properties.start_date"),
    (lambda f: f["properties"].update(start_date="2028-01-01", end_date="2027-01-01"), "properties"),
    (lambda f: f["properties"].update(source_url="javascript:alert(1)"), "properties.source_url"),
    (lambda f: f["properties"].update(colour="red"), "properties.colour"),
    (lambda f: f.update(type="FeatureCollection"), "type"),
    (lambda f: f.update(geometry=None), "geometry"),
    (lambda f: f.update(properties=None), "properties"),
    (lambda f: f["geometry"].update(type="GeometryCollection"), "geometry.type"),
    (lambda f: f["geometry"].update(coordinates=[69.1]), "geometry.coordinates"),
    (lambda f: f["geometry"].update(coordinates=[500, 34]), "geometry.coordinates"),
    (lambda f: f.update(geometry={"type": "Polygon", "coordinates": [
        [[69.0, 34.0], [69.2, 34.2], [69.2, 34.0], [69.0, 34.2], [69.0, 34.0]]]}), "geometry"),
    (lambda f: f["geometry"].update(coordinates=[2.35, 48.85]), "geometry"),
    # Text that has no place in a name or description: NUL (truncates values in GPKG and FGB), other
    # controls, and bidirectional overrides and isolates that make a name read as something else.
    (lambda f: f["properties"].update(name="School\u0000; DROP"), "properties.name"),
    (lambda f: f["properties"].update(name="School\u001b[31m"), "properties.name"),
    (lambda f: f["properties"].update(name="Kabul \u202egnp.exe"), "properties.name"),
    (lambda f: f["properties"].update(name="two\nlines"), "properties.name"),
    (lambda f: f["properties"].update(name_prs="\u2067مکتب\u2069"), "properties.name_prs"),
    (lambda f: f["properties"].update(name_ps="\u0085"), "properties.name_ps"),
    (lambda f: f["properties"].update(description="fine\nthen\u0000"), "properties.description"),
    (lambda f: f["properties"].update(description="\u202a"), "properties.description"),
    (lambda f: f["properties"].update(source_note="\u007f"), "properties.source_note"),
    (lambda f: f["properties"].update(funders=["Ministry", "Bank\u2066"]), "properties.funders.1"),
    (lambda f: f["properties"].update(source_url="https://example.org/\u0000x"), "properties.source_url"),
    # A JSON boolean or string where a number is expected.
    (lambda f: f["properties"].update(budget_usd=True), "properties.budget_usd"),
    (lambda f: f["properties"].update(budget_usd="1000"), "properties.budget_usd"),
    # Z is checked like X and Y; a fourth value (M) is refused; positions must agree in dimension.
    (lambda f: f["geometry"].update(coordinates=[69.17, 34.53, 1e6]), "geometry.coordinates"),
    (lambda f: f["geometry"].update(coordinates=[69.17, 34.53, -20000]), "geometry.coordinates"),
    (lambda f: f["geometry"].update(coordinates=[69.17, 34.53, 1800, 5]), "geometry.coordinates"),
    (lambda f: f["geometry"].update(coordinates=[69.17, 34.53, True]), "geometry.coordinates"),
    (lambda f: f["geometry"].update(coordinates=[True, 34.53]), "geometry.coordinates"),
    (lambda f: f.update(geometry={"type": "LineString", "coordinates": [[69.1, 34.5], [69.2, 34.6, 1800]]}),
     "geometry.coordinates"),
    (lambda f: f.update(geometry={"type": "Point", "coordinates": [[[[[[69.1, 34.5]]]]]]}),
     "geometry.coordinates"),
])
def test_invalid_features_are_refused_naming_the_field(client: TestClient, settings: Settings, mutate: Any,
                                                      field: str) -> None:
    before = client.get(ITEMS).json()["numberMatched"]
    on_disk = settings.projects.read_bytes()
    body = point_feature()
    mutate(body)
    problem = _problem(client.post(ITEMS, json=body, headers=AUTH), 422)
    assert field in [e["field"] for e in problem["errors"]], problem
    assert client.get(ITEMS).json()["numberMatched"] == before
    assert settings.projects.read_bytes() == on_disk


def test_allowed_text_and_elevations_are_stored_as_sent(client: TestClient) -> None:
    # Tabs and newlines in a description, a right-to-left mark in a Dari name, and a Z in metres are fine.
    body: dict[str, Any] = point_feature(name_prs="مکتب\u200f", description="Line one\n\tLine two",
                                         budget_usd=1200000)
    body["geometry"]["coordinates"] = [69.1723, 34.5281, 1791.0]
    created = _problem_free(client.post(ITEMS, json=body, headers=AUTH))
    assert created["geometry"]["coordinates"] == [69.1723, 34.5281, 1791.0]
    props = created["properties"]
    assert props["name_prs"] == "مکتب\u200f" and props["description"] == "Line one\n\tLine two"
    assert props["budget_usd"] == 1200000


def _problem_free(response: Any) -> dict[str, Any]:
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def test_swapped_coordinates_get_a_hint(client: TestClient) -> None:
    problem = _problem(client.post(ITEMS, json=point_feature(lon=34.5281, lat=69.1723), headers=AUTH), 422)
    assert "outside Afghanistan" in problem["detail"] and "swap" in problem["detail"]
    far = _problem(client.post(ITEMS, json=point_feature(lon=2.35, lat=48.85), headers=AUTH), 422)
    assert "swap" not in far["detail"]


def test_bad_bodies(client: TestClient, settings: Settings) -> None:
    _problem(client.post(ITEMS, content=b"{not json", headers={**AUTH, "Content-Type": "application/json"}),
             400)
    _problem(client.post(ITEMS, content=b"name=x", headers={
        **AUTH, "Content-Type": "application/x-www-form-urlencoded"}), 415)
    huge = point_feature(description="x" * (settings.max_body_bytes + 10))
    _problem(client.post(ITEMS, json=huge, headers=AUTH), 413)
    _problem(client.post("/collections/provinces/items", json=point_feature(), headers=AUTH), 405)


def test_auth(client: TestClient) -> None:
    missing = _problem(client.post(ITEMS, json=point_feature()), 401)
    assert "Bearer" in missing["detail"]
    assert client.post(ITEMS, json=point_feature()).headers["www-authenticate"].startswith("Bearer")
    _problem(client.post(ITEMS, json=point_feature(), headers={"Authorization": "Bearer wrong"}), 401)
    _problem(client.post(ITEMS, json=point_feature(), headers={"Authorization": "Basic dGVzdA=="}), 401)


def test_writes_refused_without_configured_keys(settings: Settings) -> None:
    settings = settings.model_copy(update={"api_keys": None})
    with TestClient(create_app(settings)) as client:
        problem = _problem(client.post(ITEMS, json=point_feature(), headers=AUTH), 403)
        assert "GEO_API_KEYS" in problem["detail"]
