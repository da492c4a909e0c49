"""`POST /collections/projects/import` through a real server (`geo serve` in a subprocess): the report
as JSON, a dry run by default, the write, the key, the rate limit, the size limit, and hostile files
refused cleanly (a problem, no traceback, the server's memory bounded).

Expected facts as in tests/test_import.py: the shipped store's 2 projects; (69.1723, 34.5281) in Kabul
(AF-KAB), (62.2, 34.35) in Herat (AF-HER).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from geo.settings import Settings
from tests.conftest import AUTH, KEY, workspace
from tests.server import live_server, server_pid
from tests.test_import import HERAT, KABUL, csv_bytes, lying_zip_bomb, point, xlsx_bytes, zip_bomb

IMPORT = "/collections/projects/import"
CSV = {"Content-Type": "text/csv", **AUTH}
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
GOOD_AND_BAD = csv_bytes([["Kabul school", "school", "proposed", "1200000", *KABUL],
                          ["Herat clinic", "health", "planned", "", *HERAT],
                          ["Bad status", "school", "someday", "", *KABUL]])


@pytest.fixture
def server(settings: Settings, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A live server on the temporary workspace, and the file its stderr goes to."""
    log = tmp_path / "server.log"
    with live_server(settings, log=log) as base:
        yield base, log


@pytest.fixture(scope="module")
def unwritten(tmp_path_factory: pytest.TempPathFactory, provinces_cache: Path) -> Iterator[tuple[str, Path]]:
    """One live server for the tests that write nothing (dry runs, refusals): it starts once."""
    folder = tmp_path_factory.mktemp("import-api")
    log = folder / "server.log"
    with live_server(workspace(folder, provinces_cache, api_keys=KEY), log=log) as base:
        yield base, log


def items(base: str) -> dict[str, dict[str, Any]]:
    """The projects the server serves, by name."""
    features = httpx.get(f"{base}/collections/projects/items?limit=1000", timeout=10).json()["features"]
    return {f["properties"]["name"]: f for f in features}


def no_traceback(log: Path) -> None:
    """The server logged no traceback."""
    assert "Traceback" not in log.read_text(errors="replace")


def test_a_dry_run_is_the_default_and_writes_nothing(unwritten: tuple[str, Path]) -> None:
    base, log = unwritten
    response = httpx.post(base + IMPORT, content=GOOD_AND_BAD, headers=CSV, timeout=30)
    assert response.status_code == 200 and response.headers["content-type"] == "application/json"
    report = response.json()
    assert (report["dry_run"], report["written"], report["read"], report["imported"], report["ids"]) == \
        (True, False, 3, 2, [])
    assert [(r["row"], r["field"]) for r in report["rejected"]] == [(4, "status")]
    assert set(items(base)) == {"Second Salang Tunnel", "Salang highway reconstruction"}
    no_traceback(log)


def test_confirmed_import_writes_the_valid_rows_with_their_provinces(server: tuple[str, Path]) -> None:
    base, log = server
    report = httpx.post(f"{base}{IMPORT}?dry_run=false", content=GOOD_AND_BAD, headers=CSV, timeout=30).json()
    assert (report["written"], report["imported"], len(report["ids"])) == (True, 2, 2)
    projects = items(base)
    assert projects["Kabul school"]["properties"]["province"] == "AF-KAB"
    assert projects["Herat clinic"]["properties"]["province"] == "AF-HER"
    assert {projects["Kabul school"]["id"], projects["Herat clinic"]["id"]} == set(report["ids"])
    # The same file again: both good rows are now duplicates (0 m), skipped.
    again = httpx.post(f"{base}{IMPORT}?dry_run=false", content=GOOD_AND_BAD, headers=CSV, timeout=30).json()
    assert [(d["row"], d["of"], d["distance_m"]) for d in again["duplicates"]] == [
        (2, projects["Kabul school"]["id"], 0.0), (3, projects["Herat clinic"]["id"], 0.0)]
    assert (again["imported"], again["written"]) == (0, False)
    no_traceback(log)


def test_all_or_nothing_answers_the_report_and_writes_nothing(server: tuple[str, Path]) -> None:
    base, _log = server
    response = httpx.post(f"{base}{IMPORT}?dry_run=false&all_or_nothing=true", content=GOOD_AND_BAD,
                          headers=CSV, timeout=30)
    assert response.status_code == 200
    assert (response.json()["written"], response.json()["valid"]) == (False, 2)
    assert len(items(base)) == 2


def test_every_format_by_media_type_or_file_name(unwritten: tuple[str, Path], tmp_path: Path) -> None:
    import geopandas as gpd
    import shapely

    base, log = unwritten
    xlsx = xlsx_bytes([["Xlsx school", "school", "proposed", 1000, *KABUL]])
    geojson = json.dumps({"type": "FeatureCollection", "features": [
        point(*HERAT, name="GeoJSON clinic", category="health", status="planned")]}).encode()
    gpkg_path = tmp_path / "in.gpkg"
    gpd.GeoDataFrame({"name": ["Gpkg well"], "category": ["water"], "status": ["planned"]},
                     geometry=[shapely.Point(*KABUL)], crs="EPSG:4326").to_file(gpkg_path, engine="pyogrio")
    uploads = [
        (xlsx, {"Content-Type": XLSX}, "xlsx"),
        (geojson, {"Content-Type": "application/geo+json"}, "geojson"),
        (gpkg_path.read_bytes(), {"Content-Type": "application/geopackage+sqlite3"}, "gpkg"),
        # A browser's file input may send no useful type: the name tells.
        (gpkg_path.read_bytes(), {"Content-Type": "application/octet-stream", "X-Filename": "in.gpkg"},
         "gpkg"),
    ]
    for data, headers, kind in uploads:
        report = httpx.post(base + IMPORT, content=data, headers={**headers, **AUTH}, timeout=30).json()
        assert (report["format"], report["valid"], report["rejected"]) == (kind, 1, []), kind
    no_traceback(log)


def test_the_key_is_required(unwritten: tuple[str, Path]) -> None:
    base, _log = unwritten
    for headers in ({"Content-Type": "text/csv"},
                    {"Content-Type": "text/csv", "Authorization": "Bearer wrong"}):
        response = httpx.post(f"{base}{IMPORT}?dry_run=false", content=GOOD_AND_BAD, headers=headers,
                              timeout=30)
        assert response.status_code == 401
        assert response.headers["content-type"] == "application/problem+json"
        assert response.headers["www-authenticate"].startswith("Bearer")
    assert len(items(base)) == 2


@pytest.mark.parametrize(("data", "headers", "status", "field", "text"), [
    (csv_bytes([["Café", "school", "proposed", "", *KABUL]], encoding="cp1252"), CSV, 400, "file",
     "not UTF-8"),
    (csv_bytes([["x" * 200_000, "school", "proposed", "", *KABUL]]), CSV, 400, "file", "field limit"),
    (b"\x89PNG\r\n\x1a\n", {"Content-Type": "image/png", **AUTH}, 415, "Content-Type", "not a format"),
    (b"\x89PNG\r\n\x1a\n", {"Content-Type": "application/octet-stream", **AUTH}, 415, "file",
     "cannot tell"),
    (b"", CSV, 400, "file", "empty"),
    (b"{not json", {"Content-Type": "application/geo+json", **AUTH}, 400, "file", "not valid JSON"),
    (b"name,category\nx,school\n", {**CSV}, 400, "map", "no column holds status"),
], ids=["non-utf8", "huge-cell", "png", "unknown", "empty", "bad-json", "missing-columns"])
def test_unreadable_files_are_problems_naming_the_field(unwritten: tuple[str, Path], data: bytes,
                                                        headers: dict[str, str], status: int, field: str,
                                                        text: str) -> None:
    base, log = unwritten
    response = httpx.post(base + IMPORT, content=data, headers=headers, timeout=30)
    assert response.status_code == status
    problem = response.json()
    assert problem["errors"][0]["field"] == field and text in problem["detail"]
    no_traceback(log)


def _peak_rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")


def test_zip_bombs_as_xlsx_are_refused_quickly_within_bounded_memory(
        unwritten: tuple[str, Path]) -> None:
    base, log = unwritten
    pid = server_pid(base)
    bombs = {"declared": zip_bomb(), "lying": lying_zip_bomb()}
    before = _peak_rss_kib(pid)
    for name, data in bombs.items():
        started = time.monotonic()
        response = httpx.post(base + IMPORT, content=data, headers={"Content-Type": XLSX, **AUTH}, timeout=60)
        elapsed = time.monotonic() - started
        assert response.status_code == 400, name
        assert response.json()["errors"][0]["field"] == "file"
        assert elapsed < 10, (name, elapsed)  # a limit, not a measurement: the refusal reads 100 MB at most
    # 150 MB each once expanded: the server's peak memory grew by far less (1 MB blocks are read).
    grown_mib = (_peak_rss_kib(pid) - before) / 1024
    assert grown_mib < 50, grown_mib
    assert httpx.get(f"{base}/conformance", timeout=10).status_code == 200
    no_traceback(log)


def test_a_file_over_the_import_limit_is_413(tmp_path: Path, provinces_cache: Path) -> None:
    settings = workspace(tmp_path, provinces_cache, api_keys=KEY, max_import_bytes=1000)
    with live_server(settings) as base:
        response = httpx.post(base + IMPORT, content=b"name\n" + b"x" * 2000, headers=CSV, timeout=30)
        assert response.status_code == 413
        assert "GEO_MAX_IMPORT_BYTES" in response.json()["detail"]


def test_the_write_rate_limit_applies(tmp_path: Path, provinces_cache: Path) -> None:
    # 0.1 writes a second: a burst of 1, so the second import at once is refused.
    settings = workspace(tmp_path, provinces_cache, api_keys=KEY, write_rate_per_key=0.1)
    with live_server(settings) as base:
        first = httpx.post(base + IMPORT, content=GOOD_AND_BAD, headers=CSV, timeout=30)
        second = httpx.post(base + IMPORT, content=GOOD_AND_BAD, headers=CSV, timeout=30)
        assert (first.status_code, second.status_code) == (200, 429)
        assert int(second.headers["retry-after"]) >= 1


def test_the_openapi_document_describes_the_endpoint(unwritten: tuple[str, Path]) -> None:
    base, _log = unwritten
    operation = httpx.get(f"{base}/api", timeout=10).json()["paths"][IMPORT]["post"]
    assert set(operation["requestBody"]["content"]) >= {"text/csv", XLSX, "application/geo+json",
                                                       "application/geopackage+sqlite3"}
    assert {p["name"] for p in operation["parameters"]} >= {"dry_run", "all_or_nothing", "allow_duplicates",
                                                            "map", "X-Filename"}
    report = operation["responses"]["200"]["content"]["application/json"]["schema"]["properties"]
    assert {"dry_run", "written", "read", "imported", "rejected", "duplicates", "ids"} <= set(report)
    assert operation["security"] and "401" in operation["responses"]
