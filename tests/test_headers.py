"""Security headers through a real server: CSP, nosniff and frame-ancestors on HTML pages, nosniff on
everything, CORS that varies only where it says so, Swagger UI from the service itself, a /map ETag
that follows its assets, and static paths that answer 404, never 500."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import re
import shutil
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from fastapi.testclient import TestClient
from starlette.types import Message, Receive, Scope, Send

from geo.app import create_app
from geo.http.cors import CORSMiddleware
from geo.http.securityheaders import SecurityHeaders
from geo.settings import Settings
from geo.web import assets
from tests.conftest import AUTH, KEY, point_feature, workspace
from tests.server import live_server

EDITOR = "https://editor.example.org"
STRANGER = "https://stranger.example.org"


@dataclass(frozen=True)
class Site:
    """The live server's base URL and its log file."""

    url: str
    log: Path


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, provinces_cache: Path) -> Iterator[Site]:
    """A real server with the default basemap (OpenStreetMap) and one origin allowed to write."""
    folder = tmp_path_factory.mktemp("headers")
    settings = workspace(folder, provinces_cache, api_keys=KEY, cors_origins=EDITOR)
    log = folder / "server.log"
    with live_server(settings, log=log) as url:
        yield Site(url, log)
    assert "Traceback" not in log.read_text()


def _policy(header: str) -> dict[str, list[str]]:
    """A Content-Security-Policy header as {directive: [sources]}."""
    out: dict[str, list[str]] = {}
    for part in header.split(";"):
        words = part.split()
        if words:
            assert words[0] not in out, f"{words[0]} twice"
            out[words[0]] = words[1:]
    return out


def _hash(text: str) -> str:
    # CSP Level 2: the base64 SHA-256 of the element's text, UTF-8 encoded, quoted as a source.
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode() + "'"


def _inline(page: str, tag: str) -> set[str]:
    """Hashes of the page's inline <script> (runnable: no src, no data type) or <style> elements."""
    found = set()
    for attributes, text in re.findall(rf"<{tag}([^>]*)>(.*?)</{tag}>", page, re.S):
        if tag == "script" and ("src=" in attributes or "application/json" in attributes):
            continue
        found.add(_hash(text))
    return found


# ---------- HTML pages ----------

HTML_PAGES = ["/?f=html", "/collections?f=html", "/collections/projects?f=html",
              "/collections/projects/items?f=html", "/collections/provinces/items/AF-KAB?f=html",
              "/conformance?f=html", "/map", "/api.html"]


@pytest.mark.parametrize("path", HTML_PAGES)
def test_html_pages_carry_a_strict_policy(site: Site, path: str) -> None:
    response = httpx.get(site.url + path)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    assert response.headers["x-content-type-options"] == "nosniff"
    policy = _policy(response.headers["content-security-policy"])
    assert policy["default-src"] == ["'none'"]
    assert policy["frame-ancestors"] == ["'self'"]
    assert policy["base-uri"] == ["'none'"]
    assert "object-src" not in policy  # covered by default-src 'none'
    # Scripts and styles: the service's own files, and exactly the page's own inline elements by hash.
    page = response.text
    assert policy["script-src"] == ["'self'", *sorted(_inline(page, "script"))]
    assert policy["style-src"] == ["'self'", *sorted(_inline(page, "style"))]
    for source in policy["script-src"] + policy["style-src"]:
        assert source == "'self'" or source.startswith("'sha256-"), source  # no unsafe-*, no host
    # Only the map fetches (from the service) and shows tiles (from the configured host).
    assert policy["connect-src"] == (["'self'"] if path in ("/map", "/api.html") else ["'none'"])
    tiles = ["https://tile.openstreetmap.org"] if path == "/map" else []
    assert policy["img-src"] == ["'self'", "data:", *tiles]


@pytest.mark.parametrize(("tiles", "allowed"), [
    ("osm", ["https://tile.openstreetmap.org"]),
    ("none", []),
    ("https://tiles.example.org/{z}/{x}/{y}.png", ["https://tiles.example.org"]),
    ("https://{s}.tiles.example.org:8443/{z}/{x}/{y}.png", ["https://*.tiles.example.org:8443"]),
    ("/tiles/{z}/{x}/{y}.png", ["'self'"]),
    # A template that would smuggle a directive into the header: only the scheme is allowed.
    ("https://a.example.org;script-src-elem */{z}/{x}/{y}.png", ["https:"]),
])
def test_map_policy_allows_only_the_configured_tile_host(settings: Settings, tiles: str,
                                                          allowed: list[str]) -> None:
    with TestClient(create_app(settings.model_copy(update={"map_tiles": tiles}))) as client:
        response = client.get("/map")
    policy = _policy(response.headers["content-security-policy"])
    assert policy["img-src"] == ["'self'", "data:", *allowed]
    assert set(policy) == {"default-src", "script-src", "style-src", "img-src", "font-src", "connect-src",
                           "base-uri", "form-action", "frame-ancestors"}


def test_json_and_every_other_response_is_nosniff(site: Site) -> None:
    origin = {"Origin": STRANGER}
    answers = [
        httpx.get(f"{site.url}/collections"),
        httpx.get(f"{site.url}/collections/salang/items"),  # the items route (DirectRoute)
        httpx.get(f"{site.url}/collections/projects/items", params={"limit": "x"}),  # a 400 problem
        httpx.get(f"{site.url}/collections/nope"),  # a 404 problem
        httpx.get(f"{site.url}/api"),
        httpx.get(f"{site.url}/layers/salang.csv"),
        httpx.get(f"{site.url}/static/leaflet-1.9.3/leaflet.js"),
        httpx.head(f"{site.url}/collections/salang"),
        httpx.options(f"{site.url}/collections/salang/items",
                      headers={**origin, "Access-Control-Request-Method": "GET"}),
        httpx.options(f"{site.url}/collections/projects/items",
                      headers={**origin, "Access-Control-Request-Method": "POST"}),  # 403
    ]
    for answer in answers:
        assert answer.headers.get_list("x-content-type-options") == ["nosniff"], answer.url
        if not answer.headers.get("content-type", "").startswith("text/html"):
            assert "content-security-policy" not in answer.headers
    assert {a.status_code for a in answers} >= {200, 204, 400, 403, 404}


# ---------- CORS ----------


def test_a_page_on_another_origin_may_read_what_tells_it_what_to_do_next(site: Site) -> None:
    # Fetch hides every response header not listed in Access-Control-Expose-Headers (Fetch standard,
    # "CORS-safelisted response-header name"): a client must see Retry-After on a 429 or 503, Allow on a
    # 405, Accept-Patch on a 415 and the challenge on a 401.
    answer = httpx.get(f"{site.url}/collections/salang/items", headers={"Origin": STRANGER})
    exposed = {h.strip().lower() for h in answer.headers["access-control-expose-headers"].split(",")}
    assert {"etag", "location", "retry-after", "allow", "accept-patch", "www-authenticate"} <= exposed


def test_reads_have_the_same_cors_headers_with_or_without_origin(site: Site) -> None:
    url = f"{site.url}/collections/salang/items"
    plain, cors = httpx.get(url), httpx.get(url, headers={"Origin": STRANGER})
    for answer in (plain, cors):
        assert answer.headers.get_list("access-control-allow-origin") == ["*"]
        assert "ETag" in answer.headers["access-control-expose-headers"]
        # Nothing varies by Origin, so no Vary: Origin (a shared cache may serve one copy to all).
        assert "origin" not in answer.headers.get("vary", "").lower()
    assert plain.content == cors.content


def test_answers_that_depend_on_origin_say_vary_origin(site: Site) -> None:
    items = f"{site.url}/collections/projects/items"
    ask = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization"}
    allowed = httpx.options(items, headers={"Origin": EDITOR, **ask})
    refused = httpx.options(items, headers={"Origin": STRANGER, **ask})
    assert allowed.status_code == 204 and allowed.headers["access-control-allow-origin"] == EDITOR
    assert refused.status_code == 403 and "access-control-allow-origin" not in refused.headers
    created = httpx.post(items, json=point_feature(), headers={**AUTH, "Origin": EDITOR})
    assert created.status_code == 201 and created.headers["access-control-allow-origin"] == EDITOR
    other = httpx.post(items, json={}, headers={**AUTH, "Origin": STRANGER})
    assert "access-control-allow-origin" not in other.headers
    for answer in (allowed, refused, created, other):
        assert "Origin" in [v.strip() for v in answer.headers.get("vary", "").split(",")], answer.request


def test_repeated_cached_reads_keep_one_cors_header(site: Site) -> None:
    url = f"{site.url}/collections/provinces/items?limit=2"
    for origin in (EDITOR, STRANGER, EDITOR, "https://third.example.org"):
        answer = httpx.get(url, headers={"Origin": origin})
        assert answer.headers.get_list("access-control-allow-origin") == ["*"]
        assert answer.headers.get_list("x-content-type-options") == ["nosniff"]


def _shared_start() -> tuple[list[tuple[bytes, bytes]], Any]:
    """An app that sends the same start message, with the same header list, every time (as a cache
    replaying a stored response would)."""
    headers: list[tuple[bytes, bytes]] = [(b"content-type", b"text/html; charset=utf-8"), (b"etag", b'"1"')]
    start: Message = {"type": "http.response.start", "status": 200, "headers": headers}

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send(start)
        await send({"type": "http.response.body", "body": b"<p>hi</p>"})
    return headers, app


def test_middlewares_never_edit_the_response_they_pass_on() -> None:
    headers, inner = _shared_start()
    before = list(headers)
    app = SecurityHeaders(CORSMiddleware(inner, write_origins=frozenset({EDITOR})))

    async def call(method: str, origin: str) -> list[tuple[bytes, bytes]]:
        sent: list[Message] = []

        async def send(message: Message) -> None:
            sent.append(message)

        async def receive() -> Message:
            return {"type": "http.request", "body": b""}

        scope = {"type": "http", "method": method, "path": "/x", "headers": [(b"origin", origin.encode())]}
        await app(scope, receive, send)
        out: list[tuple[bytes, bytes]] = sent[0]["headers"]
        return out

    for method, origin in (("GET", STRANGER), ("POST", EDITOR), ("GET", EDITOR), ("DELETE", STRANGER)):
        out = asyncio.run(call(method, origin))
        names = [name for name, _ in out]
        assert names.count(b"x-content-type-options") == 1 and names.count(b"content-security-policy") == 1
        refused = method == "DELETE"  # a write from an origin that may not write: no CORS headers
        assert names.count(b"access-control-allow-origin") == (0 if refused else 1)
        assert (b"vary", b"Origin") in out if method != "GET" else b"vary" not in names
        assert headers == before and out is not headers  # the shared list is as it was


# ---------- /api.html ----------


def test_api_docs_come_from_the_service_itself(site: Site) -> None:
    response = httpx.get(f"{site.url}/api.html")
    page = response.text
    links = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert len(links) == 3  # Swagger UI's script, style and icon
    kinds = {"js": "javascript", "css": "text/css", "png": "image/png"}
    for link in links:
        assert urlsplit(link).netloc == "" and link.startswith("/static/vendor/swagger-ui-"), link
        asset = httpx.get(site.url + link)
        assert asset.status_code == 200 and "immutable" in asset.headers["cache-control"]
        assert kinds[urlsplit(link).path.rsplit(".", 1)[-1]] in asset.headers["content-type"]
    # No other host anywhere in the page, and no validator badge from the public validator's host.
    assert not re.search(r"https?://", page) and '"validatorUrl": null' in page
    assert "url: '/api'" in page


# ---------- /map ETag and assets ----------


@pytest.fixture
def static_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The app's static folder copied, and served instead of the checkout's (the URL hashes and asset
    version are computed once per process: cleared around the test, as a restart would)."""
    copy = tmp_path / "static"
    shutil.copytree(assets.STATIC, copy)

    def clear() -> None:
        for cached in (assets.roots, assets.version, assets._digest):
            cached.cache_clear()

    clear()
    monkeypatch.setattr(assets, "STATIC", copy)
    try:
        yield copy
    finally:
        monkeypatch.undo()
        clear()


def _map_etag(settings: Settings) -> tuple[str, str]:
    with TestClient(create_app(settings)) as client:
        response = client.get("/map")
    script = re.search(r'src="(/static/app/geomap\.js\?v=[^"]+)"', response.text)
    assert script is not None
    return response.headers["etag"], script.group(1)


@pytest.mark.parametrize("changed", ["app/geomap.js", "app/geomap.css",
                                     "vendor/leaflet-search-2.9.7/dist/leaflet-search.min.js"])
def test_map_etag_follows_its_assets(settings: Settings, static_copy: Path, changed: str) -> None:
    etag, script = _map_etag(settings)
    assert _map_etag(settings) == (etag, script)  # the same files: the same page and ETag
    with (static_copy / changed).open("a", encoding="utf-8") as f:
        f.write("\n/* changed */\n")
    assets.roots.cache_clear()
    assets.version.cache_clear()
    assets._digest.cache_clear()
    new_etag, new_script = _map_etag(settings)
    assert new_etag != etag
    # The page links the changed file by its new content hash (so no browser keeps the old one).
    assert (new_script != script) == (changed == "app/geomap.js")


# ---------- static paths ----------


def _raw_get(base: str, path: str) -> tuple[int, dict[str, str], bytes]:
    """GET with exactly these bytes as the request target (no client normalises or re-encodes it)."""
    host, port = urlsplit(base).hostname, urlsplit(base).port
    assert host is not None and port is not None
    with socket.create_connection((host, port), timeout=10) as conn:
        conn.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode("ascii"))
        data = b""
        while chunk := conn.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, v in (ln.split(":", 1) for ln in lines[1:])}
    return int(lines[0].split()[1]), headers, body


HOSTILE_STATIC = [
    "/static/app/%00",
    "/static/app/geomap.js%00.png",
    "/static/%00/geomap.js",
    "/static/app/%01%7f",
    "/static/app/" + "a" * 300,
    "/static/app/" + "%C3%A9" * 200,  # 200 characters, 400 bytes: over a file name's 255
    "/static/app/" + "/".join(["a" * 200] * 10),
    "/static/app/%ff",
    "/static/app/%ff%fe.js",
    "/static/app/%ed%a0%80.js",  # an encoded UTF-16 surrogate
    "/static/app/%c0%ae%c0%ae/%c0%ae%c0%ae/settings.py",  # overlong UTF-8 dots
    "/static/app/..%2f..%2fsettings.py",
    "/static/app/..%2F..%2F..%2F..%2Fetc%2Fpasswd",
    "/static/app/%2e%2e/%2e%2e/settings.py",
    "/static/app/..%5c..%5csettings.py",
    "/static/app/.",
    "/static/app/..",
    "/static/vendor/",
    "/static/app/%",
    "/static/app/%zz",
]


def test_hostile_static_paths_answer_404_problems(site: Site) -> None:
    for path in HOSTILE_STATIC:
        status, headers, body = _raw_get(site.url, path)
        assert status in (400, 404), (path, status)
        assert headers["content-type"].startswith("application/problem+json"), path
        assert headers["x-content-type-options"] == "nosniff"
        assert b'"status":%d' % status in body
    # A real file is still served (the table is not passing because everything is refused).
    status, headers, _ = _raw_get(site.url, "/static/app/geomap.css")
    assert status == 200 and headers["content-type"].startswith("text/css")
    assert "Traceback" not in site.log.read_text()
