"""The shipped store holds only real, sourced projects that pass the same checks as new ones."""

from __future__ import annotations

import orjson
from fastapi.testclient import TestClient

from geo.store.geojson_file import parse_store
from geo.validation import check_feature
from tests.conftest import ROOT


def test_shipped_projects_are_valid_and_sourced(client: TestClient) -> None:
    path = ROOT / "projects.geojson"
    features = parse_store(path.read_bytes(), path)
    assert {f["id"] for f in features} == {"salang-tunnel-2", "salang-highway-reconstruction"}
    catalogue = client.app.state.catalogue  # type: ignore[attr-defined]
    for feature in features:
        checked = check_feature(orjson.loads(orjson.dumps(feature)), catalogue.place)
        props = feature["properties"]
        assert checked.province == props["province"]
        assert props["source_url"].startswith("https://") and props["source_note"]
        assert props["category"] == "transport" and props["status_history"]
