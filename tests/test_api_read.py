"""The read side of OGC API - Features, through HTTP."""

from __future__ import annotations

from urllib.parse import parse_qs, urlparse

import pytest
from fastapi.testclient import TestClient

from tests.conftest import AUTH, point_feature


def _rels(doc: dict[str, object]) -> dict[str, dict[str, str]]:
    return {ln["rel"]: ln for ln in doc["links"]}  # type: ignore[attr-defined]


def test_landing_page_links(client: TestClient) -> None:
    doc = client.get("/").json()
    rels = _rels(doc)
    for rel in ("self", "service-desc", "service-doc", "conformance", "data"):
        assert rel in rels
    assert client.get(urlparse(rels["service-desc"]["href"]).path).json()["paths"]
    html = client.get("/", headers={"Accept": "text/html"})
    assert html.headers["content-type"].startswith("text/html") and "/map" in html.text
    assert client.get("/?f=html").headers["content-type"].startswith("text/html")


def test_conformance_lists_core_and_geojson(client: TestClient) -> None:
    classes = client.get("/conformance").json()["conformsTo"]
    assert "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core" in classes
    assert "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson" in classes


def test_collections_have_extents_and_links(client: TestClient) -> None:
    doc = client.get("/collections").json()
    assert [c["id"] for c in doc["collections"]] == ["provinces", "salang", "projects"]
    for coll in doc["collections"]:
        minx, miny, maxx, maxy = coll["extent"]["spatial"]["bbox"][0]
        assert 60 < minx <= maxx < 75.5 and 29 < miny < maxy < 38.6
        rels = {ln["rel"] for ln in coll["links"]}
        assert {"self", "items", "enclosure"} <= rels
        assert client.get(f"/collections/{coll['id']}").json()["id"] == coll["id"]
    provinces = client.get("/collections/provinces").json()
    assert provinces["extent"]["spatial"]["bbox"][0][0] == pytest.approx(60.5, abs=0.1)


def test_paging_with_next_and_prev(client: TestClient) -> None:
    seen: list[str] = []
    url: str | None = "/collections/provinces/items?limit=10"
    pages = 0
    while url:
        page = client.get(url).json()
        assert page["numberMatched"] == 34
        assert page["numberReturned"] == len(page["features"])
        seen += [f["id"] for f in page["features"]]
        links = _rels(page)
        if pages:
            assert "prev" in links
        url = links["next"]["href"] if "next" in links else None
        pages += 1
    assert pages == 4 and len(seen) == 34 == len(set(seen))
    last = client.get("/collections/provinces/items?limit=10&offset=30").json()
    prev = parse_qs(urlparse(_rels(last)["prev"]["href"]).query)
    assert prev["offset"] == ["20"] and prev["limit"] == ["10"]


def test_default_limit_and_clamping(client: TestClient) -> None:
    assert client.get("/collections/provinces/items").json()["numberReturned"] == 10
    assert client.get("/collections/provinces/items?limit=1000000").json()["numberReturned"] == 34


def test_bbox_filters_provinces(client: TestClient) -> None:
    # A small box around Kabul city.
    doc = client.get("/collections/provinces/items", params={"bbox": "69.1,34.5,69.2,34.55"}).json()
    assert [f["id"] for f in doc["features"]] == ["AF-KAB"]
    doc = client.get("/collections/provinces/items", params={"province": "AF-PAR,AF-BGL"}).json()
    assert sorted(f["id"] for f in doc["features"]) == ["AF-BGL", "AF-PAR"]


def test_property_and_time_filters_on_projects(client: TestClient) -> None:
    client.post("/collections/projects/items", headers=AUTH, json=point_feature(
        name="Herat clinic", lon=62.2, lat=34.35, category="health", status="planned",
        start_date="2027-01-01", end_date="2028-06-30"))
    doc = client.get("/collections/projects/items", params={"category": "health"}).json()
    assert [f["properties"]["name"] for f in doc["features"]] == ["Herat clinic"]
    doc = client.get("/collections/projects/items", params={"status": "proposed,planned",
                                                            "province": "AF-HER"}).json()
    assert doc["numberMatched"] == 1
    assert client.get("/collections/projects/items", params={"status": "completed"}).json()[
        "numberMatched"] == 0
    # /req/core/fc-time-response: the Salang reconstruction started on 2023-07-12 with no end date, so
    # it is still running; the second tunnel has no dates (no temporal geometry), so it matches every
    # datetime (C); the clinic runs from 2027-01-01 through the whole of 2028-06-30.
    def names(value: str) -> list[str]:
        doc = client.get("/collections/projects/items", params={"datetime": value}).json()
        return [f["properties"]["name"] for f in doc["features"]]

    tunnel, highway, clinic = "Second Salang Tunnel", "Salang highway reconstruction", "Herat clinic"
    assert names("2028-07-01/..") == [tunnel, highway]
    assert names("2028-06-30T23:00:00Z") == [tunnel, highway, clinic]
    assert names("2027-06-01/2027-06-30") == [tunnel, highway, clinic]
    assert names("2020-01-01/2022-12-31") == [tunnel]
    assert names("2023-07-12") == [tunnel, highway]
    assert names("2023-07-11T23:59:59Z") == [tunnel]
    assert names("../2026-12-31") == [tunnel, highway]


def test_single_item_and_404(client: TestClient) -> None:
    doc = client.get("/collections/provinces/items/AF-KAB").json()
    assert doc["properties"]["name"] == "Kabul"
    assert {"self", "collection"} <= set(_rels(doc))
    missing = client.get("/collections/provinces/items/AF-XXX")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
    assert "AF-XXX" in missing.json()["detail"]
    assert client.get("/collections/nope/items").status_code == 404


@pytest.mark.parametrize("params, field", [
    ({"bbox": "1,2,3"}, "bbox"),
    ({"bbox": "a,b,c,d"}, "bbox"),
    ({"bbox": "69,36,70,35"}, "bbox"),  # south of north
    ({"bbox": "0,-100,1,1"}, "bbox"),
    ({"limit": "0"}, "limit"),
    ({"limit": "ten"}, "limit"),
    ({"offset": "-1"}, "offset"),
    ({"datetime": "yesterday"}, "datetime"),
    ({"datetime": "2024-01-01/2023-01-01"}, "datetime"),
    # RFC 3339 (which /req/core/fc-time-definition names): a date-time has an offset.
    ({"datetime": "2020-01-01T00:00:00"}, "datetime"),
    ({"datetime": "2020-01-01T00:00:00/.."}, "datetime"),
    ({"datetime": "2020-01-01 00:00:00Z"}, "datetime"),
    ({"datetime": "20200101T000000Z"}, "datetime"),
    ({"datetime": "2020-01-01T00:00Z"}, "datetime"),
    ({"unknownQueryParameter12345": "1"}, "unknownQueryParameter12345"),
    ({"budget_usd": "lots"}, "budget_usd"),
    ({"start_date": "2023-07-12T00:00:00Z"}, "start_date"),
    ({"created_at": "2017-07-01"}, "created_at"),
    ({"geometry_quality": "rough"}, "geometry_quality"),
    ({"funders": "ADB"}, "funders"),  # an array: not a simple queryable, so not a parameter
    ({"status": "done"}, "status"),
    ({"category": "school,castle"}, "category"),
])
def test_bad_parameters_are_problems_naming_the_field(client: TestClient, params: dict[str, str],
                                                       field: str) -> None:
    response = client.get("/collections/projects/items", params=params)
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["status"] == 400 and problem["title"] and problem["type"]
    assert any(field in e["field"] for e in problem["errors"])


PROJECTS = "/collections/projects/items"


def _ids(client: TestClient, query: str) -> list[str]:
    response = client.get(f"{PROJECTS}?{query}")
    assert response.status_code == 200, response.text
    return [f["id"] for f in response.json()["features"]]


def test_datetime_at_the_edges_of_the_calendar(client: TestClient) -> None:
    # The shipped store: the Salang reconstruction started 2023-07-12 and has no end; the second
    # tunnel has no dates at all, so every datetime matches it (/req/core/fc-time-response C).
    both = ["salang-tunnel-2", "salang-highway-reconstruction"]
    assert _ids(client, "datetime=0001-01-01T00:00:00Z/9999-12-31T23:59:59Z") == both
    assert _ids(client, "datetime=0001-01-01/..") == both
    assert _ids(client, "datetime=../9999-12-31") == both
    assert _ids(client, "datetime=9999-12-31T23:59:59%2B01:00") == both  # 22:59:59 UTC
    assert _ids(client, "datetime=2023-07-12t00:00:00z") == both  # RFC 3339 5.6: t and z may be lower case
    assert _ids(client, "datetime=2023-07-12T04:29:59%2B04:30") == ["salang-tunnel-2"]  # 23:59:59 UTC before
    assert _ids(client, "datetime=0001-01-01") == ["salang-tunnel-2"]
    for query, why in (("datetime=0001-01-01T00:00:00%2B01:00", "years 1 to 9999"),
                       ("datetime=9999-12-31T23:59:59-01:00", "years 1 to 9999"),
                       ("datetime=..", "not an instant"), ("datetime=../..", "at least one end")):
        response = client.get(f"{PROJECTS}?{query}")
        assert response.status_code == 400 and why in response.json()["detail"], (query, response.text)


def test_counts_take_ascii_digits_and_keep_their_meaning(client: TestClient) -> None:
    page = client.get(f"{PROJECTS}?offset=999999999999999999&limit=000001").json()
    assert (page["numberMatched"], page["numberReturned"]) == (2, 0)
    assert len(client.get(f"{PROJECTS}?limit=000001").json()["features"]) == 1
    for odd in ("%C2%B2", "%D9%A3", "+1", "1_0", "1.0", "9" * 19, "9" * 5000, ""):
        response = client.get(f"{PROJECTS}?limit={odd}")
        assert response.status_code == 400, odd
        assert response.json()["errors"][0]["field"] == "limit"
        assert "digits 0-9" in response.json()["detail"] or odd == ""


def test_empty_values_are_absent_and_repeats_are_refused(client: TestClient) -> None:
    everything = _ids(client, "")
    assert len(everything) == 2
    assert _ids(client, "bbox=&datetime=&filter=&status=&sortby=&properties=&ids=") == everything
    for query, field in (("ids=,", "ids"), ("status=,,", "status"), ("sortby=%20,%20", "sortby"),
                         ("status=proposed&status=planned", "status"), ("limit=1&limit=1", "limit"),
                         ("bbox=60,29,75,39&bbox=1,2,3,4", "bbox"), ("f=json&f=json", "f")):
        response = client.get(f"{PROJECTS}?{query}")
        assert response.status_code == 400, query
        assert [e["field"] for e in response.json()["errors"]] == [field], query
    one = client.get(f"{PROJECTS}/salang-tunnel-2?f=json&f=html")
    assert one.status_code == 400 and "more than once" in one.json()["detail"]


def test_filter_that_does_not_apply_is_refused(client: TestClient) -> None:
    response = client.get("/collections/provinces/items", params={"status": "proposed"})
    assert response.status_code == 400 and "province" in response.json()["detail"]


def test_equality_filters_keep_masks_only_for_values_present(client: TestClient) -> None:
    table = client.app.state.catalogue.get("provinces").table()  # type: ignore[attr-defined]
    for n in range(50):
        assert client.get("/collections/provinces/items", params={"province": f"AF-X{n}"}).json()[
            "numberMatched"] == 0
    assert client.get("/collections/provinces/items", params={"province": "AF-KAB,AF-X1"}).json()[
        "numberMatched"] == 1
    kept = [key for key in table._derived if key[0] == "equals"]
    assert kept == [("equals", "code", "AF-KAB")]
