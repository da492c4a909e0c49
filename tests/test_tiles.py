"""OGC API - Tiles against a real server: the tileset documents, MVT tiles decoded with mapbox-vector-tile
and checked against the items, clusters whose counts add up to the items' numberMatched, filters, 304,
bad tile addresses, and GDAL reading a tile through its MVT driver.

Tile addresses are computed here with the slippy-map formula (OSM wiki "Slippy map tilenames"), not with
the service's code: x = floor((lon + 180) / 360 * 2^z), y = floor((1 - asinh(tan(lat)) / pi) / 2 * 2^z).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import httpx
import mapbox_vector_tile
import numpy as np
import pyogrio
import pytest

from tests.conftest import KEY, point_feature, workspace
from tests.server import live_server

AUTH = {"Authorization": f"Bearer {KEY}"}
MVT = "application/vnd.mapbox-vector-tile"
KABUL = (69.1723, 34.5281)
STATUSES = ("proposed", "planned", "approved", "under_construction", "completed", "suspended", "cancelled")
# 21 schools: 7 in a tight group in Kabul (one cluster below zoom 14), 14 spread over the country; their
# statuses cycle through the 7, so each status is held by exactly 3 of them.
NEAR_KABUL = [(KABUL[0] + 0.01 * i, KABUL[1] + 0.005 * i) for i in range(7)]
SPREAD = [(62.2, 34.35), (65.71, 31.61), (67.11, 36.71), (70.45, 34.43), (68.87, 35.95), (66.9, 34.82),
          (71.14, 36.73), (69.62, 33.34), (64.36, 31.58), (68.42, 33.55), (70.11, 34.98), (63.0, 35.0),
          (66.0, 33.0), (72.5, 37.0)]
SCHOOLS = [(lon, lat, STATUSES[i % 7]) for i, (lon, lat) in enumerate(NEAR_KABUL + SPREAD)]
# Afghanistan lies within 60.5..75 E, 29.3..38.5 N.
COUNTRY = (60.5, 29.3, 75.0, 38.5)


def tile_of(lon: float, lat: float, z: int) -> tuple[int, int]:
    """The (x, y) of the tile holding this point at zoom z (slippy-map formula)."""
    n = 2 ** z
    x = int((lon + 180.0) / 360.0 * n)
    y = int((1.0 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2.0 * n)
    return x, y


def url(base: str, coll: str, z: int, x: int, y: int) -> str:
    """A tile's URL: OGC API - Tiles orders the path tileMatrix/tileRow/tileCol, that is z/y/x."""
    return f"{base}/collections/{coll}/tiles/WebMercatorQuad/{z}/{y}/{x}"


def decode(body: bytes) -> dict[str, list[dict[str, object]]]:
    """Layer name -> its features (decoded)."""
    return {name: layer["features"] for name, layer in mapbox_vector_tile.decode(body).items()}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, provinces_cache: Path) -> Iterator[str]:
    """The service in a subprocess on copies of the shipped data, plus the 21 schools."""
    folder = tmp_path_factory.mktemp("tiles")
    log = folder / "server.log"
    with live_server(workspace(folder, provinces_cache, api_keys=KEY), log=log) as base:
        for n, (lon, lat, status) in enumerate(SCHOOLS):
            created = httpx.post(f"{base}/collections/projects/items", headers=AUTH,
                                 json=point_feature(lon, lat, name=f"School {n}", status=status))
            assert created.status_code == 201, created.text
        yield base
    assert "Traceback" not in log.read_text()


def items(base: str, coll: str, **params: str) -> dict[str, dict[str, object]]:
    """The collection's items that pass these filters, by id."""
    page = httpx.get(f"{base}/collections/{coll}/items", params={"limit": "10000", **params}).json()
    return {str(f["id"]): f for f in page["features"]}


def test_tile_matrix_sets_list_and_define_web_mercator_quad(server: str) -> None:
    listed = httpx.get(f"{server}/tileMatrixSets").json()["tileMatrixSets"]
    assert [s["id"] for s in listed] == ["WebMercatorQuad"]
    doc = httpx.get(f"{server}/tileMatrixSets/WebMercatorQuad").json()
    assert doc["id"] == "WebMercatorQuad"
    assert doc["crs"] == "http://www.opengis.net/def/crs/EPSG/0/3857"
    # Zoom z has 2^z columns and rows (the standard's definition of the set).
    assert all(m["matrixWidth"] == m["matrixHeight"] == 2 ** int(m["id"]) for m in doc["tileMatrices"])
    assert httpx.get(f"{server}/tileMatrixSets/Other").status_code == 404


@pytest.mark.parametrize("coll", ["provinces", "salang", "projects"])
def test_each_collection_links_its_tileset_with_a_tile_template(server: str, coll: str) -> None:
    doc = httpx.get(f"{server}/collections/{coll}").json()
    rel = "http://www.opengis.net/def/rel/ogc/1.0/tilesets-vector"
    [link] = [ln for ln in doc["links"] if ln["rel"] == rel]
    tilesets = httpx.get(link["href"]).json()["tilesets"]
    assert [t["dataType"] for t in tilesets] == ["vector"]
    [self_link] = [ln for ln in tilesets[0]["links"] if ln["rel"] == "self"]
    tileset = httpx.get(self_link["href"]).json()
    [item] = [ln for ln in tileset["links"] if ln["rel"] == "item"]
    assert item["templated"] is True and item["type"] == MVT
    template = "/tiles/WebMercatorQuad/{tileMatrix}/{tileRow}/{tileCol}"
    assert item["href"].endswith(f"/collections/{coll}{template}")
    assert tileset["layers"][0]["id"] == coll


def test_the_kabul_tile_at_zoom_5_holds_kabul_and_the_salang_projects(server: str) -> None:
    x, y = tile_of(*KABUL, 5)
    assert (x, y) == (22, 12)  # by hand: 249.17 / 360 * 32 = 22.1; (1 - 0.6436 / pi) / 2 * 32 = 12.7
    provinces = httpx.get(url(server, "provinces", 5, x, y))
    assert provinces.status_code == 200 and provinces.headers["content-type"] == MVT
    layer = decode(provinces.content)["provinces"]
    by_id = {f["properties"]["id"]: f["properties"] for f in layer}
    assert by_id["AF-KAB"]["name"] == "Kabul"
    # The shipped Salang projects: the second tunnel is a line (never clustered, drawn with its
    # attributes); the highway is a point, clustered below zoom 14 and drawn alone from it.
    shipped = items(server, "projects", category="transport")
    assert sorted(shipped) == ["salang-highway-reconstruction", "salang-tunnel-2"]
    projects = decode(httpx.get(url(server, "projects", 5, x, y)).content)["projects"]
    lines = {str(f["properties"]["id"]): f["properties"] for f in projects
             if f["geometry"]["type"] != "Point"}
    assert sorted(lines) == ["salang-tunnel-2"]
    point = shipped["salang-highway-reconstruction"]["geometry"]
    assert isinstance(point, dict)
    alone = decode(httpx.get(url(server, "projects", 14, *tile_of(*point["coordinates"], 14))).content)
    singles = {str(f["properties"]["id"]): f["properties"] for f in alone["projects"]}
    for fid, props in {**lines, "salang-highway-reconstruction": singles["salang-highway-reconstruction"]
                       }.items():
        want = shipped[fid]["properties"]
        assert isinstance(want, dict)
        names = ("name", "status", "category", "province")
        assert {k: props[k] for k in names} == {k: want[k] for k in names}


def cell_of(lon: float, lat: float, z: int) -> tuple[int, int]:
    """The cluster cell (an 8 x 8 grid over each tile) holding this point at zoom z, as global indices."""
    n = 2 ** z * 8
    return (int((lon + 180.0) / 360.0 * n),
            int((1.0 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2.0 * n))


def test_the_kabul_group_is_one_cluster_with_counts_by_status(server: str) -> None:
    x, y = tile_of(*KABUL, 5)
    features = decode(httpx.get(url(server, "projects", 5, x, y), params={"category": "school"}).content)
    clusters = [f["properties"] for f in features["projects"] if f["properties"].get("cluster")]
    # The schools in Kabul's cell: the group of 7 and whichever spread ones share it.
    members = [status for lon, lat, status in SCHOOLS if cell_of(lon, lat, 5) == cell_of(*KABUL, 5)]
    assert len(members) >= 7
    [group] = [c for c in clusters if c["count"] == len(members)]
    assert {s: group[f"count_{s}"] for s in STATUSES} == {s: members.count(s) for s in STATUSES}


def _tiles_over_country(z: int) -> list[tuple[int, int]]:
    west, south, east, north = COUNTRY
    x0, y0 = tile_of(west, north, z)
    x1, y1 = tile_of(east, south, z)
    return [(x, y) for x in range(x0, x1 + 1) for y in range(y0, y1 + 1)]


@pytest.mark.parametrize("z", [4, 6, 8])
@pytest.mark.parametrize("params", [{"category": "school"},
                                    {"category": "school", "status": "planned,approved"},
                                    {"filter": "category = 'school' AND status <> 'cancelled'"}])
def test_clusters_and_points_add_up_to_the_items_matched(server: str, z: int, params: dict[str, str]) -> None:
    matched = httpx.get(f"{server}/collections/projects/items", params={**params, "limit": "1"}
                        ).json()["numberMatched"]
    total, per_status = 0, dict.fromkeys(STATUSES, 0)
    for x, y in _tiles_over_country(z):
        answer = httpx.get(url(server, "projects", z, x, y), params=params)
        if answer.status_code == 204:
            continue
        for feature in decode(answer.content)["projects"]:
            props = feature["properties"]
            if props.get("cluster"):
                total += int(props["count"])
                for s in STATUSES:
                    per_status[s] += int(props[f"count_{s}"])
            else:
                # A point alone in its cell; drawn where it is, but counted only in its own tile.
                lon_lat = items(server, "projects", ids=str(props["id"]))[str(props["id"])]["geometry"]
                assert isinstance(lon_lat, dict)
                if tile_of(*lon_lat["coordinates"], z) == (x, y):
                    total += 1
                    per_status[str(props["status"])] += 1
    assert total == matched
    assert sum(per_status.values()) == matched
    for status in STATUSES:
        expected = httpx.get(f"{server}/collections/projects/items",
                             params={**params, "limit": "1", "status": status}).json()
        listed = "status" not in params or status in params["status"]
        wanted = expected["numberMatched"] if listed else 0
        assert per_status[status] == wanted


def test_points_are_single_features_from_zoom_14(server: str) -> None:
    lon, lat = SPREAD[0]
    x, y = tile_of(lon, lat, 14)
    features = decode(httpx.get(url(server, "projects", 14, x, y)).content)["projects"]
    [school] = [f["properties"] for f in features]
    assert school["name"] == "School 7" and school["category"] == "school"
    assert school["status"] == STATUSES[7 % 7] and school["province"] == "AF-HER"
    assert "count" not in school


def test_filters_apply_to_tiles_as_to_items(server: str) -> None:
    lon, lat = SPREAD[0]
    x, y = tile_of(lon, lat, 14)
    assert httpx.get(url(server, "projects", 14, x, y), params={"status": "cancelled"}).status_code == 204
    kept = httpx.get(url(server, "projects", 14, x, y), params={"status": STATUSES[0]})
    assert kept.status_code == 200
    cql = httpx.get(url(server, "projects", 14, x, y), params={"filter": "name = 'School 7'"})
    assert [f["properties"]["name"] for f in decode(cql.content)["projects"]] == ["School 7"]


def test_etags_answer_304_and_change_with_filters_and_writes(server: str) -> None:
    x, y = tile_of(*KABUL, 5)
    first = httpx.get(url(server, "provinces", 5, x, y))
    etag = first.headers["etag"]
    again = httpx.get(url(server, "provinces", 5, x, y), headers={"If-None-Match": etag})
    assert again.status_code == 304 and not again.content
    target = url(server, "projects", 6, *tile_of(*KABUL, 6))
    before = httpx.get(target).headers["etag"]
    assert httpx.get(target, params={"status": "proposed"}).headers["etag"] != before
    created = httpx.post(f"{server}/collections/projects/items", headers=AUTH,
                         json=point_feature(*KABUL, name="One more"))
    assert created.status_code == 201
    after = httpx.get(target, headers={"If-None-Match": before})
    assert after.status_code == 200 and after.headers["etag"] != before
    httpx.delete(created.headers["location"], headers=AUTH)


def test_an_empty_tile_is_204(server: str) -> None:
    answer = httpx.get(url(server, "projects", 5, 0, 0))  # the Bering Sea
    assert answer.status_code == 204 and not answer.content and answer.headers["etag"]


@pytest.mark.parametrize(("path", "status", "field"), [
    ("19/0/0", 404, "tileMatrix"), ("3/8/0", 404, "tileRow"), ("3/0/8", 404, "tileCol"),
    ("-1/0/0", 400, "tileMatrix"), ("a/0/0", 400, "tileMatrix"), ("3/1.5/0", 400, "tileRow"),
    ("3/0/%D9%A3", 400, "tileCol"), ("99999999999999999999/0/0", 400, "tileMatrix"),
])
def test_bad_tile_addresses_are_problems_naming_the_field(server: str, path: str, status: int,
                                                           field: str) -> None:
    answer = httpx.get(f"{server}/collections/projects/tiles/WebMercatorQuad/{path}")
    assert answer.status_code == status
    assert answer.headers["content-type"] == "application/problem+json"
    assert [e["field"] for e in answer.json()["errors"]] == [field]


@pytest.mark.parametrize("query", ["status=bogus", "filter=name%20%3D", "datetime=yesterday", "nope=1",
                                   "status=a&status=b", "filter=" + "(" * 500])
def test_hostile_query_values_are_400(server: str, query: str) -> None:
    answer = httpx.get(f"{url(server, 'projects', 5, 22, 12)}?{query}")
    assert answer.status_code == 400
    assert answer.headers["content-type"] == "application/problem+json"


def test_gdal_reads_a_tile_through_its_mvt_driver(server: str, tmp_path: Path) -> None:
    x, y = tile_of(*KABUL, 5)
    # GDAL's MVT driver reads the tile's address from a z/x/y.pbf path.
    path = tmp_path / "5" / str(x) / f"{y}.pbf"
    path.parent.mkdir(parents=True)
    path.write_bytes(httpx.get(url(server, "provinces", 5, x, y)).content)
    frame = pyogrio.read_dataframe(path, layer="provinces")
    assert "AF-KAB" in set(frame["id"])
    # Kabul province's outline, clipped to the tile, lies around Kabul (the driver gives Web Mercator).
    kabul = frame[frame["id"] == "AF-KAB"].geometry.iloc[0]
    mx = KABUL[0] * 20037508.342789244 / 180
    assert kabul.bounds[0] < mx < kabul.bounds[2]


def test_cluster_grid_by_hand() -> None:
    from geo.tiles.cluster import cluster
    # Cells are 512 pixels of 4096: (10,10) and (20,30) share cell 0; (600,10) is alone in cell 1;
    # (5000,10) lies in the next tile, so in none of this tile's cells.
    px, py = np.array([10.0, 20.0, 600.0, 5000.0]), np.array([10.0, 30.0, 10.0, 10.0])
    groups = cluster(px, py, np.array([0, 1, 2, 0], dtype=np.int8), 3)
    assert groups.counts.tolist() == [2]
    assert (groups.px.tolist(), groups.py.tolist()) == ([15.0], [20.0])
    assert groups.by_status.tolist() == [[1, 1, 0]]
    assert groups.singles.tolist() == [2]


def test_gdal_reads_the_tiles_through_its_ogc_api_driver(server: str) -> None:
    source = f"OGCAPI:{server}/collections/provinces"
    # The tileset's limits: zooms 0 to 18, each a layer.
    assert pyogrio.read_info(source, layer="Zoom level 18", API="TILES")["crs"] == "EPSG:3857"
    with pytest.raises(pyogrio.errors.DataLayerError):
        pyogrio.read_info(source, layer="Zoom level 19", API="TILES")
    frame = pyogrio.read_dataframe(source, layer="Zoom level 0", API="TILES")
    assert sorted(frame["id"]) == sorted(items(server, "provinces")) and len(frame) == 34
