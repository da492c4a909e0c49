"""The `geo` command: run the service, obtain the data."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

from geo import provinces
from geo.errors import GeoError, LayerUnavailable, StoreCorrupt, StoreUnavailable
from geo.settings import Settings

GRACEFUL_SHUTDOWN_S = 10  # then connections still open (a stalled client) are closed


def uvicorn_options(args: argparse.Namespace) -> dict[str, Any]:
    """How `geo serve` runs uvicorn: bounded connections, short idle keep-alive, bounded shutdown.

    uvicorn itself times out only idle keep-alive connections; a request body that stalls is cut by
    the app (GEO_BODY_TIMEOUT_S, 408), a download the client stops reading by GEO_STALL_TIMEOUT_S.
    `limit_concurrency` answers 503 past that many open connections or requests, instead of letting
    memory grow; with h11 the request head is also limited to 16 kB (httptools, the default when
    installed, has no such limit: put a reverse proxy in front for header size and header timeouts).
    """
    return {"host": args.host, "port": args.port, "workers": args.workers, "log_level": "info",
            "timeout_keep_alive": args.timeout_keep_alive, "limit_concurrency": args.limit_concurrency,
            "timeout_graceful_shutdown": GRACEFUL_SHUTDOWN_S, "h11_max_incomplete_event_size": 16 * 1024}


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from geo.app import create_app

    try:
        app = create_app(Settings())  # fails here, with a message, on a corrupt or missing store
    except (StoreCorrupt, StoreUnavailable) as exc:
        print(f"geo: refusing to start: {exc}", file=sys.stderr)
        return 2
    options = uvicorn_options(args)
    if args.workers == 1:
        uvicorn.run(app, **options)
    else:
        # Each worker process builds its own app from the same GEO_* environment.
        uvicorn.run("geo.app:create_app", factory=True, **options)
    return 0


def _fetch(args: argparse.Namespace) -> int:
    settings = Settings()
    try:
        path = provinces.fetch(settings, force=args.force)
    except LayerUnavailable as exc:
        print(f"geo: {exc.detail}", file=sys.stderr)
        return 1
    record = provinces.provenance(settings) or {}
    print(f"provinces: {path} (from {record.get('retrieved_from')}, sha256 {record.get('sha256')})")
    return 0


def _export(args: argparse.Namespace) -> int:
    from geo.formats.export import export_layer

    options = {"status": args.status, "category": args.category, "province": args.province,
               "bbox": args.bbox, "datetime": args.datetime, "filter": args.filter}
    try:
        count = export_layer(Settings(), args.layer, args.file, options, bom=args.bom)
    except GeoError as exc:
        print(f"geo: {exc.detail}", file=sys.stderr)
        return 2 if exc.status < 500 else 1
    print(f"{args.layer}: {count} features written to {args.file}")
    return 0


def _map(args: argparse.Namespace) -> int:
    from geo.web.export import write_map

    options = {k: getattr(args, k) for k in ("status", "category", "province", "bbox", "datetime")}
    try:
        count = write_map(Settings(), args.file, options)
    except GeoError as exc:
        print(f"geo: {exc.detail}", file=sys.stderr)
        return 2 if exc.status < 500 else 1
    print(f"map: {count} projects written to {args.file} (self-contained; opens offline)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the `geo` command."""
    parser = argparse.ArgumentParser(prog="geo", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the service")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=1, help="server processes sharing the store")
    serve.add_argument("--limit-concurrency", type=int, default=1000,
                       help="open connections or requests past which new requests get a 503")
    serve.add_argument("--timeout-keep-alive", type=int, default=5,
                       help="seconds an idle keep-alive connection stays open")
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
    for option in ("status", "category", "province", "bbox", "datetime", "filter"):
        export.add_argument(f"--{option}", help=f"the `{option}` filter, as in the HTTP query")
    export.add_argument("--bom", action="store_true", help="CSV: start with a byte-order mark (Excel)")
    export.set_defaults(func=_export)
    web_map = sub.add_parser("map", help="write a self-contained web map (data and scripts embedded)")
    web_map.add_argument("file", type=Path, help="where to write, e.g. map.html")
    for option in ("status", "category", "province", "bbox", "datetime"):
        web_map.add_argument(f"--{option}", help=f"the `{option}` filter, as in the HTTP query")
    web_map.set_defaults(func=_map)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the `geo` command."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
