"""The web map's scripts, styles and icons: where each file lives, its URL, and its inlined form.

Every file comes from the service itself: Leaflet, Leaflet.markercluster, jQuery and Font Awesome from
their XStatic packages (PyPI); the Folium plugins' files (fullscreen, measure, minimap, search, draw) from
their npm packages, vendored with their licences under geo/static/vendor/; the map's own code from
geo/static/. URLs carry the version (the package's, or a content hash of our own and vendored files), so
browsers may cache them for good, and a changed file always gets a new URL.
"""

from __future__ import annotations

import base64
import hashlib
import mimetypes
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import xstatic.pkg.font_awesome
import xstatic.pkg.jquery
import xstatic.pkg.leaflet
import xstatic.pkg.leaflet_markercluster

STATIC = Path(__file__).resolve().parents[1] / "static"
PREFIX = "/static"


@dataclass(frozen=True)
class Root:
    """A folder of files served under /static/{name}/."""

    name: str
    path: Path
    immutable: bool = True
    # Our own and vendored files: their URLs carry a content hash (the folder name alone does not
    # change when a vendored file is patched).
    hashed: bool = False


def _xstatic(module: object, label: str) -> Root:
    version = str(getattr(module, "VERSION"))  # noqa: B009 - the XStatic modules are untyped
    return Root(f"{label}-{version}", Path(str(getattr(module, "BASE_DIR"))))  # noqa: B009


@cache
def roots() -> dict[str, Root]:
    """The served folders by name (the XStatic folders are found through their packages)."""
    found = [
        _xstatic(xstatic.pkg.leaflet, "leaflet"),
        _xstatic(xstatic.pkg.leaflet_markercluster, "leaflet.markercluster"),
        _xstatic(xstatic.pkg.jquery, "jquery"),
        _xstatic(xstatic.pkg.font_awesome, "font-awesome"),
        Root("vendor", STATIC / "vendor", hashed=True),
        # The map's own code changes with the app: revalidated, and its URLs carry a content hash.
        Root("app", STATIC / "app", immutable=False, hashed=True),
    ]
    return {r.name: r for r in found}


def _root(prefix: str) -> Root:
    return next(r for r in roots().values() if r.name.startswith(prefix + "-") or r.name == prefix)


# Longest relative path and path segment looked up on disk (a file system refuses longer names with an
# error rather than "no such file"; no served file comes near these).
MAX_PATH = 512
MAX_SEGMENT = 255


def _plausible(relative: str) -> bool:
    # No control characters (NUL would make the OS call raise), no over-long names or segments.
    if not relative or len(relative) > MAX_PATH or any(ord(c) < 32 or c == "\x7f" for c in relative):
        return False
    return all(len(part.encode("utf-8", "surrogatepass")) <= MAX_SEGMENT for part in relative.split("/"))


def resolve(root_name: str, relative: str) -> tuple[Root, Path] | None:
    """The file behind /static/{root_name}/{relative}, or None: also for paths leaving the folder,
    names no file can have (NUL, control characters, over-long) and names the file system refuses."""
    root = roots().get(root_name)
    if root is None or not _plausible(relative):
        return None
    base = root.path.resolve()
    try:
        target = (base / relative).resolve()
        if not target.is_relative_to(base) or not target.is_file():
            return None
    except (OSError, ValueError):  # ValueError covers UnicodeEncodeError (lone surrogates)
        return None
    return root, target


@cache
def _digest(path: Path) -> str:
    return hashlib.blake2b(path.read_bytes(), digest_size=6).hexdigest()


def url(prefix: str, relative: str) -> str:
    """The URL of a served file; our own and vendored files get a content hash, so a new version is
    fetched."""
    root = _root(prefix)
    link = f"{PREFIX}/{root.name}/{relative}"
    return f"{link}?v={_digest(root.path / relative)}" if root.hashed else link


@cache
def version() -> str:
    """A digest of every served file's version: the package versions in the XStatic folders' names, and
    the content of our own and vendored files. It changes whenever a file the map loads changes.

    Computed once per process (like the URLs' hashes): the files are part of the installed code.
    """
    digest = hashlib.blake2b(digest_size=8)
    for root in sorted(roots().values(), key=lambda r: r.name):
        digest.update(root.name.encode() + b"\0")
        if not root.hashed:
            continue  # the package version is in the name
        for path in sorted(p for p in root.path.rglob("*") if p.is_file()):
            digest.update(f"{path.relative_to(root.path).as_posix()}\0{_digest(path)}\0".encode())
    return digest.hexdigest()


def page_js() -> list[tuple[str, str]]:
    """Scripts of the map page, in load order, as (name, URL) like Folium's `default_js`."""
    return [("leaflet", url("leaflet", "leaflet.js")), ("jquery", url("jquery", "jquery.min.js"))]


def page_css() -> list[tuple[str, str]]:
    """Styles of the map page, as (name, URL) like Folium's `default_css`."""
    return [("leaflet_css", url("leaflet", "leaflet.css")), ("geomap_css", url("app", "geomap.css"))]


# Folium plugin -> the files that replace its CDN links.
PLUGIN_JS: dict[str, list[tuple[str, str]]] = {
    "MarkerCluster": [("markerclusterjs", "leaflet.markercluster:leaflet.markercluster.js")],
    "Fullscreen": [("Control.Fullscreen.js", "vendor:leaflet.fullscreen-3.0.0/Control.FullScreen.js")],
    "MeasureControl": [("leaflet_measure_js", "vendor:leaflet-measure-2.1.7/dist/leaflet-measure.min.js")],
    "MiniMap": [("Control_MiniMap_js", "vendor:leaflet-minimap-3.6.1/dist/Control.MiniMap.min.js")],
    "Search": [("Leaflet.Search.js", "vendor:leaflet-search-2.9.7/dist/leaflet-search.min.js")],
    "Draw": [("leaflet_draw_js", "vendor:leaflet-draw-1.0.4/dist/leaflet.draw.js")],
    "VectorGrid": [("leaflet_vectorgrid_js",
                    "vendor:leaflet.vectorgrid-1.3.0/dist/Leaflet.VectorGrid.bundled.min.js")],
}
PLUGIN_CSS: dict[str, list[tuple[str, str]]] = {
    "MarkerCluster": [("markerclustercss", "leaflet.markercluster:MarkerCluster.css"),
                      ("markerclusterdefaultcss", "leaflet.markercluster:MarkerCluster.Default.css")],
    "Fullscreen": [("Control.FullScreen.css", "vendor:leaflet.fullscreen-3.0.0/Control.FullScreen.css")],
    "MeasureControl": [("leaflet_measure_css", "vendor:leaflet-measure-2.1.7/dist/leaflet-measure.css")],
    "MiniMap": [("Control_MiniMap_css", "vendor:leaflet-minimap-3.6.1/dist/Control.MiniMap.min.css")],
    "Search": [("Leaflet.Search.css", "vendor:leaflet-search-2.9.7/dist/leaflet-search.min.css")],
    "Draw": [("leaflet_draw_css", "vendor:leaflet-draw-1.0.4/dist/leaflet.draw.css")],
}


def plugin_links(spec: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """(name, "root:path") pairs as (name, URL)."""
    return [(name, url(*where.split(":", 1))) for name, where in spec]


# Category -> Font Awesome (solid) icon, drawn as inline SVG from the XStatic package's files.
CATEGORY_ICONS: dict[str, str] = {
    "school": "school", "health": "hospital", "housing": "house", "water": "droplet",
    "energy": "bolt", "transport": "road", "other": "shapes",
}
_SVG = re.compile(r'viewBox="([^"]+)".*?<path d="([^"]+)"', re.S)


@cache
def icon_paths() -> dict[str, dict[str, str]]:
    """Category -> {viewBox, d} of its Font Awesome icon (Font Awesome Free, icons CC BY 4.0)."""
    folder = _root("font-awesome").path / "svgs" / "solid"
    icons: dict[str, dict[str, str]] = {}
    for category, name in CATEGORY_ICONS.items():
        found = _SVG.search((folder / f"{name}.svg").read_text(encoding="utf-8"))
        if found:
            icons[category] = {"viewBox": found.group(1), "d": found.group(2)}
    return icons


def local_file(link: str) -> Path | None:
    """The file behind one of our /static URLs (query ignored), or None."""
    if not link.startswith(PREFIX + "/"):
        return None
    root_name, _, relative = link[len(PREFIX) + 1:].split("?", 1)[0].partition("/")
    found = resolve(root_name, relative)
    return None if found is None else found[1]


_CSS_URL = re.compile(r"url\(\s*['\"]?([^'\")]+)['\"]?\s*\)")


def inline_css(path: Path) -> str:
    """A stylesheet with the files it refers to embedded as data: URLs (for the offline export)."""
    def embed(match: re.Match[str]) -> str:
        ref = match.group(1)
        if ref.startswith(("data:", "#", "http:", "https:")):
            return match.group(0)
        target = (path.parent / ref).resolve()
        if not target.is_file():
            return match.group(0)
        kind = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
        return f'url("data:{kind};base64,{base64.b64encode(target.read_bytes()).decode()}")'
    return _CSS_URL.sub(embed, path.read_text(encoding="utf-8"))


def inline_js(path: Path) -> str:
    """A script's text, safe inside a <script> element, without its source-map comment."""
    text = path.read_text(encoding="utf-8")
    text = re.sub(r"//# sourceMappingURL=\S+\s*$", "", text)
    # "</script" inside the code would end the element early.
    return text.replace("</script", "<\\/script")
