"""OGC API - Features Part 2, CRS by reference (OGC 18-058r1), each test named by the requirement it
checks, plus the downloads and `geo export` in other CRSs.

Expected coordinates come from outside the code, never from pyproj:
- EPSG:3857 from the spherical Mercator formulas, x = R·λ and y = R·ln tan(π/4 + φ/2), R = 6,378,137 m
  (EPSG guidance note 7-2, method 1024);
- the UTM zones (EPSG:32641-32643) from Snyder's transverse Mercator series (USGS Professional Paper
  1395, equations 8-9 and 8-10, WGS 84 ellipsoid, k0 = 0.9996, false easting 500,000 m), worked by
  hand in double precision; the series is good to about a millimetre in zone 42 (the points are 3 km
  from its central meridian) and a centimetre two zones out;
- EPSG:4326 is CRS84 with the axes swapped, exactly.
The place: the Salang tunnel's published centre, 35.322083 N, 69.026944 E (layers/salang.geojson, and
the shipped project `salang-highway-reconstruction`, a point there), and Kabul, 34.5281 N, 69.1723 E.
Which features a box selects comes from the shipped data: the tunnel lies between Parwan and Baghlan.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import re
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import geopandas as gpd
import httpx
import pyogrio
import pytest
from fastapi.testclient import TestClient

from geo import crs as crs_module
from geo.app import create_app
from geo.cli import main
from geo.errors import InvalidInput
from geo.settings import Settings
from tests.conftest import workspace
from tests.server import live_server

CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
EPSG = "http://www.opengis.net/def/crs/EPSG/0/"
# The supported CRSs, written out (not read from the implementation).
SUPPORTED = [CRS84, f"{EPSG}4326", f"{EPSG}3857", f"{EPSG}32641", f"{EPSG}32642", f"{EPSG}32643"]

CENTRE = (69.026944, 35.322083)  # the Salang tunnel's centre: longitude, latitude
# The tunnel centre in each CRS, in that CRS's axis order, and the tolerance in its units.
CENTRE_IN: dict[str, tuple[tuple[float, float], float]] = {
    CRS84: ((69.026944, 35.322083), 0.0),
    f"{EPSG}4326": ((35.322083, 69.026944), 0.0),
    f"{EPSG}3857": ((7684044.2571, 4207737.5379), 0.01),
    f"{EPSG}32641": ((1048141.789, 3925466.466), 0.05),
    f"{EPSG}32642": ((502449.0115, 3908762.1285), 0.01),
    f"{EPSG}32643": ((-43234.8266, 3925168.2681), 0.05),
}
# The tunnel's south and north portals in UTM 42N (Snyder), for the line's own vertices.
SOUTH_42 = (502449.3743, 3907427.6447)
NORTH_42 = (502448.6486, 3910096.6149)
KABUL = (69.1723, 34.5281)
KABUL_42 = (515812.3985, 3820726.6587)

# One box around the Salang pass: in CRS84, in EPSG:4326 (latitude first), and in EPSG:3857 (its
# corners by the Mercator formulas above). It meets Baghlan, Panjshir and Parwan.
BOX_84 = "68.9,35.2,69.2,35.5"
BOX_4326 = "35.2,68.9,35.5,69.2"
BOX_3857 = "7669912.9157,4191093.6703,7703308.7629,4232038.4624"
BOX_PROVINCES = ["AF-BGL", "AF-PAN", "AF-PAR"]
SALANG = ["salang-tunnel", "salang-tunnel-2"]
PROJECTS_AT_SALANG = ["salang-highway-reconstruction", "salang-tunnel-2"]

POINT = "/collections/projects/items/salang-highway-reconstruction"


@pytest.fixture(scope="module")
def module_settings(tmp_path_factory: pytest.TempPathFactory, provinces_cache: Path) -> Settings:
    """One workspace for the read-only tests of this module."""
    return workspace(tmp_path_factory.mktemp("crs"), provinces_cache)


@pytest.fixture(scope="module")
def api(module_settings: Settings) -> Iterator[TestClient]:
    """A client on the read-only workspace."""
    with TestClient(create_app(module_settings)) as client:
        yield client


def _close(actual: list[float], expected: tuple[float, float], tolerance: float) -> bool:
    return len(actual) == 2 and all(abs(a - e) <= tolerance for a, e in zip(actual, expected, strict=True))


def _ids(api: TestClient, collection: str, **params: str) -> list[str]:
    response = api.get(f"/collections/{collection}/items", params={"limit": "1000", **params})
    assert response.status_code == 200, response.text
    return sorted(f["id"] for f in response.json()["features"])


def _problem(response: httpx.Response, field: str) -> dict[str, Any]:
    assert response.status_code == 400, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert any(e["field"] == field for e in body["errors"]), body
    return body


# --- the hand-computed numbers check themselves against the published formulas ---------------------

def test_the_mercator_numbers_are_the_formula() -> None:
    radius = 6378137.0
    lon, lat = CENTRE
    x = radius * math.radians(lon)
    y = radius * math.log(math.tan(math.pi / 4 + math.radians(lat) / 2))
    assert _close([x, y], CENTRE_IN[f"{EPSG}3857"][0], 0.001)


# --- discovery ------------------------------------------------------------------------------------------

def test_req_crs_fc_md_crs_list(api: TestClient) -> None:
    for collection in ("provinces", "salang", "projects"):
        doc = api.get(f"/collections/{collection}").json()
        assert doc["crs"] == SUPPORTED  # B: CRS84, Part 1's default, is listed


def test_req_crs_fc_md_storage_crs_and_valid_value(api: TestClient) -> None:
    for collection in ("provinces", "salang", "projects"):
        doc = api.get(f"/collections/{collection}").json()
        assert doc["storageCrs"] == CRS84 and doc["storageCrs"] in doc["crs"]


def test_req_crs_fc_md_crs_list_global(api: TestClient) -> None:
    doc = api.get("/collections").json()
    assert doc["crs"] == SUPPORTED
    for collection in doc["collections"]:
        assert collection["crs"] == ["#/crs"] and collection["storageCrs"] == CRS84
        # Every CRS of the global list is valid for each collection that points at it.
        for uri in doc["crs"]:
            response = api.get(f"/collections/{collection['id']}/items", params={"crs": uri, "limit": "1"})
            assert response.status_code == 200 and response.headers["content-crs"] == f"<{uri}>"


def test_req_crs_crs_uri(api: TestClient) -> None:
    # Each CRS is a URI of the OGC's format model http://www.opengis.net/def/crs/{authority}/{version}/{code}.
    model = re.compile(r"http://www\.opengis\.net/def/crs/(EPSG|OGC)/[0-9.]+/[0-9A-Za-z]+")
    assert all(model.fullmatch(uri) for uri in api.get("/collections").json()["crs"])


def test_req_crs_fc_crs_and_bbox_crs_definition(api: TestClient) -> None:
    paths = api.get("/api").json()["paths"]
    expected = {"in": "query", "required": False, "schema": {"type": "string", "format": "uri"},
                "style": "form", "explode": False}
    for path, names in (("/collections/{collection_id}/items", ("crs", "bbox-crs")),
                        ("/collections/{collection_id}/items/{feature_id}", ("crs",))):
        params = {p["name"]: p for p in paths[path]["get"]["parameters"]}
        for name in names:
            assert {k: params[name].get(k) for k in expected} == expected, (path, name)
        assert "Content-Crs" in paths[path]["get"]["responses"]["200"]["headers"]


# --- crs ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("uri", SUPPORTED)
def test_req_crs_fc_crs_action_one_feature(api: TestClient, uri: str) -> None:
    response = api.get(POINT, params={"crs": uri})
    assert response.status_code == 200
    expected, tolerance = CENTRE_IN[uri]
    assert _close(response.json()["geometry"]["coordinates"], expected, tolerance)
    assert response.headers["content-crs"] == f"<{uri}>"  # ogc-crs-header, ogc-crs-header-value


@pytest.mark.parametrize("uri", SUPPORTED)
def test_req_crs_fc_crs_action_items(api: TestClient, uri: str) -> None:
    response = api.get("/collections/salang/items", params={"crs": uri})
    assert response.status_code == 200 and response.headers["content-crs"] == f"<{uri}>"
    tunnel = next(f for f in response.json()["features"] if f["id"] == "salang-tunnel")
    assert tunnel["geometry"]["type"] == "LineString"
    expected, tolerance = CENTRE_IN[uri]
    assert _close(tunnel["geometry"]["coordinates"][1], expected, tolerance)  # the middle vertex


def test_req_crs_fc_crs_action_every_vertex_in_utm(api: TestClient) -> None:
    feature = api.get("/collections/salang/items/salang-tunnel", params={"crs": f"{EPSG}32642"}).json()
    south, centre, north = feature["geometry"]["coordinates"]
    assert _close(south, SOUTH_42, 0.01) and _close(centre, CENTRE_IN[f"{EPSG}32642"][0], 0.01)
    assert _close(north, NORTH_42, 0.01)
    # The tunnel is drawn as a 2.67 km north-south line (salang.geojson): 2,670 m x k ≈ 0.9996 in UTM.
    assert abs((north[1] - south[1]) - 2670 * 0.9996) < 5


def test_req_crs_fc_crs_default_value(api: TestClient) -> None:
    for path in (POINT, "/collections/projects/items"):
        response = api.get(path)
        assert response.headers["content-crs"] == f"<{CRS84}>"
    point = api.get(POINT).json()
    assert point["geometry"]["coordinates"] == list(CENTRE)


def test_req_crs_fc_crs_action_keeps_properties_and_paging(api: TestClient) -> None:
    page = api.get("/collections/provinces/items",
                   params={"crs": f"{EPSG}3857", "limit": "5", "properties": "name"}).json()
    assert page["numberMatched"] == 34 and page["numberReturned"] == 5
    assert all(set(f["properties"]) == {"name"} for f in page["features"])
    following = next(link["href"] for link in page["links"] if link["rel"] == "next")
    assert "crs=" in following  # the next page is in the same CRS
    # Projected metres, not degrees: Afghanistan lies between 6.7 and 8.4 million metres east in 3857.
    xs = [x for f in page["features"] for ring in f["geometry"]["coordinates"] for x, _ in _ring(ring)]
    assert min(xs) > 6.7e6 and max(xs) < 8.4e6


def _ring(node: Any) -> list[tuple[float, float]]:
    """The positions under a Polygon's ring or a MultiPolygon's polygon."""
    if isinstance(node[0], int | float):
        return [(node[0], node[1])]
    return [p for child in node for p in _ring(child)]


def test_html_items_show_wkt_in_the_asked_crs(api: TestClient) -> None:
    page = api.get("/collections/projects/items", params={"crs": f"{EPSG}32642", "f": "html"})
    assert page.status_code == 200 and "POINT (502449.0115" in page.text


@pytest.mark.parametrize("value", [
    "[EPSG:4326]",  # a safe CURIE: Part 2's parameter is `format: uri`, and the list holds URIs only
    "EPSG:4326",
    "urn:ogc:def:crs:EPSG::4326",
    "https://www.opengis.net/def/crs/EPSG/0/4326",  # https is another URI than the registered one
    f"{EPSG}9999",
    f"{EPSG}2056",  # a real CRS, not offered here
    "http://www.opengis.net/def/crs/OGC/0/CRS84h",
])
def test_req_crs_crs_exception_and_fc_crs_valid_value(api: TestClient, value: str) -> None:
    for path in ("/collections/salang/items", "/collections/salang/items/salang-tunnel",
                 "/layers/salang.gpkg"):
        body = _problem(api.get(path, params={"crs": value}), "crs")
        # B, and the "appropriate message": it lists the supported CRSs.
        assert all(uri in body["detail"] for uri in SUPPORTED)


def test_a_curie_gets_a_hint_to_the_uri(api: TestClient) -> None:
    body = _problem(api.get("/collections/salang/items", params={"crs": "[EPSG:32642]"}), "crs")
    assert f"Did you mean {EPSG}32642?" in body["detail"]


# --- bbox-crs -----------------------------------------------------------------------------------------

def test_req_crs_fc_bbox_crs_default_value(api: TestClient) -> None:
    assert _ids(api, "provinces", bbox=BOX_84) == BOX_PROVINCES
    assert _ids(api, "provinces", bbox=BOX_84, **{"bbox-crs": CRS84}) == BOX_PROVINCES


@pytest.mark.parametrize("box, uri", [(BOX_4326, f"{EPSG}4326"), (BOX_3857, f"{EPSG}3857")])
def test_req_crs_fc_bbox_crs_action_same_box(api: TestClient, box: str, uri: str) -> None:
    params = {"bbox": box, "bbox-crs": uri}
    assert _ids(api, "provinces", **params) == BOX_PROVINCES
    assert _ids(api, "salang", **params) == SALANG
    assert _ids(api, "projects", **params) == PROJECTS_AT_SALANG


def test_req_crs_fc_bbox_crs_action_4326_is_latitude_first(api: TestClient) -> None:
    # A box read as longitude first would lie in the Arctic Ocean (lon 35, lat 69): nothing there.
    kabul = f"{KABUL[1] - 0.01},{KABUL[0] - 0.01},{KABUL[1] + 0.01},{KABUL[0] + 0.01}"
    assert _ids(api, "provinces", bbox=kabul, **{"bbox-crs": f"{EPSG}4326"}) == ["AF-KAB"]
    assert _ids(api, "provinces", bbox=kabul) == []


def test_req_crs_fc_bbox_crs_action_utm_box_around_the_centre(api: TestClient) -> None:
    x, y = CENTRE_IN[f"{EPSG}32642"][0]
    box = f"{x - 300},{y - 300},{x + 300},{y + 300}"
    assert _ids(api, "salang", bbox=box, **{"bbox-crs": f"{EPSG}32642"}) == SALANG
    assert _ids(api, "projects", bbox=box, **{"bbox-crs": f"{EPSG}32642"}) == PROJECTS_AT_SALANG


def test_req_crs_fc_bbox_crs_action_a_utm_box_is_curved_in_lon_lat(api: TestClient) -> None:
    """Six degrees west of zone 43's central meridian, grid north turns 3.5° from true north: the
    tunnel's meridian runs 162 m east over its 2,674 m (Snyder: south portal E -43315.69, north portal
    E -43153.94, N 3926505.17). This box's west edge lies 30 m east of the north portal and reaches
    1 km north of it, where the meridian has crossed the edge: so the box misses the tunnel, but
    meets the second tunnel, which goes on north. The box's longitude-latitude bounding box holds the
    tunnel too: a server that took only that box would return both."""
    box = "-43124,3925505,-42000,3927505"
    params = {"bbox": box, "bbox-crs": f"{EPSG}32643"}
    assert _ids(api, "salang", **params) == ["salang-tunnel-2"]
    # Moved 60 m west, the west edge lies west of the north portal: the tunnel is met too.
    assert _ids(api, "salang", bbox="-43184,3925505,-42000,3927505", **{"bbox-crs": f"{EPSG}32643"}) == SALANG


def test_a_web_mercator_box_larger_than_the_world_selects_every_province(api: TestClient) -> None:
    assert len(_ids(api, "provinces", bbox="-3e7,-3e7,3e7,3e7", **{"bbox-crs": f"{EPSG}3857"})) == 34


@pytest.mark.parametrize("params, field", [
    ({"bbox": BOX_84, "bbox-crs": "[EPSG:4326]"}, "bbox-crs"),
    ({"bbox": BOX_84, "bbox-crs": f"{EPSG}9999"}, "bbox-crs"),
    ({"bbox-crs": "EPSG:3857"}, "bbox-crs"),  # checked even without a bbox
    ({"bbox": "35.2,68.9,0,35.5,69.2,10", "bbox-crs": f"{EPSG}4326"}, "bbox"),  # heights in a 2D CRS
    ({"bbox": "91,68.9,92,69.2", "bbox-crs": f"{EPSG}4326"}, "bbox"),  # latitude first: 91 is none
    ({"bbox": "1,2,3", "bbox-crs": f"{EPSG}3857"}, "bbox"),
    ({"bbox": "600000,3900000,500000,3910000", "bbox-crs": f"{EPSG}32642"}, "bbox"),  # min > max
    ({"bbox": "9e6,3900000,9.1e6,3910000", "bbox-crs": f"{EPSG}32642"}, "bbox"),  # beyond the zone's reach
])
def test_req_crs_bbox_crs_exception_and_fc_bbox_crs_valid_value(api: TestClient, params: dict[str, str],
                                                                field: str) -> None:
    body = _problem(api.get("/collections/provinces/items", params=params), field)
    if field == "bbox-crs":
        assert all(uri in body["detail"] for uri in SUPPORTED)


def test_bbox_crs_alone_selects_everything(api: TestClient) -> None:
    assert len(_ids(api, "provinces", **{"bbox-crs": f"{EPSG}32642"})) == 34


def test_bbox_crs_in_stats_and_downloads(api: TestClient) -> None:
    params = {"bbox": BOX_4326, "bbox-crs": f"{EPSG}4326"}
    download = api.get("/layers/provinces.geojson", params=params)
    assert sorted(f["id"] for f in download.json()["features"]) == BOX_PROVINCES


# --- the default path pays nothing ----------------------------------------------------------------------

def test_the_default_crs_never_reprojects(module_settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[Any, ...]] = []
    real = crs_module._transformer

    def spy(*args: Any) -> Any:
        calls.append(args)
        return real(*args)

    monkeypatch.setattr(crs_module, "_transformer", spy)
    # A new app: nothing of it was served, or cached, before.
    api = TestClient(create_app(module_settings))
    for path in ("/collections/provinces/items", POINT, "/layers/provinces.geojson", "/layers/salang.gpkg",
                 "/layers/salang.csv", "/collections/provinces/items?f=html"):
        assert api.get(path).status_code == 200, path
        assert api.get(path, params={"crs": CRS84}).status_code == 200, path
    assert calls == []
    # The spy sees a reprojection when there is one.
    assert api.get(POINT, params={"crs": f"{EPSG}3857"}).status_code == 200 and calls


def test_transformers_are_built_once(api: TestClient) -> None:
    api.get(POINT, params={"crs": f"{EPSG}32641"})
    before = crs_module._transformer.cache_info()
    for offset in (0, 10, 20):  # pages of features not encoded in this CRS yet
        api.get("/collections/provinces/items", params={"crs": f"{EPSG}32641", "offset": str(offset)})
    after = crs_module._transformer.cache_info()
    assert after.misses == before.misses and after.hits >= before.hits + 3


def test_features_are_encoded_once_per_crs(module_settings: Settings,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    real = crs_module.encode

    def spy(features: Any, geometries: Any, crs: Any) -> Any:
        calls.append(len(features))
        return real(features, geometries, crs)

    monkeypatch.setattr(crs_module, "encode", spy)
    api = TestClient(create_app(module_settings))
    utm = {"crs": f"{EPSG}32642"}
    first = api.get("/collections/provinces/items", params={**utm, "limit": "5"}).json()
    assert calls == [5]
    # Other URLs (no response cache), the same features: nothing is encoded again, and nothing differs.
    again = api.get("/collections/provinces/items", params={**utm, "limit": "4"}).json()
    one = api.get(f"/collections/provinces/items/{first['features'][2]['id']}", params=utm).json()
    assert calls == [5] and again["features"] == first["features"][:4]
    assert {k: v for k, v in one.items() if k != "links"} == first["features"][2]
    api.get("/collections/provinces/items", params={**utm, "limit": "7"})
    assert calls == [5, 2]  # only the two not seen before


def test_the_etag_depends_on_the_crs(api: TestClient) -> None:
    plain, utm = api.get(POINT), api.get(POINT, params={"crs": f"{EPSG}32642"})
    assert plain.headers["etag"] != utm.headers["etag"]
    again = api.get(POINT, params={"crs": f"{EPSG}32642"}, headers={"If-None-Match": utm.headers["etag"]})
    assert again.status_code == 304


# --- downloads and geo export ------------------------------------------------------------------------

FILE_FORMATS = ["geojson", "gpkg", "fgb", "shp.zip"]


def _read(path: Path, extension: str) -> tuple[str, list[float]]:
    """The CRS GDAL reads from a downloaded file, and the coordinates of the Salang project point."""
    source = str(path)
    if extension == "shp.zip":
        members = zipfile.ZipFile(path).namelist()
        point = next(m for m in members if m.endswith(".shp") and "point" in m)
        assert point.removesuffix(".shp") + ".prj" in members
        source = f"/vsizip/{path}/{point}"
    info = pyogrio.read_info(source)
    frame = pyogrio.read_dataframe(source)
    row = next(i for i, fid in enumerate(frame["id"]) if fid == "salang-highway-reconstruction")
    geometry = frame.geometry.iloc[row]
    return str(info["crs"]), [geometry.x, geometry.y]


@pytest.mark.parametrize("extension", FILE_FORMATS)
@pytest.mark.parametrize("code", ["32642", "32641", "3857"])
def test_downloads_in_a_projected_crs(api: TestClient, tmp_path: Path, extension: str, code: str) -> None:
    response = api.get(f"/layers/projects.{extension}", params={"crs": f"{EPSG}{code}"})
    assert response.status_code == 200, response.text
    assert response.headers["content-crs"] == f"<{EPSG}{code}>"
    assert f"EPSG-{code}" in response.headers["content-disposition"]
    path = tmp_path / f"projects.{extension}"
    path.write_bytes(response.content)
    crs, xy = _read(path, extension)
    expected, tolerance = CENTRE_IN[f"{EPSG}{code}"]
    assert crs == f"EPSG:{code}" and _close(xy, expected, tolerance)


@pytest.mark.parametrize("extension", ["gpkg", "fgb", "shp.zip"])
def test_downloads_in_4326_keep_longitude_first_in_files(api: TestClient, tmp_path: Path,
                                                         extension: str) -> None:
    path = tmp_path / f"projects.{extension}"
    path.write_bytes(api.get(f"/layers/projects.{extension}", params={"crs": f"{EPSG}4326"}).content)
    crs, xy = _read(path, extension)
    # GDAL's formats put x = longitude whatever the CRS's own axis order.
    assert crs == "EPSG:4326" and _close(xy, CENTRE, 1e-9)


def test_geojson_download_in_4326_is_latitude_first_and_says_so(api: TestClient) -> None:
    doc = api.get("/layers/projects.geojson", params={"crs": f"{EPSG}4326"}).json()
    assert doc["crs"] == {"type": "name", "properties": {"name": "urn:ogc:def:crs:EPSG::4326"}}
    point = next(f for f in doc["features"] if f["id"] == "salang-highway-reconstruction")
    assert point["geometry"]["coordinates"] == [CENTRE[1], CENTRE[0]]
    assert "crs" not in api.get("/layers/projects.geojson").json()  # RFC 7946 as it was, by default


def test_geojsonseq_download_in_utm(api: TestClient) -> None:
    response = api.get("/layers/projects.geojsonseq", params={"crs": f"{EPSG}32642"},
                       headers={"Accept-Encoding": "identity"})
    assert response.headers["content-crs"] == f"<{EPSG}32642>"
    assert int(response.headers["content-length"]) == len(response.content)
    features = [json.loads(line) for line in response.text.splitlines()]
    point = next(f for f in features if f["id"] == "salang-highway-reconstruction")
    assert _close(point["geometry"]["coordinates"], CENTRE_IN[f"{EPSG}32642"][0], 0.01)


def test_geoparquet_download_in_utm(api: TestClient, tmp_path: Path) -> None:
    path = tmp_path / "projects.parquet"
    path.write_bytes(api.get("/layers/projects.parquet", params={"crs": f"{EPSG}32642"}).content)
    frame = gpd.read_parquet(path)
    assert frame.crs is not None and frame.crs.to_epsg() == 32642
    point = frame.geometry[frame["id"] == "salang-highway-reconstruction"].iloc[0]
    assert _close([point.x, point.y], CENTRE_IN[f"{EPSG}32642"][0], 0.01)


def test_csv_download_in_utm_names_its_columns(api: TestClient) -> None:
    response = api.get("/layers/projects.csv", params={"crs": f"{EPSG}32642"})
    rows = list(csv.DictReader(io.StringIO(response.text)))
    point = next(r for r in rows if r["id"] == "salang-highway-reconstruction")
    assert _close([float(point["easting"]), float(point["northing"])], CENTRE_IN[f"{EPSG}32642"][0], 0.01)
    assert point["WKT"].startswith("POINT (502449.01")
    plain = next(csv.DictReader(io.StringIO(api.get("/layers/projects.csv").text)))
    assert "lon" in plain and "easting" not in plain


def test_kml_is_crs84_only(api: TestClient) -> None:
    body = _problem(api.get("/layers/salang.kml", params={"crs": f"{EPSG}32642"}), "crs")
    assert "KML" in body["detail"]
    _problem(api.get("/layers/salang.kml", params={"crs": f"{EPSG}4326"}), "crs")
    explicit = api.get("/layers/salang.kml", params={"crs": CRS84})
    assert explicit.status_code == 200 and explicit.headers["content-crs"] == f"<{CRS84}>"


def test_download_head_in_another_crs(api: TestClient) -> None:
    head = api.head("/layers/projects.geojson", params={"crs": f"{EPSG}3857"})
    assert head.status_code == 200 and head.headers["content-crs"] == f"<{EPSG}3857>"
    assert api.head("/layers/projects.gpkg", params={"crs": "EPSG:3857"}).status_code == 400


@pytest.fixture
def cli_env(module_settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """`geo export` run in this process on the module's workspace, and nothing of the developer's."""
    for name in [n for n in os.environ if n.startswith("GEO_")]:
        monkeypatch.delenv(name)
    for name, value in module_settings.model_dump().items():
        if value is not None:
            monkeypatch.setenv(f"GEO_{name.upper()}", str(value))
    monkeypatch.setenv("GEO_ALLOW_DOWNLOAD", "false")
    return module_settings


def test_geo_export_crs(cli_env: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dest = tmp_path / "projects.gpkg"
    assert main(["export", "projects", str(dest), "--crs", f"{EPSG}32642"]) == 0
    crs, xy = _read(dest, "gpkg")
    assert crs == "EPSG:32642" and _close(xy, CENTRE_IN[f"{EPSG}32642"][0], 0.01)
    x, y = CENTRE_IN[f"{EPSG}32642"][0]
    boxed = tmp_path / "boxed.geojson"
    assert main(["export", "projects", str(boxed), "--bbox", f"{x - 10},{y - 10},{x + 10},{y + 10}",
                 "--bbox-crs", f"{EPSG}32642"]) == 0
    # The second tunnel, a north-south line through the centre, is in the box too.
    assert sorted(f["id"] for f in json.loads(boxed.read_bytes())["features"]) == PROJECTS_AT_SALANG
    capsys.readouterr()
    assert main(["export", "projects", str(tmp_path / "p.kml"), "--crs", f"{EPSG}32642"]) == 2
    assert main(["export", "projects", str(tmp_path / "p.gpkg"), "--crs", "EPSG:32642"]) == 2
    err = capsys.readouterr().err
    assert "KML" in err and f"{EPSG}32642" in err and "Traceback" not in err
    assert not (tmp_path / "p.kml").exists() and not (tmp_path / "p.gpkg").exists()


# --- Part 4 bodies in another CRS (helpers for the write routes) ----------------------------------------

def test_content_crs_request_header_and_body_geometry() -> None:
    utm = crs_module.parse_header(f"<{EPSG}32642>")
    moved = crs_module.geometry_to_crs84({"type": "Point", "coordinates": list(KABUL_42)}, utm)
    assert _close(moved["coordinates"], KABUL, 1e-7)
    lat_lon = crs_module.parse_header(f"<{EPSG}4326>")
    line = {"type": "LineString", "coordinates": [[34.5, 69.1], [34.6, 69.2, 1800.0]]}
    assert crs_module.geometry_to_crs84(line, lat_lon)["coordinates"] == [[69.1, 34.5], [69.2, 34.6, 1800.0]]
    assert line["coordinates"][0] == [34.5, 69.1]  # the body is not changed in place
    assert crs_module.parse_header(None).uri == CRS84
    for bad in (f"{EPSG}32642", "<EPSG:32642>", f"<{EPSG}2056>"):
        with pytest.raises(InvalidInput):
            crs_module.parse_header(bad)


# --- GIS clients ------------------------------------------------------------------------------------------

def test_gdal_oapif_reads_the_layers_and_asks_for_a_crs(module_settings: Settings, tmp_path: Path) -> None:
    with live_server(module_settings, log=tmp_path / "server.log") as base:
        for layer, count in (("provinces", 34), ("salang", 2), ("projects", 2)):
            frame = pyogrio.read_dataframe(f"OAPIF:{base}", layer=layer)
            assert len(frame) == count and frame.crs is not None and frame.crs.to_epsg() in (4326, None)
        # GDAL asks the server for the layer in UTM 42N (crs=, bbox-crs= on the items) and reads it back.
        x, y = CENTRE_IN[f"{EPSG}32642"][0]
        frame = pyogrio.read_dataframe(f"OAPIF:{base}", layer="projects", CRS="EPSG:32642",
                                       bbox=(x - 10, y - 10, x + 10, y + 10))
        assert frame.crs is not None and frame.crs.to_epsg() == 32642
        assert sorted(frame["id"]) == PROJECTS_AT_SALANG
        point = frame.geometry[frame["id"] == "salang-highway-reconstruction"].iloc[0]
        assert _close([point.x, point.y], (x, y), 0.01)
    assert "Traceback" not in (tmp_path / "server.log").read_text()


def test_filter_envelopes_and_literals_in_another_crs() -> None:
    """Helpers for `filter-crs` (Part 3 /req/filter/filter-crs-param B): CQL2 literals to CRS84."""
    lat_lon = crs_module.parse(f"{EPSG}4326")
    box = crs_module.envelope_to_crs84((35.2, 68.9, 35.5, 69.2), lat_lon)
    corners = sorted(map(tuple, box["coordinates"][0][:4]))
    assert corners == [(68.9, 35.2), (68.9, 35.5), (69.2, 35.2), (69.2, 35.5)]
    numbers = [float(v) for v in BOX_3857.split(",")]
    mercator = crs_module.envelope_to_crs84((numbers[0], numbers[1], numbers[2], numbers[3]),
                                            crs_module.parse(f"{EPSG}3857"))
    xs = [p[0] for p in mercator["coordinates"][0]]
    ys = [p[1] for p in mercator["coordinates"][0]]
    assert abs(min(xs) - 68.9) < 1e-6 and abs(max(xs) - 69.2) < 1e-6
    assert abs(min(ys) - 35.2) < 1e-6 and abs(max(ys) - 35.5) < 1e-6
    with pytest.raises(InvalidInput) as refused:
        crs_module.envelope_to_crs84((9e6, 3.9e6, 9.1e6, 3.91e6), crs_module.parse(f"{EPSG}32642"))
    assert refused.value.errors[0]["field"] == "filter"


# ---------- Part 4 writes in another CRS (Content-Crs) ----------


@pytest.fixture
def writer(tmp_path: Path, provinces_cache: Path) -> Iterator[TestClient]:
    """A client on a workspace of its own, with a key, for the writes."""
    with TestClient(create_app(workspace(tmp_path, provinces_cache, api_keys=KEY))) as client:
        yield client


KEY = "crs-test-key"
WRITE = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/geo+json"}


def _school(x: float, y: float) -> dict[str, Any]:
    return {"type": "Feature", "geometry": {"type": "Point", "coordinates": [x, y]},
            "properties": {"name": "School in Kabul", "category": "school", "status": "proposed"}}


@pytest.mark.parametrize(("uri", "position", "tolerance"), [
    (f"{EPSG}32642", KABUL_42, 1e-7),              # UTM 42N easting, northing (Snyder)
    (f"{EPSG}4326", (KABUL[1], KABUL[0]), 0.0),     # latitude first
    (CRS84, KABUL, 0.0),
])
def test_req_features_content_crs_header_post_in_another_crs(writer: TestClient, uri: str,
                                                             position: tuple[float, float],
                                                             tolerance: float) -> None:
    created = writer.post("/collections/projects/items", json=_school(*position),
                          headers={**WRITE, "Content-Crs": f"<{uri}>"})
    assert created.status_code == 201, created.text
    stored = writer.get(created.headers["location"]).json()
    assert _close(stored["geometry"]["coordinates"], KABUL, tolerance)
    assert stored["properties"]["province"] == "AF-KAB"  # placed from the carried-over point


def test_req_features_content_crs_header_put_and_patch(writer: TestClient) -> None:
    created = writer.post("/collections/projects/items", json=_school(*KABUL), headers=WRITE).json()
    url = f"/collections/projects/items/{created['id']}"
    moved = {"type": "Point", "coordinates": [KABUL_42[0] + 1000.0, KABUL_42[1]]}  # 1 km east
    patched = writer.patch(url, json={"geometry": moved}, headers={
        **WRITE, "Content-Type": "application/merge-patch+json", "Content-Crs": f"<{EPSG}32642>"})
    assert patched.status_code == 200, patched.text
    lon, lat = writer.get(url).json()["geometry"]["coordinates"]
    # 1 km east at 34.53 N is about 1000 / (111,320 * cos 34.53°) = 0.01093° of longitude.
    assert abs(lon - (KABUL[0] + 0.01093)) < 2e-4 and abs(lat - KABUL[1]) < 2e-4
    replaced = writer.put(url, json=_school(KABUL[1], KABUL[0]),
                          headers={**WRITE, "Content-Crs": f"<{EPSG}4326>"})
    assert replaced.status_code == 200, replaced.text
    assert writer.get(url).json()["geometry"]["coordinates"] == list(KABUL)


@pytest.mark.parametrize("header", [f"<{EPSG}2056>", "EPSG:4326", f"{EPSG}4326", "<>"])
def test_req_features_crs_other_crs_an_unsupported_content_crs_is_refused(writer: TestClient,
                                                                          header: str) -> None:
    before = writer.get("/collections/projects/items").json()["numberMatched"]
    refused = writer.post("/collections/projects/items", json=_school(*KABUL),
                          headers={**WRITE, "Content-Crs": header})
    assert refused.status_code == 400 and refused.headers["content-type"] == "application/problem+json"
    assert writer.get("/collections/projects/items").json()["numberMatched"] == before
