"""The Salang layer: the two tunnels, drawn honestly from the sourced facts."""

from __future__ import annotations

import pytest
import shapely
from fastapi.testclient import TestClient
from pyproj import Geod

GEOD = Geod(ellps="WGS84")


def _features(client: TestClient) -> dict[str, dict[str, object]]:
    doc = client.get("/collections/salang/items").json()
    return {f["id"]: f for f in doc["features"]}


def test_tunnel_lengths_and_centre(client: TestClient) -> None:
    feats = _features(client)
    existing = shapely.geometry.shape(feats["salang-tunnel"]["geometry"])
    proposed = shapely.geometry.shape(feats["salang-tunnel-2"]["geometry"])
    assert GEOD.geometry_length(existing) == pytest.approx(2670, abs=10)
    assert GEOD.geometry_length(proposed) == pytest.approx(12000, abs=50)
    centre = shapely.Point(69.026944, 35.322083)
    assert existing.distance(centre) < 1e-6 and proposed.distance(centre) < 1e-6


def test_every_feature_has_names_sources_and_quality(client: TestClient) -> None:
    for feature in _features(client).values():
        props = feature["properties"]
        assert isinstance(props, dict)
        assert props["name"] and props["name_prs"]
        assert props["geometry_quality"] == "approximate" and props["geometry_note"]
        assert props["sources"] and all(s["publisher"] for s in props["sources"])
    existing = _features(client)["salang-tunnel"]["properties"]
    assert isinstance(existing, dict)
    assert existing["name_ps"] == "د سالنگ تونل" and existing["opened"] == "1964"


def test_proposed_tunnel_runs_from_parwan_to_baghlan(client: TestClient) -> None:
    coords = _features(client)["salang-tunnel-2"]["geometry"]["coordinates"]  # type: ignore[index]
    south, north = coords[0], coords[-1]
    inside = client.get("/collections/provinces/items",
                        params={"bbox": f"{south[0]},{south[1]},{south[0]},{south[1]}"}).json()
    assert [f["id"] for f in inside["features"]] == ["AF-PAR"]
    inside = client.get("/collections/provinces/items",
                        params={"bbox": f"{north[0]},{north[1]},{north[0]},{north[1]}"}).json()
    assert [f["id"] for f in inside["features"]] == ["AF-BGL"]
