"""Security headers: `X-Content-Type-Options: nosniff` on every response, and on HTML pages a
Content-Security-Policy that allows only the service's own files (and the basemap's tile host).

Pages with inline scripts (the map, the API docs) set their own policy, built here by `page_policy`: it
allows exactly the inline scripts and styles the page was rendered with, by their SHA-256 hashes. Hashes
rather than a per-response nonce, because those pages are cached (ETag, the page cache): a hash is the
same for every copy of the page, a nonce would have to change the page on every response. Those pages
carry no user text (the map fetches its data as JSON and shows it as text), so nothing a visitor sends
can become one of the hashed scripts. Every other HTML page (geo/html.py and its templates) gets
`HTML_POLICY`: scripts only from the service's own files (Leaflet, geo/static/app/views.js; no inline
script: a page's map data sits in a JSON data block, which is not run), and only that module's one style
element.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterable
from functools import lru_cache
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from geo import html

OSM_TILES = "https://tile.openstreetmap.org"
NOSNIFF = (b"x-content-type-options", b"nosniff")
CSP = b"content-security-policy"
# Script types a browser runs; data blocks (application/json) are not scripts and need no hash.
_RUNNABLE = {"", "text/javascript", "application/javascript", "module"}
_INLINE = re.compile(r"<(script|style)\b([^>]*)>(.*?)</\1\s*>", re.S | re.I)
_TYPE = re.compile(r"""\btype\s*=\s*["']?([^"'\s>]+)""", re.I)
_SRC = re.compile(r"\bsrc\s*=", re.I)
_HOST = re.compile(r"(\*\.)?[A-Za-z0-9.-]+(:[0-9]+)?|\*")


def source_hash(text: str) -> str:
    """The CSP hash source ('sha256-...') of an inline script's or style's text."""
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return f"'sha256-{base64.b64encode(digest).decode('ascii')}'"


def tile_source(map_tiles: str) -> str | None:
    """The CSP source of the basemap's tiles (GEO_MAP_TILES): OpenStreetMap's tile host for `osm`, the
    origin of a tile URL template, 'self' for a template on this host, None for `none`."""
    if map_tiles == "none":
        return None
    if map_tiles == "osm":
        return OSM_TILES
    if map_tiles.startswith("/") and not map_tiles.startswith("//"):
        return "'self'"
    parts = urlsplit(map_tiles)
    labels = parts.netloc.rsplit("@", 1)[-1].split(".")
    # Placeholders such as {s} (subdomains) in the leading labels become CSP's one wildcard label;
    # elsewhere no host pattern can express them, so only the scheme is named.
    leading = next((i for i, label in enumerate(labels) if "{" not in label), len(labels))
    if leading:
        labels = ["*", *labels[leading:]]
    host = ".".join(labels)
    # Only what a host source may hold (no ";" or space that would end or add a directive).
    if not _HOST.fullmatch(host) or host == "*":
        return f"{parts.scheme}:" if parts.scheme in ("http", "https") else None
    return f"{parts.scheme}://{host}" if parts.scheme else host


def inline_hashes(page: str) -> tuple[list[str], list[str]]:
    """The hash sources of the runnable inline scripts and of the inline style elements of a page."""
    scripts: list[str] = []
    styles: list[str] = []
    for tag, attributes, text in _INLINE.findall(page):
        if tag.lower() == "style":
            styles.append(source_hash(text))
            continue
        kind = _TYPE.search(attributes)
        if _SRC.search(attributes) or (kind is not None and kind.group(1).lower() not in _RUNNABLE):
            continue
        scripts.append(source_hash(text))
    return sorted(set(scripts)), sorted(set(styles))


def policy(*, scripts: Iterable[str] = (), styles: Iterable[str] = (), images: Iterable[str] = (),
           connect: bool = False, header: bool = True) -> str:
    """A Content-Security-Policy: nothing by default; the service's own scripts, styles and images plus
    the given sources; never framed by another site (`header`: browsers ignore, with a console error,
    the directives a <meta> element may not set)."""
    script_src = " ".join(["'self'", *scripts])
    style_src = " ".join(["'self'", *styles])
    img_src = " ".join(["'self'", "data:", *images])
    directives = [
        "default-src 'none'",
        f"script-src {script_src}",
        f"style-src {style_src}",
        f"img-src {img_src}",
        "font-src 'self'",
        "connect-src 'self'" if connect else "connect-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
    ]
    if header:
        directives.append("frame-ancestors 'self'")
    return "; ".join(directives)


@lru_cache(maxsize=64)
def page_policy(page: str, map_tiles: str = "none") -> str:
    """The policy of one of the service's own script pages: its inline scripts and styles by hash, the
    API for fetch, and the tile host of `map_tiles` for images.

    Cached by page: the pages come from a page cache, so the same string object returns (its hash is
    kept by Python, so the lookup does not rehash 12 kB).
    """
    scripts, styles = inline_hashes(page)
    tiles = tile_source(map_tiles)
    return policy(scripts=scripts, styles=styles, images=[tiles] if tiles else [], connect=True)


# Every other HTML page: geo/html.py's pages, which have one style element and no inline script.
HTML_POLICY = policy(styles=[source_hash(html.STYLE)])


class SecurityHeaders:
    """Adds `X-Content-Type-Options: nosniff` to every response and `HTML_POLICY` to HTML responses
    that set no policy of their own."""

    def __init__(self, app: ASGIApp, html_policy: str = HTML_POLICY) -> None:
        self.app = app
        self.html_policy = html_policy.encode("ascii")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Add the headers to the response's start message."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = self._with_headers(message)
            await send(message)

        await self.app(scope, receive, send_with_headers)

    def _with_headers(self, message: Message) -> Message:
        # A new list in a new message: the response cache may replay the same message object, which
        # must not collect a header per replay.
        headers = list(message.get("headers", []))
        # One pass over the headers (names compared in lower case, as a client reads them).
        nosniff = csp = is_html = False
        for name, value in headers:
            lower = name.lower()
            if lower == NOSNIFF[0]:
                nosniff = True
            elif lower == CSP:
                csp = True
            elif lower == b"content-type" and value.lower().startswith(b"text/html"):
                is_html = True
        if not nosniff:
            headers.append(NOSNIFF)
        if not csp and is_html:
            headers.append((CSP, self.html_policy))
        return {**message, "headers": headers}
