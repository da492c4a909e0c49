"""Importing projects from spreadsheets and GIS files (CSV, XLSX, GeoJSON, GeoPackage).

- sources: the formats and the `Table` every reader gives (csvfile, xlsxfile, geofile read them);
- columns: which column holds which field (names, variants, `--map`);
- values: cells as the JSON values a client would send;
- rows: one row checked by the API's own checks (geo.validation.check_feature), plus the province;
- duplicates: same name and category within 100 m;
- report: the report, and the rejected rows as CSV;
- run: the whole import (`run_import`), used by `geo import` and `POST /collections/projects/import`;
- template: `geo template`; progress: the terminal's progress bar.
"""
