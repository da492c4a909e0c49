"""Service settings, read from `GEO_*` environment variables only when asked to."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Everything the service can be told; all optional (the README's "Settings" table lists them)."""

    model_config = SettingsConfigDict(env_prefix="GEO_", extra="ignore")

    projects: Path = Field(Path("projects.geojson"), description="The projects GeoJSON store.")
    layers_dir: Path = Field(Path("layers"), description="Folder of the static layers.")
    data_mirror: Path | None = Field(
        None, description="Folder holding source files by their original names, used instead of downloading."
    )
    api_keys: str | None = Field(
        None, description="Comma-separated API keys accepted for writes, or @path of a file of keys "
                          "(one key per line; lines starting with # are comments)."
    )
    keys_file: Path | None = Field(
        None, description="The named API keys file that `geo keys` manages (hashes, never keys); default "
                          "`.geo-keys.json` in the folder of GEO_PROJECTS.")
    write_rate_per_key: float = Field(
        50.0, ge=0, description="Writes per second allowed per API key, with bursts of up to twice that "
                                "(at least 1); 0 turns the limit off. Counted per process.")
    store_lock_timeout_s: float = Field(
        10.0, gt=0, description="How long a write waits for the store's cross-process lock before a 503.")
    journal_max_bytes: int = Field(
        8 << 20, gt=0, description="Size of the store's journal of changes past which it is folded into the "
                                   "store file (in the background).")
    journal_max_age_s: float = Field(
        300.0, gt=0, description="Longest a change waits in the store's journal before it is folded into the "
                                 "store file (in the background; also at shutdown).")
    database_url: str | None = Field(None, description="postgresql://... to use the PostGIS store.")
    database_pool_max: int = Field(
        4, gt=0, description="Most connections a server opens to the database for writes (reads use none).")
    database_poll_s: float = Field(
        0.5, gt=0, description="How often a server reads the database's change log when no notification "
                               "came (the fallback of LISTEN/NOTIFY).")
    database_connect_timeout_s: float = Field(
        5.0, gt=0, description="How long a connection to the database may take; at start-up, past it the "
                               "server refuses to start, on a write it answers 503.")
    cors_origins: str = Field(
        "", description="Comma-separated origins whose web pages may write (reads are open to any origin).")
    max_body_bytes: int = Field(1_000_000, gt=0, description="Largest request body accepted for writes.")
    max_import_bytes: int = Field(
        10_000_000, gt=0, description="Largest file accepted by POST /collections/projects/import (CSV, "
                                      "XLSX, GeoJSON, GeoPackage).")
    body_timeout_s: float = Field(
        30.0, gt=0, description="How long a client may take to send a request body in all before a 408.")
    response_cache_bytes: int = Field(
        64 << 20, ge=0, description="Memory for cached item pages: bodies, headers and keys (0: no cache).")
    response_cache_entries: int = Field(4096, ge=0, description="Most item pages kept in the cache.")
    page_cache_bytes: int = Field(8 << 20, ge=0, description="Memory for rendered map pages and their keys.")
    page_cache_entries: int = Field(64, ge=0, description="Most rendered map pages kept.")
    tile_cache_bytes: int = Field(
        32 << 20, ge=0, description="Memory for encoded vector tiles and their keys (0: no cache).")
    max_concurrent_exports: int = Field(
        2, gt=0, description="Downloads built at once in the formats that take CPU (CSV, KML, GeoPackage, "
                             "FlatGeobuf, GeoParquet, Shapefile); more wait, then get a 503.")
    export_wait_s: float = Field(
        2.0, ge=0, description="How long a download waits for a free export slot before its 503.")
    stall_timeout_s: float = Field(
        60.0, gt=0, description="How long a download may wait on a client that has stopped reading "
                                "before its connection is closed.")
    default_limit: int = Field(10, gt=0, description="Items per page when `limit` is not given.")
    max_limit: int = Field(10_000, gt=0, description="Largest `limit` accepted.")
    allow_download: bool = Field(True, description="Whether source data may be downloaded at all.")
    download_timeout_s: float = Field(30.0, gt=0, description="Timeout for fetching source data.")
    map_tiles: str = Field(
        "osm", description="Basemap tiles of the web map: `osm` (OpenStreetMap), `none`, or the URL template "
                           "of a self-hosted tile server, e.g. `https://tiles.example.org/{z}/{x}/{y}.png`.")
    map_tiles_attribution: str = Field(
        "", description="Attribution shown for a self-hosted tile server (required by most tile licences).")
    map_tiled_above: int = Field(
        5_000, ge=0, description="Above this many projects (as filtered) the web map draws them from the "
                                 "vector tiles, clustered on the server; at or below it from GeoJSON.")

    @field_validator("data_mirror", "keys_file", mode="before")
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        # An exported-but-empty variable means "not set", not "the current folder".
        return None if value == "" else value

    @field_validator("map_tiles")
    @classmethod
    def _tiles(cls, value: str) -> str:
        # Refuse at start-up what would give a blank or broken map later.
        if value in ("osm", "none"):
            return value
        if not value.startswith(("https://", "http://", "/")) or not all(
                part in value for part in ("{z}", "{x}", "{y}")):
            raise ValueError("must be `osm`, `none`, or a tile URL template with {z}, {x} and {y}")
        return value

    def write_origins(self) -> frozenset[str]:
        """The origins allowed to write from a browser (CORS)."""
        return frozenset(o.strip().rstrip("/") for o in self.cors_origins.split(",") if o.strip())

    def keys_path(self) -> Path:
        """The named API keys file: GEO_KEYS_FILE, or `.geo-keys.json` beside the projects store."""
        return self.keys_file or self.projects.parent / ".geo-keys.json"

    def keys(self) -> frozenset[str]:
        """The accepted API keys (raises KeysUnavailable when the `@path` file cannot be used)."""
        from geo.auth import configured_keys  # here: geo.auth needs the web stack, settings do not

        return configured_keys(self.api_keys)
