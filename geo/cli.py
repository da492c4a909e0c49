"""The `geo` command: run the service, obtain the data."""

from __future__ import annotations

import argparse
import logging
import socket
import sys
from pathlib import Path
from typing import Any

from geo import provinces
from geo.errors import GeoError, StoreCorrupt, StoreUnavailable
from geo.schema import PROJECT_SCHEMA, Property
from geo.settings import Settings

GRACEFUL_SHUTDOWN_S = 10  # then connections still open (a stalled client) are closed


def uvicorn_options(args: argparse.Namespace) -> dict[str, Any]:
    """How `geo serve` runs uvicorn: bounded connections, request heads and shutdown.

    - `limit_concurrency`: past that many open connections or running requests, new requests get a
      503 instead of piling up in memory;
    - request heads (line and headers) of at most `--max-header-bytes`, complete within 10 s of their
      first byte (geo.http.serving; uvicorn with httptools has neither limit);
    - idle keep-alive connections closed after `--timeout-keep-alive` seconds (uvicorn's own timer);
    - request bodies: GEO_BODY_TIMEOUT_S (408, geo.http.body); downloads a client stops reading:
      GEO_STALL_TIMEOUT_S (geo.routers.downloads);
    - on shutdown, connections still open after GRACEFUL_SHUTDOWN_S are closed.
    """
    try:
        from geo.http.serving import GuardedHttpTools
        http: Any = GuardedHttpTools
    except ImportError:  # no httptools: uvicorn's h11 applies the head size limit itself
        http = "auto"
    return {"host": args.host, "port": args.port, "fd": args.fd, "workers": args.workers,
            "log_level": args.log_level, "access_log": not args.no_access_log, "http": http,
            "timeout_keep_alive": args.timeout_keep_alive, "limit_concurrency": args.limit_concurrency,
            "timeout_graceful_shutdown": GRACEFUL_SHUTDOWN_S,
            "h11_max_incomplete_event_size": args.max_header_bytes}


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from geo.app import create_app

    try:
        app = create_app(Settings())  # fails here, with a message, on a corrupt or missing store
    except (StoreCorrupt, StoreUnavailable) as exc:
        print(f"geo: refusing to start: {exc}", file=sys.stderr)
        return 2
    options = uvicorn_options(args)
    if args.workers == 1 and args.fd is not None:
        # uvicorn's own --fd takes every inherited socket for a Unix one, so asyncio leaves Nagle's
        # algorithm on and each response waits ~40 ms for a delayed ACK; the socket's real family fixes it.
        config = uvicorn.Config(app, **{k: v for k, v in options.items() if k != "fd"})
        uvicorn.Server(config).run(sockets=[socket.socket(fileno=args.fd)])
    elif args.workers == 1:
        uvicorn.run(app, **options)
    else:
        # Each worker process builds its own app from the same GEO_* environment; the check above built
        # one here too, whose table (all the projects) this parent must not hold for the whole run.
        app.state.catalogue.store.close()
        del app
        uvicorn.run("geo.app:create_app", factory=True, **options)
    return 0


def _fetch(args: argparse.Namespace) -> int:
    settings = Settings()
    path = provinces.fetch(settings, force=args.force)
    record = provinces.provenance(settings) or {}
    print(f"provinces: {path} (from {record.get('retrieved_from')}, sha256 {record.get('sha256')})")
    return 0


def _export(args: argparse.Namespace) -> int:
    from geo.formats.export import export_layer

    options = {**_filter_values(args), "bbox": args.bbox, "datetime": args.datetime, "filter": args.filter,
               "bbox-crs": args.bbox_crs}
    count = export_layer(Settings(), args.layer, args.file, options, bom=args.bom, crs=args.crs)
    print(f"{args.layer}: {count} features written to {args.file}")
    return 0


def _map(args: argparse.Namespace) -> int:
    from geo.web.offline import write_map

    options = {**_filter_values(args), "bbox": args.bbox, "datetime": args.datetime}
    count = write_map(Settings(), args.file, options)
    print(f"map: {count} projects written to {args.file} (self-contained; opens offline)")
    return 0


def _store_copy(args: argparse.Namespace) -> int:
    from geo.store.copy import CopyRefused, CountLine, copy, masked, open_target

    settings = Settings()
    try:
        src = open_target(args.src, settings, source=True)
        try:
            dst = open_target(args.dst, settings)
            try:
                count = copy(src, dst, progress=CountLine())
            finally:
                dst.close()
        finally:
            src.close()
    except CopyRefused as exc:
        print(f"geo: {exc}", file=sys.stderr)
        return 2
    print(f"store copy: {count} projects copied from {masked(args.src)} to {masked(args.dst)}")
    return 0


def _db(args: argparse.Namespace) -> int:
    from geo.store import migrate

    url = args.url or Settings().database_url
    if not url:
        print("geo: no database: set GEO_DATABASE_URL or pass --url", file=sys.stderr)
        return 2
    with migrate.connect(url, Settings().database_connect_timeout_s) as conn:
        if args.db_command == "status":
            state = migrate.status(conn)
            for migration, at in state.applied:
                print(f"applied {migration.label} ({at.isoformat(timespec='seconds')})")
            for migration in state.pending:
                print(f"pending {migration.label}")
            return 0
        done = migrate.init(conn) if args.db_command == "init" else migrate.migrate(conn)
    for migration in done:
        print(f"applied {migration.label}")
    print(f"{migrate.masked(url)}: {len(done)} migration(s) applied; the schema is up to date")
    return 0


def _filter_help(field: Property) -> str:
    """What an option of a filter field takes, from the schema: the projects' values of the field."""
    if field.enum:
        values = ", ".join(field.enum)
    elif field.filterable is not None and field.filterable.values_of:
        values = f"ids of {field.filterable.values_of} features"
    else:
        values = field.description or "any value"
    return f"the `{field.name}` filter, as in the HTTP query (comma-separated; projects: {values})"


def _add_filter_options(parser: argparse.ArgumentParser) -> None:
    """An option per filter field of the project schema (`--status`, ...), as the items' parameters.

    The values are listed in the help and checked where the HTTP query's are (the collection, with
    the same message): a comma-separated list is no argparse `choices`, and `geo export` also writes
    layers whose `status` has other values (Salang's `open`).
    """
    for field in PROJECT_SCHEMA.filters():
        parser.add_argument(f"--{field.name}", metavar=f"{field.name.upper()}[,...]",
                            help=_filter_help(field))


def _filter_values(args: argparse.Namespace) -> dict[str, str | None]:
    """The filter fields' options as the items' query parameters."""
    return {field.name: getattr(args, field.name) for field in PROJECT_SCHEMA.filters()}


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the `geo` command."""
    parser = argparse.ArgumentParser(prog="geo", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the service")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--fd", type=int, default=None,
                       help="serve on this already-open socket instead (socket activation, tests)")
    serve.add_argument("--workers", type=int, default=1, help="server processes sharing the store")
    serve.add_argument("--log-level", default="info",
                       choices=("critical", "error", "warning", "info", "debug"))
    serve.add_argument("--no-access-log", action="store_true", help="do not log each request")
    serve.add_argument("--limit-concurrency", type=int, default=1000,
                       help="open connections or requests past which new requests get a 503")
    serve.add_argument("--timeout-keep-alive", type=int, default=5,
                       help="seconds an idle keep-alive connection stays open")
    serve.add_argument("--max-header-bytes", type=int, default=64 * 1024,
                       help="largest request line and headers accepted (past it: 400)")
    serve.set_defaults(func=_serve)
    data = sub.add_parser("data", help="manage source data")
    data_sub = data.add_subparsers(dest="data_command", required=True)
    fetch = data_sub.add_parser("fetch", help="obtain, check, normalise and cache the provinces")
    fetch.add_argument("--force", action="store_true", help="fetch again even if cached")
    fetch.set_defaults(func=_fetch)
    export = sub.add_parser("export", help="write a layer to a file (format from the extension: "
                                           "geojson, geojsonseq, csv, kml, gpkg, fgb, parquet, shp.zip)")
    export.add_argument("layer", help="provinces, salang or projects")
    export.add_argument("file", type=Path, help="where to write, e.g. projects.gpkg")
    _add_filter_options(export)
    for option in ("bbox", "datetime", "filter"):
        export.add_argument(f"--{option}", help=f"the `{option}` filter, as in the HTTP query")
    export.add_argument("--bbox-crs", help="the CRS of --bbox, a URI as the HTTP `bbox-crs` takes")
    export.add_argument("--crs", help="write the file in this CRS, a URI as the HTTP `crs` takes, e.g. "
                                      "http://www.opengis.net/def/crs/EPSG/0/32642 (default: CRS84; "
                                      "KML: CRS84 only)")
    export.add_argument("--bom", action="store_true", help="CSV: start with a byte-order mark (Excel)")
    export.set_defaults(func=_export)
    web_map = sub.add_parser("map", help="write a self-contained web map (data and scripts embedded)")
    web_map.add_argument("file", type=Path, help="where to write, e.g. map.html")
    _add_filter_options(web_map)
    for option in ("bbox", "datetime"):
        web_map.add_argument(f"--{option}", help=f"the `{option}` filter, as in the HTTP query")
    web_map.set_defaults(func=_map)
    from geo.importing.command import add_commands  # `geo import` and `geo template`

    add_commands(sub)
    from geo.keys import add_commands as add_key_commands  # `geo keys create|list|revoke`

    add_key_commands(sub)
    store = sub.add_parser("store", help="manage the project store")
    store_sub = store.add_subparsers(dest="store_command", required=True)
    store_copy = store_sub.add_parser(
        "copy", help="copy every project of one store into another, empty one (ids, order, timestamps and "
                     "histories kept; no --replace: a copy never overwrites a store)")
    for end, what in (("src", "the store copied"), ("dst", "the empty store filled (a new file is created)")):
        store_copy.add_argument(end, metavar=end.upper(),
                                help=f"{what}: a GeoJSON store file, or postgresql://user:password@host/db")
    store_copy.set_defaults(func=_store_copy)
    db = sub.add_parser("db", help="the PostGIS store's database (GEO_DATABASE_URL, or --url)")
    db_sub = db.add_subparsers(dest="db_command", required=True)
    for name, text in (("init", "create the postgis extension if missing (when allowed), then migrate"),
                       ("migrate", "apply the pending migrations, printing each"),
                       ("status", "list the migrations applied and those pending")):
        command = db_sub.add_parser(name, help=text)
        command.add_argument("--url", help="postgresql://user:password@host/db (default: GEO_DATABASE_URL)")
        command.set_defaults(func=_db)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the `geo` command."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    # Every command's failures in one place: a message, no traceback; 2 for what the user gave
    # (a bad filter value), 1 for what the service could not do (data unavailable, store unreadable).
    try:
        code: int = args.func(args)
    except GeoError as exc:
        print(f"geo: {exc.detail}", file=sys.stderr)
        return 2 if exc.status < 500 else 1
    except (StoreCorrupt, StoreUnavailable) as exc:
        print(f"geo: {exc}", file=sys.stderr)
        return 1
    return code


if __name__ == "__main__":
    sys.exit(main())
