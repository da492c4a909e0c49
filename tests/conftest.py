"""Shared fixtures: settings on temporary files, apps, clients, and the data mirror."""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from geo import provinces
from geo.app import create_app
from geo.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
KEY = "test-key-1"
AUTH = {"Authorization": f"Bearer {KEY}"}


def mirror_dir() -> Path:
    """The folder that holds the provinces source (GEO_DATA_MIRROR, or ../shared/data)."""
    return Path(os.environ.get("GEO_DATA_MIRROR") or ROOT.parent / "shared" / "data")


def require(reason: str) -> None:
    """Skip for a missing external part, or fail in CI where every part must be present."""
    if os.environ.get("GEO_REQUIRE_ALL") == "1":
        pytest.fail(f"required in CI: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session", autouse=True)
def checkout_store_untouched() -> Iterator[None]:
    """No test may write the checkout's projects.geojson."""
    path = ROOT / "projects.geojson"
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    yield
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before, "a test wrote projects.geojson"


@pytest.fixture(scope="session")
def provinces_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A layers folder with the provinces obtained once per session from the mirror."""
    folder = tmp_path_factory.mktemp("layers-cache")
    if not (mirror_dir() / provinces.SOURCE_FILE).is_file():
        require(f"{provinces.SOURCE_FILE} not found in {mirror_dir()}; set GEO_DATA_MIRROR")
    provinces.fetch(Settings(layers_dir=folder, data_mirror=mirror_dir()))
    return folder


def workspace(folder: Path, provinces_cache: Path | None, **overrides: Any) -> Settings:
    """Settings on copies, in `folder`, of the shipped store and Salang layer and (if given) the
    cached provinces; `overrides` are further settings."""
    layers = folder / "layers"
    layers.mkdir(parents=True)
    shutil.copy(ROOT / "layers" / "salang.geojson", layers)
    if provinces_cache is not None:
        for name in (provinces.CACHE_NAME, provinces.PROVENANCE_NAME):
            shutil.copy(provinces_cache / name, layers)
    store = folder / "projects.geojson"
    shutil.copy(ROOT / "projects.geojson", store)
    return Settings(projects=store, layers_dir=layers, **{"data_mirror": mirror_dir(), **overrides})


@pytest.fixture
def settings(tmp_path: Path, provinces_cache: Path) -> Settings:
    """Settings on temporary copies of the shipped store and layers, with one API key."""
    return workspace(tmp_path, provinces_cache, api_keys=KEY)


@pytest.fixture
def app(settings: Settings) -> FastAPI:
    """An application on the temporary settings."""
    return create_app(settings)


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    """A client for the app, with its start-up run."""
    with TestClient(app) as test_client:
        yield test_client


def point_feature(lon: float = 69.1723, lat: float = 34.5281, **props: object) -> dict[str, object]:
    """A valid project feature (a school in Kabul unless told otherwise)."""
    properties: dict[str, object] = {"name": "Girls' secondary school", "category": "school",
                                     "status": "proposed"}
    properties.update(props)
    return {"type": "Feature", "geometry": {"type": "Point", "coordinates": [lon, lat]},
            "properties": properties}
