"""The `geo import` and `geo template` commands (registered by geo/cli.py).

`geo import FILE` exits with 0 when every row was imported (or skipped: duplicates, examples), 3 when
some rows were rejected (the others imported, unless --all-or-nothing), 2 when the file cannot be read
or an option is wrong, and 1 when the store cannot be written (nothing was written).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import orjson

from geo import provinces
from geo.errors import InvalidInput
from geo.importing.columns import TARGETS, parse_map
from geo.importing.progress import progress
from geo.importing.report import write_rejected
from geo.importing.run import ImportOptions, import_table
from geo.importing.sources import kind_of, read_table
from geo.importing.template import write_template
from geo.settings import Settings

EXIT_REJECTED = 3


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `import` and `template` to the `geo` command's subcommands."""
    command = sub.add_parser(
        "import", help="import projects from a CSV, XLSX, GeoJSON or GeoPackage file into the store "
                       "(GEO_PROJECTS or GEO_DATABASE_URL); exit 3 when rows were rejected",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    command.add_argument("file", type=Path, help="the file (.csv, .xlsx, .geojson, .json, .gpkg)")
    command.add_argument("--map", metavar="COL=FIELD,...|MAPPING.json",
                         help=f"columns to fields where the names do not say; fields: {', '.join(TARGETS)}")
    command.add_argument("--dry-run", action="store_true", help="write nothing; print the same report")
    command.add_argument("--all-or-nothing", action="store_true", help="write nothing if any row is rejected")
    command.add_argument("--allow-duplicates", action="store_true",
                         help="import rows whose name and category match a project within 100 m")
    command.add_argument("--report", type=Path, metavar="FILE",
                         help="write the rejected rows, with a `reason` column, to this CSV file")
    command.add_argument("--json", action="store_true", help="print the report as JSON")
    command.set_defaults(func=import_command)
    template = sub.add_parser("template", help="write an empty import template (.xlsx or .csv)")
    template.add_argument("file", type=Path, help="e.g. projects.xlsx")
    template.set_defaults(func=template_command)


def import_command(args: argparse.Namespace) -> int:
    """Run `geo import`."""
    from geo.app import open_store  # the app module pulls in FastAPI: only when importing
    from geo.catalogue import Catalogue

    try:
        data = args.file.read_bytes()
    except OSError as exc:
        raise InvalidInput.about("FILE", f"cannot read {args.file}: {exc.strerror}") from None
    options = ImportOptions(dry_run=args.dry_run, all_or_nothing=args.all_or_nothing,
                            allow_duplicates=args.allow_duplicates, mapping=parse_map(args.map))
    table = read_table(data, kind_of(data, None, args.file.name))
    settings = Settings()
    provinces.fetch(settings)  # provinces are assigned from the geometry: they must be there
    store = open_store(settings)
    try:
        with progress(f"Importing {args.file.name}", len(table.rows)) as advance:
            result = import_table(table, Catalogue(settings, store), options, advance)
    finally:
        store.close()
    report = result.report
    if args.report is not None:
        count = write_rejected(args.report, result.table.columns, result.rejected_rows, report)
        print(f"{count} rejected rows written to {args.report}", file=sys.stderr)
    print(orjson.dumps(report.to_json(), option=orjson.OPT_INDENT_2).decode() if args.json else report.text())
    return EXIT_REJECTED if report.rejected else 0


def template_command(args: argparse.Namespace) -> int:
    """Run `geo template`."""
    kind = write_template(args.file)
    print(f"template: {args.file} ({kind}: the header, one example row, which the import skips"
          + (", drop-down lists and a `fields` sheet)" if kind == "xlsx" else ")"))
    return 0
