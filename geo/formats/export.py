"""`geo export LAYER FILE`: the downloads, written from the command line."""

from __future__ import annotations

from pathlib import Path

from geo.catalogue import Catalogue
from geo.crs import parse as parse_crs
from geo.errors import InvalidInput
from geo.formats import FORMATS, Selection, format_of, write_to
from geo.importing.progress import progress
from geo.query.params import filters_from
from geo.settings import Settings


def export_layer(settings: Settings, layer: str, dest: Path, options: dict[str, str | None],
                 bom: bool = False, crs: str | None = None) -> int:
    """Write `layer`, filtered, to `dest` in the format its name asks for, in `crs` (a URI, as the
    downloads take it; CRS84 by default); the number of features."""
    fmt = format_of(dest.name)
    if fmt is None:
        raise InvalidInput(f"cannot tell the format from {dest.name!r}: end the name with one of "
                           + ", ".join("." + ext for ext in FORMATS),
                           errors=[{"field": "FILE", "message": "unknown extension"}])
    target = parse_crs(crs, "crs")
    fmt.check_crs(target)
    from geo.app import open_store  # the app module pulls in FastAPI: only when exporting

    store = open_store(settings)
    try:
        coll = Catalogue(settings, store).get(layer)
        table = coll.table()
        chosen = coll.select(table, filters_from(options))
        # The writers (GDAL, Arrow) take the features in one call: the bar pulses, with the time taken.
        selection = Selection(layer, table, chosen, bom=bom and fmt.extension == "csv", crs=target)
        with progress(f"Writing {layer} ({len(chosen):,} features) to {dest.name}", None):
            write_to(fmt, selection, dest)
    finally:
        store.close()
    return len(chosen)

