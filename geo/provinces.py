"""The provinces layer: obtain the pinned geoBoundaries file, check it, normalise it, cache it.

The source is fetched once (or copied from `GEO_DATA_MIRROR`), normalised to ISO 3166-2:AF,
and cached as `layers/provinces.geojson` with a provenance record beside it.
"""

from __future__ import annotations

import hashlib
import logging
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pycountry
import shapely

from geo.errors import LayerUnavailable
from geo.fsutil import atomic_write_bytes
from geo.settings import Settings

log = logging.getLogger(__name__)

SOURCE_FILE = "geoBoundaries-AFG-ADM1_simplified.geojson"
SOURCE_COMMIT = "0ff91a88d2f265575e225c4c5cfb229b86e1c7cd"
SOURCE_URL = (f"https://raw.githubusercontent.com/wmgeolab/geoBoundaries/{SOURCE_COMMIT}/"
              f"releaseData/gbOpen/AFG/ADM1/{SOURCE_FILE}")
SOURCE = {
    "dataset": "geoBoundaries gbOpen AFG ADM1",
    "boundary_id": "AFG-ADM1-12653393",
    "boundary_year": 2007,
    "original_source": "Wikimedia / geoBoundaries",
    "licence": "Public Domain",
    "url": SOURCE_URL,
    "repository": "https://github.com/wmgeolab/geoBoundaries",
    "commit": SOURCE_COMMIT,
}
CACHE_NAME = "provinces.geojson"
PROVENANCE_NAME = "provinces.provenance.json"
EQUAL_AREA_CRS = "EPSG:6933"

# Known faults of the source (FACTS.md): wrong codes and one misspelt name.
CODE_FIXES = {"AF_KAN": "AF-KAN", "AF-BDN": "AF-BDS"}
NAME_FIXES = {"Ghanzi": "Ghazni"}

FIX_HINT = (
    f"Provinces are obtained from {SOURCE_URL}. Without internet access, put {SOURCE_FILE} in a "
    "folder, set GEO_DATA_MIRROR to that folder and run `geo data fetch` (or restart the service)."
)


def iso_provinces() -> dict[str, str]:
    """ISO 3166-2:AF codes mapped to their ISO names (without the word 'Province')."""
    subs = pycountry.subdivisions.get(country_code="AF") or []  # type: ignore[no-untyped-call]
    return {s.code: s.name.removesuffix(" Province") for s in subs}


def cache_path(settings: Settings) -> Path:
    """Where the normalised layer is cached."""
    return settings.layers_dir / CACHE_NAME


def _obtain_source(settings: Settings) -> tuple[bytes, str]:
    """The raw source bytes and where they came from (mirror first, then the pinned download)."""
    if settings.data_mirror is not None:
        mirrored = settings.data_mirror / SOURCE_FILE
        if mirrored.is_file():
            return mirrored.read_bytes(), mirrored.resolve().as_uri()
        log.warning("GEO_DATA_MIRROR is set but %s is not in it; trying the download", SOURCE_FILE)
    if not settings.allow_download:
        raise LayerUnavailable(f"The provinces source is not in the mirror and downloads are off. {FIX_HINT}")
    try:
        with urllib.request.urlopen(SOURCE_URL, timeout=settings.download_timeout_s) as resp:
            data: bytes = resp.read()
    except OSError as exc:
        raise LayerUnavailable(f"The provinces source could not be downloaded ({exc}). {FIX_HINT}") from exc
    return data, SOURCE_URL


def normalise(raw: bytes) -> dict[str, Any]:
    """Check the source (34 valid polygons, the ISO codes) and return the normalised layer."""
    # Imported here: geopandas is needed only when the source is (re)normalised, not at start-up.
    import geopandas as gpd

    try:
        frame = gpd.read_file(raw, engine="pyogrio")
    except Exception as exc:  # pyogrio raises several types for unreadable data
        raise LayerUnavailable(f"The provinces source is not readable GeoJSON ({exc}). {FIX_HINT}") from exc
    iso = iso_provinces()
    problems: list[str] = []
    if len(frame) != 34:
        problems.append(f"expected 34 provinces, found {len(frame)}")
    frame["code"] = [CODE_FIXES.get(c, str(c).replace("_", "-")) for c in frame["shapeISO"]]
    unknown = sorted(set(frame["code"]) - set(iso))
    missing = sorted(set(iso) - set(frame["code"]))
    if unknown or missing:
        problems.append(f"codes not in ISO 3166-2:AF: {unknown}; ISO codes missing: {missing}")
    invalid = [c for c, g in zip(frame["code"], frame.geometry, strict=True)
               if g is None or not g.is_valid or g.geom_type not in ("Polygon", "MultiPolygon")]
    if invalid:
        problems.append(f"invalid or non-polygon geometries: {invalid}")
    if problems:
        raise LayerUnavailable("The provinces source failed its checks: " + "; ".join(problems)
                               + f". {FIX_HINT}")
    areas = frame.geometry.set_crs("EPSG:4326", allow_override=True).to_crs(EQUAL_AREA_CRS).area / 1e6
    features = []
    for (_, row), area in sorted(zip(frame.iterrows(), areas, strict=True), key=lambda r: r[0][1]["code"]):
        name = NAME_FIXES.get(row["shapeName"], row["shapeName"])
        features.append({
            "type": "Feature",
            "id": row["code"],
            "geometry": shapely.geometry.mapping(row.geometry),
            "properties": {
                "code": row["code"],
                "name": name,
                "name_iso": iso[row["code"]],
                "area_km2": round(float(area), 1),
                "source_name": row["shapeName"],
                "source_code": row["shapeISO"],
                "shape_id": row["shapeID"],
            },
        })
    return {"type": "FeatureCollection", "name": "provinces", "features": features}


def fetch(settings: Settings, *, force: bool = False) -> Path:
    """Obtain, check, normalise and cache the provinces; return the cached file's path."""
    target = cache_path(settings)
    if target.is_file() and not force:
        return target
    raw, origin = _obtain_source(settings)
    layer = normalise(raw)
    provenance = {
        **SOURCE,
        "retrieved_from": origin,
        "retrieved_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "sha256": hashlib.sha256(raw).hexdigest(),
        "bytes": len(raw),
        "normalisation": {
            "codes_fixed": CODE_FIXES,
            "names_fixed": NAME_FIXES,
            "area_km2": f"computed in {EQUAL_AREA_CRS} (equal-area)",
        },
    }
    atomic_write_bytes(target, orjson.dumps(layer))
    atomic_write_bytes(settings.layers_dir / PROVENANCE_NAME,
                       orjson.dumps(provenance, option=orjson.OPT_INDENT_2))
    log.info("provinces cached at %s from %s", target, origin)
    return target


def provenance(settings: Settings) -> dict[str, Any] | None:
    """The provenance record of the cached provinces, if there is one."""
    path = settings.layers_dir / PROVENANCE_NAME
    if not path.is_file():
        return None
    record: dict[str, Any] = orjson.loads(path.read_bytes())
    return record

