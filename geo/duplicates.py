"""The duplicate guard on POST: a new project whose name (case and spaces aside) and category equal
those of a stored project within 100 m is refused (409, naming that project), unless the client says
it is a different project (`?duplicate=allow`).

The rule and the distance are the import's (geo/importing/duplicates.py: `key_of`, `distance_m`,
WITHIN_M), so an import and a POST call the same projects duplicates. Candidates come from the
snapshot's spatial index and category column (a box WITHIN_M wider than the geometry), so a POST reads
a few features, not all of them.

The check reads a snapshot before the write: two POSTs of the same new project that overlap in time
can both pass it (the store has no conditional add). Retries of one POST are what Idempotency-Key is for.
"""

from __future__ import annotations

from typing import Literal

from shapely.geometry import shape
from shapely.geometry.base import BaseGeometry

from geo.importing.duplicates import MARGIN_DEG, WITHIN_M, Match, distance_m, key_of
from geo.query.featuretable import FeatureTable
from geo.workflow import Conflict

# The query parameter that lets a POST through the guard, and its one value.
PARAMETER = "duplicate"
ALLOW = "allow"
DuplicateParam = Literal["allow"]
# Metres per degree of latitude, for the box's north-south margin.
M_PER_DEG_LAT = 111_320.0


class DuplicateProject(Conflict):
    """A POST would add a project that duplicates a stored one (same name and category within 100 m)."""

    title, type_slug = "Duplicate project", "duplicate-project"


def find_duplicate(table: FeatureTable, name: str, category: str, geom: BaseGeometry) -> Match | None:
    """The nearest project of `table` with this name and category within WITHIN_M of `geom`, if any."""
    minx, miny, maxx, maxy = geom.bounds
    lat_margin = WITHIN_M / M_PER_DEG_LAT * 1.01
    box = (minx - MARGIN_DEG, miny - lat_margin, maxx + MARGIN_DEG, maxy + lat_margin)
    key = key_of(name, category)
    best: Match | None = None
    for index in table.select(bbox=box, equals={"category": [category]}):
        feature = table.features[int(index)]
        props = feature["properties"]
        if key_of(props.get("name"), props.get("category")) != key:
            continue
        # From the candidate's GeoJSON: `table.geometries` would gather every feature's geometry.
        distance = distance_m(geom, shape(feature["geometry"]))
        if distance <= WITHIN_M and (best is None or distance < best.distance_m):
            best = Match(str(feature["id"]), round(distance, 1))
    return best


def refuse(match: Match, name: str, url: str) -> DuplicateProject:
    """The 409 for a duplicate of `match` (at `url`): `errors[0]` names `name`, and its `duplicate_of`
    holds the project's id, URL and distance."""
    message = (f"a project named {name!r} of this category is {match.distance_m:g} m away ({match.of}); "
               f"if this is a different project, send the POST again with ?{PARAMETER}={ALLOW}")
    return DuplicateProject(f"name: {message}.", errors=[{
        "field": "name", "message": message,
        "duplicate_of": {"id": match.of, "href": url, "distance_m": match.distance_m}}])
