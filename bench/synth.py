"""Synthetic projects for benchmarks (never for the shipped store): valid, placed, reproducible."""

from __future__ import annotations

import os
import random
import shutil
from pathlib import Path
from typing import Any

from geo import provinces
from geo.catalogue import Catalogue
from geo.models import Category, Status
from geo.settings import Settings
from geo.store import GeoJSONFileStore
from geo.store.geojson_file import encode_store
from geo.validation import check_feature

ROOT = Path(__file__).resolve().parents[1]
NAMES = ("School", "Clinic", "Housing block", "Water network", "Solar plant", "Road", "مکتب", "کلینیک")


def synthetic_projects(count: int, settings: Settings, seed: int = 42) -> list[dict[str, Any]]:
    """`count` valid project features inside Afghanistan, placed in provinces like the API does."""
    rng = random.Random(seed)
    catalogue = Catalogue(settings, GeoJSONFileStore(settings.layers_dir / "none.geojson"))
    features: list[dict[str, Any]] = []
    categories, statuses = list(Category), list(Status)
    while len(features) < count:
        lon, lat = rng.uniform(61.0, 74.5), rng.uniform(29.5, 38.4)
        status = rng.choice(statuses).value
        point = {"type": "Point", "coordinates": [round(lon, 5), round(lat, 5)]}
        body = {"type": "Feature", "geometry": point,
                "properties": {"name": f"{rng.choice(NAMES)} {len(features)}",
                               "category": rng.choice(categories).value, "status": status,
                               "budget_usd": rng.randrange(10_000, 50_000_000),
                               "start_date": f"20{rng.randrange(20, 30)}-0{rng.randrange(1, 10)}-15"}}
        try:
            checked = check_feature(body, catalogue.place)
        except Exception:  # outside the country: draw again
            continue
        stamp = "2026-01-01T00:00:00Z"
        features.append({"type": "Feature", "id": f"p-{len(features):06d}", "geometry": checked.geometry,
                         "properties": {**checked.properties, "province": checked.province,
                                        "created_at": stamp, "updated_at": stamp,
                                        "status_history": [{"status": status, "at": stamp}]}})
    return features


def write_store(path: Path, features: list[dict[str, Any]]) -> None:
    """Write features as a projects store file (the store's own format)."""
    path.write_bytes(encode_store(features))


def bench_settings(work: Path) -> Settings:
    """Settings on `work`: the shipped Salang layer, the provinces from GEO_DATA_MIRROR, an empty store."""
    layers = work / "layers"
    layers.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "layers" / "salang.geojson", layers)
    mirror = Path(os.environ.get("GEO_DATA_MIRROR", ROOT.parent / "shared" / "data"))
    settings = Settings(layers_dir=layers, data_mirror=mirror, projects=work / "projects.geojson")
    provinces.fetch(settings)
    return settings
