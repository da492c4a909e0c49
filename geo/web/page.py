"""The web map page: a Folium map whose data the browser fetches from the API (or finds embedded).

Folium lays out the map, the basemap, the layer groups, the marker clusters and the controls it has
(layers, scale, fullscreen, measure, minimap, search); geo/static/app/geomap.js fills the layers and
adds what Folium has no feature for (filters, choropleth switch, legend, project cards, downloads).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from html import escape
from typing import Any

import folium
import orjson
from branca.element import CssLink, Element, Figure, JavascriptLink, MacroElement
from folium import plugins
from jinja2 import Template

from geo.models import Status
from geo.schema import PROJECT_SCHEMA, Schema
from geo.tiles.grid import TMS_ID
from geo.web import assets

STATUS_COLOURS: dict[str, str] = {
    Status.proposed.value: "#8e44ad",
    Status.planned.value: "#2980b9",
    Status.approved.value: "#16a085",
    Status.under_construction.value: "#e67e22",
    Status.completed.value: "#27ae60",
    Status.suspended.value: "#7f8c8d",
    Status.cancelled.value: "#c0392b",
}
# How the filter panel marks each value of a filter field: with its colour (`statuses` in the page's
# config) or its icon (`icons`); a field not named here shows its values as plain text.
FILTER_MARKS = {"status": "statuses", "category": "icons"}
CENTRE = (34.0, 66.0)
# folium.plugins is untyped; one Any-typed handle keeps strict mypy quiet without ignores per call.
_plugins: Any = plugins
# Folium's viewport meta (maximum-scale=1.0, user-scalable=no), over the lines it spans.
VIEWPORT_NO_ZOOM = re.compile(r'<meta name="viewport" content="[^"]*user-scalable=no"')
OSM_ATTRIBUTION = '&copy; <a href="https://www.openstreetmap.org/copyright">OpenStreetMap</a> contributors'


def esc(value: Any) -> str:
    """Escape text for HTML that Folium places inside a JavaScript template literal."""
    # html.escape covers the page; backtick, "$" and "\" would end or interpolate the JS literal.
    return (escape(str(value), quote=True)
            .replace("`", "&#96;").replace("$", "&#36;").replace("\\", "&#92;"))


def script_json(value: Any) -> str:
    """JSON for a <script type="application/json"> element: nothing in it can end the element.

    "<", ">" and "&" become \\u escapes (so no "</script>" or "<!--"); "`" and "$" too, so no text
    that could be read as a JS template literal appears raw in the page.
    """
    text = orjson.dumps(value).decode()
    for char, code in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"), ("`", "\\u0060"),
                       ("$", "\\u0024"), ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        text = text.replace(char, code)
    return text


def filter_fields(schema: Schema) -> list[dict[str, Any]]:
    """The filter panel's groups, one per filter field of the schema: its name (the query parameter),
    title, values (its vocabulary; None: the ids of the features of the layer `values_of`, listed when
    that layer arrives) and how the values are marked."""
    return [{"name": p.name, "title": p.title or p.name, "values": list(p.enum) or None,
             "values_of": p.filterable.values_of if p.filterable is not None else "",
             "marks": FILTER_MARKS.get(p.name, "")}
            for p in schema.filters()]


@dataclass(frozen=True)
class MapOptions:
    """What the page needs to know besides the data."""

    tiles: str = "osm"
    tiles_attribution: str = ""
    # The filters chosen in the URL (already checked), and other item parameters passed through.
    filters: Mapping[str, Sequence[str]] = field(default_factory=dict)
    query: Mapping[str, str] = field(default_factory=dict)
    formats: Sequence[str] = ("geojson",)
    limit: int = 10_000
    title: str = "Afghanistan infrastructure projects"
    # The editor (geo/static/app/editor.js, Leaflet.draw): on the served map only; an exported file has
    # no API to write to. It shows no control until someone enters an API key.
    editing: bool = False
    # How often the served map asks the changes feed (/changes, follow.js) what changed, in seconds.
    follow_s: float = 2.5
    # Above this many projects (as filtered) the served map draws them from the vector tiles
    # (geo/static/app/tiles.js: clusters counted on the server), at or below it from GeoJSON as before
    # (GEO_MAP_TILED_ABOVE on the served map).
    tiled_above: int = 5_000


# The fields of the editor's form, in its order; titles, kinds and vocabularies come from the schema.
EDIT_FIELDS = ("name", "name_prs", "name_ps", "category", "status", "budget_usd", "start_date", "end_date",
               "funders", "source_url", "description")


def edit_config(schema: Schema) -> dict[str, Any]:
    """What the editor needs: its form's fields (name, title, kind, vocabulary, required) and its URLs."""
    fields = []
    for name in EDIT_FIELDS:
        prop = schema.by_name(name)
        if prop is not None:
            fields.append({"name": name, "title": prop.title or name, "kind": prop.kind,
                           "values": list(prop.enum), "required": name in schema.required})
    return {"fields": fields, "urls": {"import": "/collections/projects/import",
                                       "workflow": "/collections/projects/workflow"}}


def _basemap(fmap: folium.Map, options: MapOptions) -> folium.TileLayer | None:
    if options.tiles == "none":
        return None
    if options.tiles == "osm":
        layer = folium.TileLayer("OpenStreetMap", name="OpenStreetMap", attr=OSM_ATTRIBUTION)
    else:
        layer = folium.TileLayer(tiles=options.tiles, name="Basemap",
                                 attr=esc(options.tiles_attribution or "Basemap tiles"))
    layer.add_to(fmap)
    return layer


def _local_assets(element: Any, plugin: str) -> Any:
    # The plugins' class attributes name CDN files: point this instance at our copies.
    element.default_js = assets.plugin_links(assets.PLUGIN_JS[plugin])
    element.default_css = assets.plugin_links(assets.PLUGIN_CSS[plugin])
    return element


class _Start(MacroElement):
    """Starts geomap.js once Folium's own script has run."""

    def __init__(self) -> None:
        MacroElement.__init__(self)  # type: ignore[no-untyped-call]  # branca is untyped
        self._name = "GeoMapStart"

    _template = Template("{% macro script(this, kwargs) %}"
                         "GeoMap.start(document.getElementById('geo-config'));"
                         "if (window.GeoEditor) GeoEditor.start(GeoMap.view);{% endmacro %}")


def build_map(options: MapOptions, embedded: Mapping[str, Any] | None = None) -> folium.Map:
    """The Folium map, with empty layers that geomap.js fills (from the API, or from `embedded`)."""
    fmap = folium.Map(location=CENTRE, zoom_start=6, tiles=None, control_scale=True)
    # Leaflet options: without a tile layer the map must be told its zoom range (for the clusters).
    fmap.options.update({"minZoom": 4, "maxZoom": 18})
    fmap.default_js = assets.page_js()
    fmap.default_css = assets.page_css()
    basemap = _basemap(fmap, options)
    if basemap is None:
        # Without a basemap geomap.js builds the minimap from the provinces: it needs the plugin all the
        # same, after Leaflet (the map's own links come first in the page).
        fmap.default_js = fmap.default_js + assets.plugin_links(assets.PLUGIN_JS["MiniMap"])
        fmap.default_css = fmap.default_css + assets.plugin_links(assets.PLUGIN_CSS["MiniMap"])
    if embedded is None:
        # The tiled projects layer (tiles.js) of the served map: Leaflet.VectorGrid, after Leaflet.
        fmap.default_js = fmap.default_js + assets.plugin_links(assets.PLUGIN_JS["VectorGrid"])
    if options.editing:
        fmap.default_js = fmap.default_js + assets.plugin_links(assets.PLUGIN_JS["Draw"])
        fmap.default_css = fmap.default_css + assets.plugin_links(assets.PLUGIN_CSS["Draw"])
    provinces = folium.FeatureGroup(name="Provinces").add_to(fmap)
    salang = folium.FeatureGroup(name="Salang Pass").add_to(fmap)
    projects = folium.FeatureGroup(name="Projects").add_to(fmap)
    # chunkedLoading keeps the page responsive while thousands of markers are clustered.
    cluster = _local_assets(_plugins.MarkerCluster(control=False, chunkedLoading=True, chunkInterval=100,
                                                  showCoverageOnHover=False, maxClusterRadius=50),
                            "MarkerCluster").add_to(projects)
    _local_assets(_plugins.Fullscreen(position="topleft", title="Full screen",
                                     title_cancel="Leave full screen"), "Fullscreen").add_to(fmap)
    search = _local_assets(_plugins.Search(cluster, search_label="name",
                                           placeholder="Search projects by name",
                                          collapsed=False, position="topleft", search_zoom=14),
                           "Search")
    search.add_to(fmap)
    _local_assets(_plugins.MeasureControl(position="topleft", primary_length_unit="kilometers",
                                         secondary_length_unit="meters", primary_area_unit="hectares",
                                         secondary_area_unit="sqmeters"), "MeasureControl").add_to(fmap)
    if basemap is not None:
        _local_assets(_plugins.MiniMap(tile_layer=folium.TileLayer(basemap.tiles, attr=" "),
                                      position="bottomright", toggle_display=True, zoom_level_offset=-5),
                      "MiniMap").add_to(fmap)
    folium.LayerControl(collapsed=False, position="topright").add_to(fmap)

    config = {
        "names": {"map": fmap.get_name(), "provinces": provinces.get_name(), "salang": salang.get_name(),
                  "projects": projects.get_name(), "cluster": cluster.get_name(),
                  "search": f"{cluster.get_name()}searchControl"},
        "basemap": basemap is not None,
        "embedded": embedded is not None,
        "urls": {"items": "/collections/{id}/items", "item": "/collections/{id}/items/{fid}",
                 "stats": "/stats", "layers": "/layers/{id}.{format}",
                 "changes": "/changes" if embedded is None else None},
        "follow_s": options.follow_s,
        "tiles": None if embedded is not None else {
            "url": f"/collections/{{id}}/tiles/{TMS_ID}/{{z}}/{{y}}/{{x}}", "above": options.tiled_above},
        "limit": options.limit,
        "filter_fields": filter_fields(PROJECT_SCHEMA),
        "filters": {k: list(v) for k, v in options.filters.items()},
        "query": dict(options.query),
        "formats": list(options.formats),
        "statuses": dict(STATUS_COLOURS),
        "icons": assets.icon_paths(),
        "edit": edit_config(PROJECT_SCHEMA) if options.editing else None,
    }
    root = fmap.get_root()
    assert isinstance(root, Figure)
    root.header.add_child(Element(f"<title>{esc(options.title)}</title>"))
    # The page's one h1 (axe-core: page-has-heading-one), first in the body, in a banner landmark and
    # visually hidden: the map fills the screen; dialogs (h2) and cards follow it in the outline.
    root.html.add_child(Element(f'<header><h1 class="geo-sr-only">{esc(options.title)}</h1></header>'),
                        name="geo_title", index=0)
    root.header.add_child(JavascriptLink(assets.url("app", "geomap.js")), name="geomap_js")
    if embedded is None:
        # The served map follows the changes feed; an exported file has none to follow.
        root.header.add_child(JavascriptLink(assets.url("app", "follow.js")), name="follow_js")
        root.header.add_child(JavascriptLink(assets.url("app", "tiles.js")), name="tiles_js")
    if options.editing:
        # editor.js first: the other two extend what it defines.
        for name in ("editor.js", "editor-form.js", "editor-import.js"):
            root.header.add_child(JavascriptLink(assets.url("app", name)), name=name.replace(".", "_"))
        root.header.add_child(CssLink(assets.url("app", "editor.css")), name="editor_css")
    root.html.add_child(Element(
        f'<script type="application/json" id="geo-config">{script_json(config)}</script>'))
    if embedded is not None:
        root.html.add_child(Element(
            f'<script type="application/json" id="geo-data">{script_json(embedded)}</script>'))
    root.header.add_child(Element('<link rel="icon" href="data:,">'))  # no /favicon.ico request
    # The map's last child, so it runs after Folium's script has created the map, layers and controls.
    fmap.add_child(_Start())
    return fmap


def render_page(options: MapOptions, embedded: Mapping[str, Any] | None = None) -> str:
    """The complete HTML page of the web map."""
    root = build_map(options, embedded).get_root()
    html: str = root.render()
    # branca's page template has a bare <html>, and Folium's viewport forbids zooming: screen readers
    # need the language, and people with low vision need to zoom on phones (WCAG 3.1.1, 1.4.4).
    html = html.replace("<html>", '<html lang="en">', 1)
    return VIEWPORT_NO_ZOOM.sub('<meta name="viewport" content="width=device-width, initial-scale=1.0"',
                                html, count=1)
