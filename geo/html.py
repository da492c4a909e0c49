"""Small HTML pages for people who open the API in a browser."""

from __future__ import annotations

import functools
import re
from html import escape
from typing import Any

import orjson
from fastapi import Request

STYLE = ("body{font:15px/1.5 system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;"
         "color:#222}a{color:#0b5cad}code{background:#f3f3f3;padding:0 .2rem}"
         "table{border-collapse:collapse}td,th{border:1px solid #ddd;padding:.2rem .5rem;text-align:left}"
         "details code{display:block;max-height:12rem;overflow:auto;word-break:break-all}")


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


def page(title: str, body: str) -> str:
    """A complete HTML page with a title and an already-escaped body."""
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<style>{STYLE}</style></head><body><h1>{escape(title)}</h1>{body}</body></html>")


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


def link_list(links: list[dict[str, Any]]) -> str:
    """An HTML list of OGC links."""
    items = "".join(
        f'<li><a href="{safe_href(ln["href"])}">{escape(str(ln.get("title") or ln["rel"]))}</a> '
        f'<small>({escape(str(ln["rel"]))}, {escape(str(ln.get("type", "")))})</small></li>'
        for ln in links)
    return f"<ul>{items}</ul>"


def _text(value: Any) -> str:
    """A property value as text: lists and objects as JSON, as the GeoJSON has them."""
    if isinstance(value, list | dict):
        return orjson.dumps(value).decode()
    return value if isinstance(value, str) else "" if value is None else str(value)


def _cell(value: Any) -> str:
    text = _text(value)
    if len(text) <= 120:
        return escape(text)
    # Long descriptions would swamp the table: folded under their start, yet on the page in full
    # (/req/html/content), and opened without script.
    return f"<details><summary>{escape(text[:100])}…</summary>{escape(text)}</details>"


def collections_body(collections: list[dict[str, Any]], href: str, links: list[dict[str, Any]]) -> str:
    """The collections (under `href`) as a list with their descriptions, items links and every link of
    their JSON (folded), then the page's own `links` (/req/html/content: all links as <a> elements)."""
    rows = "".join(
        f'<li><a href="{safe_href(href + "/" + c["id"] + "?f=html")}">{escape(c["title"])}</a> '
        f'(<a href="{safe_href(href + "/" + c["id"] + "/items?f=html")}">items</a>)<br>'
        f'<small>{escape(c["description"])}</small>'
        f"<details><summary>Links</summary>{link_list(c['links'])}</details></li>"
        for c in collections)
    return f"<ul>{rows}</ul>" + link_list(links)


def collection_body(doc: dict[str, Any], href: str) -> str:
    """One collection (at `href`): its description, extent and links."""
    bbox = ", ".join(f"{v:.4f}" for v in doc["extent"]["spatial"]["bbox"][0])
    return (f"<p>{escape(doc['description'])}</p><p>Extent: <code>{escape(bbox)}</code></p>"
            f"<p>Licence: {escape(doc.get('license', ''))}</p>"
            f'<p><a href="{safe_href(href + "/items?f=html")}">Browse the items</a></p>'
            + link_list(doc["links"]))


def _item_href(item_href: str, fid: Any) -> str:
    return safe_href(f"{item_href}/{fid}?f=html")


def geometry(wkt: str, kind: object, unfolded: bool = False) -> str:
    """A geometry as WKT under its type, folded unless `unfolded` (a <details> element: no script)."""
    return (f"<details{' open' if unfolded else ''}><summary>{escape(str(kind))}</summary>"
            f"<code>{escape(wkt)}</code></details>")


def features_table(features: list[dict[str, Any]], item_href: str, wkts: list[str | None]) -> str:
    """Features as a table: a link to each, its geometry (WKT, in `wkts`' order; None: no geometry),
    then its properties, lists and objects as JSON (/req/html/content: what the GeoJSON holds)."""
    names: list[str] = []
    for feature in features:
        names += [key for key in feature["properties"] if key not in names]
    head = ("<tr><th>id</th><th>geometry</th>" + "".join(f"<th>{escape(n)}</th>" for n in names)
            + "</tr>")
    rows = "".join(
        f'<tr><td><a href="{_item_href(item_href, f["id"])}">{escape(str(f["id"]))}</a></td>'
        f"<td>{'' if wkt is None else geometry(wkt, (f.get('geometry') or {}).get('type'))}</td>"
        + "".join(f"<td>{_cell(f['properties'].get(n))}</td>" for n in names) + "</tr>"
        for f, wkt in zip(features, wkts, strict=True))
    return f"<table>{head}{rows}</table>"


def _value(key: str, value: Any) -> str:
    # A source URL is a link when it is http(s), and plain text otherwise.
    if key == "source_url" and isinstance(value, str) and safe_href(value) != "#":
        return f'<a href="{safe_href(value)}" rel="noopener noreferrer nofollow">{escape(value)}</a>'
    return escape(_text(value))  # the feature's own page: every value in full


def feature_body(feature: dict[str, Any], wkt: str | None = None) -> str:
    """One feature: its geometry as WKT (`wkt`; None: no geometry) and its properties as a table (an
    http(s) source URL as a link)."""
    rows = "".join(f"<tr><th>{escape(k)}</th><td>{_value(k, v)}</td></tr>"
                   for k, v in feature["properties"].items())
    kind = (feature.get("geometry") or {}).get("type")
    shape = "<p>No geometry.</p>" if wkt is None else geometry(wkt, kind, unfolded=True)
    return f"<h2>Geometry</h2>{shape}<h2>Properties</h2><table>{rows}</table>"
