"""`geo export LAYER FILE`: the downloads, written from the command line."""

from __future__ import annotations

import asyncio
import inspect
from pathlib import Path
from typing import Any

from geo.catalogue import Catalogue
from geo.errors import InvalidInput
from geo.formats import FORMATS, Selection, format_of, write_to
from geo.query import Filters, filters_dependency
from geo.settings import Settings


def parse_filters(options: dict[str, str | None]) -> Filters:
    """The same filters as the HTTP query (`status`, `bbox`, ... and CQL2 `filter` where supported)."""
    accepted = inspect.signature(filters_dependency).parameters
    # The dependency's Python names: `datetime_` and `filter_` avoid shadowing builtins.
    kwargs: dict[str, Any] = {}
    for key, value in options.items():
        if value is None:
            continue
        name = key if key in accepted else f"{key}_"
        if name not in accepted:
            raise InvalidInput(f"--{key} is not supported by this version",
                               errors=[{"field": key, "message": "not supported"}])
        kwargs[name] = value
    result = filters_dependency(**kwargs)
    # The dependency may be a coroutine (FastAPI runs async dependencies without a thread hop).
    filters: Filters = asyncio.run(result) if inspect.isawaitable(result) else result
    return filters


def export_layer(settings: Settings, layer: str, dest: Path, options: dict[str, str | None],
                 bom: bool = False) -> int:
    """Write `layer`, filtered, to `dest` in the format its name asks for; the number of features."""
    fmt = format_of(dest.name)
    if fmt is None:
        raise InvalidInput(f"cannot tell the format from {dest.name!r}: end the name with one of "
                           + ", ".join("." + ext for ext in FORMATS),
                           errors=[{"field": "FILE", "message": "unknown extension"}])
    from geo.app import open_store  # the app module pulls in FastAPI: only when exporting

    store = open_store(settings)
    try:
        coll = Catalogue(settings, store).get(layer)
        table = coll.table()
        chosen = coll.select(table, parse_filters(options))
        write_to(fmt, Selection(layer, table, chosen, bom=bom and fmt.extension == "csv"), dest)
    finally:
        store.close()
    return len(chosen)

