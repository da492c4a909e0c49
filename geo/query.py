"""Parse the item query parameters shared by items, downloads and the map."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Annotated

import numpy as np
from fastapi import Query

from geo.errors import InvalidInput

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


def _bad(field_name: str, message: str) -> InvalidInput:
    return InvalidInput(f"{field_name}: {message}", errors=[{"field": field_name, "message": message}])


def parse_bbox(raw: str | None) -> tuple[float, float, float, float] | None:
    """`minx,miny,maxx,maxy` (or the 6-number 3D form) as a 2D box, checked."""
    if raw is None or raw == "":
        return None
    try:
        nums = [float(p) for p in raw.split(",")]
    except ValueError:
        raise _bad("bbox", "must be 4 (or 6) comma-separated numbers: minLon,minLat,maxLon,maxLat") from None
    if len(nums) == 6:
        nums = [nums[0], nums[1], nums[3], nums[4]]
    if len(nums) != 4 or not all(math.isfinite(n) for n in nums):
        raise _bad("bbox", "must be 4 (or 6) comma-separated numbers: minLon,minLat,maxLon,maxLat")
    minx, miny, maxx, maxy = nums
    if not (-180 <= minx <= 180 and -180 <= maxx <= 180 and -90 <= miny <= 90 and -90 <= maxy <= 90):
        raise _bad("bbox", "longitudes must lie within ±180 and latitudes within ±90")
    if miny > maxy or minx > maxx:
        raise _bad("bbox", "the minimum must not exceed the maximum (boxes across the antimeridian "
                           "are not supported)")
    return minx, miny, maxx, maxy


def _instant(text: str, end: bool) -> np.datetime64 | None:
    if text in ("..", ""):
        return None
    try:
        if "T" in text or " " in text:
            parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
            if parsed.tzinfo is not None:
                parsed = parsed.astimezone(UTC).replace(tzinfo=None)
        else:
            day = date.fromisoformat(text)
            # A bare date as the end of an interval means the whole of that day.
            parsed = datetime.combine(day, datetime.max.time() if end else datetime.min.time())
    except ValueError:
        raise _bad("datetime", f"{text!r} is not an RFC 3339 date or date-time") from None
    return np.datetime64(parsed.replace(microsecond=0), "s")


def parse_datetime(raw: str | None) -> tuple[np.datetime64 | None, np.datetime64 | None] | None:
    """An OGC `datetime` value as a closed interval (None for an open end)."""
    if raw is None or raw == "":
        return None
    if "/" in raw:
        lo_text, _, hi_text = raw.partition("/")
        lo, hi = _instant(lo_text, False), _instant(hi_text, True)
        if lo is not None and hi is not None and lo > hi:
            raise _bad("datetime", "the interval's start is after its end")
        return lo, hi
    return _instant(raw, False), _instant(raw, True)


def split_values(raw: str | None) -> list[str] | None:
    """A comma-separated filter value as a list (None when not given)."""
    if raw is None or raw.strip() == "":
        return None
    return [v.strip() for v in raw.split(",") if v.strip()]


@dataclass(frozen=True)
class Filters:
    """The filters common to items, downloads and the map."""

    bbox: tuple[float, float, float, float] | None = None
    interval: tuple[np.datetime64 | None, np.datetime64 | None] | None = None
    equals: dict[str, list[str]] = field(default_factory=dict)
    raw: dict[str, str] = field(default_factory=dict)

    def is_empty(self) -> bool:
        """Whether no filter is set."""
        return not self.raw


def filters_dependency(bbox: BBoxParam = None, datetime_: DatetimeParam = None,
                       status: StatusParam = None, category: CategoryParam = None,
                       province: ProvinceParam = None) -> Filters:
    """FastAPI dependency: parse and check the filter parameters."""
    raw = {k: v for k, v in (("bbox", bbox), ("datetime", datetime_), ("status", status),
                             ("category", category), ("province", province)) if v}
    equals = {k: vals for k, v in (("status", status), ("category", category), ("province", province))
              if (vals := split_values(v))}
    return Filters(parse_bbox(bbox), parse_datetime(datetime_), equals, raw)
