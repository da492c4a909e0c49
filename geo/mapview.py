"""Render the web map with Folium: provinces, the Salang tunnels, and projects by status."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from html import escape
from typing import Any

import folium
from branca.element import Figure

from geo.models import Status

STATUS_COLOURS: dict[str, str] = {
    Status.proposed: "#8e44ad",
    Status.planned: "#2980b9",
    Status.approved: "#16a085",
    Status.under_construction: "#e67e22",
    Status.completed: "#27ae60",
    Status.suspended: "#7f8c8d",
    Status.cancelled: "#c0392b",
}
CENTRE = (34.0, 66.0)


def esc(value: Any) -> str:
    """Escape text for HTML that Folium places inside a JavaScript template literal."""
    # html.escape covers the page; backtick, "$" and "\" would end or interpolate the JS literal.
    return (escape(str(value), quote=True)
            .replace("`", "&#96;").replace("$", "&#36;").replace("\\", "&#92;"))


def _label(value: str) -> str:
    return value.replace("_", " ")


def project_card(props: Mapping[str, Any], province_names: Mapping[str, str]) -> str:
    """The popup of one project: every value escaped."""
    rows: list[tuple[str, Any]] = [
        ("Category", _label(str(props.get("category", "")))),
        ("Status", _label(str(props.get("status", "")))),
        ("Province", province_names.get(str(props.get("province")), props.get("province") or "unknown")),
    ]
    if props.get("budget_usd") is not None:
        rows.append(("Budget", f"USD {float(props['budget_usd']):,.0f}"))
    if props.get("start_date") or props.get("end_date"):
        rows.append(("Dates", f"{props.get('start_date') or '?'} to {props.get('end_date') or '?'}"))
    if props.get("funders"):
        rows.append(("Funders", ", ".join(map(str, props["funders"]))))
    table = "".join(f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in rows)
    names = "".join(f'<div dir="rtl" lang="{lang}">{esc(props[key])}</div>'
                    for key, lang in (("name_prs", "prs"), ("name_ps", "ps")) if props.get(key))
    source = ""
    url = str(props.get("source_url") or "")
    if url.startswith(("http://", "https://")):
        source = f'<p><a href="{esc(url)}" target="_blank" rel="noopener noreferrer">Source</a></p>'
    return (f'<div class="geo-card"><h4>{esc(props.get("name", "(unnamed)"))}</h4>{names}'
            f"<table>{table}</table>{source}</div>")


def _legend(counts: Mapping[str, int]) -> str:
    rows = "".join(
        f'<div><span style="background:{colour}"></span>{esc(_label(status))} ({counts.get(status, 0)})</div>'
        for status, colour in STATUS_COLOURS.items())
    return (
        '<div id="geo-legend"><strong>Project status</strong>' + rows +
        '<div class="tunnel"><i class="solid"></i>Salang tunnel</div>'
        '<div class="tunnel"><i class="dashed"></i>Proposed tunnel</div></div>'
        "<style>#geo-legend{position:absolute;bottom:24px;right:10px;z-index:1000;background:#fff;"
        "padding:8px 10px;border-radius:4px;box-shadow:0 1px 4px rgba(0,0,0,.3);font:13px system-ui,"
        "sans-serif}#geo-legend span{display:inline-block;width:12px;height:12px;border-radius:50%;"
        "margin-right:6px;vertical-align:middle}#geo-legend i{display:inline-block;width:22px;"
        "margin-right:6px;vertical-align:middle;border-top:3px solid #333}#geo-legend i.dashed"
        "{border-top-style:dashed}.geo-card th{text-align:left;padding-right:8px}</style>"
    )


def _add_project(layer: folium.FeatureGroup, feature: Mapping[str, Any], names: Mapping[str, str]) -> None:
    props = feature["properties"]
    colour = STATUS_COLOURS.get(props.get("status", ""), "#333333")
    popup = folium.Popup(project_card(props, names), max_width=320)
    tooltip = folium.Tooltip(esc(props.get("name", "")))
    geom = feature["geometry"]
    if geom["type"] == "Point":
        lon, lat = geom["coordinates"][:2]
        folium.CircleMarker((lat, lon), radius=7, color="#ffffff", weight=1.5, fill=True,
                            fill_color=colour, fill_opacity=0.95, popup=popup, tooltip=tooltip,
                            ).add_to(layer)
        return
    # Lines and polygons: embed only the geometry, so no client text reaches the page unescaped.
    shape = {"type": "Feature", "geometry": geom, "properties": {}}
    drawn = folium.GeoJson(shape, style_function=lambda _f, c=colour: {
        "color": c, "weight": 4, "fillColor": c, "fillOpacity": 0.4}, tooltip=tooltip)
    drawn.add_child(popup)
    drawn.add_to(layer)


def render_map(provinces: Mapping[str, Any] | None, salang: Mapping[str, Any] | None,
               projects: Iterable[Mapping[str, Any]], province_names: Mapping[str, str],
               title: str = "Afghanistan infrastructure projects") -> str:
    """The complete HTML page of the web map."""
    fmap = folium.Map(location=CENTRE, zoom_start=6, tiles="OpenStreetMap", control_scale=True)
    root = fmap.get_root()
    assert isinstance(root, Figure)
    root.header.add_child(folium.Element(f"<title>{esc(title)}</title>"))
    if provinces is not None:
        folium.GeoJson(
            provinces, name="Provinces",
            style_function=lambda _f: {"color": "#555555", "weight": 1, "fillColor": "#f2efe9",
                                       "fillOpacity": 0.25},
            highlight_function=lambda _f: {"weight": 2.5, "color": "#222222"},
            tooltip=folium.GeoJsonTooltip(fields=["name", "code", "area_km2"],
                                          aliases=["Province", "ISO code", "Area (km²)"]),
        ).add_to(fmap)
    if salang is not None:
        tunnels = folium.FeatureGroup(name="Salang Pass tunnels").add_to(fmap)
        for feat in salang["features"]:
            props = feat["properties"]
            proposed = props.get("status") == "proposed"
            coords = [(lat, lon) for lon, lat in feat["geometry"]["coordinates"]]
            popup = (f"<h4>{esc(props['name'])}</h4>"
                     f"<div dir=\"rtl\" lang=\"prs\">{esc(props.get('name_prs', ''))}</div>"
                     f"<p>{esc(props.get('status', ''))}, {esc(props.get('length_km', '?'))} km; "
                     f"geometry {esc(props.get('geometry_quality', ''))}</p>")
            line = folium.PolyLine(  # type: ignore[no-untyped-call]
                coords, color="#b03a2e" if proposed else "#1b2631", weight=5,
                dash_array="10 8" if proposed else None, tooltip=esc(props["name"]),
                popup=folium.Popup(popup, max_width=320))
            line.add_to(tunnels)
    layer = folium.FeatureGroup(name="Projects")
    layer.add_to(fmap)
    counts: dict[str, int] = {}
    for feature in projects:
        status = str(feature["properties"].get("status", ""))
        counts[status] = counts.get(status, 0) + 1
        _add_project(layer, feature, province_names)
    root.html.add_child(folium.Element(_legend(counts)))
    folium.LayerControl(collapsed=False).add_to(fmap)
    html: str = root.render()
    return html
