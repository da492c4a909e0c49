"""The read side of OGC API - Features, through HTTP."""

from __future__ import annotations

from urllib.parse import parse_qs, urlparse

import numpy as np
import pytest
from fastapi.testclient import TestClient

from geo.query.featuretable import FeatureTable
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
BOTH = ["salang-tunnel-2", "salang-highway-reconstruction"]


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
    # Layers without a temporal property: no feature has a temporal geometry, so every one matches.
    for layer, count in (("provinces", 34), ("salang", 2)):
        page = client.get(f"/collections/{layer}/items", params={"datetime": "1900-01-01/1900-01-02"}).json()
        assert page["numberMatched"] == count
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


UNKNOWN = "unknownQueryParameter12345"  # the name the official test suite (ets-ogcapi-features10) sends
OGC_RESOURCES = ["/", "/conformance", "/collections", "/collections/projects", "/collections/provinces",
                 "/collections/projects/queryables", "/collections/projects/schema",
                 "/collections/projects/sortables", PROJECTS, "/collections/provinces/items",
                 "/collections/salang/items", f"{PROJECTS}/salang-tunnel-2", "/stats",
                 "/layers/projects.geojson", "/layers/salang.csv"]


@pytest.mark.parametrize("path", OGC_RESOURCES)
def test_an_unknown_parameter_is_a_400_naming_it(client: TestClient, path: str) -> None:
    """/req/core/query-param-unknown: "The server SHALL respond with a response with the status code
    400, if the request URI includes a query parameter that is not specified in the API definition"."""
    response = client.get(path, params={UNKNOWN: "1"})
    assert response.status_code == 400, (path, response.text)
    assert response.headers["content-type"] == "application/problem+json"
    assert [e["field"] for e in response.json()["errors"]] == [UNKNOWN]
    # Next to a known one, and with an empty value: still refused.
    assert client.get(path, params={"limit": "5", UNKNOWN: "1"}).status_code == 400, path
    assert client.get(path, params={UNKNOWN: ""}).status_code == 400, path


def test_the_map_ignores_parameters_it_does_not_know(client: TestClient) -> None:
    """/map is a page people open from links that carry tracking parameters: those are dropped (not
    passed to the API the page calls), while its filters are still checked."""
    page = client.get("/map", params={"utm_source": "newsletter", "status": "proposed"})
    assert page.status_code == 200 and "utm_source" not in page.text and "newsletter" not in page.text
    plain = client.get("/map").headers["etag"]
    assert client.get("/map", params={"utm_source": "x"}).headers["etag"] == plain
    assert client.get("/map", params={"status": "done"}).status_code == 400
    assert client.get("/map", params={"budget_usd": "lots"}).status_code == 400


# Part 3 /req/queryables-query-parameters/parameters: every simple queryable is a query parameter of
# the items, and "the response SHALL only include resources that match the provided value". Expected ids
# read from layers/provinces.geojson, layers/salang.geojson and projects.geojson by hand.
@pytest.mark.parametrize("collection, query, expected", [
    ("projects", {"name": "Second Salang Tunnel"}, ["salang-tunnel-2"]),
    ("projects", {"id": "salang-highway-reconstruction"}, ["salang-highway-reconstruction"]),
    ("projects", {"name": "Second Salang"}, []),  # equality, not a prefix
    ("projects", {"budget_usd": "1600000000"}, ["salang-tunnel-2"]),
    ("projects", {"budget_usd": "1.6e9"}, ["salang-tunnel-2"]),  # the same number
    ("projects", {"budget_usd": "1600000001"}, []),
    ("projects", {"start_date": "2023-07-12"}, ["salang-highway-reconstruction"]),
    ("projects", {"start_date": "2023-07-13"}, []),
    ("projects", {"created_at": "2017-07-01T00:00:00Z"}, ["salang-tunnel-2"]),
    ("projects", {"created_at": "2017-07-01T04:30:00+04:30"}, ["salang-tunnel-2"]),  # the same instant
    ("projects", {"updated_at": "2025-06-09T00:00:00Z"}, BOTH),
    ("projects", {"geometry_quality": "approximate"}, BOTH),
    ("projects", {"geometry_quality": "exact"}, []),
    ("projects", {"geometry_quality": "exact,approximate"}, BOTH),
    ("projects", {"province_name": "Baghlan", "status": "proposed"}, ["salang-tunnel-2"]),
    ("projects", {"name": "Second Salang Tunnel", "budget_usd": "5"}, []),  # all must match
    ("projects", {"name": ""}, BOTH),  # empty: not given
    ("provinces", {"code": "AF-KAB"}, ["AF-KAB"]),
    ("provinces", {"name": "Kabul"}, ["AF-KAB"]),
    ("provinces", {"area_km2": "17333.2"}, ["AF-BAL"]),
    ("salang", {"kind": "tunnel"}, ["salang-tunnel", "salang-tunnel-2"]),
    ("salang", {"width_m": "6"}, ["salang-tunnel"]),
    ("salang", {"length_km": "12"}, ["salang-tunnel-2"]),
    ("salang", {"estimated_cost_usd": "1600000000"}, ["salang-tunnel-2"]),
    ("salang", {"opened": "1964"}, ["salang-tunnel"]),  # a string property: compared as text
    # A queryable of another collection: declared on the items path, so not unknown; no feature here has
    # that property, so none matches.
    ("projects", {"kind": "tunnel"}, []),
    ("salang", {"budget_usd": "1600000000"}, []),
    ("provinces", {"start_date": "2023-07-12"}, []),
])
def test_queryables_are_query_parameters(client: TestClient, collection: str, query: dict[str, str],
                                         expected: list[str]) -> None:
    response = client.get(f"/collections/{collection}/items", params={**query, "limit": "100"})
    assert response.status_code == 200, response.text
    assert [f["id"] for f in response.json()["features"]] == expected


def test_every_simple_queryable_is_accepted_as_a_parameter(client: TestClient) -> None:
    """Requirement A: every queryable with a simple value, named in the collection's queryables."""
    for collection in ("projects", "provinces", "salang"):
        schema = client.get(f"/collections/{collection}/queryables").json()["properties"]
        simple = [name for name, s in schema.items() if s.get("type") in ("string", "number", "integer")]
        assert len(simple) >= 5, collection
        for name in simple:
            value = "2020-01-01" if schema[name].get("format") == "date" else (
                "2020-01-01T00:00:00Z" if schema[name].get("format") == "date-time" else (
                    schema[name]["enum"][0] if "enum" in schema[name] else "1"))
            response = client.get(f"/collections/{collection}/items", params={name: value})
            assert response.status_code == 200, (collection, name, response.text)
        assert client.get(f"/collections/{collection}/items", params={"geometry": "x"}).status_code == 400


def test_queryable_parameters_filter_downloads_and_stats_too(client: TestClient) -> None:
    download = client.get("/layers/projects.geojson", params={"budget_usd": "1600000000"})
    assert download.status_code == 200
    assert [f["id"] for f in download.json()["features"]] == ["salang-tunnel-2"]
    stats = client.get("/stats", params={"start_date": "2023-07-12"})
    assert stats.status_code == 200 and stats.json()["total"]["count"] == 1
    assert stats.json()["filters"] == {"start_date": "2023-07-12"}
    # Another value, another ETag (a cached copy of one filter is never served for another).
    assert client.get("/stats", params={"start_date": "2020-01-01"}).headers["etag"] != stats.headers["etag"]


@pytest.mark.parametrize("bbox, expected", [
    ("177,65,-177,70", 0),  # the standard's own example: nowhere near Afghanistan, but allowed
    ("60,29,-170,39", 34),  # 60..180 and -180..-170: the whole country lies in the first box
    ("75,29,-170,39", 0),  # 75..180 and -180..-170: Afghanistan ends at about 74.9 E
    ("-170,29,60,39", 0),  # an ordinary box, west of the country
])
def test_a_bbox_across_the_antimeridian_is_two_boxes(client: TestClient, bbox: str, expected: int) -> None:
    """/req/core/fc-bbox-definition: minLon > maxLon is a box that crosses the antimeridian."""
    response = client.get("/collections/provinces/items", params={"bbox": bbox, "limit": "100"})
    assert response.status_code == 200, response.text
    assert response.json()["numberMatched"] == expected


def test_items_and_item_link_their_other_format(client: TestClient) -> None:
    """/req/core/fc-links A (and the item's links): self in the format answered, alternate in the other."""
    for path in (f"{PROJECTS}?limit=1&status=proposed", f"{PROJECTS}/salang-tunnel-2"):
        doc = client.get(path).json()
        rels = {(ln["rel"], ln["type"]): ln["href"] for ln in doc["links"]}
        assert ("self", "application/geo+json") in rels and ("collection", "application/json") in rels
        html_href = rels[("alternate", "text/html")]
        page = client.get(urlparse(html_href).path + "?" + urlparse(html_href).query)
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    alternate = parse_qs(urlparse(_rels(client.get(f"{PROJECTS}?limit=1&status=proposed").json())[
        "alternate"]["href"]).query)
    assert alternate == {"limit": ["1"], "status": ["proposed"], "f": ["html"]}


def _anchors(page: str) -> dict[str, str]:
    """The page's links: href -> the text of the <a> element."""
    import re
    from html import unescape

    return {unescape(h): t for h, t in re.findall(r'<a href="([^"]*)"[^>]*>([^<]*)</a>', page)}


def test_html_items_and_item_pages_hold_their_links_and_geometry(client: TestClient) -> None:
    """/req/html/content: the HTML holds what the GeoJSON holds (the geometry too, here as WKT) and
    every link as an <a> element; the GeoJSON alternate gives the GeoJSON."""
    base = "http://testserver"
    page = client.get("/collections/salang/items?f=html").text
    anchors = _anchors(page)
    assert f"{base}/collections/salang" in anchors  # the collection
    assert f"{base}/collections/salang/items?f=html" in anchors  # itself
    geojson = f"{base}/collections/salang/items?f=json"
    assert geojson in anchors
    assert client.get(geojson).headers["content-type"] == "application/geo+json"
    # The tunnel is drawn as a north-south line (layers/salang.geojson): its WKT is on the page.
    assert page.count("<summary>LineString</summary><code>LINESTRING (") == 2
    one = client.get("/collections/salang/items/salang-tunnel?f=html").text
    assert "LINESTRING (" in one
    links = _anchors(one)
    assert f"{base}/collections/salang/items/salang-tunnel?f=json" in links
    assert f"{base}/collections/salang" in links
    # Long values in full (projects.geojson: the second tunnel's description ends so), folded in the table.
    ending = "with a design contract of about USD 20 million and financing by the Asian Development Bank."
    assert ending in client.get(f"{PROJECTS}/salang-tunnel-2?f=html").text
    assert ending in client.get(f"{PROJECTS}?f=html").text
    point = client.get(f"{PROJECTS}/salang-highway-reconstruction?f=html").text
    # The point at the published centre (projects.geojson: 35.322083 N, 69.026944 E).
    assert "POINT (69.026944 35.322083)" in point


def _point(fid: str, lon: float, **props: object) -> dict[str, object]:
    return {"type": "Feature", "id": fid, "geometry": {"type": "Point", "coordinates": [lon, 66.0]},
            "properties": props}


def test_table_boxes_across_the_antimeridian() -> None:
    table = FeatureTable((_point("east", 179.0), _point("west", -179.0), _point("greenwich", 0.0),
                          _point("edge", 180.0)), "v1")
    assert [table.ids[i] for i in table.select(bbox=(177, 65, -177, 70))] == ["east", "west", "edge"]
    assert [table.ids[i] for i in table.select(bbox=(-177, 65, 177, 70))] == ["greenwich"]
    assert [table.ids[i] for i in table.select(bbox=(179.5, 65, -179.5, 70))] == ["edge"]


def test_table_time_matching_and_extent() -> None:
    """fc-time-response (C: no time matches everything; an end date covers its day) and fc-md-extent
    (an open end is null), on intervals chosen by hand."""
    def table(*features: dict[str, object]) -> FeatureTable:
        return FeatureTable(features, "v1", temporal=("start_date", "end_date"))

    closed = table(_point("a", 1, start_date="2020-01-01", end_date="2021-06-30"), _point("none", 2),
                   _point("b", 3, start_date="2019-03-01", end_date="2020-02-01"))
    assert closed.interval() == ("2019-03-01T00:00:00Z", "2021-06-30T23:59:59Z")

    def during(t: FeatureTable, lo: str | None, hi: str | None) -> list[str]:
        def instant(text: str | None) -> np.datetime64 | None:
            return None if text is None else np.datetime64(text, "s")
        return [t.ids[i] for i in t.select(interval=(instant(lo), instant(hi)))]

    assert during(closed, "2021-06-30T23:00:00", "2021-06-30T23:00:00") == ["a", "none"]
    assert during(closed, "2021-07-01T00:00:00", None) == ["none"]
    assert during(closed, None, "2019-02-28T23:59:59") == ["none"]
    assert during(closed, "2020-01-15T00:00:00", "2020-01-15T00:00:00") == ["a", "none", "b"]
    opened = table(_point("a", 1, start_date="2020-01-01", end_date="2021-06-30"),
                   _point("running", 2, start_date="2022-05-01"), _point("ended", 3, end_date="2018-12-31"))
    assert opened.interval() == (None, None)
    assert during(opened, None, "1900-01-01T00:00:00") == ["ended"]  # no start: since ever
    assert during(opened, "2500-01-01T00:00:00", None) == ["running"]  # no end: still running
    assert table(_point("running", 2, start_date="2022-05-01")).interval() == ("2022-05-01T00:00:00Z", None)
    assert table(_point("none", 2)).interval() == (None, None)
