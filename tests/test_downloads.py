"""Whole-layer downloads (GeoJSON), filtered like the items."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient


def test_download_every_layer_as_geojson(client: TestClient) -> None:
    for layer, count in (("provinces", 34), ("salang", 2), ("projects", 2)):
        response = client.get(f"/layers/{layer}.geojson")
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/geo+json"
        disposition = response.headers["content-disposition"]
        assert re.fullmatch(rf'attachment; filename="{layer}_\d{{4}}-\d\d-\d\d\.geojson"', disposition)
        doc = response.json()
        assert doc["type"] == "FeatureCollection" and len(doc["features"]) == count


def test_download_takes_the_item_filters(client: TestClient) -> None:
    response = client.get("/layers/projects.geojson", params={"status": "proposed"})
    assert [f["id"] for f in response.json()["features"]] == ["salang-tunnel-2"]
    assert "status-proposed" in response.headers["content-disposition"]
    response = client.get("/layers/provinces.geojson", params={"bbox": "69.1,34.5,69.2,34.55"})
    assert [f["id"] for f in response.json()["features"]] == ["AF-KAB"]


def test_unknown_layer_or_format(client: TestClient) -> None:
    assert client.get("/layers/roads.geojson").status_code == 404
    missing = client.get("/layers/projects.dwg")
    assert missing.status_code == 404 and "geojson" in missing.json()["detail"]
