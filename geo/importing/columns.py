"""Which column of a file holds which project field: by name, with common variants, or as told.

A column name is compared in a normal form (lower case, runs of anything but letters and digits as one
`_`: "Budget (USD)" -> `budget_usd`, "Project name" -> `project_name`) against each field's name, its
title (geo/models.py) and the variants below. `--map` (or the endpoint's mapping) overrides that
for the columns it names. The targets are the writable project fields, the location columns (`lon`,
`lat`, `wkt`), `province` (checked against the geometry, never written: the server assigns it) and
`ignore`. Columns the server sets (id, created_at, ...) and unknown columns are ignored, and listed
in the report.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import orjson

from geo.errors import InvalidInput
from geo.models import SERVER_FIELDS, ProjectProperties

FIELDS: tuple[str, ...] = tuple(ProjectProperties.model_fields)
LOCATION = ("lon", "lat", "wkt")
PROVINCE = "province"
IGNORE = "ignore"
TARGETS: tuple[str, ...] = (*FIELDS, *LOCATION, PROVINCE, IGNORE)
# A column `reason` is what `--report` adds to the rejected rows: ignored when they are imported again.
REASON = "reason"

VARIANTS: dict[str, tuple[str, ...]] = {
    "name": ("project", "project_name", "title", "project_title", "name_en", "name_english",
             "english_name", "نام", "نام_پروژه", "د_پروژې_نوم"),
    "name_prs": ("name_dari", "dari_name", "dari", "name_fa", "name_fa_af", "name_prs_af", "نام_دری",
                 "نام_به_دری"),
    "name_ps": ("name_pashto", "pashto_name", "pashto", "name_pus", "name_ps_af", "نام_پشتو", "پښتو_نوم"),
    "status": ("project_status", "stage", "state", "phase", "وضعیت"),
    "category": ("sector", "type", "project_type", "kind", "category_type", "بخش"),
    "description": ("details", "summary", "desc", "about", "project_description", "توضیحات"),
    "budget_usd": ("budget", "budget_us", "budget_usd_", "budget_in_usd", "budget_us_dollars", "cost",
                   "cost_usd", "total_cost", "total_cost_usd", "amount", "amount_usd", "value_usd",
                   "بودجه"),
    "funders": ("funder", "donor", "donors", "funding", "funded_by", "financed_by", "funding_source"),
    "start_date": ("start", "started", "begin", "begins", "date_start", "start_on"),
    "end_date": ("end", "ends", "finish", "completion", "completion_date", "date_end", "end_on",
                 "expected_completion"),
    "source_url": ("url", "link", "source_link", "website", "web", "source_website"),
    "source_note": ("source", "sources", "note", "notes", "reference", "references"),
    "geometry_quality": ("location_quality", "location_accuracy", "accuracy", "precision", "quality"),
    "lon": ("longitude", "long", "lng", "x", "lon_e", "longitude_e", "x_lon", "easting_lon"),
    "lat": ("latitude", "y", "lat_n", "latitude_n", "y_lat"),
    "wkt": ("geometry", "geom", "the_geom", "shape", "wkt_geometry", "geometry_wkt"),
    "province": ("province_code", "province_iso", "province_name", "iso_code", "iso_3166_2", "wilayat",
                 "velayat", "ولایت"),
}


def normal(name: str) -> str:
    """A column name's normal form: NFKC, lower case, runs of non-alphanumerics as one `_`."""
    text = unicodedata.normalize("NFKC", name).casefold()
    return re.sub(r"[^\w]+|_+", "_", text).strip("_")


def _known() -> dict[str, str]:
    known: dict[str, str] = {}
    for target, variants in VARIANTS.items():
        for variant in variants:
            known[normal(variant)] = target
    for name, info in ProjectProperties.model_fields.items():
        if info.title:
            known.setdefault(normal(info.title), name)
    for target in (*FIELDS, *LOCATION, PROVINCE):
        known[normal(target)] = target
    return known


KNOWN = _known()
# Columns left out unless mapped: what the server sets (but the province, which is checked) and `reason`.
LEFT_OUT = frozenset({*(normal(f) for f in SERVER_FIELDS), REASON}) - {"province", "province_name"}


@dataclass(frozen=True)
class ColumnMap:
    """Each used column's target, and the columns left out (server-set or unknown)."""

    targets: dict[str, str]
    ignored: tuple[str, ...]

    def column_of(self, target: str) -> str | None:
        """The file's column that holds `target`, if one does (the first, for `province`)."""
        return self._by_target.get(target)

    @functools.cached_property
    def _by_target(self) -> dict[str, str]:
        # Asked several times per row: built once.
        found: dict[str, str] = {}
        for column, target in self.targets.items():
            found.setdefault(target, column)
        return found

    @functools.cached_property
    def province_columns(self) -> tuple[str, ...]:
        """The columns that name a province (checked against the geometry)."""
        return tuple(column for column, t in self.targets.items() if t == PROVINCE)


def _bad_map(message: str) -> InvalidInput:
    return InvalidInput.about("map", message)


def map_columns(columns: list[str], overrides: Mapping[str, str] | None = None) -> ColumnMap:
    """Map the file's columns to targets; `overrides` (column -> target) first.

    A 400 problem (field `map`) for an override naming a column the file lacks or an unknown target,
    or when two columns would fill one target."""
    overrides = dict(overrides or {})
    missing = sorted(set(overrides) - set(columns))
    if missing:
        raise _bad_map(f"the file has no column {', '.join(map(repr, missing))}; its columns are "
                       f"{', '.join(map(repr, columns))}")
    for column, target in overrides.items():
        if target not in TARGETS:
            raise _bad_map(f"{column!r} cannot be mapped to {target!r}; the targets are {', '.join(TARGETS)}")
    targets: dict[str, str] = {}
    ignored: list[str] = []
    for column in columns:
        if column in overrides:
            target = overrides[column]
        elif normal(column) in LEFT_OUT:
            target = IGNORE
        else:
            target = KNOWN.get(normal(column), IGNORE)
        if target == IGNORE:
            if column:
                ignored.append(column)
        else:
            targets[column] = target
    seen: dict[str, str] = {}
    for column, target in targets.items():
        # Several columns may name the province (a code and a name): each is checked.
        if target in seen and target != PROVINCE:
            raise _bad_map(f"columns {seen[target]!r} and {column!r} both hold {target}; map one of them "
                           f"to another field or to {IGNORE!r} (e.g. --map \"{column}={IGNORE}\")")
        seen[target] = column
    return ColumnMap(targets, tuple(ignored))


def parse_map(spec: str | None) -> dict[str, str]:
    """`--map`: `column=field,...`, or the path of a JSON file of {"column": "field"} (a 400 if wrong)."""
    if not spec:
        return {}
    if spec.endswith(".json") and "=" not in spec:
        try:
            mapping = orjson.loads(Path(spec).read_bytes())
        except (OSError, orjson.JSONDecodeError) as exc:
            raise _bad_map(f"cannot read the mapping file {spec}: {exc}") from None
        if not isinstance(mapping, dict) or not all(isinstance(v, str) for v in mapping.values()):
            raise _bad_map('a mapping file is a JSON object of "column": "field"')
        return {str(k): v for k, v in mapping.items()}
    pairs: dict[str, str] = {}
    for item in spec.split(","):
        column, sep, target = item.partition("=")
        if not sep or not column.strip() or not target.strip():
            raise _bad_map(f"{item!r} is not column=field")
        pairs[column.strip()] = target.strip()
    return pairs
