"""The OpenAPI document against the standards' parameter fragments and /req/oas/security.

Expected values are the standards' own: the OpenAPI 3.0 fragments of OGC API - Features Part 1
(/req/core/fc-bbox-definition, fc-limit-definition, fc-time-definition, as ets-ogcapi-features10
asserts them), Part 3 (/req/filter/filter-param, filter-lang-param, filter-crs-param) and the Part 8
draft (/req/sorting/sortby-definition).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from openapi_spec_validator import validate

from geo.app import create_app
from tests.conftest import workspace

ITEMS = "/collections/{collection_id}/items"
# Every operation that takes the item filters (items, downloads, the map, statistics).
FILTERED = (ITEMS, "/layers/{name}", "/map", "/stats")
WRITES = {"post", "put", "patch", "delete"}


def _param(doc: dict[str, Any], path: str, name: str) -> dict[str, Any]:
    found: list[dict[str, Any]] = [p for p in doc["paths"][path]["get"]["parameters"] if p["name"] == name]
    assert len(found) == 1, f"{name} on {path}: {found}"
    return found[0]


def _how(param: dict[str, Any]) -> tuple[str, bool, str | None, bool | None]:
    """Where and how a parameter is sent: in, required, style, explode."""
    return param["in"], param.get("required", False), param.get("style"), param.get("explode")


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory, provinces_cache: Path) -> Iterator[TestClient]:
    """A server whose page sizes (3 by default, at most 5) differ from the shipped defaults."""
    settings = workspace(tmp_path_factory.mktemp("openapi"), provinces_cache, api_keys="k",
                         default_limit=3, max_limit=5)
    with TestClient(create_app(settings)) as client:
        yield client


@pytest.fixture(scope="module")
def doc(small: TestClient) -> dict[str, Any]:
    """The OpenAPI document as a client reads it."""
    response = small.get("/api")
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


def test_the_document_is_valid_openapi_30(doc: dict[str, Any]) -> None:
    assert doc["openapi"].startswith("3.0.")
    validate(doc)  # raises on any OpenAPI 3.0 violation


@pytest.mark.parametrize("path", FILTERED)
def test_bbox_is_an_array_of_4_to_6_numbers_in_form_style(doc: dict[str, Any], path: str) -> None:
    # /req/core/fc-bbox-definition, checked the way ets-ogcapi-features10 (FeaturesBBox) does.
    bbox = _param(doc, path, "bbox")
    assert _how(bbox) == ("query", False, "form", False)
    assert bbox["schema"] == {"type": "array", "minItems": 4, "maxItems": 6, "items": {"type": "number"}}


def test_limit_is_an_integer_bounded_by_the_settings(doc: dict[str, Any]) -> None:
    # /req/core/fc-limit-definition; the minimum, maximum and default are the server's (3 and 5 here).
    limit = _param(doc, ITEMS, "limit")
    assert _how(limit) == ("query", False, "form", False)
    assert limit["schema"] == {"type": "integer", "minimum": 1, "maximum": 5, "default": 3}


@pytest.mark.parametrize("path", FILTERED)
def test_datetime_is_a_string_in_form_style(doc: dict[str, Any], path: str) -> None:
    # /req/core/fc-time-definition.
    datetime = _param(doc, path, "datetime")
    assert _how(datetime) == ("query", False, "form", False)
    assert datetime["schema"] == {"type": "string"}


@pytest.mark.parametrize("path", FILTERED)
def test_filter_parameters_follow_part_3(doc: dict[str, Any], path: str) -> None:
    # /req/filter/filter-param, filter-lang-param (A: the fragment, B: the encodings served, C: the
    # default), filter-crs-param.
    fragment = {k: v for k, v in _param(doc, path, "filter").items() if k not in ("description", "example")}
    assert fragment == {"name": "filter", "in": "query", "required": False, "schema": {"type": "string"},
                        "style": "form", "explode": False}
    lang = _param(doc, path, "filter-lang")
    assert lang["schema"]["type"] == "string" and lang["style"] == "form"
    assert sorted(lang["schema"]["enum"]) == ["cql2-json", "cql2-text"]
    assert lang["schema"]["default"] == "cql2-text"
    crs = _param(doc, path, "filter-crs")
    assert crs["schema"] == {"type": "string", "format": "uri-reference"}
    assert (crs["style"], crs["explode"]) == ("form", False)


# DESIGN.md "Project features": the two vocabularies, in its order.
STATUSES = ["proposed", "planned", "approved", "under_construction", "completed", "suspended", "cancelled"]
CATEGORIES = ["school", "health", "housing", "water", "energy", "transport", "other"]


@pytest.mark.parametrize("path", FILTERED)
def test_status_category_and_province_are_lists_of_the_schemas_values(doc: dict[str, Any], path: str) -> None:
    """The plain filters are comma-separated lists (`style: form, explode: false`); where only projects
    answer (/stats, /map) their items are the projects' vocabulary, elsewhere (Salang's `status` has
    other values) the description names it."""
    projects_only = path in ("/stats", "/map")
    for name, values in (("status", STATUSES), ("category", CATEGORIES), ("province", None)):
        param = _param(doc, path, name)
        assert _how(param) == ("query", False, "form", False)
        items = {"type": "string", "enum": values} if values and projects_only else {"type": "string"}
        assert param["schema"] == {"type": "array", "items": items}
        for value in values or ["provinces"]:
            assert f"`{value}`" in param["description"], (name, value)


def test_filter_lang_enum_and_default_hold_on_the_server(small: TestClient) -> None:
    # Each encoding in the enum is served; a filter without filter-lang is read as the default
    # (cql2-text), so CQL2 JSON without filter-lang is not understood. One of the two shipped
    # projects (the second Salang tunnel) is proposed.
    url = "/collections/projects/items"
    text = small.get(url, params={"filter": "status = 'proposed'"})
    assert text.status_code == 200 and text.json()["numberMatched"] == 1
    as_text = small.get(url, params={"filter": "status = 'proposed'", "filter-lang": "cql2-text"})
    assert as_text.json()["numberMatched"] == 1
    cql2_json = '{"op": "=", "args": [{"property": "status"}, "proposed"]}'
    as_json = small.get(url, params={"filter": cql2_json, "filter-lang": "cql2-json"})
    assert as_json.status_code == 200 and as_json.json()["numberMatched"] == 1
    assert small.get(url, params={"filter": cql2_json}).status_code == 400
    assert small.get(url, params={"filter": "status = 'proposed'", "filter-lang": "ecql"}).status_code == 400


def test_sortby_follows_the_sorting_draft(doc: dict[str, Any]) -> None:
    # Part 8 draft, /req/sorting/sortby-definition.
    sortby = _param(doc, ITEMS, "sortby")
    assert sortby["schema"] == {"type": "array", "minItems": 1,
                                "items": {"type": "string", "pattern": "[+|-]?[A-Za-z_].*"}}
    assert (sortby["style"], sortby["explode"]) == ("form", False)


def test_write_operations_name_a_bearer_scheme(doc: dict[str, Any]) -> None:
    # /req/oas/security: the access-controlled operations and their scheme are in the document.
    schemes = doc["components"]["securitySchemes"]
    bearer = [name for name, s in schemes.items() if s["type"] == "http" and s["scheme"].lower() == "bearer"]
    assert len(bearer) == 1
    secured = {(path, method) for path, item in doc["paths"].items() for method, op in item.items()
               if op.get("security")}
    writes = {(path, method) for path, item in doc["paths"].items() for method in item if method in WRITES}
    assert secured == writes == {(ITEMS, "post"), ("/collections/projects/import", "post"),
                                 ("/collections/projects/items/{feature_id}/restore", "post")} | {
        (f"{ITEMS}/{{feature_id}}", m) for m in ("put", "patch", "delete")}
    for path, method in secured:
        assert doc["paths"][path][method]["security"] == [{bearer[0]: []}]
    assert "security" not in doc  # reads stay open


def test_the_secured_operations_are_the_ones_that_refuse_anonymous_callers(
        doc: dict[str, Any], small: TestClient) -> None:
    # What the document says is what the server does: every secured operation answers 401 without a
    # key, and the open reads answer without one.
    feature = {"type": "Feature", "geometry": {"type": "Point", "coordinates": [69.17, 34.53]},
               "properties": {"name": "A school", "category": "school", "status": "proposed"}}
    for path, item in doc["paths"].items():
        concrete = path.replace("{collection_id}", "projects").replace("{feature_id}", "salang-tunnel-2")
        concrete = concrete.replace("{name}", "projects.geojson")
        for method, operation in item.items():
            if method == "options":
                continue
            response = small.request(method.upper(), concrete, json=feature if method != "get" else None)
            assert (response.status_code == 401) == bool(operation.get("security")), (method, path)
            if response.status_code == 401:
                assert response.headers["www-authenticate"].lower().startswith("bearer")


def test_the_document_is_built_once(small: TestClient) -> None:
    first = small.get("/api")
    assert small.get("/api").content == first.content
    app: FastAPI = small.app  # type: ignore[assignment]
    assert app.openapi() is app.openapi()
