"""The provinces layer: obtained from the mirror, checked, normalised, cached, with provenance."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pycountry
import pytest
from fastapi.testclient import TestClient

from geo import provinces
from geo.app import create_app
from geo.cli import main
from geo.errors import LayerUnavailable
from geo.settings import Settings
from tests.conftest import mirror_dir, workspace


def test_normalised_to_iso_codes_and_names(provinces_cache: Path) -> None:
    layer = json.loads((provinces_cache / provinces.CACHE_NAME).read_text())
    codes = {f["id"] for f in layer["features"]}
    iso = {s.code for s in pycountry.subdivisions.get(country_code="AF")}
    assert codes == iso and len(layer["features"]) == 34
    by_code = {f["id"]: f["properties"] for f in layer["features"]}
    assert by_code["AF-GHA"]["name"] == "Ghazni" and by_code["AF-GHA"]["source_name"] == "Ghanzi"
    assert by_code["AF-KAN"]["source_code"] == "AF_KAN"
    assert by_code["AF-BDS"]["name"] == "Badakhshan"
    assert by_code["AF-SAR"]["name_iso"] == "Sar-e Pul"
    total = sum(p["area_km2"] for p in by_code.values())
    assert total == pytest.approx(644_345, rel=0.002)  # FACTS.md: union in EPSG:6933


def test_provenance_is_recorded(provinces_cache: Path) -> None:
    record = json.loads((provinces_cache / provinces.PROVENANCE_NAME).read_text())
    assert record["licence"] == "Public Domain"
    assert record["commit"] == provinces.SOURCE_COMMIT
    assert record["url"].endswith(provinces.SOURCE_FILE)
    assert len(record["sha256"]) == 64 and record["retrieved_at"]
    assert record["retrieved_from"].startswith("file://")


def test_a_bad_source_is_refused(tmp_path: Path) -> None:
    doc = json.loads((mirror_dir() / provinces.SOURCE_FILE).read_text())
    doc["features"] = doc["features"][:30]
    bad_mirror = tmp_path / "mirror"
    bad_mirror.mkdir()
    (bad_mirror / provinces.SOURCE_FILE).write_text(json.dumps(doc))
    settings = Settings(layers_dir=tmp_path / "layers", data_mirror=bad_mirror, allow_download=False)
    with pytest.raises(LayerUnavailable, match="expected 34 provinces, found 30"):
        provinces.fetch(settings)
    assert not provinces.cache_path(settings).exists()


def test_without_source_provinces_answer_503_and_the_rest_works(tmp_path: Path) -> None:
    settings = workspace(tmp_path, None, data_mirror=tmp_path / "empty-mirror", api_keys="k",
                         allow_download=False)
    with TestClient(create_app(settings)) as client:
        response = client.get("/collections/provinces/items")
        assert response.status_code == 503
        assert response.headers["content-type"] == "application/problem+json"
        assert "GEO_DATA_MIRROR" in response.json()["detail"]
        assert client.get("/collections").status_code == 200
        assert client.get("/collections/salang/items").json()["numberMatched"] == 2
        assert client.get("/map").status_code == 200
        # Writes still work; the province is unknown until the layer can be had.
        created = client.post("/collections/projects/items", headers={"Authorization": "Bearer k"}, json={
            "type": "Feature", "geometry": {"type": "Point", "coordinates": [69.17, 34.53]},
            "properties": {"name": "Clinic", "category": "health", "status": "planned"}})
        assert created.status_code == 201
        assert created.json()["properties"]["province"] is None
        outside = client.post("/collections/projects/items", headers={"Authorization": "Bearer k"}, json={
            "type": "Feature", "geometry": {"type": "Point", "coordinates": [2.35, 48.85]},
            "properties": {"name": "Clinic", "category": "health", "status": "planned"}})
        assert outside.status_code == 422


def test_geo_data_fetch_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("GEO_LAYERS_DIR", str(tmp_path / "layers"))
    monkeypatch.setenv("GEO_DATA_MIRROR", str(mirror_dir()))
    assert main(["data", "fetch"]) == 0
    assert (tmp_path / "layers" / provinces.CACHE_NAME).is_file()
    assert "sha256" in capsys.readouterr().out
    monkeypatch.setenv("GEO_LAYERS_DIR", str(tmp_path / "other"))
    monkeypatch.setenv("GEO_DATA_MIRROR", str(tmp_path / "nowhere"))
    monkeypatch.setenv("GEO_ALLOW_DOWNLOAD", "false")
    assert main(["data", "fetch"]) == 1
    assert "GEO_DATA_MIRROR" in capsys.readouterr().err


def test_refetching_keeps_the_cache_files_mode_and_leaves_no_temporary(provinces_cache: Path,
                                                                       tmp_path: Path) -> None:
    layers = tmp_path / "layers"
    settings = Settings(layers_dir=layers, data_mirror=mirror_dir(), allow_download=False)
    old = os.umask(0o022)
    try:
        provinces.fetch(settings)
    finally:
        os.umask(old)
    files = [layers / provinces.CACHE_NAME, layers / provinces.PROVENANCE_NAME]
    # New files get 0666 minus the umask, like any other (mkstemp would leave 0600).
    assert [stat.S_IMODE(f.stat().st_mode) for f in files] == [0o644, 0o644]
    for f in files:
        f.chmod(0o640)
    provinces.fetch(settings, force=True)
    assert [stat.S_IMODE(f.stat().st_mode) for f in files] == [0o640, 0o640]
    assert sorted(p.name for p in layers.iterdir()) == sorted(f.name for f in files)
