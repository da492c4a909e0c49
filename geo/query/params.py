"""Parse the item query parameters shared by items, downloads and the map.

Besides bbox, datetime and the property filters: a CQL2 `filter` (OGC API - Features Part 3),
`sortby`, `properties` (which properties to return) and `ids`.

Every value comes from anyone, so every rule here ends in a 400 problem that names the parameter:
numbers are ASCII (Python's `int` and `float` also read superscripts, Arabic-Indic digits and
underscores), instants stay within the calendar after their offset is applied, a parameter comes at
most once, and an empty value means the parameter was not given.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from functools import lru_cache
from typing import Annotated

import numpy as np
from fastapi import Depends, Query, Request
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from pydantic import BeforeValidator
from pydantic_core import PydanticCustomError
from shapely.geometry.base import BaseGeometry

from geo.crs import DECIMAL, BboxCrsParam, Crs, selection_box
from geo.crs import parse as parse_crs
from geo.errors import InvalidInput
from geo.query import cql
from geo.schema import Queryable

BBoxParam = Annotated[str | None, Query(
    description="Only features that intersect this box: `minLon,minLat,maxLon,maxLat` (WGS84).",
    examples=["68.5,34.8,69.5,35.8"])]
DatetimeParam = Annotated[str | None, Query(
    alias="datetime",
    description="An instant or an interval (`start/end`, `..` for open): projects whose "
                "`start_date`..`end_date` overlap it. Ignored by collections without time.",
    examples=["2023-01-01/.."])]
StatusParam = Annotated[str | None, Query(description="Only these statuses (comma-separated).")]
CategoryParam = Annotated[str | None, Query(description="Only these categories (comma-separated).")]
ProvinceParam = Annotated[str | None, Query(
    description="Only these provinces, by ISO 3166-2 code (comma-separated), e.g. `AF-PAR`.")]
FilterParam = Annotated[str | None, Query(
    alias="filter",
    description="A CQL2 expression over the collection's queryables (see `/collections/{id}/queryables`), "
                "e.g. `status IN ('proposed','planned') AND budget_usd > 1000000`. At most "
                f"{cql.MAX_LENGTH} characters, operators nested at most {cql.MAX_DEPTH} deep.",
    examples=["status = 'proposed'"])]
FilterLangParam = Annotated[str | None, Query(
    alias="filter-lang", description="`cql2-text` (the default) or `cql2-json`.")]
FilterCrsParam = Annotated[str | None, Query(
    alias="filter-crs", description="The CRS of the geometry and bbox literals in `filter`: one of the "
                                    "collection's `crs` URIs (default CRS84, longitude, latitude).")]
SortbyParam = Annotated[str | None, Query(
    description="Sort by these queryables (comma-separated; `-name` descending, `+name` or `name` "
                "ascending). Missing values sort last. Without it, features come in the order they "
                "were added, so paging stays stable while others add features.",
    examples=["-budget_usd,name"])]
PropertiesParam = Annotated[str | None, Query(
    description="Return only these properties (comma-separated); the id and geometry always come.",
    examples=["name,status"])]
IdsParam = Annotated[str | None, Query(description="Only the features with these ids (comma-separated).")]

CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"

# `limit` and `offset`: ASCII digits only, and few enough that the value stays a 64-bit integer.
COUNT_DIGITS = 18
COUNT_RULE = f"must be a whole number written with the digits 0-9 (at most {COUNT_DIGITS} of them)"
_BBOX_RULE = "must be 4 (or 6) comma-separated numbers: minLon,minLat,maxLon,maxLat"


_bad = InvalidInput.about


def is_count(text: str) -> bool:
    """Whether `text` is a `limit` or `offset` this service reads: 1 to 18 ASCII digits."""
    return 0 < len(text) <= COUNT_DIGITS and text.isascii() and text.isdigit()


def _count(value: object) -> object:
    """A query string's count as an int; anything but ASCII digits is refused before pydantic sees it
    (pydantic would take `+5`, ` 5`, `1_000` and `5.0`, and thousands of digits)."""
    if isinstance(value, str):
        if not is_count(value):
            raise PydanticCustomError("count", COUNT_RULE)
        return int(value)
    return value


COUNT_MAX = 10**COUNT_DIGITS - 1
LimitParam = Annotated[int | None, Query(
    ge=1, le=COUNT_MAX, description="Features per page (a value above the service's maximum is clamped)."),
    BeforeValidator(_count)]
OffsetParam = Annotated[int, Query(
    ge=0, le=COUNT_MAX, description="How many matching features to skip."), BeforeValidator(_count)]


def reject_repeats(pairs: Iterable[tuple[str, str]]) -> None:
    """A 400 problem when a query parameter comes more than once (the framework would keep the last
    silently); lists are one comma-separated value."""
    counts = Counter(name for name, _ in pairs)
    repeated = [name for name, n in counts.items() if n > 1]
    if repeated:
        message = "is given more than once; give it once (several values: one comma-separated list)"
        raise InvalidInput(f"{', '.join(repeated)}: {message}",
                           errors=[{"field": name, "message": message} for name in repeated])


# Each route's declared query parameters (its own and its dependencies'), found on first use and kept
# on the route (routes are not hashable): the check below is then one frozenset lookup per parameter.
_DECLARED = "geo_query_parameters"


def _query_names(dependant: Dependant) -> set[str]:
    names = {p.alias for p in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _query_names(sub)
    return names


def declared_parameters(route: APIRoute) -> frozenset[str]:
    """The query parameters a route declares, so documents in the OpenAPI definition."""
    known: frozenset[str] | None = getattr(route, _DECLARED, None)
    if known is None:
        known = frozenset(_query_names(route.dependant))
        setattr(route, _DECLARED, known)
    return known


def unknown_parameters(names: Iterable[str], where: str) -> InvalidInput:
    """The 400 problem of /req/core/query-param-unknown, naming each parameter."""
    names = list(dict.fromkeys(names))
    message = f"is not a query parameter of {where}"
    return InvalidInput(f"{', '.join(names)}: {message} (see the API definition at /api)",
                        errors=[{"field": name, "message": message} for name in names])


async def single_valued(request: Request) -> None:
    """FastAPI dependency: refuse a repeated query parameter (see `reject_repeats`), and one the route
    does not declare (/req/core/query-param-unknown: "not specified in the API definition").

    A route that takes the filters also takes the collection's queryables as parameters (Part 3,
    queryables-query-parameters); those depend on the collection, so `Collection.check` judges them.
    """
    pairs = request.query_params.multi_items()
    if not pairs:
        return
    if len(request.query_params) != len(pairs):  # some name comes twice
        reject_repeats(pairs)
    route = request.scope.get("route")
    if not isinstance(route, APIRoute):
        return
    declared = declared_parameters(route)
    if declared >= FILTER_NAMES:
        return
    unknown = [name for name, _ in pairs if name not in declared]
    if unknown:
        raise unknown_parameters(unknown, "this resource")


def parse_bbox(raw: str | None) -> tuple[float, float, float, float] | None:
    """`minx,miny,maxx,maxy` (or the 6-number 3D form) as a 2D box, checked."""
    if raw is None or raw.strip() == "":
        return None
    parts = [p.strip() for p in raw.split(",")]
    if len(parts) not in (4, 6) or not all(DECIMAL.fullmatch(p) for p in parts):
        raise _bad("bbox", _BBOX_RULE)
    nums = [float(p) for p in parts]
    if len(nums) == 6:
        nums = [nums[0], nums[1], nums[3], nums[4]]
    if not all(math.isfinite(n) for n in nums):
        raise _bad("bbox", _BBOX_RULE)
    minx, miny, maxx, maxy = nums
    if not (-180 <= minx <= 180 and -180 <= maxx <= 180 and -90 <= miny <= 90 and -90 <= maxy <= 90):
        raise _bad("bbox", "longitudes must lie within ±180 and latitudes within ±90")
    if miny > maxy:
        raise _bad("bbox", "the southern edge (minLat) must not lie north of the northern one (maxLat)")
    # minLon > maxLon is allowed: a box across the antimeridian (/req/core/fc-bbox-definition), which
    # FeatureTable.select reads as two boxes, minLon..180 and -180..maxLon.
    return minx, miny, maxx, maxy


_DATETIME_RULE = ("is not an RFC 3339 date (2024-01-31) or date-time with its offset "
                  "(2024-01-31T10:00:00Z, 2024-01-31T14:30:00+04:30)")
# RFC 3339 section 5.6: full-date, and date-time = full-date "T" partial-time time-offset. The offset
# is not optional (a time without one names no instant); "T" and "Z" may be lower case (5.6, NOTE).
_FULL_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_DATE_TIME = re.compile(r"([0-9]{4}-[0-9]{2}-[0-9]{2})[Tt]([0-9]{2}):([0-9]{2}):([0-9]{2})(\.[0-9]+)?"
                        r"([Zz]|[+-][0-9]{2}:[0-9]{2})")


def rfc3339(text: str, field_name: str, *, end: bool = False) -> datetime:
    """An RFC 3339 full-date or date-time as a naive UTC datetime, or a 400 problem naming the field.

    A bare date stands for its first second, or its last one when `end` (the end of an interval
    covers that whole day). A leap second (:60) is read as :59.
    """
    try:
        if _FULL_DATE.fullmatch(text):
            day = date.fromisoformat(text)
            return datetime.combine(day, datetime.max.time() if end else datetime.min.time())
        parts = _DATE_TIME.fullmatch(text)
        if parts is None:
            raise ValueError(text)
        day_text, hour, minute, second, fraction, offset = parts.groups()
        offset = "+00:00" if offset in ("Z", "z") else offset
        seconds = min(int(second), 59)
        parsed = datetime.fromisoformat(f"{day_text}T{hour}:{minute}:{seconds:02d}{offset}")
        micros = int(fraction[1:7].ljust(6, "0")) if fraction else 0
        return parsed.replace(microsecond=micros).astimezone(UTC).replace(tzinfo=None)
    except ValueError:
        raise _bad(field_name, f"{text[:40]!r} {_DATETIME_RULE}") from None
    except OverflowError:
        # 0001-01-01T00:00:00+01:00 is a moment of the year 0 in UTC.
        raise _bad(field_name, f"{text[:40]!r} lies outside the years 1 to 9999 in UTC") from None


def _instant(text: str, end: bool) -> np.datetime64 | None:
    if text in ("..", ""):
        return None
    return np.datetime64(rfc3339(text, "datetime", end=end).replace(microsecond=0), "s")


def parse_datetime(raw: str | None) -> tuple[np.datetime64 | None, np.datetime64 | None] | None:
    """An OGC `datetime` value as a closed interval (None for an open end)."""
    if raw is None or raw == "":
        return None
    if "/" in raw:
        lo_text, _, hi_text = raw.partition("/")
        lo, hi = _instant(lo_text, False), _instant(hi_text, True)
        if lo is None and hi is None:
            raise _bad("datetime", "an interval needs at least one end (`start/..` or `../end`)")
        if lo is not None and hi is not None and lo > hi:
            raise _bad("datetime", "the interval's start is after its end")
        return lo, hi
    if raw == "..":
        raise _bad("datetime", "`..` marks the open end of an interval (`start/..`); it is not an instant")
    return _instant(raw, False), _instant(raw, True)


def split_values(raw: str | None, field_name: str) -> list[str] | None:
    """A comma-separated filter value as a list (None when not given); empty members are skipped,
    and a list of nothing but commas is a 400 problem."""
    if raw is None or raw.strip() == "":
        return None
    values = [v.strip() for v in raw.split(",") if v.strip()]
    if not values:
        raise _bad(field_name, f"{raw[:40]!r} holds no value")
    return values


@dataclass(frozen=True)
class Filters:
    """The filters common to items, downloads and the map."""

    bbox: tuple[float, float, float, float] | None = None
    interval: tuple[np.datetime64 | None, np.datetime64 | None] | None = None
    equals: dict[str, list[str]] = field(default_factory=dict)
    raw: dict[str, str] = field(default_factory=dict)
    cql: cql.Expression | None = None
    # (property, descending) pairs, most significant first.
    sortby: tuple[tuple[str, bool], ...] = ()
    properties: tuple[str, ...] | None = None
    ids: tuple[str, ...] | None = None
    # The other query parameters, as given: queryables compared for equality (Part 3,
    # queryables-query-parameters), or unknown parameters; `Collection.check` tells them apart.
    params: dict[str, str] = field(default_factory=dict)
    # A bbox given in a UTM zone (`bbox-crs`): its outline in CRS84, whose edges curve; `bbox` is then
    # the outline's bounding box, and features must also intersect the outline (geo.crs).
    bbox_shape: BaseGeometry | None = None

    def keeping(self, names: frozenset[str]) -> Filters:
        """These filters with only the `params` named in `names` (the rest dropped, not refused)."""
        params = {k: v for k, v in self.params.items() if k in names}
        raw = {k: v for k, v in self.raw.items() if k in PARAMETERS or k in params}
        return replace(self, params=params, raw=raw)


def parse_sortby(raw: str | None) -> tuple[tuple[str, bool], ...]:
    """`sortby` as (property, descending) pairs; a property named again is ignored (the first
    mention already decided the order), so the number of sort keys stays within the queryables."""
    out: dict[str, bool] = {}
    for part in split_values(raw, "sortby") or []:
        name = part[1:].strip() if part[0] in "+-" else part
        if not name:
            raise _bad("sortby", f"{part[:40]!r} names no property")
        out.setdefault(name, part.startswith("-"))
    return tuple(out.items())


def parse_filter(text: str | None, lang: str | None, crs: str | None) -> cql.Expression | None:
    """The CQL2 `filter`, parsed (a 400 problem naming `filter` when it cannot be read)."""
    filter_crs = parse_crs(crs, "filter-crs")  # any Part 2 CRS (Part 3 /req/filter/filter-crs-param)
    if lang not in (None, "") and lang not in cql.LANGS:
        raise _bad("filter-lang", f"must be one of {', '.join(cql.LANGS)}")
    if text is None or text.strip() == "":
        return None  # an empty value means "not given", as for every parameter
    if len(text) > PARSED_LENGTH:
        return cql.parse(text, lang or "cql2-text", filter_crs)
    return _parsed(text, lang or "cql2-text", filter_crs)


# Filters up to this long are kept once read (`_parsed`): a client paging through a filter sends it
# with every page, and reading it costs more than the rest of the page.
PARSED_LENGTH = 2048


@lru_cache(maxsize=128)
def _parsed(text: str, lang: str, crs: Crs) -> cql.Expression:
    """cql.parse, remembered for the most recent filters (a compiled filter is immutable; a filter that
    cannot be read raises every time, as nothing is kept for it)."""
    return cql.parse(text, lang, crs)


# Each filter's query parameter -> the keyword it arrives as in `filters_dependency` (Python names:
# no dashes, no shadowing of `datetime` or `filter`).
PARAMETERS = {"bbox": "bbox", "datetime": "datetime_", "status": "status", "category": "category",
              "province": "province", "filter": "filter_", "filter-lang": "filter_lang",
              "filter-crs": "filter_crs", "sortby": "sortby", "properties": "properties", "ids": "ids",
              "bbox-crs": "bbox_crs"}
FILTER_NAMES = frozenset(PARAMETERS)


def filters_from(values: Mapping[str, str | None], params: Mapping[str, str] | None = None) -> Filters:
    """The filters from values keyed by query parameter (a request's, or the CLI's options), checked;
    `params` are the request's other parameters (queryables or unknown: see `Filters.params`)."""
    unknown = sorted(k for k, v in values.items() if v is not None and k not in PARAMETERS)
    if unknown:
        raise _bad(unknown[0], f"is not a filter (the filters: {', '.join(PARAMETERS)})")
    raw = {k: v for k in PARAMETERS if (v := values.get(k))}
    others = dict(params or {})
    raw.update((k, v) for k, v in others.items() if v)
    if not raw:
        # Nothing to read (an unfiltered page, the commonest request): what the parsers below give
        # for no values at all, without calling each of them.
        return Filters(params=others)
    equals = {k: vals for k in ("status", "category", "province") if (vals := split_values(raw.get(k), k))}
    wanted = split_values(raw.get("properties"), "properties")
    chosen_ids = split_values(raw.get("ids"), "ids")
    bbox, bbox_shape = selection_box(raw.get("bbox"), raw.get("bbox-crs"), parse_bbox)
    return Filters(bbox, parse_datetime(raw.get("datetime")), equals, raw,
                   cql=parse_filter(raw.get("filter"), raw.get("filter-lang"), raw.get("filter-crs")),
                   sortby=parse_sortby(raw.get("sortby")),
                   properties=None if wanted is None else tuple(dict.fromkeys(wanted)),
                   ids=None if chosen_ids is None else tuple(chosen_ids), params=others,
                   bbox_shape=bbox_shape)


async def filters_dependency(request: Request, _once: Annotated[None, Depends(single_valued)],
                             bbox: BBoxParam = None, datetime_: DatetimeParam = None,
                             status: StatusParam = None, category: CategoryParam = None,
                             province: ProvinceParam = None, filter_: FilterParam = None,
                             filter_lang: FilterLangParam = None, filter_crs: FilterCrsParam = None,
                             sortby: SortbyParam = None, properties: PropertiesParam = None,
                             ids: IdsParam = None, bbox_crs: BboxCrsParam = None) -> Filters:
    """FastAPI dependency: the filter parameters, documented and checked (async: no thread-pool hop).

    Every route that filters also refuses repeated parameters, its own included (FastAPI runs
    `single_valued` once per request however many dependencies name it). The parameters the route
    does not declare go to `Filters.params`, for the collection to judge."""
    arguments = locals()
    route = request.scope.get("route")
    declared = declared_parameters(route) if isinstance(route, APIRoute) else FILTER_NAMES
    others = {k: v for k, v in request.query_params.items() if k not in declared}
    return filters_from({name: arguments[keyword] for name, keyword in PARAMETERS.items()}, others)


def queryable_values(queryable: Queryable, text: str) -> list[object]:
    """A queryable parameter's value in the queryable's type (an enumerated string takes a
    comma-separated list, any of which matches); a 400 problem naming the parameter otherwise."""
    name, kind = queryable.name, queryable.kind
    if kind == "string":
        if not queryable.enum:
            return [text]
        values = split_values(text, name) or []
        bad = [v for v in values if v not in queryable.enum]
        if bad:
            raise _bad(name, f"{bad[0][:40]!r} is not one of {', '.join(queryable.enum)}")
        return list(values)
    if kind in ("number", "integer"):
        if not DECIMAL.fullmatch(text) or not math.isfinite(number := float(text)):
            raise _bad(name, f"{text[:40]!r} is not a number")
        return [number]
    if kind == "boolean":
        if text not in ("true", "false"):
            raise _bad(name, "must be true or false")
        return [text == "true"]
    if kind == "date":
        if not _FULL_DATE.fullmatch(text):
            raise _bad(name, f"{text[:40]!r} is not an RFC 3339 date (2024-01-31)")
        return [np.datetime64(rfc3339(text, name).date(), "D")]
    if not _DATE_TIME.fullmatch(text):
        raise _bad(name, f"{text[:40]!r} is not an RFC 3339 date-time with its offset (2024-01-31T10:00:00Z)")
    return [np.datetime64(rfc3339(text, name), "us")]
