"""The HTML views of the API's resources: when to answer HTML (`wants_html`), and the Jinja2 templates
(geo/templates/), the filters they format values with, and the fields of a feature as the pages show them.

Autoescaping is on for every template: a value reaches the page as text unless a filter here marks it
safe after escaping it itself. Links go through `safe_href` (http(s) and relative references only).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from datetime import datetime, timedelta
from html import escape
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from jinja2 import Environment, FileSystemLoader
from markupsafe import Markup

from geo.web import assets
from geo.web.page import STATUS_COLOURS, script_json

# The pages' one inline style element (its hash is in geo/http/securityheaders.py's HTML_POLICY): the
# rest of their styles are in geo/static/app/views.css. Kept as small as can be.
STYLE = ".skip:not(:focus){position:absolute;left:-10000px}"
TEMPLATES = Path(__file__).resolve().parent / "templates"


def wants_html(request: Request, f: str | None) -> bool:
    """Whether to answer with HTML: `?f=html`, or an `Accept` that ranks text/html above JSON.

    `f` overrides Accept. Without it, q-values count (RFC 9110 12.5.1): HTML when its weight is above
    0 and above JSON's, JSON (the default) on a tie. An Accept that does not name `text/html` gets JSON
    without being parsed; geo.http.responsecache keys on that (a bare `*/*` or `text/*` is no preference
    for HTML: RFC 9110 lets the server pick its default).
    """
    if f is not None:
        return f == "html"
    accept = request.headers.get("accept", "")
    if "text/html" not in accept:
        return False
    # Browsers send the same few headers over and over: those are parsed once.
    return _html_over_json_cached(accept) if len(accept) <= _CACHED_LENGTH else _html_over_json(accept)


# The JSON types the API answers in; any other `application/...+json` an Accept names counts too.
_JSON_TYPES = ("application/json", "application/geo+json")
# Elements past this many are not read (browsers send about ten): a 64 kB header of "a/b," costs no more.
_MAX_ELEMENTS = 64
_CACHED_LENGTH = 512


def _qvalue(text: str) -> float | None:
    """An RFC 9110 qvalue (0 to 1, at most three decimals), or None when it is not one."""
    whole, _, decimals = text.partition(".")
    if whole not in ("0", "1") or len(decimals) > 3 or (decimals and not (decimals.isascii()
                                                                          and decimals.isdigit())):
        return None
    if whole == "1" and decimals.strip("0"):
        return None  # above 1
    return float(text)


def _html_over_json(accept: str) -> bool:
    """Whether text/html weighs more than every JSON type in this Accept (one linear pass)."""
    exact: dict[str, float] = {}  # "type/subtype" -> q
    ranges: dict[str, float] = {}  # "type/*" and "*/*" -> q
    for element in accept.split(",", _MAX_ELEMENTS)[:_MAX_ELEMENTS]:
        media, *params = element.split(";")
        media = media.strip().lower()
        q: float | None = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                q = _qvalue(value.strip())
                break  # what follows q is accept-ext; other media parameters are not told apart
        if q is None or "/" not in media:
            continue  # not a valid element: ignored, as if absent
        table = ranges if media.endswith("/*") else exact
        table[media] = max(q, table.get(media, 0.0))

    def weight(media: str) -> float:
        # The most specific range that matches decides: type/subtype, then type/*, then */*.
        if media in exact:
            return exact[media]
        return ranges.get(media.partition("/")[0] + "/*", ranges.get("*/*", 0.0))

    html = weight("text/html")
    json_types = [*_JSON_TYPES, *(m for m in exact if m.startswith("application/") and m.endswith("+json"))]
    return html > 0 and html > max(weight(m) for m in json_types)


_html_over_json_cached = functools.lru_cache(maxsize=256)(_html_over_json)


# What a browser ignores in a URL before reading its scheme: tabs and newlines anywhere, and leading
# control characters and spaces ("java\tscript:" and " javascript:" are both javascript: URLs).
_IGNORED = re.compile(r"[\t\n\r]")
_SCHEME = re.compile(r"([a-zA-Z][a-zA-Z0-9+.-]*):")


def safe_href(url: object) -> str:
    """An escaped href value: an http(s) URL or a relative reference; anything else (javascript:,
    data:, ...) becomes "#", so no link on these pages can run script."""
    text = str(url)
    probe = _IGNORED.sub("", text).lstrip("".join(map(chr, range(0x21))))
    scheme = _SCHEME.match(probe)
    if scheme is not None and scheme.group(1).lower() not in ("http", "https"):
        return "#"
    return escape(text, quote=True)




# ---------------------------------------------------------------- values as people read them

def money(value: float, currency: str = "USD") -> str:
    """An amount as people say it: "USD 1.6 billion", "USD 250 million", "USD 12,500"."""
    for size, word in ((1e12, "trillion"), (1e9, "billion"), (1e6, "million")):
        if abs(value) >= size:
            short = f"{value / size:.1f}".removesuffix(".0")
            return f"{currency} {short} {word}"
    return f"{currency} {value:,.0f}" if float(value).is_integer() else f"{currency} {value:,.2f}"


def exact_money(value: float, currency: str = "USD") -> str:
    """The exact amount, with thousands separators ("USD 1,600,000,000")."""
    return f"{currency} {value:,.0f}" if float(value).is_integer() else f"{currency} {value:,.2f}"


def date_text(value: str) -> str:
    """An ISO date or date-time as a date people read ("1 March 2024", "1 March 2024, 09:30 UTC");
    anything else as it is."""
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        return value
    day = f"{when.day} {when:%B %Y}"
    if "T" not in value and " " not in value:
        return day
    zone = "UTC" if when.utcoffset() == timedelta(0) else when.strftime("%z") or ""
    return f"{day}, {when:%H:%M} {zone}".rstrip()


def href(url: object) -> Markup:
    """`safe_href` for templates: already escaped, so autoescaping leaves it alone."""
    return Markup(safe_href(url))


def is_link(value: object) -> bool:
    """Whether a value is an absolute http(s) URL, shown as a link."""
    return isinstance(value, str) and value.startswith(("http://", "https://")) and safe_href(value) != "#"


# Labels of the fields the schemas give no title to (the static layers' properties).
LABELS = {
    "name": "Name", "name_prs": "Name in Dari", "name_ps": "Name in Pashto",
    "name_prs_latn": "Name in Dari (Latin script)", "kind": "Kind", "status": "Status",
    "provinces": "Provinces", "length_km": "Length (km)", "altitude_m": "Altitude (m)",
    "width_m": "Width (m)", "construction": "Construction", "opened": "Opened", "history": "History",
    "estimated_cost_usd": "Estimated cost (US dollars)", "geometry_quality": "Geometry quality",
    "geometry_note": "Geometry note", "sources": "Sources", "code": "Code", "name_iso": "Name (ISO 3166-2)",
    "area_km2": "Area (km²)", "source_name": "Name in the source", "source_code": "Code in the source",
    "shape_id": "Shape id", "id": "Id",
}
# Values in Dari and Pashto: marked with their language, right to left.
RTL = {"name_prs": "prs", "name_ps": "ps"}
_UNITS = {"km": "km", "m": "m", "km2": "km²", "usd": "US dollars"}


def label(name: str, titles: Mapping[str, str] | None = None) -> str:
    """A field's label: the schema's title, a known label, or the name made readable."""
    if titles and titles.get(name):
        return titles[name]
    if name in LABELS:
        return LABELS[name]
    words = name.split("_")
    unit = _UNITS.get(words[-1]) if len(words) > 1 else None
    text = " ".join(words[:-1] if unit else words).capitalize()
    return f"{text} ({unit})" if unit else text


_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?)?")


def kind(name: str, value: object) -> str:
    """How a value is shown: money, date, link, rtl, status, history, sources, records, list, object,
    number or text."""
    if value is None:
        return "none"
    if name == "status_history" and isinstance(value, list):
        return "history"
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        return "sources" if name == "sources" else "records"
    if isinstance(value, list):
        return "list"
    if isinstance(value, dict):
        return "object"
    if isinstance(value, bool):
        return "text"
    if isinstance(value, int | float):
        return "money" if name.endswith("_usd") else "number"
    if name in RTL:
        return "rtl"
    if name == "status" and isinstance(value, str):
        return "status"
    if is_link(value):
        return "link"
    if isinstance(value, str) and _ISO_DATE.fullmatch(value):
        return "date"
    return "text"


def field(name: str, value: object, titles: Mapping[str, str] | None = None) -> dict[str, Any]:
    """One property as the pages show it: name, label, how to show it, value, language."""
    return {"name": name, "label": label(name, titles), "kind": kind(name, value), "value": value,
            "lang": RTL.get(name, "")}


def fields(properties: Mapping[str, Any], titles: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
    """A feature's properties as the pages show them, in their order."""
    return [field(name, value, titles) for name, value in properties.items()]


def environment() -> Jinja2Templates:
    """The templates, with autoescaping on and the filters above."""
    templates = Jinja2Templates(env=Environment(loader=FileSystemLoader(TEMPLATES), autoescape=True,
                                                trim_blocks=True,
                                                lstrip_blocks=True))
    env = templates.env
    env.filters.update(money=money, exact_money=exact_money, date_text=date_text, href=href,
                       label=label, script_json=lambda v: Markup(script_json(v)))
    env.globals.update(assets_url=assets.url, is_link=is_link, kind=kind)
    return templates


_TEMPLATES = functools.cache(environment)


def render(name: str, **context: Any) -> str:
    """A page from its template."""
    context.setdefault("map_data", None)  # no map on the page: no Leaflet, no script
    context.setdefault("links", [])
    return _TEMPLATES().get_template(name).render(**context, style=STYLE)


def respond(name: str, headers: Mapping[str, str] | None = None, **context: Any) -> HTMLResponse:
    """A page from its template as a response."""
    return HTMLResponse(render(name, **context), headers=dict(headers or {}))


def feature_body(feature: Mapping[str, Any], wkt: str | None = None,
                 titles: Mapping[str, str] | None = None) -> str:
    """One feature's fields as a description list, and its geometry as WKT (`wkt`; None: none)."""
    return _TEMPLATES().get_template("fields.html").render(
        fields=fields(feature["properties"], titles), wkt=wkt,
        geometry_type=(feature.get("geometry") or {}).get("type"))


def map_feature(fid: object, geometry: object, properties: Mapping[str, Any], link: str) -> dict[str, Any]:
    """A feature for the page's map (geo/static/app/views.js): its CRS84 geometry, name, status, link."""
    return {"type": "Feature", "id": fid, "geometry": geometry,
            "properties": {"name": str(properties.get("name") or fid), "status": properties.get("status"),
                           "href": link}}


def map_data(features: list[dict[str, Any]], bbox: list[float] | None = None,
             outlines: list[Any] | None = None) -> dict[str, Any]:
    """The page's map data block: its features, for a collection's page the extent to outline, and the
    provinces' outlines to draw underneath (the pages have no basemap)."""
    return {"features": {"type": "FeatureCollection", "features": features}, "bbox": bbox,
            "outlines": outlines or [], "colours": dict(STATUS_COLOURS)}
