"""Download formats: file extension -> media type (the writers live beside them)."""

from __future__ import annotations

from geo.responses import GEOJSON

MEDIA_TYPES: dict[str, str] = {
    "geojson": GEOJSON,
}
