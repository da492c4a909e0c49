"""Part 5 (Schemas) and sortables, over HTTP.

The requirement ids are those of OGC API - Features Part 5 / Common Part 3 1.0 (23-058r2): the
"schemas", "advanced-property-roles", "returnables-and-receivables" and "sortables" classes, and the
Part 8 draft (sorting). Expected values come from the standard and from the shipped data: 34
provinces (polygons), 2 Salang tunnels (lines), 2 projects.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlparse

import pytest
from fastapi.testclient import TestClient
from jsonschema import Draft202012Validator

from tests.conftest import AUTH, point_feature

COLLECTIONS = ("provinces", "salang", "projects")
SCHEMA_REL = "http://www.opengis.net/def/rel/ogc/1.0/schema"
SORTABLES_REL = "http://www.opengis.net/def/rel/ogc/1.0/sortables"
JSON_SCHEMA_2020_12 = "https://json-schema.org/draft/2020-12/schema"
SPATIAL_FORMAT = re.compile(
    r"^geometry-(any|point|multipoint|linestring|multilinestring|polygon|multipolygon|geometrycollection"
    r"|point-or-multipoint|linestring-or-multilinestring|polygon-or-multipolygon)$")
# The properties of a project a client writes; the rest are set by the server (the README, "Using it").
WRITABLE = {"name", "name_prs", "name_ps", "category", "status", "description", "budget_usd", "funders",
            "start_date", "end_date", "source_url", "source_note", "geometry_quality"}
SERVER_SET = {"id", "province", "province_name", "created_at", "updated_at", "status_history"}


def _path(href: str) -> str:
    return urlparse(href).path


def _get_schema(client: TestClient, cid: str, resource: str = "schema") -> dict[str, Any]:
    response = client.get(f"/collections/{cid}/{resource}")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/schema+json"
    body: dict[str, Any] = response.json()
    return body


def _features(client: TestClient, cid: str) -> list[dict[str, Any]]:
    features: list[dict[str, Any]] = client.get(f"/collections/{cid}/items", params={"limit": 1000}).json()[
        "features"]
    return features


def _instance(feature: dict[str, Any]) -> dict[str, Any]:
    """A feature as the logical schema sees it: its id, geometry and properties side by side.

    A null value is an absent one (the schema types a value when there is one).
    """
    props = {k: v for k, v in feature["properties"].items() if v is not None}
    return {**props, "id": feature["id"], "geometry": feature["geometry"]}


@pytest.mark.parametrize("cid", COLLECTIONS)
def test_every_collection_links_its_schema_and_sortables(client: TestClient, cid: str) -> None:
    # /req/returnables-and-receivables/link, /req/sortables/link.
    links = client.get(f"/collections/{cid}").json()["links"]
    for rel, resource in ((SCHEMA_REL, "schema"), (SORTABLES_REL, "sortables")):
        found = [ln for ln in links if ln["rel"] == rel]
        assert len(found) == 1 and found[0]["type"] == "application/schema+json"
        assert _path(found[0]["href"]) == f"/collections/{cid}/{resource}"
        response = client.get(_path(found[0]["href"]))
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/schema+json"


@pytest.mark.parametrize("resource", ["schema", "sortables"])
@pytest.mark.parametrize("cid", COLLECTIONS)
def test_the_schemas_are_json_schema_2020_12(client: TestClient, cid: str, resource: str) -> None:
    # /req/schemas/json-schema A (a valid JSON Schema) and B ($schema, $id without a query that returns
    # the schema when asked for application/schema+json, type object).
    doc = _get_schema(client, cid, resource)
    Draft202012Validator.check_schema(doc)
    assert doc["$schema"] == JSON_SCHEMA_2020_12 and doc["type"] == "object"
    assert urlparse(doc["$id"]).query == "" and _path(doc["$id"]) == f"/collections/{cid}/{resource}"
    again = client.get(_path(doc["$id"]), headers={"Accept": "application/schema+json"})
    assert again.headers["content-type"] == "application/schema+json" and again.json() == doc


@pytest.mark.parametrize(("cid", "geometry"), [
    ("provinces", "geometry-polygon"), ("salang", "geometry-linestring"),
    # Projects may be points, lines or polygons (the README), whatever the store holds now.
    ("projects", "geometry-any")])
def test_properties_are_typed_and_the_geometry_has_a_format(client: TestClient, cid: str,
                                                          geometry: str) -> None:
    # /req/schemas/properties A-D.
    props = _get_schema(client, cid)["properties"]
    spatial = {name for name, p in props.items() if "format" in p and p["format"].startswith("geometry-")}
    assert spatial == {"geometry"}
    assert props["geometry"]["format"] == geometry and SPATIAL_FORMAT.match(geometry)
    assert "type" not in props["geometry"] and "$ref" not in props["geometry"]
    for name, p in props.items():
        if name != "geometry":
            assert p["type"] in ("string", "number", "integer", "boolean", "object", "array"), name
            if p.get("format") in ("date", "date-time"):
                assert p["type"] == "string", name


@pytest.mark.parametrize("cid", COLLECTIONS)
def test_roles_of_the_id_and_the_primary_geometry(client: TestClient, cid: str) -> None:
    # /req/schemas/role, role-id (A-C), /req/advanced-property-roles/role-primary-geometry (A, B).
    props = _get_schema(client, cid)["properties"]
    roles = [(name, p["x-ogc-role"]) for name, p in props.items() if "x-ogc-role" in p]
    assert all(isinstance(role, str) for _, role in roles)
    assert [name for name, role in roles if role == "id"] == ["id"]
    assert props["id"]["type"] in ("string", "integer") and props["id"]["readOnly"] is True
    assert [name for name, role in roles if role == "primary-geometry"] == ["geometry"]


def test_projects_have_a_primary_interval_from_start_to_end_date(client: TestClient) -> None:
    # /req/advanced-property-roles/role-primary-interval-start, -end, primary-temporal-constraints A, C:
    # `datetime` filters projects on start_date..end_date, so those are the primary interval.
    props = _get_schema(client, "projects")["properties"]
    roles = {p["x-ogc-role"]: name for name, p in props.items() if "x-ogc-role" in p}
    assert roles == {"id": "id", "primary-geometry": "geometry", "primary-interval-start": "start_date",
                     "primary-interval-end": "end_date"}
    assert props["start_date"]["format"] == props["end_date"]["format"] == "date"


@pytest.mark.parametrize("cid", ["provinces", "salang"])
def test_layers_without_time_have_no_temporal_role(client: TestClient, cid: str) -> None:
    # Neither layer has a temporal property (`datetime` does not apply to them).
    props = _get_schema(client, cid)["properties"]
    assert {p["x-ogc-role"] for p in props.values() if "x-ogc-role" in p} == {"id", "primary-geometry"}
    assert not [n for n, p in props.items() if p.get("format") in ("date", "date-time")]


def test_project_schema_marks_what_the_server_sets_as_read_only(client: TestClient) -> None:
    # /req/schemas/properties H: properties only applicable when fetched are readOnly.
    doc = _get_schema(client, "projects")
    props = doc["properties"]
    assert {n for n, p in props.items() if p.get("readOnly")} == SERVER_SET
    assert set(props) == WRITABLE | SERVER_SET | {"geometry"}
    assert sorted(doc["required"]) == ["category", "name", "status"]
    assert doc["additionalProperties"] is False


def test_writable_properties_round_trip_and_read_only_ones_are_the_servers(client: TestClient) -> None:
    # Receivables: every property the schema leaves writable is kept as sent; a read-only one is not.
    sent = {"name": "Clinic", "name_prs": "کلینیک", "name_ps": "کلینیک", "category": "health",
            "status": "planned", "description": "A clinic", "budget_usd": 125000.5, "funders": ["A", "B"],
            "start_date": "2026-01-01", "end_date": "2027-06-30", "source_url": "https://example.org/clinic",
            "source_note": "test", "geometry_quality": "exact"}
    schema = _get_schema(client, "projects")
    assert {n for n, p in schema["properties"].items() if not p.get("readOnly")} == set(sent) | {"geometry"}
    bogus = {"province": "AF-HEL", "province_name": "Helmand", "created_at": "2000-01-01T00:00:00Z"}
    feature = {**point_feature(), "properties": {**sent, **bogus}}
    created = client.post("/collections/projects/items", headers=AUTH, json=feature)
    assert created.status_code == 201
    stored = client.get(_path(created.headers["location"])).json()
    assert {k: stored["properties"][k] for k in sent} == sent
    # The point lies in Kabul; the server places it, whatever the client said.
    assert stored["properties"]["province"] == "AF-KAB"
    assert stored["properties"]["created_at"] != bogus["created_at"]
    Draft202012Validator(schema).validate(_instance(stored))


def test_undeclared_properties_are_refused_as_the_closed_schema_says(client: TestClient) -> None:
    # /req/returnables-and-receivables/response C: additionalProperties false -> not allowed.
    response = client.post("/collections/projects/items", headers=AUTH, json=point_feature(colour="red"))
    assert response.status_code in (400, 422)
    assert response.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize(("cid", "count"), [("provinces", 34), ("salang", 2), ("projects", 2)])
def test_every_returned_feature_is_valid_against_its_schema(client: TestClient, cid: str, count: int) -> None:
    # The schema describes the returnables: every feature served validates against it.
    validator = Draft202012Validator(_get_schema(client, cid))
    features = _features(client, cid)
    assert len(features) == count
    for feature in features:
        errors = [e.message for e in validator.iter_errors(_instance(feature))]
        assert not errors, (feature["id"], errors)


@pytest.mark.parametrize("cid", ["provinces", "salang"])
def test_read_only_layers_have_only_read_only_properties(client: TestClient, cid: str) -> None:
    # Nothing in these layers can be written: every property is only ever fetched.
    props = _get_schema(client, cid)["properties"]
    assert all(p.get("readOnly") is True for p in props.values())
    assert client.post(f"/collections/{cid}/items", headers=AUTH, json=point_feature()).status_code == 405


@pytest.mark.parametrize("cid", COLLECTIONS)
def test_schema_and_queryables_agree(client: TestClient, cid: str) -> None:
    # One source: each queryable is a property of the schema with the same type, format and values,
    # and each simple-valued property of the schema is queryable.
    props = _get_schema(client, cid)["properties"]
    queryables = _get_schema(client, cid, "queryables")["properties"]
    for name, q in queryables.items():
        for key in ("type", "format", "enum"):
            if name != "geometry":
                assert q.get(key) == props[name].get(key), (name, key)
    # The queryables document names the geometry generically; the schema knows its type.
    assert queryables["geometry"]["format"] in ("geometry-any", props["geometry"]["format"])
    simple = {n for n, p in props.items() if p.get("type") in ("string", "number", "integer", "boolean")}
    assert simple - {"id"} <= set(queryables)


@pytest.mark.parametrize("cid", COLLECTIONS)
def test_sortables_are_simple_and_not_spatial(client: TestClient, cid: str) -> None:
    # Part 5 /req/sortables/response C (no object or array), D (no spatial property); Part 8 draft
    # /req/sorting/get-sortables-success F (additionalProperties, if present, is false).
    doc = _get_schema(client, cid, "sortables")
    assert doc["additionalProperties"] is False
    for name, p in doc["properties"].items():
        assert p["type"] in ("string", "number", "integer", "boolean"), name
        assert not str(p.get("format", "")).startswith("geometry"), name
    queryables = set(_get_schema(client, cid, "queryables")["properties"])
    assert set(doc["properties"]) == (queryables - {"geometry"}) | {"id"}


@pytest.mark.parametrize("cid", COLLECTIONS)
def test_every_sortable_sorts(client: TestClient, cid: str) -> None:
    # Each listed sortable is accepted by sortby, both ways, and orders the features by its values
    # (missing values last, as the sortby parameter says), checked here against Python's own sort.
    for name in _get_schema(client, cid, "sortables")["properties"]:
        for descending in (False, True):
            sortby = ("-" if descending else "") + name
            page = client.get(f"/collections/{cid}/items", params={"sortby": sortby, "limit": 1000})
            assert page.status_code == 200, (sortby, page.text)
            values = [f["id"] if name == "id" else f["properties"].get(name) for f in page.json()["features"]]
            present = [v for v in values if v is not None]
            assert values[:len(present)] == present, f"{sortby}: a missing value is not last"
            assert present == sorted(present, reverse=descending), sortby


def test_sorting_projects_by_hand(client: TestClient) -> None:
    # The two shipped projects: the Salang highway reconstruction started 2023-07-12, the second
    # tunnel has no start date (so it comes last either way).
    def ids(sortby: str) -> list[str]:
        page = client.get("/collections/projects/items", params={"sortby": sortby})
        return [f["id"] for f in page.json()["features"]]
    assert ids("id") == ["salang-highway-reconstruction", "salang-tunnel-2"]
    assert ids("-id") == ["salang-tunnel-2", "salang-highway-reconstruction"]
    assert ids("start_date") == ids("-start_date") == ["salang-highway-reconstruction", "salang-tunnel-2"]


@pytest.mark.parametrize("name", ["geometry", "funders", "status_history", "no_such_property"])
def test_what_is_not_sortable_is_refused(client: TestClient, name: str) -> None:
    # Part 5 /req/sortables/response E: with additionalProperties false, an undeclared sortable is a 400.
    response = client.get("/collections/projects/items", params={"sortby": name})
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"


def test_schema_as_html_lists_every_property(client: TestClient) -> None:
    doc = _get_schema(client, "projects")
    page = client.get("/collections/projects/schema?f=html")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    for name in doc["properties"]:
        assert f"<code>{name}</code>" in page.text
    browser = client.get("/collections/projects/schema", headers={"Accept": "text/html"})
    assert browser.headers["content-type"].startswith("text/html")


@pytest.mark.parametrize("resource", ["schema", "sortables"])
def test_conditional_get_and_unknown_collection(client: TestClient, resource: str) -> None:
    first = client.get(f"/collections/salang/{resource}")
    again = client.get(f"/collections/salang/{resource}", headers={"If-None-Match": first.headers["etag"]})
    assert again.status_code == 304 and again.content == b""
    missing = client.get(f"/collections/nowhere/{resource}")
    assert missing.status_code == 404 and missing.headers["content-type"] == "application/problem+json"


def test_a_repeated_parameter_is_refused(client: TestClient) -> None:
    response = client.get("/collections/projects/schema?f=json&f=html")
    assert response.status_code == 400 and response.headers["content-type"] == "application/problem+json"
