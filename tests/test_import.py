"""`geo import` and `geo template`: every format, good and bad rows, duplicates, provinces, the report.

The expected values come from outside the code:

- the shipped store holds 2 projects, both transport in Baghlan (AF-BGL): `salang-tunnel-2`, a
  LineString on the meridian 69.026944 E from 35.268003 to 35.376163 N, and
  `salang-highway-reconstruction`, a Point at (69.026944, 35.322083);
- (69.1723, 34.5281) lies in Kabul (AF-KAB), (62.2, 34.35) in Herat (AF-HER);
- one degree of latitude at 34.53 N is 110,932 m (meridian arc on WGS 84: a(1-e^2)/(1-e^2 sin^2 phi)^1.5
  * pi/180), so 0.00045 degrees north is 49.9 m and 0.00135 degrees is 149.8 m.
"""

from __future__ import annotations

import csv
import io
import json
import os
import zipfile
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from geo.app import open_store
from geo.catalogue import Catalogue
from geo.cli import main
from geo.errors import InvalidInput
from geo.importing.duplicates import distance_m
from geo.importing.progress import progress
from geo.importing.run import ImportOptions, run_import
from geo.importing.sources import MAX_ROWS
from geo.settings import Settings
from geo.store.geojson_file import GeoJSONFileStore

KABUL = (69.1723, 34.5281)
HERAT = (62.2, 34.35)
SHIPPED = {"salang-tunnel-2", "salang-highway-reconstruction"}
HEADER = ["name", "category", "status", "budget_usd", "lon", "lat"]
NORTH_50M, NORTH_150M = 0.00045, 0.00135
SHEET_XML = "xl/worksheets/sheet1.xml"


@pytest.fixture
def cli_env(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """`geo` run in this process on the test's temporary workspace, and nothing of the developer's."""
    for name in [n for n in os.environ if n.startswith("GEO_")]:
        monkeypatch.delenv(name)
    for name, value in settings.model_dump().items():
        if value is not None:
            monkeypatch.setenv(f"GEO_{name.upper()}", str(value))
    monkeypatch.setenv("GEO_ALLOW_DOWNLOAD", "false")
    return settings


def stored(settings: Settings) -> dict[str, dict[str, Any]]:
    """The projects in the store now, by id (read by a fresh store object, as another process would)."""
    store = open_store(settings)
    try:
        table = store.snapshot()
        return {fid: feature for fid, feature in zip(table.ids, table.features, strict=True)}
    finally:
        store.close()


def by_name(settings: Settings) -> dict[str, dict[str, Any]]:
    """The stored projects by name."""
    return {f["properties"]["name"]: f for f in stored(settings).values()}


def csv_bytes(rows: list[list[Any]], header: list[str] = HEADER, encoding: str = "utf-8",
              delimiter: str = ",") -> bytes:
    """A CSV file's bytes."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n", delimiter=delimiter)
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue().encode(encoding)


def xlsx_bytes(rows: list[list[Any]], header: list[str] = HEADER) -> bytes:
    """An XLSX workbook's bytes, cells typed as given (numbers, dates, text)."""
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(header)
    for row in rows:
        sheet.append(row)
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def point(lon: float, lat: float, **props: Any) -> dict[str, Any]:
    """A GeoJSON point feature."""
    return {"type": "Feature", "geometry": {"type": "Point", "coordinates": [lon, lat]}, "properties": props}


def geo_import(tmp_path: Path, name: str, data: bytes, *options: str) -> int:
    """Write `data` as `name` and run `geo import` on it; the exit code."""
    path = tmp_path / name
    path.write_bytes(data)
    return main(["import", str(path), *options])


def report_of(capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    """The JSON report `geo import --json` printed."""
    out = capsys.readouterr().out
    result: dict[str, Any] = json.loads(out)
    return result


def rejected(report: dict[str, Any]) -> dict[int, list[tuple[str | None, str]]]:
    """Row -> (field, reason) of each rejection."""
    out: dict[int, list[tuple[str | None, str]]] = {}
    for r in report["rejected"]:
        out.setdefault(r["row"], []).append((r["field"], r["reason"]))
    return out


# --- CSV --------------------------------------------------------------------------------------------


def test_csv_good_rows_are_written_bad_rows_rejected_with_field_and_reason(
        cli_env: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = csv_bytes([
        ["Kabul girls' school", "School", "Proposed", "1,200,000", *KABUL],    # row 2: good
        ["Herat clinic", "health", "under construction", "", *HERAT],          # row 3: good
        ["Negative budget", "school", "proposed", "-5", *KABUL],               # row 4: budget_usd
        ["Unknown status", "school", "dreaming", "", *KABUL],                  # row 5: status
        ["No latitude", "water", "planned", "", KABUL[0], ""],                 # row 6: geometry
        ["Swapped", "water", "planned", "", KABUL[1], KABUL[0]],               # row 7: geometry, the hint
    ])
    code = geo_import(tmp_path, "projects.csv", data, "--json", "--report", str(tmp_path / "rejected.csv"))
    report = report_of(capsys)
    assert code == 3  # rows were rejected
    assert (report["read"], report["imported"], report["written"], report["rejected_rows"]) == (6, 2, True, 4)
    reasons = rejected(report)
    assert sorted(reasons) == [4, 5, 6, 7]
    assert reasons[4][0][0] == "budget_usd" and "greater than or equal to 0" in reasons[4][0][1]
    assert reasons[5][0][0] == "status" and "'proposed'" in reasons[5][0][1]
    assert reasons[6] == [("geometry", "lat is empty: give both lon and lat")]
    assert reasons[7][0][0] == "geometry" and "swap them" in reasons[7][0][1]
    projects = by_name(cli_env)
    assert set(stored(cli_env)) >= SHIPPED and len(projects) == 4
    school = projects["Kabul girls' school"]["properties"]
    assert (school["province"], school["province_name"], school["budget_usd"], school["category"]) == \
        ("AF-KAB", "Kabul", 1_200_000.0, "school")
    clinic = projects["Herat clinic"]["properties"]
    assert (clinic["province"], clinic["status"]) == ("AF-HER", "under_construction")
    assert clinic["status_history"][0]["status"] == "under_construction"
    assert sorted(report["ids"]) == sorted(fid for fid in stored(cli_env) if fid not in SHIPPED)


def test_the_rejected_rows_file_holds_the_rows_as_read_with_a_reason_and_imports_once_fixed(
        cli_env: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = csv_bytes([["Good", "school", "proposed", "", *KABUL],
                      ["=1+1", "school", "someday", "", *KABUL],
                      ["Dear clinic", "health", "planned", "-10", *HERAT]])
    report_path = tmp_path / "rejected.csv"
    assert geo_import(tmp_path, "in.csv", data, "--report", str(report_path)) == 3
    raw = report_path.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")  # Excel reads UTF-8 (Dari, Pashto) with the mark
    rows = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"))))
    assert rows[0] == [*HEADER, "reason"]
    assert [r[:6] for r in rows[1:]] == [
        ["'=1+1", "school", "someday", "", "69.1723", "34.5281"],  # a formula neutralised, as geo export does
        ["Dear clinic", "health", "planned", "'-10", "62.2", "34.35"]]
    assert rows[1][6].startswith("status: ") and rows[2][6].startswith("budget_usd: ")
    # Fixed in the file (the reasons left in place: the `reason` column is ignored) and imported again.
    rows[1][2], rows[2][3] = "proposed", "10"
    fixed = tmp_path / "fixed.csv"
    with fixed.open("w", encoding="utf-8-sig", newline="") as out:
        csv.writer(out).writerows(rows)
    capsys.readouterr()
    assert main(["import", str(fixed), "--json"]) == 0
    report = report_of(capsys)
    assert report["imported"] == 2 and report["columns"]["ignored"] == ["reason"]
    names = by_name(cli_env)
    # The apostrophe was the file's, not the name's.
    assert names["=1+1"]["properties"]["status"] == "proposed"
    assert names["Dear clinic"]["properties"]["budget_usd"] == 10.0


def test_csv_with_semicolons_bom_and_variant_column_names(cli_env: Settings, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    header = ["Project name", "Sector", "Project status", "Budget (USD)", "Longitude", "Latitude",
              "Name (Dari)", "Funders", "Start date", "End date", "id", "created_at"]
    row = ["Solar mini-grid", "Energy", "Planned", "USD 250,000", "69.1723", "34.5281", "شبکه برق آفتابی",
           "ADB; KfW", "2025-04-01", "2026-01-31", "my-own-id", "2000-01-01T00:00:00Z"]
    data = "\ufeff".encode() + csv_bytes([row], header, delimiter=";")
    assert geo_import(tmp_path, "semi.csv", data, "--json") == 0
    report = report_of(capsys)
    assert report["columns"]["ignored"] == ["id", "created_at"]
    props = by_name(cli_env)["Solar mini-grid"]["properties"]
    assert (props["category"], props["status"], props["budget_usd"], props["name_prs"], props["funders"],
            props["start_date"], props["end_date"]) == (
        "energy", "planned", 250_000.0, "شبکه برق آفتابی", ["ADB", "KfW"], "2025-04-01", "2026-01-31")
    assert not [f for f in stored(cli_env) if f == "my-own-id"]  # ids are the server's
    assert props["created_at"] != "2000-01-01T00:00:00Z"


# --- XLSX -------------------------------------------------------------------------------------------


def test_xlsx_typed_cells_good_and_bad_rows(cli_env: Settings, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    header = [*HEADER, "start_date", "end_date"]
    data = xlsx_bytes([
        ["Water network", "water", "approved", 3_500_000, *KABUL, date(2025, 1, 15), date(2026, 6, 30)],
        ["Ends before it starts", "water", "approved", None, *KABUL, date(2025, 1, 15), date(2024, 1, 1)],
        ["x" * 301, "school", "proposed", None, *KABUL, None, None],
        ["Budget as text", "school", "proposed", "a lot", *KABUL, None, None],
    ], header)
    assert geo_import(tmp_path, "book.xlsx", data, "--json") == 3
    report = report_of(capsys)
    assert (report["format"], report["read"], report["imported"]) == ("xlsx", 4, 1)
    reasons = rejected(report)
    assert sorted(reasons) == [3, 4, 5]  # Excel's row numbers: the header is row 1
    assert "end_date is before start_date" in reasons[3][0][1]
    assert reasons[4][0] == ("name", "String should have at most 300 characters")
    assert reasons[5][0][0] == "budget_usd"
    props = by_name(cli_env)["Water network"]["properties"]
    assert (props["budget_usd"], props["start_date"], props["end_date"], props["province"]) == \
        (3_500_000.0, "2025-01-15", "2026-06-30", "AF-KAB")


# --- GeoJSON and GeoPackage -----------------------------------------------------------------------


def test_geojson_points_polygons_bad_features_and_a_province_mismatch(
        cli_env: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    square = [[[69.16, 34.52], [69.17, 34.52], [69.17, 34.53], [69.16, 34.53], [69.16, 34.52]]]
    doc = {"type": "FeatureCollection", "features": [
        point(*KABUL, name="Clinic", category="health", status="planned", province="Kabul",
              funders=["WHO", "UNICEF"]),                                                       # 1: good
        {"type": "Feature", "geometry": {"type": "Polygon", "coordinates": square},
         "properties": {"name": "Housing block", "category": "housing", "status": "proposed"}},  # 2: good
        {"type": "Feature", "geometry": None,                                          # 3: no geometry
         "properties": {"name": "Nowhere", "category": "other", "status": "planned"}},
        "not a feature",                                                                        # 4
        point(*KABUL, name="Mislabelled", category="school", status="planned", province="AF-HER"),  # 5
    ]}
    assert geo_import(tmp_path, "in.geojson", json.dumps(doc).encode(), "--json") == 3
    report = report_of(capsys)
    reasons = rejected(report)
    assert sorted(reasons) == [3, 4, 5] and report["imported"] == 2
    assert reasons[3][0][0] == "geometry"
    assert reasons[4] == [(None, "not a GeoJSON Feature object")]
    field, reason = reasons[5][0]
    assert field == "province" and "Herat (AF-HER)" in reason and "Kabul (AF-KAB)" in reason
    projects = by_name(cli_env)
    assert projects["Clinic"]["properties"]["funders"] == ["WHO", "UNICEF"]
    assert projects["Housing block"]["geometry"]["type"] == "Polygon"
    assert projects["Housing block"]["properties"]["province"] == "AF-KAB"
    assert "Mislabelled" not in projects


def test_geopackage_in_utm_is_carried_to_lon_lat(cli_env: Settings, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    import geopandas as gpd
    import shapely
    from pyproj import Transformer

    # The points are given in UTM zone 42N (EPSG:32642), as a surveyor's GIS may hold them.
    to_utm = Transformer.from_crs("EPSG:4326", "EPSG:32642", always_xy=True)
    frame = gpd.GeoDataFrame(
        {"name": ["Bridge", "Bad status"], "category": ["transport", "transport"],
         "status": ["completed", "finished"], "budget_usd": [75_000.0, None]},
        geometry=[shapely.Point(*to_utm.transform(*KABUL)), shapely.Point(*to_utm.transform(*KABUL))],
        crs="EPSG:32642")
    path = tmp_path / "survey.gpkg"
    frame.to_file(path, layer="projects", driver="GPKG", engine="pyogrio")
    assert main(["import", str(path), "--json"]) == 3
    report = report_of(capsys)
    assert (report["format"], report["imported"], sorted(rejected(report))) == ("gpkg", 1, [2])
    bridge = by_name(cli_env)["Bridge"]
    lon, lat = bridge["geometry"]["coordinates"]
    assert abs(lon - KABUL[0]) < 1e-7 and abs(lat - KABUL[1]) < 1e-7
    assert bridge["properties"]["province"] == "AF-KAB" and bridge["properties"]["budget_usd"] == 75_000.0


def test_an_export_imported_again_is_all_duplicates_and_nothing_rejected(
        cli_env: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # geo export's own files read back: server columns ignored, provinces agree, funders' JSON text read.
    for name in ("projects.geojson", "projects.csv", "projects.gpkg"):
        assert main(["export", "projects", str(tmp_path / name)]) == 0
    utm = "http://www.opengis.net/def/crs/EPSG/0/32642"
    assert main(["export", "projects", str(tmp_path / "utm.geojson"), "--crs", utm]) == 0
    capsys.readouterr()
    for name in ("projects.geojson", "projects.csv", "projects.gpkg", "utm.geojson"):
        assert main(["import", str(tmp_path / name), "--json", "--dry-run"]) == 0, name
        report = report_of(capsys)
        assert (report["read"], report["rejected"], report["imported"]) == (2, [], 0), name
        assert {d["of"] for d in report["duplicates"]} == SHIPPED, name
        assert all(d["distance_m"] < 0.01 for d in report["duplicates"]), name
    assert set(stored(cli_env)) == SHIPPED


# --- duplicates -------------------------------------------------------------------------------------


def test_duplicates_within_100_m_are_skipped_and_at_150_m_are_not(
        cli_env: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lon, lat = KABUL
    first = csv_bytes([["Central clinic", "health", "planned", "", lon, lat]])
    assert geo_import(tmp_path, "first.csv", first, "--json") == 0
    (first_id,) = report_of(capsys)["ids"]
    data = csv_bytes([
        ["central  CLINIC", "health", "planned", "", lon, lat + NORTH_50M],        # row 2: 49.9 m: duplicate
        ["Central clinic", "health", "planned", "", lon, lat + NORTH_150M],        # row 3: 149.8 m: new
        ["Central clinic", "school", "planned", "", lon, lat],                     # row 4: other category
        ["Central clinic", "health", "planned", "", lon, lat + NORTH_150M + 0.0002],  # row 5: 22 m from row 3
        ["Second Salang tunnel", "transport", "planned", "", 69.026944, 35.3],     # row 6: on the tunnel
    ])
    assert geo_import(tmp_path, "again.csv", data, "--json") == 0
    report = report_of(capsys)
    found = {d["row"]: (d["of"], d["distance_m"]) for d in report["duplicates"]}
    assert sorted(found) == [2, 5, 6]
    assert found[2][0] == first_id and 49.0 < found[2][1] < 51.0
    assert found[5][0] == "row 3" and 21.0 < found[5][1] < 23.5
    assert found[6] == ("salang-tunnel-2", 0.0)
    assert report["imported"] == 2  # rows 3 and 4
    assert len(stored(cli_env)) == 2 + 1 + 2


def test_allow_duplicates_imports_them_and_still_reports_them(
        cli_env: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = csv_bytes([["Salang highway reconstruction", "transport", "planned", "", 69.026944, 35.322083]])
    assert geo_import(tmp_path, "dup.csv", data, "--json", "--allow-duplicates") == 0
    report = report_of(capsys)
    assert report["duplicates"][0]["of"] == "salang-highway-reconstruction" and report["imported"] == 1
    assert len(stored(cli_env)) == 3


def test_distance_is_geodesic_between_nearest_points() -> None:
    import shapely

    here = shapely.Point(*KABUL)
    assert 49.85 < distance_m(here, shapely.Point(KABUL[0], KABUL[1] + NORTH_50M)) < 50.0
    # A line 0.00135 degrees north of the point: its nearest point is straight north, 149.8 m.
    north = KABUL[1] + NORTH_150M
    line = shapely.LineString([(KABUL[0] - 0.01, north), (KABUL[0] + 0.01, north)])
    assert 149.5 < distance_m(here, line) < 150.0
    assert distance_m(here, here.buffer(0.001)) == 0.0


# --- provinces, --map, all-or-nothing, dry run --------------------------------------------------------


@pytest.mark.parametrize(("given", "accepted"), [
    ("Kabul", True), ("kabul ", True), ("AF-KAB", True), ("KAB", True), ("Kābul", True),
    ("Herat", False), ("AF-HER", False), ("Narnia", False)])
def test_a_province_named_in_the_file_must_be_where_the_geometry_lies(
        cli_env: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str], given: str,
        accepted: bool) -> None:
    data = csv_bytes([["School", "school", "proposed", "", *KABUL, given]], [*HEADER, "Province"])
    assert geo_import(tmp_path, "p.csv", data, "--json", "--dry-run") == (0 if accepted else 3)
    report = report_of(capsys)
    if accepted:
        assert report["imported"] == 1
        return
    ((field, reason),) = rejected(report)[2]
    assert field == "province"
    if given == "Narnia":
        assert "not an Afghan province name or ISO 3166-2:AF code" in reason
    else:
        assert "Herat (AF-HER)" in reason and "lies in Kabul (AF-KAB)" in reason


def test_map_option_and_mapping_file(cli_env: Settings, tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    header = ["Bezeichnung", "Art", "Zustand", "E", "N", "Bemerkung"]
    data = csv_bytes([["Brunnen", "water", "planned", *KABUL, "egal"]], header)
    (tmp_path / "in.csv").write_bytes(data)
    # Without a map, the file has no column for name, category or status: refused before any row.
    assert main(["import", str(tmp_path / "in.csv")]) == 2
    assert "no column holds name, category, status, lon and lat" in capsys.readouterr().err
    spec = "Bezeichnung=name,Art=category,Zustand=status,E=lon,N=lat"
    assert main(["import", str(tmp_path / "in.csv"), "--map", spec, "--json", "--dry-run"]) == 0
    assert report_of(capsys)["columns"]["ignored"] == ["Bemerkung"]
    mapping = tmp_path / "mapping.json"
    mapping.write_text(json.dumps({"Bezeichnung": "name", "Art": "category", "Zustand": "status", "E": "lon",
                                   "N": "lat", "Bemerkung": "source_note"}))
    assert main(["import", str(tmp_path / "in.csv"), "--map", str(mapping), "--json"]) == 0
    assert by_name(cli_env)["Brunnen"]["properties"]["source_note"] == "egal"
    assert main(["import", str(tmp_path / "in.csv"), "--map", "Bezeichnung=title"]) == 2
    assert "cannot be mapped to 'title'" in capsys.readouterr().err


def test_all_or_nothing_writes_nothing_when_a_row_is_rejected(
        cli_env: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = csv_bytes([["Good", "school", "proposed", "", *KABUL], ["Bad", "school", "nope", "", *KABUL]])
    assert geo_import(tmp_path, "in.csv", data, "--json", "--all-or-nothing") == 3
    report = report_of(capsys)
    assert (report["valid"], report["imported"], report["written"], report["ids"]) == (1, 0, False, [])
    assert set(stored(cli_env)) == SHIPPED


def _folder_state(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def test_dry_run_writes_nothing_and_reports_the_same(cli_env: Settings, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    data = csv_bytes([["Good", "school", "proposed", "", *KABUL], ["Bad", "school", "nope", "", *KABUL]])
    GeoJSONFileStore(cli_env.projects).close()  # a first open records the store's projects in its ledger
    before = _folder_state(cli_env.projects.parent)
    assert geo_import(tmp_path, "in.csv", data, "--json", "--dry-run") == 3
    dry = report_of(capsys)
    assert _folder_state(cli_env.projects.parent) == {**before, "in.csv": data}
    assert geo_import(tmp_path, "in.csv", data, "--json") == 3
    real = report_of(capsys)
    assert (dry["dry_run"], dry["written"], real["dry_run"], real["written"]) == (True, False, False, True)
    for key in ("read", "valid", "imported", "rejected", "duplicates"):
        assert dry[key] == real[key], key


def test_the_text_report(cli_env: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = csv_bytes([["Good", "school", "proposed", "", *KABUL], ["Bad", "school", "proposed", "-1", *KABUL],
                      ["Salang highway reconstruction", "transport", "planned", "", 69.026944, 35.322083]])
    assert geo_import(tmp_path, "in.csv", data, "--dry-run") == 3
    out = capsys.readouterr().out.splitlines()
    assert out[:4] == ["rows read: 3", "would be imported (dry run): 1", "rejected: 1 rows",
                       "duplicates: 1 (skipped)"]
    assert "  row 3: budget_usd: Input should be greater than or equal to 0" in out
    assert ("  row 4: duplicate of salang-highway-reconstruction (0 m away): Salang highway reconstruction"
            in out)


# --- the template -----------------------------------------------------------------------------------


def test_xlsx_template_has_lists_a_fields_sheet_and_round_trips(
        cli_env: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from openpyxl import load_workbook

    path = tmp_path / "projects.xlsx"
    assert main(["template", str(path)]) == 0
    book = load_workbook(path)
    sheet, fields = book["projects"], book["fields"]
    header = [c.value for c in sheet[1]]
    assert header[:5] == ["name", "category", "status", "lon", "lat"]
    assert str(sheet["A2"].value).startswith("EXAMPLE:")
    lists = {str(v.sqref).split(":")[0]: v.formula1 for v in sheet.data_validations.dataValidation}
    assert lists["B2"] == '"school,health,housing,water,energy,transport,other"'
    assert lists["C2"] == '"proposed,planned,approved,under_construction,completed,suspended,cancelled"'
    explained = {row[0].value: row for row in fields.iter_rows(min_row=2) if row[0].value in header}
    assert set(explained) == set(header)
    assert explained["geometry_quality"][3].value.startswith("How good the geometry is")  # the model's text
    assert explained["name"][2].value == "yes" and explained["budget_usd"][2].value == "no"
    # Filled in as a person would: two rows under the example, which stays.
    sheet.append(["Girls' school", "school", "planned", 69.1723, 34.5281])
    road = "LINESTRING (69.10 34.50, 69.20 34.55)"
    sheet.append(["Road repair", "transport", "approved", None, None, road])
    book.save(path)
    capsys.readouterr()
    assert main(["import", str(path), "--json"]) == 0
    report = report_of(capsys)
    assert (report["imported"], [s["row"] for s in report["skipped"]]) == (2, [2])
    projects = by_name(cli_env)
    assert projects["Road repair"]["geometry"]["type"] == "LineString"
    assert not [n for n in projects if n.startswith("EXAMPLE")]


def test_csv_template_round_trips(cli_env: Settings, tmp_path: Path,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "projects.csv"
    assert main(["template", str(path)]) == 0
    text = path.read_text(encoding="utf-8-sig")
    with path.open("a", encoding="utf-8", newline="") as out:
        empty = "," * (text.splitlines()[0].count(",") - 4)
        out.write("Health post,health,proposed,62.2,34.35" + empty + "\r\n")
    capsys.readouterr()
    assert main(["import", str(path), "--json"]) == 0
    report = report_of(capsys)
    assert (report["imported"], len(report["skipped"])) == (1, 1)
    assert by_name(cli_env)["Health post"]["properties"]["province"] == "AF-HER"
    # The example row itself passes every check once its mark is gone: it shows a valid project.
    example = text.splitlines()[1].replace("EXAMPLE: ", "")
    (tmp_path / "example.csv").write_text(text.splitlines()[0] + "\r\n" + example + "\r\n", encoding="utf-8")
    assert main(["import", str(tmp_path / "example.csv"), "--json", "--dry-run"]) == 0
    assert report_of(capsys)["valid"] == 1


def test_the_shipped_example_file_is_valid_and_made_up(settings: Settings) -> None:
    from tests.conftest import ROOT

    path = ROOT / "examples" / "projects-example.csv"
    text = path.read_text(encoding="utf-8-sig")
    assert "made-up" in text.lower()
    store = open_store(settings)
    try:
        result = run_import(path.read_bytes(), "csv", Catalogue(settings, store), ImportOptions(dry_run=True))
    finally:
        store.close()
    report = result.report
    assert report.read >= 5 and report.valid == report.read and not report.rejected


# --- hostile files ----------------------------------------------------------------------------------


def _library_import(settings: Settings, data: bytes, kind: str) -> None:
    store = open_store(settings)
    try:
        run_import(data, kind, Catalogue(settings, store), ImportOptions(dry_run=True))  # type: ignore[arg-type]
    finally:
        store.close()


def test_non_utf8_csv_is_refused_saying_how_to_save_it(settings: Settings) -> None:
    data = csv_bytes([["Café", "school", "proposed", "", *KABUL]], encoding="cp1252")
    with pytest.raises(InvalidInput, match=r"not UTF-8 text \(byte 0xE9") as caught:
        _library_import(settings, data, "csv")
    assert caught.value.errors == [{"field": "file", "message": caught.value.errors[0]["message"]}]


def test_a_huge_csv_cell_is_refused(settings: Settings) -> None:
    data = csv_bytes([["x" * 200_000, "school", "proposed", "", *KABUL]])
    with pytest.raises(InvalidInput, match="field larger than field limit"):
        _library_import(settings, data, "csv")


def test_too_many_rows_are_refused(settings: Settings) -> None:
    data = csv_bytes([["a", "school", "proposed", "", *KABUL]] * (MAX_ROWS + 1))
    with pytest.raises(InvalidInput, match="more than 100,000 rows"):
        _library_import(settings, data, "csv")


def zip_bomb(expanded: int = 150 << 20) -> bytes:
    """A real workbook whose sheet is `expanded` bytes of rows once unzipped (about 0.5 MB zipped).

    Unchecked, calamine reads the whole sheet first: 150 MB of rows took 6.6 s and 525 MB of memory
    here (measured with check_zip bypassed), even when asked for the first 100,002 rows only."""
    source = zipfile.ZipFile(io.BytesIO(xlsx_bytes([["a", "school", "proposed", 1, *KABUL]])))
    sheet = source.read(SHEET_XML)
    start, end = sheet.index(b"<sheetData>") + len(b"<sheetData>"), sheet.index(b"</sheetData>")
    row = b'<row><c t="inlineStr"><is><t>x</t></is></c></row>'
    block = row * ((1 << 20) // len(row))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name in source.namelist():
            if name != SHEET_XML:
                archive.writestr(name, source.read(name))
        with archive.open(SHEET_XML, "w") as member:
            member.write(sheet[:start])
            written = 0
            while written < expanded:
                member.write(block)
                written += len(block)
            member.write(sheet[end:])
    return buffer.getvalue()


def lying_zip_bomb() -> bytes:
    """The zip bomb with its sheet declared 1,000 bytes long in both headers (a reader trusting them is
    fooled)."""
    data = bytearray(zip_bomb())
    real = zipfile.ZipFile(io.BytesIO(bytes(data))).getinfo(SHEET_XML).file_size
    for signature, offset in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
        start = 0
        while (start := data.find(signature, start)) != -1:
            if int.from_bytes(data[start + offset:start + offset + 4], "little") == real:
                data[start + offset:start + offset + 4] = (1000).to_bytes(4, "little")
            start += 4
    assert zipfile.ZipFile(io.BytesIO(bytes(data))).getinfo(SHEET_XML).file_size == 1000
    return bytes(data)


@pytest.mark.parametrize("bomb", [zip_bomb, lying_zip_bomb], ids=["declared", "lying"])
def test_a_zip_bomb_as_xlsx_is_refused_before_it_expands(settings: Settings, bomb: Any) -> None:
    data = bomb()
    assert len(data) < 1 << 20
    with pytest.raises(InvalidInput, match=r"expands to more than 100 MB|damaged zip member"):
        _library_import(settings, data, "xlsx")


def test_an_old_xls_or_an_unknown_file_is_refused(cli_env: Settings, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    assert geo_import(tmp_path, "old.xls", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 100) == 2
    assert "save it as .xlsx" in capsys.readouterr().err
    assert geo_import(tmp_path, "picture.png", b"\x89PNG\r\n") == 2
    assert "cannot tell the file's format" in capsys.readouterr().err
    assert geo_import(tmp_path, "broken.xlsx", b"PK\x03\x04 not really") == 2
    assert "not a readable XLSX" in capsys.readouterr().err


# --- the progress bar -------------------------------------------------------------------------------


class Terminal(io.StringIO):
    """A stream that says it is a terminal."""

    def isatty(self) -> bool:
        return True


def test_the_progress_bar_draws_on_a_terminal_only() -> None:
    tty, pipe = Terminal(), io.StringIO()
    for stream in (tty, pipe):
        with progress("Importing rows", 3, stream=stream) as advance:
            for _ in range(3):
                advance(1)
    assert "Importing rows" in tty.getvalue()
    assert pipe.getvalue() == ""


def test_import_and_export_print_no_bar_when_stderr_is_not_a_terminal(
        cli_env: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert geo_import(tmp_path, "in.csv", csv_bytes([["Good", "school", "proposed", "", *KABUL]])) == 0
    assert main(["export", "projects", str(tmp_path / "out.gpkg")]) == 0
    err = capsys.readouterr().err
    assert "━" not in err and "Importing" not in err and "Writing" not in err



def test_geo_import_writes_into_the_postgis_store_in_one_step(
        cli_env: Settings, pg_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GEO_DATABASE_URL", pg_url)
    data = csv_bytes([["Kabul school", "school", "proposed", "", *KABUL],
                      ["Herat clinic", "health", "planned", "", *HERAT],
                      ["Bad", "school", "nope", "", *KABUL]])
    assert geo_import(tmp_path, "in.csv", data, "--json") == 3
    report = report_of(capsys)
    assert (report["imported"], report["written"]) == (2, True)
    projects = by_name(cli_env.model_copy(update={"database_url": pg_url}))
    assert {n: p["properties"]["province"] for n, p in projects.items()} == {
        "Kabul school": "AF-KAB", "Herat clinic": "AF-HER"}  # the database started empty
