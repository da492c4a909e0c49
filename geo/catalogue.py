"""The collections the service offers, and where each one's features come from."""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import numpy.typing as npt
import orjson
import shapely
from shapely.geometry.base import BaseGeometry

from geo import provinces
from geo.errors import InvalidInput, LayerUnavailable, NotFound
from geo.models import Category, ProjectProperties, Status
from geo.query import cql
from geo.query.featuretable import FeatureTable, IntArray
from geo.query.params import FILTER_NAMES, Filters, queryable_values, unknown_parameters
from geo.schema import ID, PROJECT_FILTERS, PROJECT_QUERYABLES, PROJECT_SCHEMA, Queryable, Schema, infer
from geo.settings import Settings
from geo.spatial import Placement, ProvinceIndex, in_bbox
from geo.store.base import ProjectStore

log = logging.getLogger(__name__)

VOCABULARIES: dict[str, tuple[str, ...]] = {
    "status": tuple(s.value for s in Status),
    "category": tuple(c.value for c in Category),
}


@dataclass(frozen=True)
class Collection:
    """Metadata of one collection, and the function that yields its current features."""

    id: str
    title: str
    description: str
    keywords: tuple[str, ...]
    load: Callable[[], FeatureTable] = field(repr=False)
    # Query parameter -> property column it filters on.
    filters: dict[str, str] = field(default_factory=dict)
    temporal: tuple[str, str] | None = None
    editable: bool = False
    licence: str = ""
    attribution: str = ""
    # The typed queryables; None: inferred from the layer's data.
    queryables: tuple[Queryable, ...] | None = None
    # The declared feature schema (Part 5) the queryables come from; None: inferred from the data.
    schema: Schema | None = None
    # The query parameters named after a queryable of any collection (Catalogue.parameter_names).
    elsewhere: Callable[[], frozenset[str]] = field(default=frozenset, repr=False, compare=False)

    def table(self) -> FeatureTable:
        """The current features (raises LayerUnavailable when the source cannot be had)."""
        return self.load()

    def queryables_of(self, table: FeatureTable) -> tuple[Queryable, ...]:
        """What CQL2 filters and sortby may name in this collection (inferred ones kept per version)."""
        if self.queryables is not None:
            return self.queryables
        return table.derived("queryables", lambda: infer(table.features))

    def parameter_queryables(self, table: FeatureTable) -> dict[str, Queryable]:
        """The queryables that are also query parameters of the items (Part 3,
        queryables-query-parameters): the feature id and every queryable (they have simple values),
        except where a standard parameter has the name."""
        return table.derived("parameter queryables", lambda: {
            q.name: q for q in (ID, *self.queryables_of(table)) if q.name not in FILTER_NAMES})

    def property_names(self, table: FeatureTable) -> frozenset[str]:
        """Every property `properties=` may ask for."""
        declared = {q.name for q in self.queryables or ()}
        if self.editable:
            declared |= set(ProjectProperties.model_fields) | {"status_history"}
        return frozenset(declared) | table.property_names()

    def select(self, table: FeatureTable, filters: Filters) -> IntArray:
        """Indices of the features that pass `filters`, after checking they apply here."""
        unknown = sorted(set(filters.equals) - set(self.filters))
        if unknown:
            allowed = ", ".join(self.filters) or "none"
            raise InvalidInput(
                f"{self.id} cannot be filtered by {', '.join(unknown)} (its filters: {allowed})",
                errors=[{"field": u, "message": f"not a filter of {self.id}"} for u in unknown])
        for param, values in filters.equals.items():
            vocabulary = VOCABULARIES.get(param) if self.id == "projects" else None
            bad = [v for v in values if vocabulary is not None and v not in vocabulary]
            if bad:
                raise InvalidInput(f"{param}: {', '.join(bad)} is not one of {', '.join(vocabulary or ())}",
                                   errors=[{"field": param, "message": f"unknown value {b!r}"} for b in bad])
        equals = {self.filters[p]: v for p, v in filters.equals.items()}
        interval = filters.interval if self.temporal else None
        chosen = table.select(bbox=filters.bbox, equals=equals, interval=interval)
        if filters.bbox_shape is not None:
            # A UTM bbox (bbox-crs): the box took its bounding box; keep what meets its curved outline.
            chosen = chosen[shapely.intersects(table.geometries[chosen], filters.bbox_shape)]
        if filters.params:
            chosen = chosen[self._parameters_mask(table, filters.params)[chosen]]
        if filters.properties is not None:
            self._check_properties(table, filters.properties)
        if filters.ids is not None:
            wanted = [i for fid in filters.ids if (i := table.position.get(fid)) is not None]
            chosen = chosen[np.isin(chosen, wanted)]
        if filters.cql is None and not filters.sortby:
            return chosen
        frame = table.frame(self.queryables_of(table))
        if filters.cql is not None:
            chosen = chosen[cql.evaluate(filters.cql, frame)[chosen]]
        if filters.sortby:
            unknown = [name for name, _ in filters.sortby if name not in frame.kinds]
            if unknown:
                raise InvalidInput(
                    f"sortby: {', '.join(unknown)} cannot be sorted on (sortable: {', '.join(frame.kinds)})",
                    errors=[{"field": "sortby", "message": f"{u!r} is not a queryable"} for u in unknown])
            # lexsort takes the least significant key first and is stable: ties keep layer order.
            keys = [frame.rank(name, desc)[chosen] for name, desc in reversed(filters.sortby)]
            chosen = chosen[np.lexsort(keys)]
        return chosen

    def _parameters_mask(self, table: FeatureTable, params: dict[str, str]) -> npt.NDArray[np.bool_]:
        """Where every queryable parameter's value matches; a 400 problem naming any parameter that is
        no queryable of any collection (/req/core/query-param-unknown: the API definition declares those
        on the items path) or whose value does not fit its type.

        A queryable of another collection only is declared, so not unknown: no feature here has that
        property, so none matches it (/req/queryables-query-parameters/parameters B)."""
        queryables = self.parameter_queryables(table)
        foreign = [name for name in params if name not in queryables]
        if foreign:
            elsewhere = self.elsewhere()
            unknown = [name for name in foreign if name not in elsewhere]
            if unknown:
                raise unknown_parameters(unknown, f"the items of {self.id} (nor one of its queryables)")
        mask = np.ones(len(table), dtype=bool)
        for name, text in params.items():
            if not text:
                continue  # an empty value means the parameter was not given
            queryable = queryables.get(name)
            if queryable is None:
                mask[:] = False
            else:
                mask &= table.equal_to(name, queryable.kind, queryable_values(queryable, text))
        return mask

    def _check_properties(self, table: FeatureTable, wanted: tuple[str, ...]) -> None:
        known = self.property_names(table)
        unknown = [w for w in wanted if w not in known]
        if unknown:
            raise InvalidInput(f"properties: {', '.join(unknown)} is not a property of {self.id}",
                               errors=[{"field": "properties", "message": f"unknown property {u!r}"}
                                       for u in unknown])


class StaticLayer:
    """A layer read from a GeoJSON file once and kept in memory; retried on later requests if it failed.

    Its version is a digest of the file's bytes, so a changed file (after a restart) never shares an
    ETag with the old one; `modified` is the file's mtime.
    """

    def __init__(self, name: str, path: Path, filters: tuple[str, ...] = (), missing: str = "") -> None:
        self.name = name
        self.path = path
        self._filters = filters
        self._missing = missing
        self._table: FeatureTable | None = None
        self._lock = threading.Lock()

    def _load(self) -> FeatureTable:
        if self._missing and not self.path.is_file():
            raise LayerUnavailable(self._missing)
        try:
            raw = self.path.read_bytes()
            modified = datetime.fromtimestamp(self.path.stat().st_mtime, UTC)
            doc = orjson.loads(raw)
        except (OSError, orjson.JSONDecodeError) as exc:
            raise LayerUnavailable(f"The layer file {self.path} cannot be read ({exc}).") from exc
        version = f"{self.name}-{hashlib.blake2b(raw, digest_size=8).hexdigest()}"
        return FeatureTable(tuple(doc["features"]), version=version, filter_columns=self._filters,
                            modified=modified)

    def __call__(self) -> FeatureTable:
        """The layer's table, loading it on first use."""
        table = self._table
        if table is None:
            with self._lock:
                if self._table is None:
                    self._table = self._load()
                table = self._table
        return table


class Catalogue:
    """All collections, by id, plus the province index that places new projects."""

    def __init__(self, settings: Settings, store: ProjectStore) -> None:
        self.settings = settings
        self.store = store
        # At request time only the cache is read: a download belongs to start-up or `geo data fetch`.
        self._provinces = StaticLayer(
            "provinces", provinces.cache_path(settings), ("code",),
            missing=f"The provinces layer has not been obtained yet. {provinces.FIX_HINT}")
        self._index: ProvinceIndex | None = None
        self.collections: dict[str, Collection] = {
            c.id: c for c in (
                Collection(
                    id="provinces", title="Provinces of Afghanistan",
                    description="The 34 provinces (ADM1) with ISO 3166-2:AF codes, names and areas "
                                "(geoBoundaries gbOpen, boundary year 2007).",
                    keywords=("Afghanistan", "provinces", "ADM1", "boundaries"),
                    load=self._provinces, filters={"province": "code"},
                    licence="Public Domain", attribution="geoBoundaries (Runfola et al.), source Wikimedia",
                    elsewhere=self.parameter_names),
                Collection(
                    id="salang", title="Salang Pass tunnels",
                    description="The Salang road tunnel (1964) and the proposed second tunnel, with "
                                "names, dates, lengths and sources. Geometry is approximate.",
                    keywords=("Salang", "tunnel", "Hindu Kush", "transport"),
                    load=StaticLayer("salang", settings.layers_dir / "salang.geojson", ("status",)),
                    filters={"status": "status"},
                    licence="CC BY-SA 4.0 (facts from Wikipedia and news sources named per feature)",
                    attribution="See each feature's sources", elsewhere=self.parameter_names),
                Collection(
                    id="projects", title="Infrastructure projects",
                    description="Proposed and ongoing infrastructure and social-infrastructure projects "
                                "(schools, health, housing, water, energy, transport) with their status.",
                    keywords=("projects", "infrastructure", "schools", "health", "housing"),
                    load=store.snapshot, filters={f: f for f in PROJECT_FILTERS},
                    temporal=PROJECT_SCHEMA.temporal(), queryables=PROJECT_QUERYABLES,
                    schema=PROJECT_SCHEMA,
                    editable=store.editable, licence="CC BY 4.0",
                    attribution="Contributors to this service; sources per project",
                    elsewhere=self.parameter_names),
            )
        }

    def get(self, collection_id: str) -> Collection:
        """The collection with this id, or a 404."""
        try:
            return self.collections[collection_id]
        except KeyError:
            raise NotFound(f"There is no collection {collection_id!r}; the collections are "
                           f"{', '.join(self.collections)}.") from None

    def parameter_names(self) -> frozenset[str]:
        """Every query parameter named after a queryable, of any collection whose data can be had now
        (the API definition declares them on the items path: geo.routers.features)."""
        names: set[str] = set()
        for collection in self.collections.values():
            try:
                names.update(collection.parameter_queryables(collection.table()))
            except LayerUnavailable:
                continue
        return frozenset(names)

    def warm(self) -> None:
        """Obtain the provinces (mirror or download) and load the static layers, logging failures."""
        try:
            provinces.fetch(self.settings)
        except LayerUnavailable as exc:
            log.warning("provinces unavailable: %s", exc.detail)
        for collection in self.collections.values():
            try:
                collection.table()
            except LayerUnavailable as exc:
                log.warning("collection %s unavailable: %s", collection.id, exc.detail)

    def place(self, geom: BaseGeometry) -> Placement:
        """Place a geometry in a province; without the provinces layer, only check the country box."""
        index = self._index
        if index is None:
            try:
                table = self._provinces()
            except LayerUnavailable:
                return Placement(in_bbox(geom), None)
            index = self._index = ProvinceIndex(table.ids, list(table.geometries))
        return index.place(geom)

    def province_names(self) -> dict[str, str]:
        """Province codes mapped to names (empty when the layer is unavailable)."""
        try:
            table = self._provinces()
        except LayerUnavailable:
            return {}
        return {f["id"]: f["properties"]["name"] for f in table.features}
