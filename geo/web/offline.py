"""`geo map out.html`: a self-contained map, data and scripts included, to share and open offline."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import orjson

from geo.catalogue import Catalogue
from geo.fsutil import atomic_write_bytes
from geo.http.securityheaders import inline_hashes, policy, tile_source
from geo.query.featuretable import FeatureTable
from geo.query.params import Filters, filters_from
from geo.settings import Settings
from geo.web import assets
from geo.web.page import MapOptions, render_page

_SCRIPT = re.compile(r'<script src="([^"]+)"></script>')
_STYLE = re.compile(r'<link rel="stylesheet" href="([^"]+)"/>')
_CHARSET = re.compile(r'<meta http-equiv="content-type"[^>]*>', re.I)


def _collection(table: FeatureTable, chosen: Iterable[int], name: str) -> dict[str, Any]:
    doc: dict[str, Any] = orjson.loads(table.feature_collection(chosen, {"name": name}))
    return doc


def embedded_layers(catalogue: Catalogue, filters: Filters) -> dict[str, dict[str, Any]]:
    """The three layers as FeatureCollections, the projects filtered (the filters are checked before
    any layer is read). Raises LayerUnavailable when a layer cannot be read."""
    projects = catalogue.get("projects")
    table = projects.table()
    plan = projects.check(filters, table)
    data = {}
    for name in ("provinces", "salang"):
        layer = catalogue.get(name).table()
        data[name] = _collection(layer, range(len(layer)), name)
    data["projects"] = _collection(table, projects.evaluate(plan), "projects")
    return data


def inline_assets(html: str) -> str:
    """Replace the page's links to our /static files by the files' contents (styles with their images)."""
    def script(match: re.Match[str]) -> str:
        path = assets.local_file(match.group(1))
        if path is None:
            raise ValueError(f"the page links {match.group(1)}, which is not one of the map's files")
        return f"<script>{assets.inline_js(path)}</script>"

    def style(match: re.Match[str]) -> str:
        path = assets.local_file(match.group(1))
        if path is None:
            raise ValueError(f"the page links {match.group(1)}, which is not one of the map's files")
        return f"<style>{assets.inline_css(path)}</style>"

    return _STYLE.sub(style, _SCRIPT.sub(script, html))


def export_map(catalogue: Catalogue, filters: Filters, options: MapOptions) -> str:
    """The map page with the three layers (projects filtered) embedded and every asset inlined.

    Raises LayerUnavailable when a layer cannot be read (e.g. the provinces were never fetched).
    """
    return map_page(embedded_layers(catalogue, filters), filters, options)


def map_page(data: dict[str, dict[str, Any]], filters: Filters, options: MapOptions) -> str:
    """The map page with these layers embedded and every asset inlined."""
    # The filters are applied here already; the page starts with them ticked and filters on from there.
    page = render_page(MapOptions(tiles=options.tiles, tiles_attribution=options.tiles_attribution,
                                  filters=filters.equals, query={}, formats=(), title=options.title),
                       embedded=data)
    return with_policy(inline_assets(page), options.tiles)


def with_policy(page: str, map_tiles: str) -> str:
    """The page with a Content-Security-Policy <meta> element: a file opened from disk gets no headers,
    so the page carries its own policy (its inline scripts and styles by hash, no network but tiles)."""
    scripts, styles = inline_hashes(page)
    tiles = tile_source(map_tiles)
    content = policy(scripts=scripts, styles=styles, images=[tiles] if tiles else [], header=False)
    meta = f'<meta http-equiv="Content-Security-Policy" content="{content}">'
    # After the charset declaration, which must stay within the page's first 1024 bytes.
    found = _CHARSET.search(page)
    at = found.end() if found else page.index("<head>") + len("<head>")
    return page[:at] + meta + page[at:]


def write_map(settings: Settings, dest: Path, options: Mapping[str, str | None]) -> int:
    """Write the self-contained map to `dest`; return the number of projects in it.

    `options` holds the item filters (`status`, `category`, `province`, `bbox`, `datetime`) as in the
    HTTP query. Raises GeoError (bad filters, unreadable layers) before anything is written.
    """
    from geo.app import open_store

    filters = filters_from(options)
    store = open_store(settings)
    try:
        data = embedded_layers(Catalogue(settings, store), filters)
        page = map_page(data, filters, MapOptions(tiles=settings.map_tiles,
                                                  tiles_attribution=settings.map_tiles_attribution))
        count = len(data["projects"]["features"])
    finally:
        store.close()
    # Written whole and renamed, so a reader never sees half a map.
    atomic_write_bytes(dest, page.encode("utf-8"))
    return count
