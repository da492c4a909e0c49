"""Project stores: one interface (base), the GeoJSON file with its journal (geojson_file, journal,
compaction), PostgreSQL with PostGIS (postgis, with its migrations: migrate; imported where chosen, so the
file store loads no database driver), and the middleware that keeps a process up to date with the
others (refresh)."""

from geo.store.base import ProjectStore
from geo.store.geojson_file import GeoJSONFileStore
from geo.store.refresh import StoreRefresh

__all__ = ["GeoJSONFileStore", "ProjectStore", "StoreRefresh"]
