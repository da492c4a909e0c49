"""Our own conformance suite: one test per OGC requirement the service claims, against one real server.

The requirement ids and their sources are in tests/conformance_table.py (`python -m tests.test_conformance
--list` prints them, with the ids HTTP cannot test and why). Each check below is registered under its id
with `@check(...)`; `test_requirement` runs them in table order (reads first, writes last) against one
`geo serve` on temporary copies of the shipped data.

Expected values come from the standards' text and from facts outside the code: the 34 ISO 3166-2:AF
codes, the coordinates of five city centres, the shipped Salang layer (2 tunnels) and projects store
(2 projects), and features the tests create themselves. A class `/conformance` does not claim yet runs
its tests as expected failures (xfail, not strict): an XPASS says it can be claimed.
"""

from __future__ import annotations

import json
import math
import re
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import cached_property
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx
import mapbox_vector_tile
import pytest
from jsonschema import Draft202012Validator
from mapbox_vector_tile.Mapbox import vector_tile_pb2
from openapi_spec_validator import validate as validate_openapi

from tests.conformance_table import CLASS_OF, CLASSES, applies, claimed_uris, main, report
from tests.conftest import AUTH, KEY, point_feature, workspace
from tests.server import live_server

# --- The classes /conformance must list, written out (tests/conformance_table.py marks the same ones). ---

CLAIMED = [
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/oas30",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/html",
    "http://www.opengis.net/spec/ogcapi-features-2/1.0/conf/crs",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/filter",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/features-filter",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/queryables",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/queryables-query-parameters",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-cql2",
    "http://www.opengis.net/spec/cql2/1.0/conf/advanced-comparison-operators",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-spatial-functions",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-spatial-functions-plus",
    "http://www.opengis.net/spec/cql2/1.0/conf/spatial-functions",
    "http://www.opengis.net/spec/cql2/1.0/conf/property-property",
    "http://www.opengis.net/spec/cql2/1.0/conf/arithmetic",
    "http://www.opengis.net/spec/cql2/1.0/conf/cql2-text",
    "http://www.opengis.net/spec/cql2/1.0/conf/cql2-json",
    "http://www.opengis.net/spec/ogcapi-features-4/1.0/conf/create-replace-delete",
    "http://www.opengis.net/spec/ogcapi-features-4/1.0/conf/update",
    "http://www.opengis.net/spec/ogcapi-features-4/1.0/conf/optimistic-locking-etags",
    "http://www.opengis.net/spec/ogcapi-common-3/1.0/conf/schemas",
    "http://www.opengis.net/spec/ogcapi-common-3/1.0/conf/returnables-and-receivables",
    "http://www.opengis.net/spec/ogcapi-common-3/1.0/conf/sortables",
    "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/tileset",
    "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/tilesets-list",
    "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/geodata-tilesets",
    "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/mvt",
]

# --- Facts from outside the code. ---

COLLECTIONS = {"provinces", "salang", "projects"}
# ISO 3166-2:AF: the 34 provinces.
PROVINCES = {
    "AF-BAL", "AF-BAM", "AF-BDG", "AF-BDS", "AF-BGL", "AF-DAY", "AF-FRA", "AF-FYB", "AF-GHA", "AF-GHO",
    "AF-HEL", "AF-HER", "AF-JOW", "AF-KAB", "AF-KAN", "AF-KAP", "AF-KDZ", "AF-KHO", "AF-KNR", "AF-LAG",
    "AF-LOG", "AF-NAN", "AF-NIM", "AF-NUR", "AF-PAN", "AF-PAR", "AF-PIA", "AF-PKA", "AF-SAM", "AF-SAR",
    "AF-TAK", "AF-URU", "AF-WAR", "AF-ZAB"}
# City centres (WGS 84 longitude, latitude), each well inside its province.
KABUL, KANDAHAR, HERAT = (69.1723, 34.5281), (65.7101, 31.6133), (62.2040, 34.3482)
# The three largest provinces (each over 50,000 km2; the next, Farah, is under 49,000).
LARGEST = {"AF-HEL", "AF-HER", "AF-KAN"}
# Afghanistan lies within 60.5-74.9 E and 29.4-38.5 N: longitude first, a swapped pair falls outside.
AFGHANISTAN = (60.0, 29.0, 75.5, 39.0)
# layers/salang.geojson: two vertical lines on x = 69.026944. The tunnel runs from y 35.31005 to 35.334116
# (2.67 km, 6 m wide); the proposed tunnel-2 from 35.268003 to 35.376163 (12 km, no width, cost 1.6e9).
TUNNEL, TUNNEL2 = "salang-tunnel", "salang-tunnel-2"
X = 69.026944
# projects.geojson: tunnel-2 (proposed, budget 1.6e9, no dates, created 2017-07-01) and the highway
# reconstruction (under construction since 2023-07-12, open-ended, no budget).
HIGHWAY = "salang-highway-reconstruction"
PROJECTS = {TUNNEL2, HIGHWAY}

CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
EPSG = "http://www.opengis.net/def/crs/EPSG/0/"
OPENAPI_30 = "application/vnd.oai.openapi+json;version=3.0"
GEOJSON = "application/geo+json"
SCHEMA_JSON = "application/schema+json"
QUERYABLES_REL = "http://www.opengis.net/def/rel/ogc/1.0/queryables"
SCHEMA_REL = "http://www.opengis.net/def/rel/ogc/1.0/schema"
SORTABLES_REL = "http://www.opengis.net/def/rel/ogc/1.0/sortables"
ITEMS = "/collections/{collection_id}/items"
ITEM = "/collections/{collection_id}/items/{feature_id}"
MERGE = "application/merge-patch+json"
CRS_URI = re.compile(r"http://www\.opengis\.net/def/crs/(OGC/1\.3/CRS84|OGC/0/CRS84h|EPSG/0/\d+)")

# --- OGC's response schemas (Part 1, openapi/schemas/*.yaml), written out in JSON Schema. ---

LINK = {"type": "object", "required": ["href"],
        "properties": {"href": {"type": "string"}, "rel": {"type": "string"}, "type": {"type": "string"},
                       "hreflang": {"type": "string"}, "title": {"type": "string"},
                       "length": {"type": "integer"}}}
LINKS = {"type": "array", "items": LINK}
EXTENT = {"type": "object", "properties": {
    "spatial": {"type": "object", "properties": {
        "bbox": {"type": "array", "minItems": 1, "items": {
            "type": "array", "items": {"type": "number"},
            "oneOf": [{"minItems": 4, "maxItems": 4}, {"minItems": 6, "maxItems": 6}]}},
        "crs": {"type": "string"}}},
    "temporal": {"type": "object", "properties": {
        "interval": {"type": "array", "minItems": 1, "items": {
            "type": "array", "minItems": 2, "maxItems": 2,
            "items": {"type": ["string", "null"], "format": "date-time"}}},
        "trs": {"type": "string"}}}}}
COLLECTION = {"type": "object", "required": ["id", "links"],
              "properties": {"id": {"type": "string"}, "title": {"type": "string"},
                             "description": {"type": "string"}, "links": LINKS, "extent": EXTENT,
                             "itemType": {"type": "string"},
                             "crs": {"type": "array", "items": {"type": "string"}}}}
SCHEMAS: dict[str, dict[str, Any]] = {
    "landingPage": {"type": "object", "required": ["links"],
                    "properties": {"title": {"type": "string"}, "description": {"type": "string"},
                                   "links": LINKS}},
    "confClasses": {"type": "object", "required": ["conformsTo"],
                    "properties": {"conformsTo": {"type": "array", "items": {"type": "string"}}}},
    "collections": {"type": "object", "required": ["links", "collections"],
                    "properties": {"links": LINKS, "collections": {"type": "array", "items": COLLECTION}}},
    "collection": COLLECTION,
    "featureCollectionGeoJSON": {
        "type": "object", "required": ["type", "features"],
        "properties": {"type": {"enum": ["FeatureCollection"]}, "features": {"type": "array"}, "links": LINKS,
                       "timeStamp": {"type": "string", "format": "date-time"},
                       "numberMatched": {"type": "integer", "minimum": 0},
                       "numberReturned": {"type": "integer", "minimum": 0}}},
    "featureGeoJSON": {
        "type": "object", "required": ["type", "geometry", "properties"],
        "properties": {"type": {"enum": ["Feature"]}, "geometry": {"type": ["object", "null"]},
                       "properties": {"type": ["object", "null"]}, "id": {"type": ["string", "integer"]},
                       "links": LINKS}},
}
# JSON Schema 2020-12's keywords (core, applicator, unevaluated, validation, format, content, meta-data).
JSON_SCHEMA_KEYWORDS = {
    "$schema", "$id", "$ref", "$anchor", "$dynamicRef", "$dynamicAnchor", "$vocabulary", "$comment", "$defs",
    "allOf", "anyOf", "oneOf", "not", "if", "then", "else", "dependentSchemas", "prefixItems", "items",
    "contains", "properties", "patternProperties", "additionalProperties", "propertyNames",
    "unevaluatedItems", "unevaluatedProperties", "type", "const", "enum", "multipleOf", "maximum",
    "exclusiveMaximum", "minimum", "exclusiveMinimum", "maxLength", "minLength", "pattern", "maxItems",
    "minItems", "uniqueItems", "maxContains", "minContains", "maxProperties", "minProperties", "required",
    "dependentRequired", "format", "contentEncoding", "contentMediaType", "contentSchema", "title",
    "description", "default", "deprecated", "readOnly", "writeOnly", "examples"}
GEOMETRY_FORMAT = re.compile(
    r"^geometry-(point|multipoint|linestring|multilinestring|polygon|multipolygon|geometrycollection|any"
    r"|point-or-multipoint|linestring-or-multilinestring|polygon-or-multipolygon)$")


# --- The server and a client for it. ---

class Api:
    """A client for the server under test, with the documents most checks read (each fetched once)."""

    def __init__(self, base: str, http: httpx.Client) -> None:
        self.base = base
        self.http = http
        self.stuck: str | None = None  # the request the server stopped answering, if it did

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """Any request; once one times out the server is taken for stuck and every later check fails at
        once (a stuck event loop would otherwise cost each remaining request its whole timeout)."""
        if self.stuck is not None:
            pytest.fail(f"the server stopped answering at {self.stuck}")
        try:
            return self.http.request(method, self.url(path), **kwargs)
        except httpx.TimeoutException:
            self.stuck = f"{method} {path} {kwargs.get('params') or ''}"
            raise

    def url(self, path: str) -> str:
        """An absolute URL for a path of the service (or the URL itself)."""
        return path if path.startswith("http") else f"{self.base}{path}"

    def get(self, path: str, params: dict[str, Any] | None = None, **headers: str) -> httpx.Response:
        """GET a path; `headers` with underscores for dashes (Accept_Encoding=...)."""
        return self.request("GET", path, params=params, headers=_headers(headers))

    def ok(self, path: str, params: dict[str, Any] | None = None, **headers: str) -> Any:
        """GET a path that must answer 200 with JSON; the parsed body."""
        response = self.get(path, params, **headers)
        assert response.status_code == 200, (path, params, response.status_code, response.text[:500])
        return response.json()

    def send(self, method: str, path: str, body: Any = None, content_type: str = GEOJSON,
             **headers: str) -> httpx.Response:
        """A write with the API key (unless `Authorization` is given) and a JSON body."""
        h = {**AUTH, **({"Content-Type": content_type} if body is not None else {}), **_headers(headers)}
        content = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
        return self.request(method, path, content=content, headers=h)

    @cached_property
    def landing(self) -> dict[str, Any]:
        """The landing page."""
        doc: dict[str, Any] = self.ok("/", Accept="application/json")
        return doc

    @cached_property
    def collections(self) -> dict[str, Any]:
        """The collections document."""
        doc: dict[str, Any] = self.ok("/collections", Accept="application/json")
        return doc

    @cached_property
    def openapi(self) -> dict[str, Any]:
        """The OpenAPI document, from the landing page's service-desc link."""
        href = next(ln["href"] for ln in self.landing["links"] if ln["rel"] == "service-desc")
        doc: dict[str, Any] = self.ok(href, Accept=OPENAPI_30)
        return doc

    def collection(self, cid: str) -> dict[str, Any]:
        """One collection's entry in the collections document."""
        return next(c for c in self.collections["collections"] if c["id"] == cid)

    def features(self, cid: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """Every matching feature (one page of up to 10,000)."""
        page = self.ok(f"/collections/{cid}/items", {"limit": 10000, **(params or {})})
        features: list[dict[str, Any]] = page["features"]
        assert page.get("numberMatched", len(features)) == len(features)
        return features

    def matches(self, cid: str, params: dict[str, Any] | None = None) -> set[str]:
        """The keys (ISO code for provinces, id otherwise) of the features matching `params`."""
        return {_key(cid, f) for f in self.features(cid, params)}

    def cql(self, cid: str, expr: str, **params: Any) -> set[str]:
        """The keys of the features a CQL2 text filter (the default language) selects."""
        return self.matches(cid, {"filter": expr, **params})

    def cqlj(self, cid: str, expr: Any, **params: Any) -> set[str]:
        """The keys of the features a CQL2 JSON filter selects."""
        return self.matches(cid, {"filter": json.dumps(expr), "filter-lang": "cql2-json", **params})

    def refused(self, path: str, params: dict[str, Any]) -> None:
        """A GET that must be refused with a 400 problem."""
        response = self.get(path, params)
        assert response.status_code == 400, (path, params, response.status_code, response.text[:300])
        assert response.headers["content-type"].startswith("application/problem+json")

    def operation(self, path: str, method: str = "get") -> dict[str, Any]:
        """An operation of the OpenAPI document."""
        op: dict[str, Any] = self.openapi["paths"][path][method]
        return op

    def parameter(self, path: str, name: str, method: str = "get") -> dict[str, Any]:
        """A parameter of an operation of the OpenAPI document (references resolved)."""
        for param in self.operation(path, method).get("parameters", []):
            param = self.deref(param)
            if param["name"] == name:
                return param
        raise AssertionError(f"{method.upper()} {path} has no parameter {name!r}")

    def deref(self, obj: dict[str, Any]) -> dict[str, Any]:
        """An object of the OpenAPI document with its `$ref` followed."""
        while "$ref" in obj:
            target: Any = self.openapi
            for part in obj["$ref"].removeprefix("#/").split("/"):
                target = target[part]
            obj = target
        return obj


def _headers(given: dict[str, str]) -> dict[str, str]:
    return {name.replace("_", "-"): value for name, value in given.items()}


def _key(cid: str, feature: dict[str, Any]) -> str:
    # Provinces are known by their ISO code (a fact outside the code); the rest by id.
    key: str = feature["properties"]["code"] if cid == "provinces" else feature["id"]
    return key


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory, provinces_cache: Path) -> Iterator[Api]:
    """One server for the whole module, on temporary copies of the shipped data, with a key."""
    folder = tmp_path_factory.mktemp("conformance")
    log = folder / "server.log"
    settings = workspace(folder, provinces_cache, api_keys=KEY, write_rate_per_key=0)
    with live_server(settings, log=log) as base, httpx.Client(timeout=10) as http:
        yield Api(base, http)
    assert "Traceback" not in log.read_text(encoding="utf-8", errors="replace")


# --- The registry: one check per requirement id. ---

CHECKS: dict[str, Callable[[Api], None]] = {}


def check(*reqs: str) -> Callable[[Callable[[Api], None]], Callable[[Api], None]]:
    """Register a function as the check of these requirement ids."""
    def register(fn: Callable[[Api], None]) -> Callable[[Api], None]:
        for req in reqs:
            assert req not in CHECKS, f"two checks for {req}"
            CHECKS[req] = fn
        return fn
    return register


def _marks(req: str) -> list[pytest.MarkDecorator]:
    cls = CLASS_OF[req]
    if not applies(req):
        return [pytest.mark.skip(reason="its condition is not met by the classes claimed now")]
    if not cls.claimed:
        return [pytest.mark.xfail(reason=f"not claimed yet: {cls.pending}", strict=False)]
    return []


# --- Small helpers for the checks. ---

def _positions(geometry: dict[str, Any] | None) -> list[list[float]]:
    if geometry is None:
        return []
    if geometry["type"] == "GeometryCollection":
        return [p for g in geometry["geometries"] for p in _positions(g)]

    def walk(c: Any) -> Iterator[list[float]]:
        if c and isinstance(c[0], (int, float)):
            yield c
        else:
            for part in c:
                yield from walk(part)
    return list(walk(geometry["coordinates"]))


def _bounds(feature: dict[str, Any]) -> tuple[float, float, float, float]:
    pos = _positions(feature["geometry"])
    return (min(p[0] for p in pos), min(p[1] for p in pos), max(p[0] for p in pos), max(p[1] for p in pos))


def _inside(inner: tuple[float, float, float, float], outer: list[float]) -> bool:
    box = outer if len(outer) == 4 else [outer[0], outer[1], outer[3], outer[4]]
    eps = 1e-9
    return (inner[0] >= box[0] - eps and inner[1] >= box[1] - eps and inner[2] <= box[2] + eps
            and inner[3] <= box[3] + eps)


def _links(doc: dict[str, Any], rel: str) -> list[dict[str, Any]]:
    return [ln for ln in doc.get("links", []) if ln.get("rel") == rel]


def _all_rel_type(links: list[dict[str, Any]]) -> None:
    for link in links:
        assert link.get("rel") and link.get("type"), link


def _path(href: str) -> str:
    return urlsplit(href).path


def _media(response: httpx.Response) -> str:
    return str(response.headers.get("content-type", "")).split(";")[0].strip().lower()


def _valid(name: str, doc: Any) -> None:
    errors = [e.message for e in Draft202012Validator(SCHEMAS[name]).iter_errors(doc)]
    assert not errors, (name, errors[:5])


def _valid_geometry(geometry: dict[str, Any] | None) -> None:
    """A GeoJSON geometry (RFC 7946 3.1): its type and the nesting and size of its coordinates."""
    if geometry is None:
        return
    kind = geometry["type"]
    if kind == "GeometryCollection":
        for part in geometry["geometries"]:
            _valid_geometry(part)
        return
    depth = {"Point": 0, "MultiPoint": 1, "LineString": 1, "MultiLineString": 2, "Polygon": 2,
             "MultiPolygon": 3}[kind]
    coords = geometry["coordinates"]

    def position(p: Any) -> None:
        assert isinstance(p, list) and 2 <= len(p) <= 3 and all(isinstance(v, (int, float)) for v in p), p

    def walk(c: Any, level: int) -> None:
        if level == 0:
            position(c)
            return
        assert isinstance(c, list)
        for part in c:
            walk(part, level - 1)
    walk(coords, depth)
    if kind == "LineString":
        assert len(coords) >= 2
    rings = coords if kind == "Polygon" else [r for p in coords for r in p] if kind == "MultiPolygon" else []
    for ring in rings:
        assert len(ring) >= 4 and ring[0] == ring[-1], "a linear ring is closed and has 4 positions or more"


@contextmanager
def _created(api: Api, **props: Any) -> Iterator[tuple[str, str]]:
    """A project created for one check (a school in Kabul unless told otherwise), deleted afterwards."""
    lon, lat = props.pop("at", KABUL)
    response = api.send("POST", "/collections/projects/items", point_feature(lon, lat, **props))
    assert response.status_code == 201, response.text
    fid = response.json()["id"]
    path = f"/collections/projects/items/{fid}"
    try:
        yield fid, path
    finally:
        api.send("DELETE", path)


def _etag(api: Api, path: str) -> str:
    response = api.get(path, Accept_Encoding="identity")
    assert response.status_code == 200
    return response.headers["etag"]


# ================================ Part 1: Core ================================

@check("/req/core/http")
def _http(api: Api) -> None:
    # As the official suite: the status line is HTTP/1.1; and HTTP/1.1 basics it relies on.
    response = api.get("/")
    assert response.http_version == "HTTP/1.1"
    assert response.headers.get("connection", "").lower() != "close"  # persistent by default (RFC 9112 9.3)
    head = api.request("HEAD", "/collections")
    assert head.status_code == 200 and head.content == b""
    assert _media(head) == _media(api.get("/collections"))


@check("/req/core/root-op")
def _root_op(api: Api) -> None:
    assert api.get("/", Accept="application/json").status_code == 200


@check("/req/core/root-success")
def _root_success(api: Api) -> None:
    _valid("landingPage", api.landing)
    rels = {ln["rel"] for ln in api.landing["links"]}
    assert rels & {"service-desc", "service-doc"}
    assert [_path(ln["href"]) for ln in _links(api.landing, "conformance")] == ["/conformance"]
    assert [_path(ln["href"]) for ln in _links(api.landing, "data")] == ["/collections"]


def _api_definitions(api: Api) -> list[dict[str, Any]]:
    links = [ln for ln in api.landing["links"] if ln["rel"] in ("service-desc", "service-doc")]
    assert links
    return links


@check("/req/core/api-definition-op")
def _api_definition_op(api: Api) -> None:
    for link in _api_definitions(api):
        assert api.get(link["href"]).status_code == 200, link


@check("/req/core/api-definition-success")
def _api_definition_success(api: Api) -> None:
    for link in _api_definitions(api):
        response = api.get(link["href"], Accept=link["type"])
        assert response.status_code == 200
        assert _media(response) == link["type"].split(";")[0].lower(), (link, _media(response))
        if link["rel"] == "service-desc":
            assert response.json()["openapi"].startswith("3.0")
        else:
            assert "<html" in response.text.lower()


@check("/req/core/conformance-op")
def _conformance_op(api: Api) -> None:
    assert api.get("/conformance", Accept="application/json").status_code == 200


@check("/req/core/conformance-success")
def _conformance_success(api: Api) -> None:
    doc = api.ok("/conformance", Accept="application/json")
    _valid("confClasses", doc)
    assert "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core" in doc["conformsTo"]


@check("/req/core/crs84")
def _crs84(api: Api) -> None:
    # Longitude first, in degrees: every position of every feature lies in Afghanistan's box.
    for cid in COLLECTIONS:
        for feature in api.features(cid):
            for lon, lat, *_ in _positions(feature["geometry"]):
                assert AFGHANISTAN[0] <= lon <= AFGHANISTAN[2] and AFGHANISTAN[1] <= lat <= AFGHANISTAN[3]
        spatial = api.collection(cid).get("extent", {}).get("spatial", {})
        assert spatial.get("crs", CRS84) == CRS84


@check("/req/core/fc-md-op")
def _fc_md_op(api: Api) -> None:
    assert api.get("/collections", Accept="application/json").status_code == 200


@check("/req/core/fc-md-success")
def _fc_md_success(api: Api) -> None:
    _valid("collections", api.collections)


def _self_and_alternates(api: Api, doc: dict[str, Any], own_type: str) -> None:
    """A self link of this media type, an alternate for HTML, both answered in their type; rel and type
    on every link."""
    _all_rel_type(doc["links"])
    selves = _links(doc, "self")
    assert len(selves) == 1 and selves[0]["type"] == own_type
    html_alternates = [ln for ln in _links(doc, "alternate") if ln["type"] == "text/html"]
    assert html_alternates
    for link in selves + html_alternates:
        response = api.get(link["href"], Accept=link["type"])
        assert response.status_code == 200 and _media(response) == link["type"], link


@check("/req/core/fc-md-links")
def _fc_md_links(api: Api) -> None:
    _self_and_alternates(api, api.collections, "application/json")


@check("/req/core/fc-md-items")
def _fc_md_items(api: Api) -> None:
    ids = [c["id"] for c in api.collections["collections"]]
    assert sorted(ids) == sorted(COLLECTIONS)


@check("/req/core/fc-md-items-links")
def _fc_md_items_links(api: Api) -> None:
    for entry in api.collections["collections"]:
        _all_rel_type(entry["links"])
        items = {ln["type"]: ln["href"] for ln in _links(entry, "items")}
        assert set(items) >= {GEOJSON, "text/html"}, entry["id"]
        for media, href in items.items():
            assert _path(href) == f"/collections/{entry['id']}/items"
            assert _media(api.get(href, Accept=media)) == media


def _temporal_bounds(feature: dict[str, Any]) -> tuple[str | None, str | None] | None:
    """A project's temporal geometry from its start and end dates (None: it has no time)."""
    props = feature["properties"]
    if not props.get("start_date") and not props.get("end_date"):
        return None
    return props.get("start_date"), props.get("end_date")


@check("/req/core/fc-md-extent")
def _fc_md_extent(api: Api) -> None:
    for cid in COLLECTIONS:
        extent = api.collection(cid).get("extent")
        if extent is None:
            continue
        boxes = extent["spatial"]["bbox"]
        for feature in api.features(cid):
            assert any(_inside(_bounds(feature), box) for box in boxes), (cid, feature["id"])
    _within_interval(api, api.collection("projects")["extent"]["temporal"]["interval"][0])


def _within_interval(api: Api, *intervals: list[str | None]) -> None:
    """Each project's start_date..end_date lies in one of the intervals; no end date is an open end, so
    such an interval must be open-ended (null) too."""
    def inside(interval: list[str | None], start: str | None, end: str | None) -> bool:
        return ((interval[0] is None or (start is not None and interval[0][:10] <= start))
                and (interval[1] is None or (end is not None and interval[1][:10] >= end)))
    for feature in api.features("projects"):
        bounds = _temporal_bounds(feature)
        if bounds is not None:
            assert any(inside(interval, *bounds) for interval in intervals), (intervals, bounds)


@check("/req/core/fc-md-extent-multi")
def _fc_md_extent_multi(api: Api) -> None:
    for cid in COLLECTIONS:
        extent = api.collection(cid).get("extent")
        if extent is None:
            continue
        first, *others = extent["spatial"]["bbox"]
        for feature in api.features(cid):
            assert _inside(_bounds(feature), first), (cid, feature["id"])
            assert not others or any(_inside(_bounds(feature), box) for box in others)
    first_interval, *other_intervals = api.collection("projects")["extent"]["temporal"]["interval"]
    _within_interval(api, first_interval)  # C
    if other_intervals:
        _within_interval(api, *other_intervals)  # D


@check("/req/core/sfc-md-op")
def _sfc_md_op(api: Api) -> None:
    for cid in COLLECTIONS:
        assert api.get(f"/collections/{cid}", Accept="application/json").status_code == 200


@check("/req/core/sfc-md-success")
def _sfc_md_success(api: Api) -> None:
    for entry in api.collections["collections"]:
        doc = api.ok(f"/collections/{entry['id']}", Accept="application/json")
        _valid("collection", doc)
        for name in ("id", "title", "description", "extent", "itemType"):
            assert doc.get(name) == entry.get(name), name
        have = {(ln["href"], ln["rel"], ln.get("type")) for ln in doc["links"]}
        assert {(ln["href"], ln["rel"], ln.get("type")) for ln in entry["links"]} <= have


@check("/req/core/fc-op")
def _fc_op(api: Api) -> None:
    for cid in COLLECTIONS:
        response = api.get(f"/collections/{cid}/items", Accept=GEOJSON)
        assert response.status_code == 200
        _valid("featureCollectionGeoJSON", response.json())


def _form_parameter(param: dict[str, Any]) -> None:
    assert param["in"] == "query" and not param.get("required", False)
    assert param.get("style", "form") == "form" and param.get("explode") is False, param


@check("/req/core/fc-limit-definition")
def _fc_limit_definition(api: Api) -> None:
    # The values of minimum, maximum and default are examples (/per/core/fc-limit-default-minimum-maximum).
    limit = api.parameter(ITEMS, "limit")
    _form_parameter(limit)
    schema = limit["schema"]
    assert schema["type"] == "integer" and schema["minimum"] >= 1
    assert schema["minimum"] <= schema["default"] <= schema["maximum"]
    page = api.ok("/collections/provinces/items")
    assert page["numberReturned"] == len(page["features"]) == min(schema["default"], 34)


@check("/req/core/fc-limit-response-1")
def _fc_limit_response(api: Api) -> None:
    page = api.ok("/collections/provinces/items", {"limit": 5})
    assert len(page["features"]) == 5
    maximum = api.parameter(ITEMS, "limit")["schema"]["maximum"]
    page = api.ok("/collections/provinces/items", {"limit": maximum + 1})  # C: no error, the maximum used
    assert len(page["features"]) == min(34, maximum)
    # D: only first-level features count (none has nested features, so numberReturned is the array's length).
    assert page["numberReturned"] == len(page["features"])


@check("/req/core/fc-bbox-definition")
def _fc_bbox_definition(api: Api) -> None:
    bbox = api.parameter(ITEMS, "bbox")
    _form_parameter(bbox)
    schema = bbox["schema"]
    assert schema["type"] == "array" and schema["items"]["type"] == "number"
    sizes = {(s.get("minItems"), s.get("maxItems")) for s in schema.get("oneOf", [schema])}
    assert sizes in ({(4, 4), (6, 6)}, {(4, 6)}), sizes
    # B, D: six numbers (with heights) are a box too; five are not.
    assert api.matches("provinces", {"bbox": "69.16,34.52,-100,69.18,34.54,9000"}) == {"AF-KAB"}
    api.refused("/collections/provinces/items", {"bbox": "69.16,34.52,69.18,34.54,10"})


@check("/req/core/fc-bbox-response")
def _fc_bbox_response(api: Api) -> None:
    around_kabul = "69.16,34.52,69.18,34.54"
    assert api.matches("provinces", {"bbox": around_kabul}) == {"AF-KAB"}
    assert api.matches("salang", {"bbox": around_kabul}) == set()
    assert api.matches("salang", {"bbox": "69.0,35.30,69.05,35.34"}) == {TUNNEL, TUNNEL2}
    # Only tunnel-2 reaches south of 35.30.
    assert api.matches("salang", {"bbox": "69.0,35.26,69.05,35.29"}) == {TUNNEL2}
    assert api.matches("projects", {"bbox": "69.0,35.30,69.05,35.34"}) == PROJECTS
    box = [65.0, 31.0, 66.0, 32.0]
    for feature in api.features("provinces", {"bbox": ",".join(map(str, box))}):
        west, south, east, north = _bounds(feature)
        assert west <= box[2] and east >= box[0] and south <= box[3] and north >= box[1]


@check("/req/core/fc-time-definition")
def _fc_time_definition(api: Api) -> None:
    param = api.parameter(ITEMS, "datetime")
    _form_parameter(param)
    assert param["schema"]["type"] == "string"


@check("/req/core/fc-time-response")
def _fc_time_response(api: Api) -> None:
    # The highway runs from 2023-07-12 with no end; tunnel-2 has no time, so every datetime matches it (C).
    cases = {
        "2020-01-01T00:00:00Z": {TUNNEL2},
        "2024-01-01T00:00:00Z": PROJECTS,
        "2023-07-12T04:30:00+04:30": PROJECTS,  # the highway's first instant, in Kabul's zone
        "2023-07-11T23:59:59Z": {TUNNEL2},
        "../2023-07-11T23:59:59Z": {TUNNEL2},
        "/2020-01-01T00:00:00Z": {TUNNEL2},  # F: an empty start is open
        "2023-07-12T00:00:00Z/..": PROJECTS,
        "2030-01-01T00:00:00Z/": PROJECTS,  # no end date: still running in 2030
        "2019-01-01T00:00:00Z/2023-07-11T00:00:00Z": {TUNNEL2},
        "2019-01-01T00:00:00Z/2023-07-12T00:00:00Z": PROJECTS,
    }
    for value, expected in cases.items():
        assert api.matches("projects", {"datetime": value}) == expected, value
    # Collections without time: everything matches.
    assert api.matches("provinces", {"datetime": "2020-01-01T00:00:00Z"}) == PROVINCES
    assert api.matches("salang", {"datetime": "../2000-01-01T00:00:00Z"}) == {TUNNEL, TUNNEL2}


@check("/req/core/fc-response")
def _fc_response(api: Api) -> None:
    for cid in COLLECTIONS:
        response = api.get(f"/collections/{cid}/items")
        assert response.status_code == 200
        _valid("featureCollectionGeoJSON", response.json())
    # B: only the features selected (a property filter of Part 1's 'parameters for filtering').
    selected = api.features("projects", {"status": "proposed"})
    assert {f["id"] for f in selected} == {TUNNEL2}


@check("/req/core/fc-links")
def _fc_links(api: Api) -> None:
    for cid in COLLECTIONS:
        _self_and_alternates(api, api.ok(f"/collections/{cid}/items"), GEOJSON)


@check("/req/core/fc-rel-type")
def _fc_rel_type(api: Api) -> None:
    # A middle page of provinces has next and prev links too.
    page = api.ok("/collections/provinces/items", {"limit": 10, "offset": 10})
    assert {"next", "prev"} <= {ln["rel"] for ln in page["links"]}
    _all_rel_type(page["links"])
    for feature in page["features"]:
        _all_rel_type(feature.get("links", []))


@check("/req/core/fc-timeStamp")
def _fc_timestamp(api: Api) -> None:
    for cid in COLLECTIONS:
        before = datetime.now(UTC)
        page = api.ok(f"/collections/{cid}/items")
        if "timeStamp" in page:
            stamp = datetime.fromisoformat(page["timeStamp"].replace("Z", "+00:00"))
            assert abs((stamp - before).total_seconds()) < 60


def _walk_pages(api: Api, path: str, params: dict[str, Any]) -> tuple[int, list[str]]:
    """numberMatched of the first page, and the ids of every page reached by following next links."""
    page = api.ok(path, params)
    matched, ids = page["numberMatched"], []
    while True:
        assert page["numberReturned"] == len(page["features"])
        ids += [f["id"] for f in page["features"]]
        nexts = _links(page, "next")
        if not nexts:
            return matched, ids
        page = api.ok(nexts[0]["href"])


@check("/req/core/fc-numberMatched")
def _fc_number_matched(api: Api) -> None:
    cases: list[tuple[str, dict[str, Any], int]] = [
             ("provinces", {"limit": 7}, 34),
             ("provinces", {"limit": 5, "bbox": "69.16,34.52,69.18,34.54"}, 1),
             ("salang", {"limit": 1}, 2), ("projects", {"limit": 1, "status": "proposed"}, 1)]
    for cid, params, expected in cases:
        matched, ids = _walk_pages(api, f"/collections/{cid}/items", params)
        assert matched == len(ids) == len(set(ids)) == expected, (cid, params)


@check("/req/core/fc-numberReturned")
def _fc_number_returned(api: Api) -> None:
    for offset, expected in ((0, 10), (30, 4), (40, 0)):
        page = api.ok("/collections/provinces/items", {"limit": 10, "offset": offset})
        assert page["numberReturned"] == len(page["features"]) == expected


@check("/req/core/f-op")
def _f_op(api: Api) -> None:
    for cid in COLLECTIONS:
        for feature in api.features(cid):
            assert api.get(f"/collections/{cid}/items/{feature['id']}").status_code == 200


@check("/req/core/f-success")
def _f_success(api: Api) -> None:
    first_province = api.features("provinces")[0]["id"]
    for cid, fid in (("provinces", first_province), ("salang", TUNNEL), ("projects", HIGHWAY)):
        response = api.get(f"/collections/{cid}/items/{fid}")
        assert response.status_code == 200
        _valid("featureGeoJSON", response.json())


@check("/req/core/f-links")
def _f_links(api: Api) -> None:
    for cid, fid in (("salang", TUNNEL), ("projects", HIGHWAY)):
        doc = api.ok(f"/collections/{cid}/items/{fid}")
        _self_and_alternates(api, doc, GEOJSON)
        collection = _links(doc, "collection")
        assert len(collection) == 1 and _path(collection[0]["href"]) == f"/collections/{cid}"
        assert api.get(collection[0]["href"], Accept=collection[0]["type"]).status_code == 200


@check("/req/core/query-param-invalid")
def _query_param_invalid(api: Api) -> None:
    invalid = [{"limit": "unlimited"}, {"limit": "0"}, {"limit": "-1"}, {"offset": "-1"}, {"bbox": "1,2,3"},
               {"bbox": "a,b,c,d"}, {"datetime": "yesterday"}, {"datetime": "2024-13-01T00:00:00Z"}]
    for cid in COLLECTIONS:
        for params in invalid:
            api.refused(f"/collections/{cid}/items", params)
    api.refused(f"/collections/salang/items/{TUNNEL}", {"f": "pdf"})


@check("/req/core/query-param-unknown")
def _query_param_unknown(api: Api) -> None:
    unknown = {"unknownQueryParameter12345": "1"}
    paths = ["/", "/conformance", "/collections", *(f"/collections/{cid}" for cid in COLLECTIONS),
             *(f"/collections/{cid}/items" for cid in COLLECTIONS), f"/collections/salang/items/{TUNNEL}"]
    for path in paths:
        api.refused(path, unknown)


# ================================ Part 1: OpenAPI 3.0 ================================

@check("/req/oas30/oas-definition-1")
def _oas_definition_1(api: Api) -> None:
    types = {(ln["rel"], ln["type"]) for ln in api.landing["links"]}
    assert ("service-desc", OPENAPI_30) in types and ("service-doc", "text/html") in types


@check("/req/oas30/oas-definition-2")
def _oas_definition_2(api: Api) -> None:
    assert api.openapi["openapi"].startswith("3.0.")
    validate_openapi(api.openapi)


def _provoked(api: Api) -> list[tuple[str, str, int]]:
    """(method, path template, status) of requests made to provoke each status this service uses."""
    seen: list[tuple[str, str, int]] = []

    def note(method: str, template: str, response: httpx.Response) -> None:
        seen.append((method, template, response.status_code))

    etag = api.get("/collections").headers["etag"]
    note("get", "/", api.get("/"))
    note("get", "/", api.get("/", {"f": "pdf"}))
    note("get", "/conformance", api.get("/conformance"))
    note("get", "/collections", api.get("/collections", If_None_Match=etag))
    note("get", "/collections/{collection_id}", api.get("/collections/nowhere"))
    note("get", ITEMS, api.get("/collections/provinces/items", {"limit": "x"}))
    note("get", ITEMS, api.get("/collections/nowhere/items"))
    note("get", ITEM, api.get("/collections/salang/items/nothing-here"))
    note("options", ITEM, api.request("OPTIONS", "/collections/projects/items/nothing-here"))
    note("post", ITEMS, api.send("POST", "/collections/projects/items", {"type": "Feature"}))
    note("post", ITEMS, api.send("POST", "/collections/projects/items", point_feature(), Authorization=""))
    note("post", ITEMS, api.send("POST", "/collections/projects/items", b"x", content_type="text/plain"))
    note("post", ITEMS, api.send("POST", "/collections/provinces/items", point_feature()))
    with _created(api) as (_, path):
        note("put", ITEM, api.send("PUT", path, point_feature(), If_Match='"stale"'))
        note("patch", ITEM, api.send("PATCH", path, b"{}", content_type="text/plain"))
        note("put", ITEM, api.send("PUT", path, point_feature()))
        note("delete", ITEM, api.send("DELETE", path))
    note("delete", ITEM, api.send("DELETE", "/collections/projects/items/nothing-here"))
    return seen


def _documented(api: Api, method: str, template: str, status: int) -> bool:
    responses = api.operation(template, method)["responses"]
    return str(status) in responses or f"{str(status)[0]}XX" in responses or "default" in responses


@check("/req/oas30/completeness")
def _oas_completeness(api: Api) -> None:
    missing = [seen for seen in _provoked(api) if not _documented(api, *seen)]
    assert not missing, missing


@check("/req/oas30/exceptions-codes")
def _oas_exception_codes(api: Api) -> None:
    errors = [seen for seen in _provoked(api) if seen[2] >= 400]
    assert {status for *_, status in errors} >= {400, 401, 404, 412, 415}
    missing = [seen for seen in errors if not _documented(api, *seen)]
    assert not missing, missing


# Values for the items parameters the OpenAPI document declares without an example, by name.
SAMPLES = {"limit": "5", "offset": "1", "f": "json", "status": "proposed", "category": "transport",
           "province": "AF-BGL", "filter-lang": "cql2-text", "filter-crs": CRS84, "properties": "name",
           "ids": f"{TUNNEL2},{HIGHWAY}", "crs": CRS84, "bbox-crs": CRS84, "datetime": "2024-01-01T00:00:00Z"}


@check("/req/oas30/oas-impl")
def _oas_impl(api: Api) -> None:
    enclosure = next(ln["href"] for ln in api.collection("projects")["links"] if ln["rel"] == "enclosure")
    # The tile: Kabul's at zoom 5 (x 22, y 12 by the slippy-map formula), which holds the shipped projects.
    values = {"collection_id": "projects", "feature_id": HIGHWAY, "name": _path(enclosure).rsplit("/", 1)[-1],
              "tileMatrixSetId": "WebMercatorQuad", "tileMatrix": "5", "tileRow": "12", "tileCol": "22"}
    for template, item in api.openapi["paths"].items():
        if "get" in item:
            path = re.sub(r"\{(\w+)\}", lambda m: values[m.group(1)], template)
            assert api.get(path).status_code == 200, template
    # Every query parameter of items, with its documented example (or a value of its schema).
    for param in map(api.deref, api.operation(ITEMS).get("parameters", [])):
        if param["in"] != "query":
            continue
        value = param.get("example", param["schema"].get("example", SAMPLES.get(param["name"])))
        assert value is not None, f"no example or sample value for {param['name']}"
        if isinstance(value, list):
            value = ",".join(map(str, value))  # style form, explode false
        response = api.get("/collections/projects/items", {param["name"]: value})
        assert response.status_code == 200, (param["name"], value, response.text[:300])


@check("/req/oas30/security")
def _oas_security(api: Api) -> None:
    schemes = api.openapi["components"]["securitySchemes"]
    bearer = {name for name, s in schemes.items() if s["type"] == "http" and s["scheme"].lower() == "bearer"}
    assert bearer
    for template, method in ((ITEMS, "post"), (ITEM, "put"), (ITEM, "patch"), (ITEM, "delete")):
        declared = {name for req in api.operation(template, method).get("security", []) for name in req}
        assert declared & bearer, (method, template)
        assert "401" in api.operation(template, method)["responses"]
    denied = api.send("POST", "/collections/projects/items", point_feature(), Authorization="")
    assert denied.status_code == 401 and denied.headers["www-authenticate"].lower().startswith("bearer")
    assert not api.operation(ITEMS).get("security")  # reading needs no key


# ================================ Part 1: GeoJSON ================================

@check("/req/geojson/definition")
def _geojson_definition(api: Api) -> None:
    for cid in COLLECTIONS:
        assert _media(api.get(f"/collections/{cid}/items", Accept=GEOJSON)) == GEOJSON
    assert _media(api.get(f"/collections/salang/items/{TUNNEL}", Accept=GEOJSON)) == GEOJSON
    for path in ("/", "/conformance", "/collections", "/collections/salang"):
        assert _media(api.get(path, Accept="application/json")) == "application/json", path


@check("/req/geojson/content")
def _geojson_content(api: Api) -> None:
    for cid in COLLECTIONS:
        page = api.ok(f"/collections/{cid}/items", {"limit": 100}, Accept=GEOJSON)
        assert page["type"] == "FeatureCollection" and isinstance(page["links"], list)  # A, C
        for feature in page["features"]:
            _valid("featureGeoJSON", feature)
            _valid_geometry(feature["geometry"])
        one = page["features"][0]["id"]
        single = api.ok(f"/collections/{cid}/items/{one}", Accept=GEOJSON)
        assert single["type"] == "Feature" and single["id"] == one  # A, B
        assert isinstance(single["links"], list)  # C
        _valid_geometry(single["geometry"])
    # D: the JSON resources follow the Core schemas.
    _valid("landingPage", api.landing)
    _valid("collections", api.collections)


# ================================ Part 1: HTML ================================

class _Anchors(HTMLParser):
    """The hrefs of <a> elements inside <body>, and the body's text."""

    def __init__(self) -> None:
        super().__init__()
        self.in_body = False
        self.hrefs: set[str] = set()
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "body":
            self.in_body = True
        elif tag == "a" and self.in_body:
            href = dict(attrs).get("href")
            if href:
                self.hrefs.add(href)

    def handle_data(self, data: str) -> None:
        if self.in_body:
            self.text.append(data)


def _page(api: Api, path: str) -> _Anchors:
    response = api.get(path, Accept="text/html")
    assert response.status_code == 200 and _media(response) == "text/html", path
    assert response.text.lstrip()[:15].lower() == "<!doctype html>", "an HTML 5 document"
    parser = _Anchors()
    parser.feed(response.text)
    return parser


def _same_resource(href: str) -> str:
    # An anchor to a resource counts whatever representation it names (?f=html or ?f=json).
    parts = urlsplit(href)
    query = urlencode(sorted((k, v) for k, v in parse_qsl(parts.query) if k != "f"))
    return urlunsplit(("", "", parts.path, query, ""))


HTML_PAGES = ("/", "/conformance", "/collections", "/collections/salang", "/collections/salang/items",
              f"/collections/salang/items/{TUNNEL}")


@check("/req/html/definition")
def _html_definition(api: Api) -> None:
    for path in HTML_PAGES:
        _page(api, path)
        response = api.get(path, {"f": "html"})
        assert response.status_code == 200 and _media(response) == "text/html", path
    doc = next(ln for ln in api.landing["links"] if ln["rel"] == "service-doc")
    assert _media(api.get(doc["href"], Accept="text/html")) == "text/html"


@check("/req/html/content")
def _html_content(api: Api) -> None:
    # Every link of the JSON representation is an <a> in the HTML body, and every value that identifies
    # or describes (conformance URIs, collection titles, property values) is in its text, in full.
    problems: list[str] = []
    for path in HTML_PAGES:
        page = _page(api, path)
        doc = api.ok(path, Accept="application/json" if "items" not in path else GEOJSON)
        links = list(doc.get("links", []))
        for entry in doc.get("collections", []):
            links += entry["links"]
        for feature in doc.get("features", []):
            links.append({"href": f"{api.base}/collections/salang/items/{feature['id']}"})
        anchors = {_same_resource(h) for h in page.hrefs}
        problems += [f"{path}: no <a> for {ln['href']}" for ln in links
                     if _same_resource(ln["href"]) not in anchors]
        text = " ".join(page.text)
        values = list(doc.get("conformsTo", [])) + [e["title"] for e in doc.get("collections", [])]
        for feature in doc.get("features", []) + ([doc] if doc.get("type") == "Feature" else []):
            values += [str(v) for v in feature["properties"].values() if isinstance(v, (str, int, float))]
        problems += [f"{path}: the text lacks {v[:60]!r}" for v in values if v not in text]
    assert not problems, "\n".join(problems)


# ================================ Part 2: CRS by reference ================================

def _crs_list(api: Api, cid: str) -> list[str]:
    crs: list[str] = api.collection(cid)["crs"]
    if "#/crs" in crs:
        crs = [c for c in crs if c != "#/crs"] + api.collections["crs"]
    return crs


def _mercator(lon: float, lat: float) -> tuple[float, float]:
    """EPSG:3857 (spherical Mercator on the WGS 84 semi-major axis), by its defining formulas."""
    radius = 6378137.0
    return radius * math.radians(lon), radius * math.log(math.tan(math.pi / 4 + math.radians(lat) / 2))


def _utm_north(lon: float, lat: float, zone: int) -> tuple[float, float]:
    """UTM on WGS 84, northern hemisphere: Snyder's transverse Mercator series (USGS PP 1395, 8-9 to 8-15)."""
    a, f, k0 = 6378137.0, 1 / 298.257223563, 0.9996
    e2 = f * (2 - f)
    ep2 = e2 / (1 - e2)
    phi, lam0 = math.radians(lat), math.radians(zone * 6 - 183)
    n = a / math.sqrt(1 - e2 * math.sin(phi) ** 2)
    t, c = math.tan(phi) ** 2, ep2 * math.cos(phi) ** 2
    big_a = (math.radians(lon) - lam0) * math.cos(phi)
    m = a * ((1 - e2 / 4 - 3 * e2 ** 2 / 64 - 5 * e2 ** 3 / 256) * phi
             - (3 * e2 / 8 + 3 * e2 ** 2 / 32 + 45 * e2 ** 3 / 1024) * math.sin(2 * phi)
             + (15 * e2 ** 2 / 256 + 45 * e2 ** 3 / 1024) * math.sin(4 * phi)
             - (35 * e2 ** 3 / 3072) * math.sin(6 * phi))
    x = k0 * n * (big_a + (1 - t + c) * big_a ** 3 / 6
                  + (5 - 18 * t + t ** 2 + 72 * c - 58 * ep2) * big_a ** 5 / 120)
    y = k0 * (m + n * math.tan(phi) * (big_a ** 2 / 2 + (5 - t + 9 * c + 4 * c ** 2) * big_a ** 4 / 24
                                       + (61 - 58 * t + t ** 2 + 600 * c - 330 * ep2) * big_a ** 6 / 720))
    return 500000.0 + x, y


def _highway_point(api: Api, crs: str, path: str = f"/collections/projects/items/{HIGHWAY}") -> list[float]:
    response = api.get(path, {"crs": crs})
    assert response.status_code == 200, (crs, response.text[:300])
    assert response.headers.get("content-crs") == f"<{crs}>"
    point: list[float] = response.json()["geometry"]["coordinates"]
    return point


@check("/req/crs/crs-uri")
def _crs_uri(api: Api) -> None:
    for cid in COLLECTIONS:
        for crs in _crs_list(api, cid):
            assert CRS_URI.fullmatch(crs), crs


@check("/req/crs/fc-md-crs-list")
def _fc_md_crs_list(api: Api) -> None:
    wanted = {CRS84, f"{EPSG}4326", f"{EPSG}3857", f"{EPSG}32641", f"{EPSG}32642", f"{EPSG}32643"}
    for cid in COLLECTIONS:
        crs = _crs_list(api, cid)
        assert CRS84 in crs and wanted <= set(crs), (cid, crs)  # B, and what this service offers
        for each in crs:  # A: each listed CRS is supported
            response = api.get(f"/collections/{cid}/items", {"crs": each, "limit": 1})
            assert response.status_code == 200 and response.headers["content-crs"] == f"<{each}>", each


@check("/req/crs/fc-md-storageCrs")
def _fc_md_storage_crs(api: Api) -> None:
    for cid in COLLECTIONS:  # every layer is stored in CRS84 (RFC 7946 GeoJSON files)
        assert api.collection(cid)["storageCrs"] == CRS84
        assert api.ok(f"/collections/{cid}")["storageCrs"] == CRS84


@check("/req/crs/fc-md-storageCrs-valid-value")
def _fc_md_storage_crs_valid(api: Api) -> None:
    for cid in COLLECTIONS:
        assert api.collection(cid)["storageCrs"] in _crs_list(api, cid)


@check("/req/crs/fc-md-crs-list-global")
def _fc_md_crs_list_global(api: Api) -> None:
    for cid in COLLECTIONS:
        if "#/crs" in api.collection(cid)["crs"]:
            for crs in api.collections["crs"]:
                assert api.get(f"/collections/{cid}/items", {"crs": crs, "limit": 1}).status_code == 200


def _uri_parameter(api: Api, template: str, name: str) -> None:
    param = api.parameter(template, name)
    _form_parameter(param)
    assert param["schema"]["type"] == "string" and param["schema"].get("format") in ("uri", "uri-reference")


@check("/req/crs/fc-crs-definition")
def _fc_crs_definition(api: Api) -> None:
    _uri_parameter(api, ITEMS, "crs")
    _uri_parameter(api, ITEM, "crs")


@check("/req/crs/fc-crs-valid-value")
def _fc_crs_valid_value(api: Api) -> None:
    for bad in (f"{EPSG}99999", f"{EPSG}2056", "EPSG:4326", "nonsense"):
        api.refused("/collections/projects/items", {"crs": bad})
        api.refused(f"/collections/projects/items/{HIGHWAY}", {"crs": bad})


@check("/req/crs/fc-crs-default-value")
def _fc_crs_default_value(api: Api) -> None:
    response = api.get(f"/collections/projects/items/{HIGHWAY}")
    assert response.json()["geometry"]["coordinates"] == [X, 35.322083]
    assert response.headers.get("content-crs", f"<{CRS84}>") == f"<{CRS84}>"


@check("/req/crs/fc-crs-action")
def _fc_crs_action(api: Api) -> None:
    lon, lat = X, 35.322083  # the highway point
    assert _highway_point(api, CRS84) == [lon, lat]
    assert _highway_point(api, f"{EPSG}4326") == [lat, lon]  # EPSG:4326 is latitude, longitude
    for got, want in ((_highway_point(api, f"{EPSG}3857"), _mercator(lon, lat)),
                      (_highway_point(api, f"{EPSG}32642"), _utm_north(lon, lat, 42))):
        assert math.dist(got[:2], want) < 0.01, (got, want)
    # The same in a page of items, for every position of a line.
    page = api.ok("/collections/salang/items", {"crs": f"{EPSG}4326"})
    for feature in page["features"]:
        assert all(p[0] > 35 and p[1] == X for p in _positions(feature["geometry"]))


@check("/req/crs/fc-bbox-crs-definition")
def _fc_bbox_crs_definition(api: Api) -> None:
    _uri_parameter(api, ITEMS, "bbox-crs")


@check("/req/crs/fc-bbox-crs-valid-value")
def _fc_bbox_crs_valid_value(api: Api) -> None:
    for bad in (f"{EPSG}99999", "nonsense"):
        api.refused("/collections/provinces/items", {"bbox": "69.16,34.52,69.18,34.54", "bbox-crs": bad})


@check("/req/crs/fc-bbox-crs-default-value")
def _fc_bbox_crs_default_value(api: Api) -> None:
    assert api.matches("provinces", {"bbox": "69.16,34.52,69.18,34.54"}) == {"AF-KAB"}
    # Read as latitude, longitude this box would be in the Arctic Ocean: it must not be.
    assert api.matches("provinces", {"bbox": "34.52,69.16,34.54,69.18"}) == set()


@check("/req/crs/fc-bbox-crs-action")
def _fc_bbox_crs_action(api: Api) -> None:
    lat_lon = {"bbox": "34.52,69.16,34.54,69.18", "bbox-crs": f"{EPSG}4326"}
    assert api.matches("provinces", lat_lon) == {"AF-KAB"}
    west, south = _mercator(69.16, 34.52)
    east, north = _mercator(69.18, 34.54)
    box = f"{west},{south},{east},{north}"
    assert api.matches("provinces", {"bbox": box, "bbox-crs": f"{EPSG}3857"}) == {"AF-KAB"}
    assert api.matches("provinces", {"bbox": "69.16,34.52,69.18,34.54", "bbox-crs": CRS84}) == {"AF-KAB"}


@check("/req/crs/ogc-crs-header")
def _ogc_crs_header(api: Api) -> None:
    for path in ("/collections/provinces/items", f"/collections/salang/items/{TUNNEL}"):
        assert api.get(path).headers["content-crs"] == f"<{CRS84}>"
        assert api.get(path, {"crs": f"{EPSG}3857"}).headers["content-crs"] == f"<{EPSG}3857>"


@check("/req/crs/ogc-crs-header-value")
def _ogc_crs_header_value(api: Api) -> None:
    for crs in (CRS84, f"{EPSG}4326", f"{EPSG}32641"):
        value = api.get("/collections/salang/items", {"crs": crs}).headers["content-crs"]
        assert re.fullmatch(r"<[^<>\s]+>", value) and value[1:-1] == crs


# ================================ Part 3: Filtering ================================

def _filter_parameters(api: Api) -> None:
    # The fragments of Part 3 (openapi/parameters/filter.yml, filter-lang.yml).
    filter_param = api.parameter(ITEMS, "filter")
    _form_parameter(filter_param)
    assert filter_param["schema"]["type"] == "string"
    lang = api.parameter(ITEMS, "filter-lang")
    assert lang["in"] == "query" and lang.get("style", "form") == "form"
    assert set(lang["schema"]["enum"]) == {"cql2-text", "cql2-json"}  # B: the encodings supported
    assert lang["schema"]["default"] == "cql2-text"  # C


@check("/req/filter/filter-param", "/req/features-filter/filter-param")
def _filter_param(api: Api) -> None:
    _filter_parameters(api)
    cases = (("provinces", "code = 'AF-KAB'", {"AF-KAB"}), ("salang", "width_m = 6", {TUNNEL}),
             ("projects", "status = 'proposed'", {TUNNEL2}))
    for cid, expr, expected in cases:
        assert api.cql(cid, expr) == expected


@check("/req/filter/filter-lang-param", "/req/features-filter/filter-lang-param")
def _filter_lang_param(api: Api) -> None:
    _filter_parameters(api)
    expr = {"op": "=", "args": [{"property": "code"}, "AF-KAB"]}
    assert api.cqlj("provinces", expr) == {"AF-KAB"}
    assert api.cql("provinces", "code = 'AF-KAB'", **{"filter-lang": "cql2-text"}) == {"AF-KAB"}
    # The default is text: a JSON filter without filter-lang is not text, so it is refused.
    api.refused("/collections/provinces/items", {"filter": json.dumps(expr)})
    api.refused("/collections/provinces/items", {"filter": "code = 'AF-KAB'", "filter-lang": "cql3"})


@check("/req/filter/filter-crs-wgs84")
def _filter_crs_wgs84(api: Api) -> None:
    lon, lat = KABUL
    assert api.cql("provinces", f"S_INTERSECTS(geometry, POINT({lon} {lat}))") == {"AF-KAB"}
    assert api.cql("provinces", f"S_INTERSECTS(geometry, POINT({lat} {lon}))") == set()  # not latitude first


@check("/req/filter/filter-crs-param", "/req/features-filter/filter-crs-param")
def _filter_crs_param(api: Api) -> None:
    _uri_parameter(api, ITEMS, "filter-crs")
    lon, lat = KABUL
    assert api.cql("provinces", f"S_INTERSECTS(geometry, POINT({lat} {lon}))",
                   **{"filter-crs": f"{EPSG}4326"}) == {"AF-KAB"}
    x, y = _mercator(lon, lat)
    mercator = {"filter-crs": f"{EPSG}3857"}
    assert api.cql("provinces", f"S_INTERSECTS(geometry, POINT({x} {y}))", **mercator) == {"AF-KAB"}
    api.refused("/collections/provinces/items", {"filter": "code = 'AF-KAB'", "filter-crs": f"{EPSG}99999"})


@check("/req/filter/mixing-expressions")
def _mixing_expressions(api: Api) -> None:
    either = "code = 'AF-KAN' OR code = 'AF-KAB'"
    lon, lat = KANDAHAR
    assert api.cql("provinces", either, bbox=f"{lon - .01},{lat - .01},{lon + .01},{lat + .01}") == {"AF-KAN"}
    assert api.cql("projects", "status = 'proposed' OR status = 'under_construction'",
                   datetime="2020-01-01T00:00:00Z") == {TUNNEL2}
    assert api.cql("projects", "category = 'transport'", status="under_construction") == {HIGHWAY}


@check("/req/filter/response")
def _filter_response(api: Api) -> None:
    assert api.cql("provinces", "code = 'AF-KAB'") == {"AF-KAB"}
    assert api.cql("provinces", "NOT (code = 'AF-KAB')") == PROVINCES - {"AF-KAB"}


@check("/req/features-filter/get-queryables-op")
def _ff_get_queryables_op(api: Api) -> None:
    for entry in api.collections["collections"]:
        assert api.get(f"/collections/{entry['id']}/queryables").status_code == 200


def _queryables_link(api: Api, cid: str) -> dict[str, Any]:
    rels = (QUERYABLES_REL, "[ogc-rel:queryables]")
    links = [ln for ln in api.collection(cid)["links"] if ln["rel"] in rels]
    assert len(links) >= 1 and all(_path(ln["href"]) == f"/collections/{cid}/queryables" for ln in links), cid
    link: dict[str, Any] = links[0]
    return link


@check("/req/features-filter/queryables-link", "/req/queryables/queryables-link")
def _queryables_links(api: Api) -> None:
    for cid in COLLECTIONS:
        link = _queryables_link(api, cid)
        assert api.get(link["href"]).status_code == 200
        assert any(ln["rel"] == QUERYABLES_REL for ln in api.ok(f"/collections/{cid}")["links"])


@check("/req/features-filter/response")
def _ff_response(api: Api) -> None:
    # C, D: filter AND bbox AND datetime AND property filters.
    assert api.cql("projects", "category = 'transport'", bbox="69.0,35.30,69.05,35.34",
                   datetime="2024-01-01T00:00:00Z", status="proposed") == {TUNNEL2}
    assert api.cql("projects", "category = 'school'", bbox="69.0,35.30,69.05,35.34") == set()
    # E: invalid filter, filter-lang or filter-crs values are 400s.
    for params in ({"filter": "code ="}, {"filter": "code = 'AF-KAB'", "filter-lang": "sql"},
                   {"filter": "{", "filter-lang": "cql2-json"},
                   {"filter": "code = 'AF-KAB'", "filter-crs": "http://www.opengis.net/def/crs/EPSG/0/99999"}):
        api.refused("/collections/provinces/items", params)


def _queryables(api: Api, cid: str) -> dict[str, Any]:
    response = api.get(f"/collections/{cid}/queryables", Accept=SCHEMA_JSON)
    assert response.status_code == 200 and _media(response) == SCHEMA_JSON
    doc: dict[str, Any] = response.json()
    return doc


@check("/req/queryables/get-queryables-op")
def _q_get_queryables_op(api: Api) -> None:
    for cid in COLLECTIONS:
        _queryables(api, cid)


def _spatial(prop: dict[str, Any]) -> bool:
    return str(prop.get("format", "")).startswith("geometry-")


@check("/req/queryables/get-queryables-response")
def _q_get_queryables_response(api: Api) -> None:
    for cid in COLLECTIONS:
        doc = _queryables(api, cid)
        assert doc["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        assert doc["$id"] == api.url(f"/collections/{cid}/queryables") and doc["type"] == "object"
        for name, prop in doc["properties"].items():
            if _spatial(prop):
                assert "type" not in prop and "$ref" not in prop, name
                assert GEOMETRY_FORMAT.match(prop["format"]), name
            else:
                assert "type" in prop, name
            if prop.get("format") in ("date", "date-time"):
                assert prop["type"] == "string", name
        # G: with additionalProperties false an undeclared property is a 400; otherwise it is null.
        params = {"filter": "no_such_property = 1"}
        if doc.get("additionalProperties", True) is False:
            api.refused(f"/collections/{cid}/items", params)
        else:
            assert api.matches(cid, params) == set()


@check("/req/queryables/expression-construction")
def _q_expression_construction(api: Api) -> None:
    # Only queryables build an expression: the projects' status history and id are not queryables.
    declared = set(_queryables(api, "projects")["properties"])
    for name in ("status_history", "id"):
        if name not in declared:
            api.refused("/collections/projects/items", {"filter": f"{name} IS NULL"})
    assert api.cql("projects", "name IS NOT NULL") == PROJECTS


def _query_parameters(api: Api, template: str) -> set[str]:
    params = map(api.deref, api.operation(template).get("parameters", []))
    return {p["name"] for p in params if p["in"] == "query"}


@check("/req/queryables-query-parameters/parameters")
def _qqp_parameters(api: Api) -> None:
    # Hand-computed from the data.
    expected = [("provinces", {"code": "AF-KAB"}, {"AF-KAB"}),
                ("provinces", {"name_iso": "Kābul"}, {"AF-KAB"}),
                ("salang", {"kind": "tunnel"}, {TUNNEL, TUNNEL2}), ("salang", {"width_m": "6"}, {TUNNEL}),
                ("salang", {"length_km": "12"}, {TUNNEL2}), ("projects", {"category": "transport"}, PROJECTS),
                ("projects", {"status": "proposed"}, {TUNNEL2})]
    for cid, params, want in expected:
        assert api.matches(cid, params) == want, (cid, params)
    # C: a query parameter the API definition declares (else /req/core/query-param-unknown would make it a
    # 400), for the collection's items path or the generic one.
    declared = {name for template in api.openapi["paths"] if template.endswith("/items")
                for name in _query_parameters(api, template)}
    # C, D: every simple queryable of every collection, with a value one feature has.
    for cid in COLLECTIONS:
        features = api.features(cid)
        for name, prop in _queryables(api, cid)["properties"].items():
            if prop.get("type") not in ("string", "number", "integer", "boolean"):
                continue
            having = [f for f in features if f["properties"].get(name) is not None]
            if not having:
                continue
            assert name in declared, f"{cid}: the queryable {name} is no parameter of the API definition"
            value = having[0]["properties"][name]
            text = json.dumps(value) if isinstance(value, bool) else str(value)
            got = api.features(cid, {name: text})
            assert having[0]["id"] in {f["id"] for f in got}, (cid, name, text)
            assert all(f["properties"].get(name) == value for f in got), (cid, name, text)


# ================================ CQL2 ================================

@check("/req/basic-cql2/cql2-filter")
def _basic_cql2_filter(api: Api) -> None:
    assert api.cql("provinces", "code = 'AF-KAB' OR code = 'AF-HER'") == {"AF-KAB", "AF-HER"}
    assert api.cql("provinces", "(code = 'AF-KAB' OR code = 'AF-HER') AND NOT code = 'AF-HER'") == {"AF-KAB"}
    assert api.cql("provinces", "TRUE") == PROVINCES
    assert api.cql("provinces", "FALSE") == set()
    assert api.cql("provinces", "TRUE AND code = 'AF-KAB'") == {"AF-KAB"}


@check("/req/basic-cql2/property")
def _basic_cql2_property(api: Api) -> None:
    api.refused("/collections/salang/items", {"filter": "sources IS NULL"})  # A: not a queryable
    assert api.cql("salang", "width_m IS NULL") == {TUNNEL2}  # B: unset is NULL
    assert api.cql("salang", "width_m = 6") == {TUNNEL}


def _refused_or_none(api: Api, cid: str, expr: str) -> None:
    """A filter mixing types: a 400, or (operands cast, /per/basic-cql2/type-casts) nothing matches."""
    response = api.get(f"/collections/{cid}/items", {"filter": expr, "limit": 10000})
    assert response.status_code in (200, 400), expr
    assert response.status_code == 400 or not response.json()["features"], expr


@check("/req/basic-cql2/binary-comparison-predicate")
def _binary_comparison(api: Api) -> None:
    cases = [("provinces", "code = 'AF-KAB'", {"AF-KAB"}),
             ("provinces", "code <> 'AF-KAB'", PROVINCES - {"AF-KAB"}),
             ("provinces", "code < 'AF-BAM'", {"AF-BAL"}),
             ("provinces", "code <= 'AF-BAM'", {"AF-BAL", "AF-BAM"}),
             ("provinces", "area_km2 > 50000", LARGEST), ("provinces", "area_km2 >= 50000", LARGEST),
             ("salang", "length_km > 2.67", {TUNNEL2}), ("salang", "length_km >= 2.67", {TUNNEL, TUNNEL2}),
             ("salang", "width_m <> 6", set()),  # C: tunnel-2 has no width: NULL, not TRUE
             ("projects", "start_date = DATE('2023-07-12')", {HIGHWAY}),
             ("projects", "start_date < DATE('2023-07-12')", set()),
             ("projects", "created_at < TIMESTAMP('2020-01-01T00:00:00Z')", {TUNNEL2}),
             ("projects", "budget_usd > 1000000", {TUNNEL2})]
    for cid, expr, expected in cases:
        assert api.cql(cid, expr) == expected, expr
    # D: both sides of one type; on a mismatch a server may refuse or cast (/per/basic-cql2/type-casts).
    for cid, expr in (("provinces", "code = 5"), ("provinces", "area_km2 = 'large'"),
                      ("projects", "start_date = 2023")):
        _refused_or_none(api, cid, expr)


@check("/req/basic-cql2/null-predicate")
def _null_predicate(api: Api) -> None:
    assert api.cql("salang", "width_m IS NULL") == {TUNNEL2}
    assert api.cql("salang", "width_m IS NOT NULL") == {TUNNEL}
    assert api.cql("projects", "budget_usd IS NULL") == {HIGHWAY}
    # NOT's truth table: TRUE -> FALSE, FALSE -> TRUE, NULL -> NULL (never selected).
    assert api.cql("salang", "NOT (width_m > 1)") == set()
    assert api.cql("salang", "NOT (width_m < 1)") == {TUNNEL}
    assert api.cql("salang", "NOT (width_m IS NULL)") == {TUNNEL}


@check("/req/advanced-comparison-operators/like-predicate")
def _like(api: Api) -> None:
    cases = [("code LIKE 'AF-K%'", {"AF-KAB", "AF-KAN", "AF-KAP", "AF-KDZ", "AF-KHO", "AF-KNR"}),  # E, F
             ("code LIKE 'AF-KA_'", {"AF-KAB", "AF-KAN", "AF-KAP"}),  # H, I
             ("code LIKE 'AF-P__'", {"AF-PAN", "AF-PAR", "AF-PIA", "AF-PKA"}),
             ("code LIKE 'AF-KAB%'", {"AF-KAB"}),  # % matches zero characters
             ("code LIKE 'AF-KA\\_'", set()),  # K: backslash escapes the wildcard
             ("code LIKE 'AF.KAB'", set()),  # B: '.' is no wildcard
             ("code NOT LIKE 'AF-%'", set())]
    for expr, expected in cases:
        assert api.cql("provinces", expr) == expected, expr
    assert api.cql("salang", "name LIKE 'Salang_Tunnel'") == {TUNNEL}
    assert api.cql("salang", "name_ps LIKE '%'") == {TUNNEL}  # G, J: no wildcard matches NULL
    assert api.cql("salang", "name_ps NOT LIKE 'x%'") == {TUNNEL}  # C: NULL stays NULL under NOT


@check("/req/advanced-comparison-operators/between-predicate")
def _between(api: Api) -> None:
    assert api.cql("provinces", "area_km2 BETWEEN 50000 AND 70000") == LARGEST
    assert api.cql("salang", "width_m BETWEEN 6 AND 6") == {TUNNEL}  # inclusive
    assert api.cql("salang", "length_km BETWEEN 2.67 AND 12") == {TUNNEL, TUNNEL2}
    assert api.cql("salang", "length_km NOT BETWEEN 3 AND 20") == {TUNNEL}
    assert api.cql("salang", "width_m NOT BETWEEN 7 AND 10") == {TUNNEL}  # C: NULL is not selected
    _refused_or_none(api, "salang", "name BETWEEN 1 AND 2")  # D: numeric (or cast: no name is a number)


@check("/req/advanced-comparison-operators/in-predicate")
def _in(api: Api) -> None:
    assert api.cql("provinces", "code IN ('AF-KAB', 'AF-HER', 'AF-XXX')") == {"AF-KAB", "AF-HER"}
    assert api.cql("provinces", "code NOT IN ('AF-KAB', 'AF-HER')") == PROVINCES - {"AF-KAB", "AF-HER"}
    assert api.cql("salang", "width_m IN (5, 6, 7)") == {TUNNEL}
    assert api.cql("projects", "status IN ('proposed', 'planned')") == {TUNNEL2}
    # B: one type; refused, or cast so that 5 matches no code.
    response = api.get("/collections/provinces/items", {"filter": "code IN ('AF-KAB', 5)", "limit": 100})
    assert response.status_code in (200, 400)
    if response.status_code == 200:
        assert {_key("provinces", f) for f in response.json()["features"]} == {"AF-KAB"}


def _kabul_box(d: float = 0.01) -> tuple[float, float, float, float]:
    return KABUL[0] - d, KABUL[1] - d, KABUL[0] + d, KABUL[1] + d


@check("/req/basic-spatial-functions/spatial-functions")
def _basic_spatial_functions(api: Api) -> None:
    lon, lat = KABUL
    assert api.cql("provinces", f"S_INTERSECTS(geometry, POINT({lon} {lat}))") == {"AF-KAB"}
    box = "BBOX({}, {}, {}, {})".format(*_kabul_box())
    assert api.cql("provinces", f"S_INTERSECTS(geometry, {box})") == {"AF-KAB"}
    assert api.cql("salang", "S_INTERSECTS(geometry, BBOX(69.0, 35.26, 69.05, 35.29))") == {TUNNEL2}


@check("/req/basic-spatial-functions/spatial-predicate")
def _spatial_predicate(api: Api) -> None:
    lon, lat = HERAT
    assert api.cql("provinces", f"S_INTERSECTS(geometry, POINT({lon} {lat}))") == {"AF-HER"}  # A
    not_herat = PROVINCES - {"AF-HER"}
    assert api.cql("provinces", f"NOT S_INTERSECTS(geometry, POINT({lon} {lat}))") == not_herat  # B


def _herat_box(d: float = 0.01) -> tuple[float, float, float, float]:
    return HERAT[0] - d, HERAT[1] - d, HERAT[0] + d, HERAT[1] + d


def _ring(box: tuple[float, float, float, float]) -> str:
    w, s, e, n = box
    return f"({w} {s}, {e} {s}, {e} {n}, {w} {n}, {w} {s})"


# Spatial literals of every kind (rule spatialInstance), each around Kabul and/or Herat.
def _literals() -> list[tuple[str, set[str]]]:
    k, h = KABUL, HERAT
    kb, hb = _kabul_box(), _herat_box()
    both = {"AF-KAB", "AF-HER"}
    return [
        (f"POINT Z({k[0]} {k[1]} 1791)", {"AF-KAB"}),
        (f"LINESTRING({kb[0]} {kb[1]}, {kb[2]} {kb[3]})", {"AF-KAB"}),
        (f"POLYGON({_ring(kb)})", {"AF-KAB"}),
        (f"MULTIPOINT(({k[0]} {k[1]}), ({h[0]} {h[1]}))", both),
        (f"MULTILINESTRING(({kb[0]} {kb[1]}, {kb[2]} {kb[3]}), ({hb[0]} {hb[1]}, {hb[2]} {hb[3]}))", both),
        (f"MULTIPOLYGON(({_ring(kb)}), ({_ring(hb)}))", both),
        (f"GEOMETRYCOLLECTION(POINT({k[0]} {k[1]}), LINESTRING({hb[0]} {hb[1]}, {hb[2]} {hb[3]}))", both),
        ("BBOX({}, {}, 0, {}, {}, 5000)".format(*kb), {"AF-KAB"}),
    ]


@check("/req/basic-spatial-functions-plus/spatial-data-types")
def _spatial_data_types(api: Api) -> None:
    for literal, expected in _literals():
        assert api.cql("provinces", f"S_INTERSECTS(geometry, {literal})") == expected, literal


def _spatial_cases() -> list[tuple[str, str, set[str]]]:
    k = KABUL
    return [
        ("salang", f"S_EQUALS(geometry, LINESTRING({X} 35.31005, {X} 35.322083, {X} 35.334116))", {TUNNEL}),
        # An end of the tunnel is on its boundary; tunnel-2 passes through that point.
        ("salang", f"S_TOUCHES(geometry, POINT({X} 35.31005))", {TUNNEL}),
        ("salang", "S_CROSSES(geometry, LINESTRING(69.0 35.3, 69.05 35.3))", {TUNNEL2}),
        ("salang", f"S_OVERLAPS(geometry, LINESTRING({X} 35.25, {X} 35.30))", {TUNNEL2}),
        ("salang", "S_WITHIN(geometry, BBOX(69.0, 35.30, 69.05, 35.34))", {TUNNEL}),
        ("salang", f"S_CONTAINS(geometry, POINT({X} 35.30))", {TUNNEL2}),
        ("salang", f"S_DISJOINT(geometry, POINT({X} 35.30))", {TUNNEL}),
        ("salang", f"S_INTERSECTS(geometry, POINT({X} 35.30))", {TUNNEL2}),
        ("provinces", f"S_CONTAINS(geometry, POINT({k[0]} {k[1]}))", {"AF-KAB"}),
        ("provinces", "S_WITHIN(geometry, BBOX({}, {}, {}, {}))".format(*AFGHANISTAN), PROVINCES),
        ("provinces", f"S_DISJOINT(geometry, POINT({k[0]} {k[1]}))", PROVINCES - {"AF-KAB"}),
    ]


@check("/req/spatial-functions/spatial-functions")
def _spatial_functions(api: Api) -> None:
    for cid, expr, expected in _spatial_cases():
        assert api.cql(cid, expr) == expected, expr


def _property_property_cases() -> list[tuple[str, str, set[str]]]:
    lon, lat = KABUL
    return [
        ("salang", "length_km < width_m", {TUNNEL}),
        ("salang", "6 = width_m", {TUNNEL}),
        ("provinces", "'AF-KAB' = code", {"AF-KAB"}),
        ("salang", "length_km BETWEEN 1 AND width_m", {TUNNEL}),  # /per/.../between-predicate B
        ("salang", "6 BETWEEN width_m AND 10", {TUNNEL}),  # /per/.../between-predicate A
        ("provinces", "'Kabul' IN (name, name_iso)", {"AF-KAB"}),  # /per/.../in-predicate A, B
        ("provinces", "'Kabul' LIKE 'K%'", PROVINCES),  # /per/.../like-predicate A
        ("provinces", f"S_INTERSECTS(POINT({lon} {lat}), geometry)", {"AF-KAB"}),
        ("provinces", "S_INTERSECTS(geometry, geometry)", PROVINCES),
    ]


@check("/req/property-property/withdraw-permissions")
def _withdraw_permissions(api: Api) -> None:
    for cid, expr, expected in _property_property_cases():
        assert api.cql(cid, expr) == expected, expr


def _arithmetic_cases() -> list[tuple[str, str, set[str]]]:
    return [
        ("salang", "width_m * 2 = 12", {TUNNEL}), ("salang", "length_km * 2 = 24", {TUNNEL2}),
        ("salang", "estimated_cost_usd / 1000000 = 1600", {TUNNEL2}), ("salang", "width_m % 4 = 2", {TUNNEL}),
        ("salang", "width_m div 4 = 1", {TUNNEL}), ("salang", "length_km div 5 = 2", {TUNNEL2}),
        ("salang", "width_m ^ 2 = 36", {TUNNEL}), ("salang", "width_m - 1 = 5", {TUNNEL}),
        ("salang", "(width_m + 2) * 3 = 24", {TUNNEL}), ("salang", "2 + width_m * 2 = 14", {TUNNEL}),
        ("salang", "2 ^ 3 * width_m = 48", {TUNNEL}), ("salang", "-width_m < 0", {TUNNEL}),
        ("provinces", "area_km2 * 2 > 100000", LARGEST),
        # B: a NULL operand makes the expression NULL (tunnel-2 has no width).
        ("salang", "width_m + 1 > 0", {TUNNEL}), ("salang", "NOT (width_m + 1 > 100)", {TUNNEL}),
    ]


@check("/req/arithmetic/arithmetic")
def _arithmetic(api: Api) -> None:
    for cid, expr, expected in _arithmetic_cases():
        assert api.cql(cid, expr) == expected, expr


# --- CQL2 text ---

@check("/req/cql2-text/basic-cql2")
def _text_basic(api: Api) -> None:
    # Keywords in any case (CQL2 clause 8: ABNF strings are case-insensitive).
    cases = [("provinces", "code = 'AF-KAB' or code = 'AF-HER'", {"AF-KAB", "AF-HER"}),
             ("provinces", "not code <> 'AF-KAB' and true", {"AF-KAB"}),
             ("provinces", '"code" = \'AF-KAB\'', {"AF-KAB"}),  # a quoted property name
             ("provinces", "area_km2 > 5e4", LARGEST), ("provinces", "area_km2 > +50000.0", LARGEST),
             ("provinces", "\tcode\n=\r'AF-KAB' ", {"AF-KAB"}),  # any whitespace
             ("salang", "width_m is null", {TUNNEL2}), ("salang", "width_m Is Not Null", {TUNNEL}),
             ("projects", "start_date = date('2023-07-12')", {HIGHWAY}),
             ("projects", "created_at < timestamp('2020-01-01T00:00:00Z')", {TUNNEL2}),
             ("provinces", "false", set())]
    for cid, expr, expected in cases:
        assert api.cql(cid, expr) == expected, expr


@check("/req/cql2-text/escaping")
def _text_escaping(api: Api) -> None:
    with _created(api, name="Girls' school", description="first line\nsecond\tcolumn") as (fid, _):
        assert api.cql("projects", "name = 'Girls'' school'") == {fid}  # B: doubled quote
        assert api.cql("projects", "name = 'Girls\\' school'") == {fid}  # B: backslash
        assert api.cql("projects", "description = 'first line\\nsecond\\tcolumn'") == {fid}  # C
        assert api.cql("projects", "description = 'first line\\nsecond column'") == set()


@check("/req/cql2-text/advanced-comparison-operators")
def _text_advanced(api: Api) -> None:
    cases = [("provinces", "code like 'AF-KA_'", {"AF-KAB", "AF-KAN", "AF-KAP"}),
             ("provinces", "code not like 'AF-%'", set()),
             ("salang", "width_m between 6 and 6", {TUNNEL}),
             ("salang", "length_km not between 3 and 20", {TUNNEL}),
             ("provinces", "code in ('AF-KAB')", {"AF-KAB"}),
             ("provinces", "code not in ('AF-KAB')", PROVINCES - {"AF-KAB"})]
    for cid, expr, expected in cases:
        assert api.cql(cid, expr) == expected, expr


@check("/req/cql2-text/basic-spatial-functions")
def _text_basic_spatial(api: Api) -> None:
    lon, lat = KABUL
    assert api.cql("provinces", f"s_intersects(geometry, point({lon} {lat}))") == {"AF-KAB"}
    box = "bbox({}, {}, {}, {})".format(*_kabul_box())
    assert api.cql("provinces", f"S_Intersects(geometry, {box})") == {"AF-KAB"}


@check("/req/cql2-text/basic-spatial-functions-plus")
def _text_spatial_plus(api: Api) -> None:
    for literal, expected in _literals():
        assert api.cql("provinces", f"S_INTERSECTS(geometry, {literal.lower()})") == expected, literal
    lon, lat = KABUL
    # B: a 3D literal with or without the Z.
    assert api.cql("provinces", f"S_INTERSECTS(geometry, POINT({lon} {lat} 1791))") == {"AF-KAB"}
    assert api.cql("provinces", f"S_INTERSECTS(geometry, POINT Z ({lon} {lat} 1791))") == {"AF-KAB"}


@check("/req/cql2-text/spatial-functions")
def _text_spatial(api: Api) -> None:
    for cid, expr, expected in _spatial_cases():
        assert api.cql(cid, expr.replace("S_", "s_")) == expected, expr


@check("/req/cql2-text/property-property")
def _text_property_property(api: Api) -> None:
    for cid, expr, expected in _property_property_cases():
        assert api.cql(cid, expr) == expected, expr


@check("/req/cql2-text/arithmetic")
def _text_arithmetic(api: Api) -> None:
    for cid, expr, expected in _arithmetic_cases():
        assert api.cql(cid, expr.replace(" div ", " DIV ")) == expected, expr


# --- CQL2 JSON ---

def _p(name: str) -> dict[str, str]:
    return {"property": name}


def _op(op: str, *args: Any) -> dict[str, Any]:
    return {"op": op, "args": list(args)}


@check("/req/cql2-json/basic-cql2")
def _json_basic(api: Api) -> None:
    kab, her = _op("=", _p("code"), "AF-KAB"), _op("=", _p("code"), "AF-HER")
    cases: list[tuple[str, Any, set[str]]] = [
        ("provinces", kab, {"AF-KAB"}), ("provinces", _op("or", kab, her), {"AF-KAB", "AF-HER"}),
        ("provinces", _op("and", _op("or", kab, her), _op("not", her)), {"AF-KAB"}),
        ("provinces", True, PROVINCES), ("provinces", False, set()),
        ("provinces", _op("<>", _p("code"), "AF-KAB"), PROVINCES - {"AF-KAB"}),
        ("provinces", _op(">", _p("area_km2"), 50000), LARGEST),
        ("provinces", _op("<=", _p("code"), "AF-BAM"), {"AF-BAL", "AF-BAM"}),
        ("salang", _op("isNull", _p("width_m")), {TUNNEL2}),
        ("salang", _op("not", _op(">", _p("width_m"), 1)), set()),
        ("projects", _op("=", _p("start_date"), {"date": "2023-07-12"}), {HIGHWAY}),
        ("projects", _op("<", _p("created_at"), {"timestamp": "2020-01-01T00:00:00Z"}), {TUNNEL2}),
    ]
    for cid, expr, expected in cases:
        assert api.cqlj(cid, expr) == expected, expr


@check("/req/cql2-json/advanced-comparison-operators")
def _json_advanced(api: Api) -> None:
    cases: list[tuple[str, Any, set[str]]] = [
        ("provinces", _op("like", _p("code"), "AF-KA_"), {"AF-KAB", "AF-KAN", "AF-KAP"}),
        ("provinces", _op("like", _p("code"), "AF-KA\\_"), set()),
        ("salang", _op("between", _p("width_m"), 6, 6), {TUNNEL}),
        ("salang", _op("not", _op("between", _p("length_km"), 3, 20)), {TUNNEL}),
        ("provinces", _op("in", _p("code"), ["AF-KAB", "AF-HER"]), {"AF-KAB", "AF-HER"}),
    ]
    for cid, expr, expected in cases:
        assert api.cqlj(cid, expr) == expected, expr


def _geojson_literals() -> list[tuple[Any, set[str]]]:
    k, h, kb, hb = KABUL, HERAT, _kabul_box(), _herat_box()

    def ring(b: tuple[float, float, float, float]) -> list[list[float]]:
        return [[b[0], b[1]], [b[2], b[1]], [b[2], b[3]], [b[0], b[3]], [b[0], b[1]]]
    both = {"AF-KAB", "AF-HER"}
    return [
        ({"type": "Point", "coordinates": [k[0], k[1], 1791]}, {"AF-KAB"}),
        ({"type": "LineString", "coordinates": [[kb[0], kb[1]], [kb[2], kb[3]]]}, {"AF-KAB"}),
        ({"type": "Polygon", "coordinates": [ring(kb)]}, {"AF-KAB"}),
        ({"type": "MultiPoint", "coordinates": [list(k), list(h)]}, both),
        ({"type": "MultiLineString", "coordinates": [[[kb[0], kb[1]], [kb[2], kb[3]]],
                                                     [[hb[0], hb[1]], [hb[2], hb[3]]]]}, both),
        ({"type": "MultiPolygon", "coordinates": [[ring(kb)], [ring(hb)]]}, both),
        ({"type": "GeometryCollection", "geometries": [{"type": "Point", "coordinates": list(k)},
                                                        {"type": "Point", "coordinates": list(h)}]}, both),
        ({"bbox": [kb[0], kb[1], 0, kb[2], kb[3], 5000]}, {"AF-KAB"}),
    ]


@check("/req/cql2-json/basic-spatial-functions")
def _json_basic_spatial(api: Api) -> None:
    point = {"type": "Point", "coordinates": list(KABUL)}
    assert api.cqlj("provinces", _op("s_intersects", _p("geometry"), point)) == {"AF-KAB"}
    box = {"bbox": list(_kabul_box())}
    assert api.cqlj("provinces", _op("s_intersects", _p("geometry"), box)) == {"AF-KAB"}


@check("/req/cql2-json/basic-spatial-functions-plus")
def _json_spatial_plus(api: Api) -> None:
    for literal, expected in _geojson_literals():
        assert api.cqlj("provinces", _op("s_intersects", _p("geometry"), literal)) == expected, literal


@check("/req/cql2-json/spatial-functions")
def _json_spatial(api: Api) -> None:
    def line(*ys: float) -> dict[str, Any]:
        return {"type": "LineString", "coordinates": [[X, y] for y in ys]}
    at = {"type": "Point", "coordinates": [X, 35.30]}
    end = {"type": "Point", "coordinates": [X, 35.31005]}
    across = {"type": "LineString", "coordinates": [[69.0, 35.3], [69.05, 35.3]]}
    cases: list[tuple[str, Any, set[str]]] = [
        ("salang", _op("s_equals", _p("geometry"), line(35.31005, 35.322083, 35.334116)), {TUNNEL}),
        ("salang", _op("s_touches", _p("geometry"), end), {TUNNEL}),
        ("salang", _op("s_crosses", _p("geometry"), across), {TUNNEL2}),
        ("salang", _op("s_overlaps", _p("geometry"), line(35.25, 35.30)), {TUNNEL2}),
        ("salang", _op("s_within", _p("geometry"), {"bbox": [69.0, 35.30, 69.05, 35.34]}), {TUNNEL}),
        ("salang", _op("s_contains", _p("geometry"), at), {TUNNEL2}),
        ("salang", _op("s_disjoint", _p("geometry"), at), {TUNNEL}),
    ]
    for cid, expr, expected in cases:
        assert api.cqlj(cid, expr) == expected, expr


@check("/req/cql2-json/property-property")
def _json_property_property(api: Api) -> None:
    cases: list[tuple[str, Any, set[str]]] = [
        ("salang", _op("<", _p("length_km"), _p("width_m")), {TUNNEL}),
        ("salang", _op("=", 6, _p("width_m")), {TUNNEL}),
        ("provinces", _op("=", "AF-KAB", _p("code")), {"AF-KAB"}),
        ("salang", _op("between", _p("length_km"), 1, _p("width_m")), {TUNNEL}),
        ("salang", _op("between", 6, _p("width_m"), 10), {TUNNEL}),
        ("provinces", _op("in", "Kabul", [_p("name"), _p("name_iso")]), {"AF-KAB"}),
        ("provinces", _op("s_intersects", {"type": "Point", "coordinates": list(KABUL)}, _p("geometry")),
         {"AF-KAB"}),
        ("provinces", _op("s_intersects", _p("geometry"), _p("geometry")), PROVINCES),
    ]
    for cid, expr, expected in cases:
        assert api.cqlj(cid, expr) == expected, expr


@check("/req/cql2-json/arithmetic")
def _json_arithmetic(api: Api) -> None:
    w = _p("width_m")
    cases: list[tuple[Any, set[str]]] = [
        (_op("=", _op("*", w, 2), 12), {TUNNEL}), (_op("=", _op("%", w, 4), 2), {TUNNEL}),
        (_op("=", _op("div", w, 4), 1), {TUNNEL}), (_op("=", _op("^", w, 2), 36), {TUNNEL}),
        (_op("=", _op("/", _p("estimated_cost_usd"), 1000000), 1600), {TUNNEL2}),
        (_op("=", _op("-", _op("+", w, 2), 1), 7), {TUNNEL}),
        (_op(">", _op("+", w, 1), 0), {TUNNEL}),  # NULL for tunnel-2
    ]
    for expr, expected in cases:
        assert api.cqlj("salang", expr) == expected, expr


# ================================ Part 4: Create, Replace, Update, Delete ================================

def _allow(api: Api, path: str) -> set[str]:
    response = api.request("OPTIONS", path)
    assert response.status_code == 200, (path, response.status_code)
    return {m.strip() for m in response.headers["allow"].split(",")}


@check("/req/core/methods", "/req/update/methods")
def _methods(api: Api) -> None:
    assert "POST" in _allow(api, "/collections/projects/items")
    assert {"PUT", "PATCH", "DELETE"} <= _allow(api, f"/collections/projects/items/{HIGHWAY}")
    # B: the static layers are not mutable, and say so.
    assert not {"POST", "PUT", "PATCH", "DELETE"} & _allow(api, "/collections/provinces/items")
    assert not {"POST", "PUT", "PATCH", "DELETE"} & _allow(api, f"/collections/salang/items/{TUNNEL}")


@check("/req/create-replace-delete/post-op", "/req/features/resources-endpoint")
def _post_op(api: Api) -> None:
    # The resources endpoint is {landingPageUri}/collections/{collectionId}/items.
    href = next(ln["href"] for ln in api.collection("projects")["links"] if ln["rel"] == "items")
    assert _path(href) == "/collections/projects/items"
    response = api.send("POST", href, point_feature(name="Clinic"))
    assert response.status_code == 201
    api.send("DELETE", response.headers["location"])


@check("/req/create-replace-delete/post-body")
def _post_body(api: Api) -> None:
    with _created(api, name="Clinic in Herat", category="health", status="planned", at=HERAT) as (_, path):
        feature = api.ok(path)
        assert feature["geometry"] == {"type": "Point", "coordinates": list(HERAT)}
        props = feature["properties"]
        assert (props["name"], props["category"], props["status"]) == ("Clinic in Herat", "health", "planned")


@check("/req/create-replace-delete/post-content-type")
def _post_content_type(api: Api) -> None:
    body = json.dumps(point_feature()).encode()
    assert api.send("POST", "/collections/projects/items", body, content_type="text/plain").status_code == 415
    for media in (GEOJSON, "application/json"):
        response = api.send("POST", "/collections/projects/items", body, content_type=media)
        assert response.status_code == 201, media
        api.send("DELETE", response.headers["location"])


@check("/req/create-replace-delete/post-response-rid")
def _post_response_rid(api: Api) -> None:
    before = {f["id"] for f in api.features("projects")}
    feature = {**point_feature(), "id": TUNNEL2}  # a client id is not the server's to take
    # Three projects of different names: the same one again would be a duplicate (409, geo/duplicates.py).
    with _created(api, name="First school") as (first, _), _created(api, name="Second school") as (second, _):
        response = api.send("POST", "/collections/projects/items", feature)
        third = response.json()["id"]
        try:
            assert len({first, second, third}) == 3 and not {first, second, third} & before
        finally:
            api.send("DELETE", f"/collections/projects/items/{third}")
    assert api.ok(f"/collections/projects/items/{TUNNEL2}")["properties"]["status"] == "proposed"


@check("/req/create-replace-delete/post-response")
def _post_response(api: Api) -> None:
    response = api.send("POST", "/collections/projects/items", point_feature())
    assert response.status_code == 201
    location = response.headers["location"]
    try:
        assert _path(location) == f"/collections/projects/items/{response.json()['id']}"
        assert api.ok(location)["id"] == response.json()["id"]
    finally:
        api.send("DELETE", location)


@check("/req/create-replace-delete/put-op", "/req/create-replace-delete/put-response",
       "/req/create-replace-delete/put-body")
def _put(api: Api) -> None:
    with _created(api, description="to be dropped") as (fid, path):
        replacement = point_feature(*HERAT, name="Replaced", category="water", status="approved")
        response = api.send("PUT", path, replacement)
        assert response.status_code in (200, 204)
        feature = api.ok(path)
        assert feature["id"] == fid and feature["geometry"]["coordinates"] == list(HERAT)
        assert feature["properties"]["name"] == "Replaced" and feature["properties"]["category"] == "water"
        assert "description" not in feature["properties"] or feature["properties"]["description"] is None


@check("/req/create-replace-delete/put-content-type")
def _put_content_type(api: Api) -> None:
    with _created(api) as (_, path):
        body = json.dumps(point_feature(name="Typed")).encode()
        assert api.send("PUT", path, body, content_type="text/plain").status_code == 415
        assert api.send("PUT", path, body, content_type=GEOJSON).status_code in (200, 204)


@check("/req/create-replace-delete/put-rid", "/req/features/geojson-create-replace")
def _put_rid(api: Api) -> None:
    with _created(api) as (fid, path):
        body = {**point_feature(*HERAT, name="Renamed"), "id": "someone-else"}
        response = api.send("PUT", path, body)
        if response.status_code not in (200, 204):  # geojson-create-replace A lets a server refuse it instead
            assert 400 <= response.status_code < 500
            return
        assert api.ok(path)["id"] == fid
        assert api.get("/collections/projects/items/someone-else").status_code == 404
        # geojson-create-replace B: "geometry" is the property whose role is primary-geometry.
        schema = api.ok("/collections/projects/schema")
        roles = {p.get("x-ogc-role"): n for n, p in schema["properties"].items()}
        assert roles["primary-geometry"] == "geometry"
        assert api.ok(path)["geometry"] == {"type": "Point", "coordinates": list(HERAT)}


@check("/req/create-replace-delete/put-rid-exception", "/req/features/collection-endpoint")
def _put_rid_exception(api: Api) -> None:
    # This service does not create with PUT: 404 (A), or 412 with If-Match (B); and it does not say it does.
    missing = "/collections/projects/items/no-such-project"
    assert api.send("PUT", missing, point_feature()).status_code == 404
    assert api.send("PUT", missing, point_feature(), If_Match='"abc"').status_code == 412
    assert api.get(missing).status_code == 404
    assert api.collection("projects").get("supportsNonAutogeneratedResourceIds") is not True
    assert api.ok("/collections/projects").get("supportsNonAutogeneratedResourceIds") is not True


@check("/req/create-replace-delete/delete-op", "/req/create-replace-delete/delete-response")
def _delete(api: Api) -> None:
    response = api.send("POST", "/collections/projects/items", point_feature())
    path = _path(response.headers["location"])
    assert api.send("DELETE", path).status_code in (200, 204)
    # The feature is no longer served. This service keeps deleted projects' history (issue 14), so it
    # answers 410 Gone, RFC 9110's code for a resource known to be gone for good, rather than 404.
    assert api.get(path).status_code == 410
    fid = path.rsplit("/", 1)[1]
    assert fid not in [f["id"] for f in api.ok("/collections/projects/items", {"limit": 1000})["features"]]


@check("/req/create-replace-delete/options-op")
def _options_op(api: Api) -> None:
    for cid in COLLECTIONS:
        assert api.request("OPTIONS", f"/collections/{cid}/items").status_code == 200
    for path in (f"/collections/salang/items/{TUNNEL}", f"/collections/projects/items/{HIGHWAY}"):
        assert api.request("OPTIONS", path).status_code == 200


@check("/req/create-replace-delete/options-response")
def _options_response(api: Api) -> None:
    # C: what Allow lists is what the resource takes now; a method it leaves out is a 405.
    for path in (f"/collections/salang/items/{TUNNEL}", "/collections/provinces/items",
                 f"/collections/projects/items/{HIGHWAY}", "/collections/projects/items"):
        allowed = _allow(api, path)
        assert {"GET", "OPTIONS"} <= allowed, path
        for method in {"POST", "PUT", "PATCH", "DELETE"} - allowed:
            response = api.send(method, path, b"{}", content_type=GEOJSON, If_Match='"stale"')
            assert response.status_code == 405, (method, path)
            assert {m.strip() for m in response.headers["allow"].split(",")} == allowed


@check("/req/update/update-patch-op", "/req/update/update-patch-response", "/req/update/update-patch-body")
def _patch(api: Api) -> None:
    with _created(api, name="Patched school") as (_, path):
        response = api.send("PATCH", path, {"properties": {"status": "approved"}},
                            content_type=MERGE)
        assert response.status_code in (200, 204)
        props = api.ok(path)["properties"]
        assert props["status"] == "approved" and props["name"] == "Patched school"  # only that part changed


@check("/req/update/rid")
def _patch_rid(api: Api) -> None:
    with _created(api) as (fid, path):
        response = api.send("PATCH", path, {"id": "someone-else", "properties": {"status": "planned"}},
                            content_type=MERGE)
        assert response.status_code in (200, 204)
        assert api.ok(path)["id"] == fid
        assert api.get("/collections/projects/items/someone-else").status_code == 404


@check("/req/features/resource-endpoint")
def _resource_endpoint(api: Api) -> None:
    with _created(api, name="Listed") as (fid, _):
        # featureId from the features resource, the endpoint from the template.
        listed = {f["id"] for f in api.features("projects")}
        assert fid in listed
        path = f"/collections/projects/items/{fid}"
        assert api.send("PATCH", path, {"properties": {"status": "planned"}},
                        content_type=MERGE).status_code in (200, 204)
        # The status stays `planned`: going back to `proposed` is not an allowed transition (geo/workflow.py).
        assert api.send("PUT", path, point_feature(name="Listed", status="planned")).status_code in (200, 204)


def _province_of(api: Api, path: str) -> str:
    province: str = api.ok(path)["properties"]["province"]
    return province


@check("/req/features/crs-crs84")
def _features_crs84(api: Api) -> None:
    with _created(api) as (_, path):
        assert _province_of(api, path) == "AF-KAB"  # A: read as longitude, latitude
    response = api.send("POST", "/collections/projects/items", point_feature(), Content_Crs=f"<{EPSG}3857>")
    assert 400 <= response.status_code < 500, response.status_code  # B: another CRS is an error


@check("/req/features/content-crs-header", "/req/features/crs-other-crs")
def _features_content_crs(api: Api) -> None:
    lon, lat = KABUL
    response = api.send("POST", "/collections/projects/items", point_feature(lat, lon),
                        Content_Crs=f"<{EPSG}4326>")
    assert response.status_code == 201, response.text
    path = _path(response.headers["location"])
    try:
        assert api.ok(path)["geometry"]["coordinates"] == [lon, lat]
        x, y = _mercator(*HERAT)
        put = api.send("PUT", path, point_feature(x, y), Content_Crs=f"<{EPSG}3857>")
        assert put.status_code in (200, 204)
        assert _province_of(api, path) == "AF-HER"
        patch = {"geometry": {"type": "Point", "coordinates": [KANDAHAR[1], KANDAHAR[0]]}}
        assert api.send("PATCH", path, patch, content_type=MERGE,
                        Content_Crs=f"<{EPSG}4326>").status_code in (200, 204)
        assert _province_of(api, path) == "AF-KAN"
    finally:
        api.send("DELETE", path)
    refused = api.send("POST", "/collections/projects/items", point_feature(), Content_Crs=f"<{EPSG}99999>")
    assert 400 <= refused.status_code < 500


@check("/req/features/default-crs")
def _features_default_crs(api: Api) -> None:
    with _created(api, at=HERAT) as (_, path):
        assert _province_of(api, path) == "AF-HER"


def _receivables(schema: dict[str, Any]) -> dict[str, Any]:
    """A value for every receivable (not read-only) property of a schema, built from its constraints."""
    values: dict[str, Any] = {}
    for name, prop in schema["properties"].items():
        if prop.get("readOnly") or _spatial(prop):
            continue
        if "enum" in prop:
            values[name] = prop["enum"][-1]
        elif prop.get("format") == "date":
            values[name] = "2024-03-01" if "start" in name else "2026-09-30"
        elif prop.get("type") in ("number", "integer"):
            values[name] = 250000
        elif prop.get("type") == "array":
            values[name] = ["Ministry of Public Works"]
        elif name.endswith("_url"):
            values[name] = "https://example.org/projects/1"
        else:
            values[name] = f"A {name.replace('_', ' ')}"
    return values


@check("/req/features/schema")
def _features_schema(api: Api) -> None:
    schema = api.ok("/collections/projects/schema")
    Draft202012Validator.check_schema(schema)  # A
    values = _receivables(schema)
    response = api.send("POST", "/collections/projects/items",
                        {"type": "Feature", "geometry": {"type": "Point", "coordinates": list(KABUL)},
                         "properties": values})
    assert response.status_code == 201, response.text  # B
    path = _path(response.headers["location"])
    try:
        props = api.ok(path)["properties"]
        assert all(props[name] == value for name, value in values.items())
    finally:
        api.send("DELETE", path)
    extra = api.send("POST", "/collections/projects/items", point_feature(not_declared="x"))
    if schema.get("additionalProperties", True) is not False:  # C
        assert extra.status_code == 201
        api.send("DELETE", extra.headers["location"])


@check("/req/features/update-json-merge-patch")
def _features_merge_patch(api: Api) -> None:
    # RFC 7396 over the feature as the schema describes it: its properties side by side with its geometry.
    with _created(api, name="Merge", description="old") as (fid, path):
        assert api.send("PATCH", path, {"description": "new", "status": "planned"},
                        content_type=MERGE).status_code in (200, 204)  # A
        props = api.ok(path)["properties"]
        assert (props["description"], props["status"], props["name"]) == ("new", "planned", "Merge")
        assert api.send("PATCH", path, {"description": None}, content_type=MERGE).status_code in (200, 204)
        assert api.ok(path)["properties"].get("description") is None  # D: null unsets
        herat = {"type": "Point", "coordinates": list(HERAT)}
        assert api.send("PATCH", path, {"geometry": herat}, content_type=MERGE).status_code in (200, 204)  # C
        assert api.ok(path)["geometry"] == herat
        # B: the id-role property is not updated (refused, or ignored as /req/update/rid asks).
        response = api.send("PATCH", path, {"id": "someone-else"}, content_type=MERGE)
        assert response.status_code in (200, 204) or 400 <= response.status_code < 500
        assert api.ok(path)["id"] == fid


# ================================ Part 4: optimistic locking with ETags ================================

@check("/req/optimistic-locking-etags/get-etag-response")
def _get_etag(api: Api) -> None:
    for path in (f"/collections/projects/items/{HIGHWAY}", f"/collections/salang/items/{TUNNEL}"):
        etag = _etag(api, path)
        assert re.fullmatch(r'"[^"]+"', etag), f"a strong entity tag: {etag}"
        assert _etag(api, path) == etag  # stable while the resource is
    with _created(api) as (_, path):
        before = _etag(api, path)
        api.send("PATCH", path, {"properties": {"status": "approved"}}, content_type=MERGE)
        assert _etag(api, path) != before  # it follows the resource's state


@check("/req/optimistic-locking-etags/put-etag-response")
def _put_etag(api: Api) -> None:
    with _created(api) as (_, path):
        response = api.send("PUT", path, point_feature(name="New name"), Accept_Encoding="identity")
        assert response.status_code in (200, 204)
        assert response.headers["etag"] == _etag(api, path)


@check("/req/optimistic-locking-etags/patch-etag-response")
def _patch_etag(api: Api) -> None:
    with _created(api) as (_, path):
        response = api.send("PATCH", path, {"properties": {"status": "planned"}},
                            content_type=MERGE, Accept_Encoding="identity")
        assert response.status_code in (200, 204)
        assert response.headers["etag"] == _etag(api, path)


def _conditional_writes(api: Api, method: str, body: Any, content_type: str) -> None:
    """RFC 9110 13.1.1 for one method: a current tag (alone or in a list) or * passes; a stale or weak tag
    is a 412 and changes nothing."""
    with _created(api) as (_, path):
        def write(if_match: str | None) -> int:
            headers = {} if if_match is None else {"If_Match": if_match}
            return api.send(method, path, body, content_type=content_type, **headers).status_code
        stale = _etag(api, path)
        assert write(stale) in (200, 204)
        current = _etag(api, path)
        assert write(stale) == 412 and _etag(api, path) == current
        assert write(f"W/{current}") == 412  # If-Match compares strongly
        assert write(f'"other", {current}') in (200, 204)
        assert write("*") in (200, 204)
        # Without If-Match the write is carried out (/per/optimistic-locking-etags/ifmatch-patch-op B).
        assert write(None) in (200, 204, 409, 428)
    # No current representation: If-Match is false, even for *.
    for tag in ('"abc"', "*"):
        missing = api.send(method, "/collections/projects/items/no-such-project", body,
                           content_type=content_type, If_Match=tag)
        assert missing.status_code == 412, (method, tag, missing.status_code)


@check("/req/optimistic-locking-etags/ifmatch-put-op", "/req/optimistic-locking-etags/ifmatch-put-eval")
def _ifmatch_put(api: Api) -> None:
    _conditional_writes(api, "PUT", point_feature(name="Locked"), GEOJSON)


@check("/req/optimistic-locking-etags/ifmatch-patch-op", "/req/optimistic-locking-etags/ifmatch-patch-eval")
def _ifmatch_patch(api: Api) -> None:
    _conditional_writes(api, "PATCH", {"properties": {"description": "locked"}}, MERGE)


# ================================ Part 5: Schemas ================================

def _schema_docs(api: Api) -> Iterator[tuple[str, dict[str, Any]]]:
    for cid in sorted(COLLECTIONS):
        for resource in ("schema", "sortables"):
            path = f"/collections/{cid}/{resource}"
            response = api.get(path, Accept=SCHEMA_JSON)
            assert response.status_code == 200 and _media(response) == SCHEMA_JSON, path
            yield path, response.json()


def _subschemas(prop: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield prop
    for key in ("items", "additionalProperties", "not", "if", "then", "else", "contains"):
        if isinstance(prop.get(key), dict):
            yield from _subschemas(prop[key])
    for key in ("properties", "$defs", "patternProperties"):
        for sub in prop.get(key, {}).values():
            yield from _subschemas(sub)
    for key in ("allOf", "anyOf", "oneOf", "prefixItems"):
        for sub in prop.get(key, []):
            yield from _subschemas(sub)


@check("/req/schemas/json-schema")
def _schemas_json_schema(api: Api) -> None:
    for path, doc in _schema_docs(api):
        Draft202012Validator.check_schema(doc)
        assert doc["$schema"] == "https://json-schema.org/draft/2020-12/schema" and doc["type"] == "object"
        assert doc["$id"] == api.url(path) and "?" not in doc["$id"]
        assert api.ok(doc["$id"], Accept=SCHEMA_JSON) == doc


@check("/req/schemas/properties")
def _schemas_properties(api: Api) -> None:
    server_set = {"id", "province", "province_name", "created_at", "updated_at", "status_history"}
    for path, doc in _schema_docs(api):
        for name, prop in doc["properties"].items():
            if _spatial(prop):
                assert "type" not in prop and "$ref" not in prop  # B
                assert GEOMETRY_FORMAT.match(prop["format"])  # C
            else:
                assert "type" in prop, (path, name)  # A
            if prop.get("format") in ("date", "date-time"):
                assert prop["type"] == "string", (path, name)  # D
            if prop.get("format") in ("interval-iso8601", "interval-array"):
                assert prop["type"] == ("string" if prop["format"] == "interval-iso8601" else "array")  # E
            assert not (prop.get("readOnly") and prop.get("writeOnly")), (path, name)
        # H: what only a read returns is read-only: the server-set project fields, every static layer field.
        if path == "/collections/projects/schema":
            assert all(doc["properties"][n].get("readOnly") for n in server_set & set(doc["properties"]))
        elif path.endswith("/schema"):
            assert all(p.get("readOnly") for p in doc["properties"].values()), path


@check("/req/schemas/additional-keywords")
def _schemas_additional_keywords(api: Api) -> None:
    for path, doc in _schema_docs(api):
        for prop in doc["properties"].values():
            for sub in _subschemas(prop):
                odd = [k for k in sub if k not in JSON_SCHEMA_KEYWORDS and not k.startswith("x-ogc-")]
                assert not odd, (path, odd)


def _keyword_values(api: Api, keyword: str) -> Iterator[Any]:
    for _, doc in _schema_docs(api):
        for prop in doc["properties"].values():
            for sub in _subschemas(prop):
                if keyword in sub:
                    yield sub


@check("/req/schemas/role")
def _schemas_role(api: Api) -> None:
    roles = [sub["x-ogc-role"] for sub in _keyword_values(api, "x-ogc-role")]
    assert roles and all(isinstance(role, str) for role in roles)


@check("/req/schemas/role-id")
def _schemas_role_id(api: Api) -> None:
    for cid in COLLECTIONS:
        doc = api.ok(f"/collections/{cid}/schema", Accept=SCHEMA_JSON)
        ids = [n for n, p in doc["properties"].items() if p.get("x-ogc-role") == "id"]
        assert len(ids) == 1, (cid, ids)  # C
        assert doc["properties"][ids[0]]["type"] in ("string", "integer")  # B
        # A: it is the features' identifier.
        kind = str if doc["properties"][ids[0]]["type"] == "string" else int
        assert all(isinstance(f["id"], kind) for f in api.features(cid))


@check("/req/schemas/property-seq")
def _schemas_property_seq(api: Api) -> None:
    for sub in _keyword_values(api, "x-ogc-propertySeq"):
        assert isinstance(sub["x-ogc-propertySeq"], int) and not isinstance(sub["x-ogc-propertySeq"], bool)


@check("/req/schemas/unit")
def _schemas_unit(api: Api) -> None:
    for sub in _keyword_values(api, "x-ogc-unit"):
        assert isinstance(sub["x-ogc-unit"], str)
        lang = sub.get("x-ogc-unitLang", "UCUM")
        assert lang in ("UCUM", "QUDT") or isinstance(lang, str)
        if lang == "QUDT":
            assert sub["x-ogc-unit"].startswith(("http://", "https://"))


@check("/req/schemas/definition")
def _schemas_definition(api: Api) -> None:
    for sub in _keyword_values(api, "x-ogc-definition"):
        assert urlsplit(sub["x-ogc-definition"]).scheme in ("http", "https", "urn")


@check("/req/schemas/nullvalues")
def _schemas_nullvalues(api: Api) -> None:
    for sub in _keyword_values(api, "x-ogc-nullValues"):
        values = sub["x-ogc-nullValues"]
        assert isinstance(values, list) and all(isinstance(v, (int, float, str)) for v in values)


def _schema_link(api: Api, cid: str, rel: str, resource: str) -> None:
    links = [ln for ln in api.collection(cid)["links"] if ln["rel"] == rel]
    assert len(links) == 1 and _path(links[0]["href"]) == f"/collections/{cid}/{resource}", (cid, rel)
    assert links[0].get("type") == SCHEMA_JSON


@check("/req/returnables-and-receivables/link")
def _rr_link(api: Api) -> None:
    for cid in COLLECTIONS:
        _schema_link(api, cid, SCHEMA_REL, "schema")


@check("/req/returnables-and-receivables/op")
def _rr_op(api: Api) -> None:
    for cid in COLLECTIONS:
        response = api.get(f"/collections/{cid}/schema", Accept=SCHEMA_JSON)
        assert response.status_code == 200 and _media(response) == SCHEMA_JSON


@check("/req/returnables-and-receivables/response")
def _rr_response(api: Api) -> None:
    _schemas_json_schema(api)  # B: the schema conforms to the Schemas class
    _schemas_properties(api)
    for cid in COLLECTIONS:
        doc = api.ok(f"/collections/{cid}/schema", Accept=SCHEMA_JSON)
        if doc.get("additionalProperties", True) is False:
            # C: nothing undeclared is returned, and nothing undeclared is received.
            for feature in api.features(cid):
                assert set(feature["properties"]) <= set(doc["properties"]), (cid, feature["id"])
            refused = api.send("POST", f"/collections/{cid}/items", point_feature(not_declared=1))
            assert refused.status_code in (400, 422), refused.status_code


@check("/req/sortables/link")
def _sortables_link(api: Api) -> None:
    for cid in COLLECTIONS:
        _schema_link(api, cid, SORTABLES_REL, "sortables")


@check("/req/sortables/op")
def _sortables_op(api: Api) -> None:
    for cid in COLLECTIONS:
        response = api.get(f"/collections/{cid}/sortables", Accept=SCHEMA_JSON)
        assert response.status_code == 200 and _media(response) == SCHEMA_JSON


@check("/req/sortables/response")
def _sortables_response(api: Api) -> None:
    for cid in COLLECTIONS:
        doc = api.ok(f"/collections/{cid}/sortables", Accept=SCHEMA_JSON)
        Draft202012Validator.check_schema(doc)
        for name, prop in doc["properties"].items():
            assert prop.get("type") not in ("object", "array") and not _spatial(prop), (cid, name)  # C, D
        if doc.get("additionalProperties", True) is False:  # E
            api.refused(f"/collections/{cid}/items", {"sortby": "no_such_property"})
        else:
            assert api.get(f"/collections/{cid}/items", {"sortby": "no_such_property"}).status_code == 200
    # Each is really a sort key: provinces by code, both ways.
    codes = [f["properties"]["code"] for f in api.features("provinces", {"sortby": "-code"})]
    assert codes == sorted(PROVINCES, reverse=True)


# ================================ OGC API - Tiles 1.0 ================================
# The ids are full requirement URIs (tests/conformance_table.py says why). The tiles are on OGC's
# WebMercatorQuad: EPSG:3857, its origin at the world's top-left corner, 2^z tiles a side at zoom z.

TREQ = "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/req"
TILES_CLASSES = [f"http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/{name}"
                 for name in ("core", "tileset", "tilesets-list", "geodata-tilesets", "mvt")]
MVT = "application/vnd.mapbox-vector-tile"
OGC_REL = "http://www.opengis.net/def/rel/ogc/1.0"
TILING_SCHEME_REL = f"{OGC_REL}/tiling-scheme"
TILESETS_RELS = {f"{OGC_REL}/tilesets-vector", f"{OGC_REL}/tilesets-map", f"{OGC_REL}/tilesets-coverage"}
# WebMercatorQuad in OGC-NA's tile matrix set register.
WEB_MERCATOR_QUAD = "http://www.opengis.net/def/tilematrixset/OGC/1.0/WebMercatorQuad"
TILE_PATH = "/collections/{collection_id}/tiles/{tileMatrixSetId}/{tileMatrix}/{tileRow}/{tileCol}"
# Half the side of the WebMercatorQuad square, in metres: pi times the WGS 84 semi-major axis.
HALF_WORLD = math.pi * 6378137.0
# An MVT's grid: 4096 units a side (the extent every tile here declares; checked on each layer).
MVT_EXTENT = 4096

# The tile set metadata schemas of OGC 17-083r4 (2D-Tile-Matrix-Set, schemas/tms/2.0/json: tileSet,
# link, crs, dataType, tileMatrixLimits, geospatialData), written out; the projJSON form of a CRS is
# only required to be an object.
TMS_LINK = {"type": "object", "required": ["href", "rel"],
            "properties": {"href": {"type": "string"}, "rel": {"type": "string"},
                           "templated": {"type": "boolean"}, "varBase": {"type": "string"},
                           "type": {"type": "string"}, "hreflang": {"type": "string"},
                           "title": {"type": "string"}, "length": {"type": "integer"}}}
TMS_CRS = {"oneOf": [{"type": "string"}, {"type": "object", "oneOf": [
    {"required": ["uri"], "properties": {"uri": {"type": "string", "format": "uri"}}},
    {"required": ["wkt"], "properties": {"wkt": {"type": "object"}}},
    {"required": ["referenceSystem"], "properties": {"referenceSystem": {"type": "object"}}}]}]}
TMS_DATA_TYPE = {"anyOf": [{"type": "string"}, {"type": "string", "enum": ["map", "vector", "coverage"]}]}
TILE_SET = {
    "type": "object", "required": ["dataType", "crs"],
    "properties": {
        "title": {"type": "string"}, "description": {"type": "string"}, "dataType": TMS_DATA_TYPE,
        "crs": TMS_CRS, "tileMatrixSetURI": {"type": "string", "format": "uri"},
        "links": {"type": "array", "items": TMS_LINK},
        "tileMatrixSetLimits": {"type": "array", "items": {
            "type": "object",
            "required": ["tileMatrix", "minTileRow", "maxTileRow", "minTileCol", "maxTileCol"],
            "properties": {"tileMatrix": {"type": "string"},
                           **{k: {"type": "integer", "minimum": 0}
                              for k in ("minTileRow", "maxTileRow", "minTileCol", "maxTileCol")}}}},
        "layers": {"type": "array", "minItems": 1, "items": {
            "type": "object", "required": ["id", "dataType"],
            "properties": {"id": {"type": "string"}, "title": {"type": "string"}, "dataType": TMS_DATA_TYPE,
                           "minTileMatrix": {"type": "string"}, "maxTileMatrix": {"type": "string"},
                           "links": {"type": "array", "items": TMS_LINK}}}}}}
# The list of tilesets, as /req/tilesets-list/tileset-links gives its schema.
TILESETS = {"type": "object", "required": ["tilesets"], "properties": {
    "links": {"type": "array", "items": TMS_LINK},
    "tilesets": {"type": "array", "items": {
        "type": "object", "required": ["dataType", "links", "crs"],
        "properties": {"title": {"type": "string"}, "dataType": TMS_DATA_TYPE, "crs": TMS_CRS,
                       "tileMatrixSetURI": {"type": "string", "format": "uri"},
                       "links": {"type": "array", "items": TMS_LINK}}}}}}


def _schema_errors(schema: dict[str, Any], doc: Any) -> list[str]:
    return [e.message for e in Draft202012Validator(schema).iter_errors(doc)]


def _tile_of(lon: float, lat: float, z: int) -> tuple[int, int, float, float]:
    """Row, column and the point's MVT grid position in that tile: EPSG:3857 mapped linearly onto the
    tile's square (top-left 0,0), from the defining formulas, not the server's grid."""
    mx, my = _mercator(lon, lat)
    span = 2 * HALF_WORLD / (1 << z)
    fx, fy = (mx + HALF_WORLD) / span, (HALF_WORLD - my) / span
    row, col = int(fy), int(fx)
    return row, col, (fx - col) * MVT_EXTENT, (fy - row) * MVT_EXTENT


def _tile_path(cid: str, z: int, row: int, col: int) -> str:
    return f"/collections/{cid}/tiles/WebMercatorQuad/{z}/{row}/{col}"


def _decoded(response: httpx.Response) -> dict[str, Any]:
    """An MVT body decoded, y down as the format stores it."""
    assert response.status_code == 200, (response.status_code, response.text[:200])
    assert _media(response) == MVT
    layers: dict[str, Any] = mapbox_vector_tile.decode(response.content,
                                                       default_options={"y_coord_down": True})
    return layers


def _tileset_doc(api: Api, cid: str) -> dict[str, Any]:
    tilesets = api.ok(f"/collections/{cid}/tiles", Accept="application/json")["tilesets"]
    href = next(ln["href"] for ln in tilesets[0]["links"] if ln["rel"] == "self")
    doc: dict[str, Any] = api.ok(href, Accept="application/json")
    return doc


def _item_template(api: Api, cid: str) -> dict[str, Any]:
    return next(ln for ln in _tileset_doc(api, cid)["links"] if ln["rel"] == "item")


def _fill(template: str, z: int, row: int, col: int) -> str:
    values = {"{tileMatrix}": z, "{tileRow}": row, "{tileCol}": col}
    return re.sub(r"\{tile(Matrix|Row|Col)\}", lambda m: str(values[m.group(0)]), template)


@check(f"{TREQ}/core/conformance-success")
def _tiles_conformance_success(api: Api) -> None:
    listed = api.ok("/conformance", Accept="application/json")["conformsTo"]
    assert all(uri in listed for uri in TILES_CLASSES), listed


def _features(layers: dict[str, Any], name: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = layers.get(name, {}).get("features", [])
    return found


def _salang_tile(z: int) -> tuple[int, int, float, float]:
    """The tile (and grid position) of the Salang tunnel's midpoint: both tunnels cross it."""
    return _tile_of(X, (35.31005 + 35.334116) / 2, z)


@check(f"{TREQ}/core/tc-op")
def _tc_op(api: Api) -> None:
    # A and C: the tileset gives the template, its variables named as the tileset class names them, and
    # the API definition documents the path.
    link = _item_template(api, "salang")
    assert all(var in link["href"] for var in ("{tileMatrix}", "{tileRow}", "{tileCol}")), link
    assert TILE_PATH in api.openapi["paths"]
    # B: the variables are WebMercatorQuad's matrix, row and column. At zoom 14 the tunnels' tile holds
    # both; the same numbers taken as column and row (a tile in the southern hemisphere) hold nothing.
    row, col, _, _ = _salang_tile(14)
    assert len(_features(_decoded(api.get(_fill(link["href"], 14, row, col))), "salang")) == 2
    swapped = api.get(_fill(link["href"], 14, col, row))
    assert swapped.status_code == 204 or not _features(_decoded(swapped), "salang")
    # Kabul's tile at zoom 5 by the same formulas is the one the OpenAPI walk uses (x 22, y 12).
    assert _tile_of(*KABUL, 5)[:2] == (12, 22)


@check(f"{TREQ}/core/tc-success")
def _tc_success(api: Api) -> None:
    # A and B: 200, in the format asked for, holding what intersects the tile and nothing else: Kabul's
    # tile at zoom 7 (2.8 degrees a side) holds Kabul province and not Herat or Kandahar.
    row, col, _, _ = _tile_of(*KABUL, 7)
    response = api.get(_tile_path("provinces", 7, row, col), Accept=MVT)
    names = {f["properties"].get("name") for f in _features(_decoded(response), "provinces")}
    kabul = next(f for f in api.features("provinces") if f["properties"]["code"] == "AF-KAB")
    others = [f for f in api.features("provinces") if f["properties"]["code"] in ("AF-HER", "AF-KAN")]
    assert kabul["properties"]["name"] in names, names
    assert not names & {f["properties"]["name"] for f in others}, names
    # Inside or intersecting: each feature reaches into the tile's square, or into the margin of 1/16 of
    # a tile (256 of 4096) that MVT tiles carry so that what is drawn across an edge is not cut there.
    margin = MVT_EXTENT // 16
    for feature in _features(_decoded(response), "provinces"):
        xs = [p[0] for p in _positions(feature["geometry"])]
        ys = [p[1] for p in _positions(feature["geometry"])]
        assert max(xs) >= -margin and min(xs) <= MVT_EXTENT + margin, feature["properties"]
        assert max(ys) >= -margin and min(ys) <= MVT_EXTENT + margin, feature["properties"]


@check(f"{TREQ}/core/tc-error")
def _tc_error(api: Api) -> None:
    # A: outside the matrix set: row 32 at zoom 5 (32 rows: 0-31), column 32, zoom 25 (0-24).
    for path in (_tile_path("projects", 5, 32, 0), _tile_path("projects", 5, 0, 32),
                 _tile_path("projects", 25, 0, 0)):
        assert api.get(path).status_code in (400, 404), path
    # B: inside it, with no data: the Bering Sea's tile at zoom 5 (0, 0) for the projects of Afghanistan.
    empty = api.get(_tile_path("projects", 5, 0, 0))
    assert empty.status_code == 204 or not _features(_decoded(empty), "projects")


def _path_parameter(api: Api, name: str) -> dict[str, Any]:
    param = api.parameter(TILE_PATH, name)
    assert param["in"] == "path" and param["required"] is True, param
    return param


@check(f"{TREQ}/core/tc-tilematrix-definition")
def _tc_tilematrix_definition(api: Api) -> None:
    assert _path_parameter(api, "tileMatrix")["schema"]["type"] == "string"


@check(f"{TREQ}/core/tc-tilerow-definition")
def _tc_tilerow_definition(api: Api) -> None:
    schema = _path_parameter(api, "tileRow")["schema"]
    assert schema["type"] == "integer" and schema["minimum"] == 0, schema


@check(f"{TREQ}/core/tc-tilecol-definition")
def _tc_tilecol_definition(api: Api) -> None:
    schema = _path_parameter(api, "tileCol")["schema"]
    assert schema["type"] == "integer" and schema["minimum"] == 0, schema


@check(f"{TREQ}/tileset/description")
def _tileset_description(api: Api) -> None:
    for cid in COLLECTIONS:
        # A: JSON, following the tile set metadata schema.
        doc = _tileset_doc(api, cid)
        assert not _schema_errors(TILE_SET, doc), (cid, _schema_errors(TILE_SET, doc)[:5])
        # C: the registered matrix set's URI.
        assert doc["tileMatrixSetURI"] == WEB_MERCATOR_QUAD
        # D: a tiling-scheme link to the matrix set's definition (OGC 17-083r4 tileMatrixSet.json:
        # crs and tileMatrices required; WebMercatorQuad's 25 matrices, 0 to 24).
        scheme = api.ok(next(ln["href"] for ln in doc["links"] if ln["rel"] == TILING_SCHEME_REL),
                        Accept="application/json")
        assert scheme["id"] == "WebMercatorQuad" and "crs" in scheme, scheme.keys()
        assert [m["id"] for m in scheme["tileMatrices"]] == [str(z) for z in range(25)]
        # E, F, G: a templated item link with the three variables and the tiles' media type.
        items = [ln for ln in doc["links"] if ln["rel"] == "item"]
        assert items, doc["links"]
        for link in items:
            assert all(v in link["href"] for v in ("{tileMatrix}", "{tileRow}", "{tileCol}")), link
            assert link["templated"] is True and link["type"] == MVT, link


@check(f"{TREQ}/tilesets-list/tileset-links")
def _tilesets_list_links(api: Api) -> None:
    for cid in COLLECTIONS:
        doc = api.ok(f"/collections/{cid}/tiles", Accept="application/json")
        assert not _schema_errors(TILESETS, doc), (cid, _schema_errors(TILESETS, doc)[:5])
        assert doc["tilesets"]
        for entry in doc["tilesets"]:
            rels = {ln["rel"] for ln in entry["links"]}
            assert {"self", TILING_SCHEME_REL} <= rels and entry["tileMatrixSetURI"] == WEB_MERCATOR_QUAD
            # B: `self` is the full tileset metadata (it has the tile template the summary lacks).
            full = api.ok(next(ln["href"] for ln in entry["links"] if ln["rel"] == "self"),
                          Accept="application/json")
            assert any(ln["rel"] == "item" for ln in full["links"]) and full["dataType"] == entry["dataType"]


@check(f"{TREQ}/tilesets-list/tileset-path")
def _tilesets_list_path(api: Api) -> None:
    for cid in COLLECTIONS:
        doc = api.ok(f"/collections/{cid}/tiles", Accept="application/json")
        assert isinstance(doc["tilesets"], list) and doc["tilesets"], cid


@check(f"{TREQ}/geodata-tilesets/desc-links")
def _geodata_desc_links(api: Api) -> None:
    for cid in COLLECTIONS:
        for doc in (api.collection(cid), api.ok(f"/collections/{cid}", Accept="application/json")):
            links = [ln for ln in doc["links"] if ln["rel"] in TILESETS_RELS]
            assert links, (cid, doc["links"])
            for link in links:
                assert _path(link["href"]) == f"/collections/{cid}/tiles"
                assert api.ok(link["href"], Accept="application/json")["tilesets"]


@check(f"{TREQ}/geodata-tilesets/operation")
def _geodata_operation(api: Api) -> None:
    for cid in COLLECTIONS:
        collection_path = _path(next(ln["href"] for ln in api.ok(f"/collections/{cid}")["links"]
                                     if ln["rel"] == "self"))
        tiles = api.get(f"{collection_path}/tiles", Accept="application/json")
        assert tiles.status_code == 200 and len(tiles.json()["tilesets"]) >= 1, cid


@check(f"{TREQ}/mvt/content")
def _mvt_content(api: Api) -> None:
    row, col, _, _ = _salang_tile(14)
    response = api.get(_tile_path("salang", 14, row, col), Accept=MVT)
    # A: one tile: one Tile message whose layers each have the 4096 extent.
    tile = vector_tile_pb2.tile()
    tile.ParseFromString(response.content)
    assert [layer.name for layer in tile.layers] == ["salang"]
    assert all(layer.extent == MVT_EXTENT for layer in tile.layers)
    # B: every feature has a geometry and a type (1 point, 2 line, 3 polygon; 0 is UNKNOWN).
    for feature in tile.layers[0].features:
        assert feature.type in (1, 2, 3) and len(feature.geometry) > 0
    # C: the grid maps linearly onto the tile's EPSG:3857 square, 0,0 at its top-left: both tunnels run
    # along x = 69.026944, and the tunnel ends at 35.334116 (north) and 35.31005 (south), which fall in
    # two tiles at zoom 14, each end where the linear mapping puts it.
    for lat in (35.334116, 35.31005):
        row, col, x, y = _tile_of(X, lat, 14)
        features = _features(_decoded(api.get(_tile_path("salang", 14, row, col), Accept=MVT)), "salang")
        assert len(features) == 2, lat
        positions = [p for f in features for p in _positions(f["geometry"])]
        assert all(abs(p[0] - x) <= 1 for p in positions), (lat, x, positions)
        assert any(abs(p[1] - y) <= 1 for p in positions), (lat, y, positions)


# ================================ The tests ================================

def _params() -> list[Any]:
    return [pytest.param(req, marks=_marks(req), id=req) for cls in CLASSES for req in cls.checked]


@pytest.mark.parametrize("req", _params())
def test_requirement(api: Api, req: str) -> None:
    """One requirement of a conformance class, checked over HTTP."""
    CHECKS[req](api)


def test_every_requirement_has_exactly_one_check() -> None:
    """The table and the checks name the same ids (no requirement unchecked, no check unlisted)."""
    listed = [req for cls in CLASSES for req in cls.checked]
    assert len(listed) == len(set(listed))
    assert set(CHECKS) == set(listed)
    untested = {req for cls in CLASSES for req in cls.not_testable}
    assert not untested & set(listed)


def test_conformance_lists_exactly_the_claimed_classes(api: Api) -> None:
    """/conformance lists the classes written out above, once each, and nothing else; the table agrees."""
    listed = api.ok("/conformance")["conformsTo"]
    assert len(listed) == len(set(listed))
    assert sorted(listed) == sorted(CLAIMED)
    assert sorted(claimed_uris()) == sorted(CLAIMED)


def test_the_tables_print() -> None:
    """`python -m tests.test_conformance --list` prints every id of both tables."""
    text = report()
    assert all(req in text for cls in CLASSES for req in (*cls.checked, *cls.not_testable))


if __name__ == "__main__":
    sys.exit(main(sys.argv))
