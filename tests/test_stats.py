"""GET /stats: counts and budgets by province, status and category, with the item filters."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from jsonschema import Draft7Validator
from pydantic import ValidationError

from geo.stats import Stats
from tests.conftest import AUTH, point_feature


def _add(client: TestClient, **props: object) -> None:
    response = client.post("/collections/projects/items", json=point_feature(**props), headers=AUTH)
    assert response.status_code == 201


def test_stats_count_and_sum_by_province_status_and_category(client: TestClient) -> None:
    before = client.get("/stats").json()
    _add(client, name="Kandahar hospital", lon=65.71, lat=31.61, category="health", status="approved",
         budget_usd=2_500_000)
    _add(client, name="Kandahar school", lon=65.70, lat=31.60, category="school", status="approved",
         budget_usd=500_000)
    _add(client, name="Kabul school", category="school", status="proposed")  # no budget
    got = client.get("/stats").json()
    assert got["total"]["count"] == before["total"]["count"] + 3
    assert got["total"]["budget_usd"] == before["total"]["budget_usd"] + 3_000_000
    kan = got["by_province"]["AF-KAN"]
    assert kan["name"] == "Kandahar" and kan["count"] == 2 and kan["budget_usd"] == 3_000_000
    assert kan["by_status"]["approved"] == 2 and kan["by_status"]["proposed"] == 0
    assert kan["by_category"] == {**{c: 0 for c in kan["by_category"]}, "health": 1, "school": 1}
    kab = got["by_province"]["AF-KAB"]
    assert kab["count"] == before["by_province"]["AF-KAB"]["count"] + 1
    assert kab["with_budget"] == before["by_province"]["AF-KAB"]["with_budget"]
    assert got["by_category"]["school"]["count"] == before["by_category"]["school"]["count"] + 2
    assert got["by_status"]["approved"]["budget_usd"] == before["by_status"]["approved"]["budget_usd"] + 3e6
    # Every province is listed, so a choropleth has a value for each; the parts add up to the total.
    assert len(got["by_province"]) == 34
    assert sum(p["count"] for p in got["by_province"].values()) == got["total"]["count"]
    assert sum(s["count"] for s in got["by_status"].values()) == got["total"]["count"]


def test_stats_take_the_item_filters(client: TestClient) -> None:
    _add(client, name="Kandahar hospital", lon=65.71, lat=31.61, category="health", status="approved",
         budget_usd=1_000)
    got = client.get("/stats", params={"category": "health", "province": "AF-KAN"}).json()
    assert got["filters"] == {"category": "health", "province": "AF-KAN"}
    assert got["total"] == {"count": 1, "budget_usd": 1000.0, "with_budget": 1, "without_province": 0}
    assert got["by_province"]["AF-KAB"]["count"] == 0
    items = client.get("/collections/projects/items", params={"status": "proposed"}).json()
    figures = client.get("/stats", params={"status": "proposed"}).json()
    assert figures["total"]["count"] == items["numberMatched"]


def test_bad_filters_are_problems(client: TestClient) -> None:
    for params, field in (({"status": "nope"}, "status"), ({"bbox": "1,2,3"}, "bbox"),
                          ({"datetime": "yesterday"}, "datetime"),
                          ({"datetime": "2024-01-01T00:00:00"}, "datetime"),
                          ({"limit": "5"}, "limit"), ({"utm_source": "x"}, "utm_source"),
                          ({"budget_usd": "lots"}, "budget_usd")):
        response = client.get("/stats", params=params)
        assert response.status_code == 400
        assert response.headers["content-type"].startswith("application/problem+json")
        assert response.json()["errors"][0]["field"] == field


def test_stats_revalidate_and_change_with_the_store(client: TestClient) -> None:
    first = client.get("/stats")
    etag = first.headers["etag"]
    assert client.get("/stats", headers={"If-None-Match": etag}).status_code == 304
    _add(client, name="New clinic", category="health")
    second = client.get("/stats", headers={"If-None-Match": etag})
    assert second.status_code == 200 and second.json()["total"]["count"] == first.json()["total"]["count"] + 1


def test_stats_count_projects_without_dates_in_every_datetime(client: TestClient) -> None:
    """/req/core/fc-time-response C, as items apply it: the shipped second tunnel has no dates, the
    Salang reconstruction runs from 2023-07-12 with no end (projects.geojson)."""
    _add(client, name="Herat clinic", lon=62.2, lat=34.35, start_date="2027-01-01", end_date="2028-06-30")
    counts = {value: client.get("/stats", params={"datetime": value}).json()["total"]["count"]
              for value in ("2020-01-01", "2024-01-01", "2028-01-01", "2029-01-01/..")}
    assert counts == {"2020-01-01": 1, "2024-01-01": 2, "2028-01-01": 3, "2029-01-01/..": 2}
    # A queryable as a parameter: the one project started on 2023-07-12.
    assert client.get("/stats", params={"start_date": "2023-07-12"}).json()["total"]["count"] == 1


# The statuses and categories of DESIGN.md ("Project features"), in its order, and the 34 provinces.
STATUSES = ["proposed", "planned", "approved", "under_construction", "completed", "suspended", "cancelled"]
CATEGORIES = ["school", "health", "housing", "water", "energy", "transport", "other"]


def _stats_schema(client: TestClient) -> dict[str, Any]:
    """The documented 200 answer of /stats, as a JSON Schema whose `$ref`s resolve in the OpenAPI document."""
    doc = client.get("/api").json()
    ok = doc["paths"]["/stats"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    return {**ok, "components": doc["components"]}


def test_the_api_document_names_the_stats_models(client: TestClient) -> None:
    doc = client.get("/api").json()
    ok = doc["paths"]["/stats"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert ok == {"$ref": "#/components/schemas/Stats"}
    schemas = doc["components"]["schemas"]
    assert set(schemas["Stats"]["properties"]) == {"filters", "total", "by_status", "by_category",
                                                   "by_province"}
    assert schemas["Stats"]["properties"]["total"] == {"$ref": "#/components/schemas/Total"}
    assert schemas["Stats"]["properties"]["by_province"]["additionalProperties"] == {
        "$ref": "#/components/schemas/ProvinceFigures"}
    assert schemas["Stats"]["additionalProperties"] is False


def test_real_answers_validate_against_the_documented_models(client: TestClient) -> None:
    """What the route sends (its own JSONResponse, not re-validated per request) is what the document
    says: checked with the documented JSON Schema and with the pydantic model, extra members refused."""
    _add(client, name="Kandahar hospital", lon=65.71, lat=31.61, category="health", status="approved",
         budget_usd=2_500_000)
    validator = Draft7Validator(_stats_schema(client))
    for params in ({}, {"status": "approved"}, {"category": "water"}, {"province": "AF-KAN,AF-BGL"}):
        response = client.get("/stats", params=params)
        assert response.status_code == 200
        body = response.json()
        validator.validate(body)
        figures = Stats.model_validate_json(response.content, strict=True)
        assert list(figures.by_status) == STATUSES and list(figures.by_category) == CATEGORIES
        assert len(figures.by_province) == 34
    # The schema can fail: a member the models do not have, or a count that is not an integer.
    bad = {**body, "total": {**body["total"], "extra": 1}}
    assert not validator.is_valid(bad)
    with pytest.raises(ValidationError):
        Stats.model_validate(bad)
    assert not validator.is_valid({**body, "total": {**body["total"], "count": "2"}})
