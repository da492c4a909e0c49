"""Project stores: one interface, a GeoJSON-file implementation (and a PostGIS one to come)."""

from geo.store.base import ProjectStore
from geo.store.geojson_file import GeoJSONFileStore
from geo.store.refresh import StoreRefresh

__all__ = ["GeoJSONFileStore", "ProjectStore", "StoreRefresh"]
