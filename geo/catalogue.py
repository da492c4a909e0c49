"""The collections the service offers, and where each one's features come from."""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property, partial
from pathlib import Path

import numpy as np
import numpy.typing as npt
import orjson
import shapely
from shapely.geometry.base import BaseGeometry

from geo import provinces
from geo.errors import InvalidInput, LayerUnavailable, NotFound
from geo.lru import HashedKey
from geo.query import cql
from geo.query.featuretable import FeatureTable, IntArray
from geo.query.params import FILTER_NAMES, Filters, queryable_values, unknown_parameters
from geo.schema import ID, PROJECT_FILTERS, PROJECT_QUERYABLES, PROJECT_SCHEMA, Queryable, Schema, infer
from geo.settings import Settings
from geo.spatial import Placement, ProvinceIndex, in_bbox
from geo.store.base import ProjectStore

log = logging.getLogger(__name__)

BoolArray = npt.NDArray[np.bool_]
# Rows of a mask counted at a time when a page is cut from it (`Page.of_mask`).
MASK_BLOCK = 4096
# What `Collection.features` keeps to note that a filter has been asked for once (nothing else to keep).
_ASKED = np.zeros(0, dtype=np.bool_)


@dataclass(frozen=True)
class Plan:
    """A request's filters, checked against one version of a collection (`Collection.check`) and put in
    the terms its table evaluates: columns for parameters, typed values, the CQL2 filter's mask.
    `Collection.evaluate` applies it, and nothing in it can then be refused."""

    table: FeatureTable
    bbox: tuple[float, float, float, float] | None = None
    # A UTM bbox's outline in CRS84 (bbox-crs): what meets `bbox` must also meet this.
    bbox_shape: BaseGeometry | None = None
    # Column -> the values any of which it may hold.
    equals: dict[str, list[str]] = field(default_factory=dict)
    interval: tuple[np.datetime64 | None, np.datetime64 | None] | None = None
    # Queryable parameters (`?name=value`) and their values in the queryable's type; `nothing`: one is
    # a queryable of another collection only, so no feature here matches.
    matches: tuple[tuple[Queryable, list[object]], ...] = ()
    nothing: bool = False
    ids: tuple[str, ...] | None = None
    # Where the CQL2 filter holds (it is checked by evaluating it: its nodes check kinds as they go).
    cql_mask: BoolArray | None = None
    # What the mask is kept under (FeatureTable.recent); None when it is not kept.
    cql_key: HashedKey | None = None
    sortby: tuple[tuple[str, bool], ...] = ()
    # The frame's columns (what `sortby` orders by).
    queryables: tuple[Queryable, ...] = ()

    @property
    def selects_only(self) -> bool:
        """Whether only FeatureTable.select's filters (bbox, columns, interval) apply, in layer order."""
        return (self.bbox_shape is None and not self.matches and not self.nothing and self.ids is None
                and self.cql_mask is None and not self.sortby)

    @property
    def masks_only(self) -> bool:
        """Whether only the CQL2 filter selects, in layer order: a page is cut from its mask."""
        return (self.cql_mask is not None and self.bbox is None and self.bbox_shape is None
                and not self.equals and self.interval is None and not self.matches and not self.nothing
                and self.ids is None and not self.sortby)

    @property
    def selects_all(self) -> bool:
        """Whether the plan keeps every feature in layer order (nothing selects or sorts): an unfiltered
        page, the commonest request."""
        return (self.bbox is None and self.bbox_shape is None and not self.equals and self.interval is None
                and not self.matches and not self.nothing and self.ids is None and self.cql_mask is None
                and not self.sortby)


@dataclass(frozen=True)
class Page:
    """One page of the features that match (`Collection.features`): their indices in the table, how
    many match in all, and the offsets of the next and previous pages (None: there is none)."""

    indices: IntArray
    matched: int
    offset: int
    limit: int
    next_offset: int | None
    prev_offset: int | None

    @classmethod
    def of(cls, matching: IntArray, offset: int, limit: int) -> Page:
        """The page at `offset` of at most `limit` of the matching features."""
        return cls.around(matching[offset:offset + limit], len(matching), offset, limit)

    @classmethod
    def of_mask(cls, mask: BoolArray, offset: int, limit: int) -> Page:
        """The page at `offset` of at most `limit` of the features where `mask` holds: `of(flatnonzero(
        mask))` without listing every match (about 45 us at 100,000 rows): a count, then the positions
        of only the rows up to the page's end, found a block of rows at a time."""
        matched = int(np.count_nonzero(mask))
        end = min(offset + limit, matched)
        found: list[IntArray] = []
        seen = 0  # matches in the blocks before `start`
        start = 0
        while seen < end:
            block = mask[start:start + MASK_BLOCK]
            count = int(np.count_nonzero(block))
            if seen + count > offset:
                # This block holds some of the page: its matches from the page's first on.
                hits = np.flatnonzero(block)
                found.append(hits[max(0, offset - seen):end - seen] + start)
            seen += count
            start += MASK_BLOCK
        indices = np.concatenate(found) if found else np.empty(0, dtype=np.intp)
        return cls.around(indices, matched, offset, limit)

    @classmethod
    def of_all(cls, count: int, offset: int, limit: int) -> Page:
        """The page at `offset` when all `count` features match, in layer order: `of(arange(count))`
        without building the indices of every feature."""
        return cls.around(np.arange(offset, min(offset + limit, count), dtype=np.intp), count, offset, limit)

    @classmethod
    def around(cls, indices: IntArray, matched: int, offset: int, limit: int) -> Page:
        """The page holding `indices`, at `offset` of `matched` features, pages `limit` long."""
        following = offset + limit
        return cls(indices, matched, offset, limit, following if following < matched else None,
                   max(0, offset - limit) if offset > 0 else None)


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
    # The declared feature schema (Part 5) the queryables and vocabularies come from; None: inferred.
    schema: Schema | None = None
    # The query parameters named after a queryable of any collection (Catalogue.parameter_names).
    elsewhere: Callable[[], frozenset[str]] = field(default=frozenset, repr=False, compare=False)
    # Features per page when a request gives no `limit`, and the most a page holds (GEO_DEFAULT_LIMIT,
    # GEO_MAX_LIMIT).
    default_limit: int = 10
    max_limit: int = 10_000

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
        """Every property `properties=` may ask for: the schema's, and any a feature has."""
        declared = {p.name for p in self.schema.properties} if self.schema is not None else set()
        return frozenset(declared) | table.property_names()

    @cached_property
    def vocabularies(self) -> dict[str, tuple[str, ...]]:
        """Filter parameter -> the values its column may hold, from the schema (none when inferred)."""
        enums = {p.name: p.enum for p in self.schema.properties} if self.schema is not None else {}
        return {param: enum for param, column in self.filters.items() if (enum := enums.get(column))}

    def check(self, filters: Filters, table: FeatureTable) -> Plan:
        """`filters` checked against this collection at this version, or a 400 problem naming what does
        not apply: a filter it lacks, a value outside a vocabulary, a parameter that is no queryable or
        whose value does not fit its type, a property it lacks, a CQL2 filter it cannot evaluate, a sort
        key that is no queryable."""
        unknown = sorted(set(filters.equals) - set(self.filters))
        if unknown:
            allowed = ", ".join(self.filters) or "none"
            raise InvalidInput(
                f"{self.id} cannot be filtered by {', '.join(unknown)} (its filters: {allowed})",
                errors=[{"field": u, "message": f"not a filter of {self.id}"} for u in unknown])
        for param, values in filters.equals.items():
            vocabulary = self.vocabularies.get(param)
            bad = [v for v in values if vocabulary is not None and v not in vocabulary]
            if bad:
                raise InvalidInput(f"{param}: {', '.join(bad)} is not one of {', '.join(vocabulary or ())}",
                                   errors=[{"field": param, "message": f"unknown value {b!r}"} for b in bad])
        matches, nothing = self._check_parameters(table, filters.params) if filters.params else ((), False)
        if filters.properties is not None:
            self._check_properties(table, filters.properties)
        queryables = self.queryables_of(table) if filters.cql is not None or filters.sortby else ()
        mask, cql_key = (None, None) if filters.cql is None else self._cql_mask(filters.cql, table,
                                                                                queryables)
        if filters.sortby:
            sortable = list(dict.fromkeys([ID.name, *(q.name for q in queryables)]))
            unknown = [name for name, _ in filters.sortby if name not in sortable]
            if unknown:
                raise InvalidInput(
                    f"sortby: {', '.join(unknown)} cannot be sorted on (sortable: {', '.join(sortable)})",
                    errors=[{"field": "sortby", "message": f"{u!r} is not a queryable"} for u in unknown])
        return Plan(table, filters.bbox, filters.bbox_shape,
                    equals={self.filters[p]: v for p, v in filters.equals.items()},
                    interval=filters.interval if self.temporal else None, matches=matches, nothing=nothing,
                    ids=filters.ids, cql_mask=mask, cql_key=cql_key, sortby=filters.sortby,
                    queryables=queryables)

    def evaluate(self, plan: Plan) -> IntArray:
        """Indices of the features of the plan's table that pass it, in layer order or `sortby`'s (no
        input is refused here: `check` did that)."""
        table = plan.table
        if plan.cql_mask is not None and plan.bbox is None and not plan.equals and plan.interval is None:
            # Only the filter selects so far: its matches, without indexing every row by every row.
            chosen = np.flatnonzero(plan.cql_mask)
        else:
            chosen = self._selected(plan)
            if plan.cql_mask is not None:
                chosen = chosen[plan.cql_mask[chosen]]
        if plan.bbox_shape is not None:
            # A UTM bbox (bbox-crs): the box took its bounding box; keep what meets its curved outline.
            chosen = chosen[shapely.intersects(table.geometries[chosen], plan.bbox_shape)]
        if plan.nothing:
            chosen = chosen[:0]
        for queryable, values in plan.matches:
            chosen = chosen[table.equal_to(queryable.name, queryable.kind, values)[chosen]]
        if plan.ids is not None:
            wanted = [i for fid in plan.ids if (i := table.position.get(fid)) is not None]
            chosen = chosen[np.isin(chosen, wanted)]
        if plan.sortby:
            frame = table.frame(plan.queryables)
            # lexsort takes the least significant key first and is stable: ties keep layer order.
            keys = [frame.rank(name, desc)[chosen] for name, desc in reversed(plan.sortby)]
            chosen = chosen[np.lexsort(keys)]
        return chosen

    def select(self, table: FeatureTable, filters: Filters) -> IntArray:
        """Indices of the features that pass `filters`, after checking they apply here."""
        return self.evaluate(self.check(filters, table))

    def features(self, table: FeatureTable, filters: Filters, *, offset: int = 0,
                 limit: int | None = None) -> Page:
        """The page of matching features at `offset`: `limit` of them (by default `default_limit`, at
        most `max_limit`), with how many match and where the next and previous pages start."""
        size = min(limit or self.default_limit, self.max_limit)
        plan = self.check(filters, table)
        if plan.selects_all:
            return Page.of_all(len(table), offset, size)
        if plan.masks_only:
            # The mask is kept per version and filter (`_cql_mask`). A filter's first page is cut from
            # it (a new filter every request: no list of every match to build and keep); from the
            # filter's second request on (a client paging through it) its matches are listed once, kept
            # too, and each page is a slice of them.
            mask, kept = plan.cql_mask, plan.cql_key
            assert mask is not None
            if kept is None:
                return Page.of_mask(mask, offset, size)
            matches = table.kept(("matches", kept))
            if matches is None and table.kept(("asked", kept)) is None:
                table.recent(("asked", kept), lambda: _ASKED)
                return Page.of_mask(mask, offset, size)
            if matches is None:
                matches = table.recent(("matches", kept), partial(np.flatnonzero, mask))
            return Page.of(matches, offset, size)
        key = _selection_key(filters)
        if key is None or plan.selects_only:  # `_selected` keeps those: no second copy
            return Page.of(self.evaluate(plan), offset, size)
        # Kept per version for recent filters: a client paging through them (a new offset, the same
        # filters) is answered with a slice, not a new evaluation.
        return Page.of(table.recent(key, partial(self.evaluate, plan)), offset, size)

    @staticmethod
    def _selected(plan: Plan) -> IntArray:
        """The table's selection by the plan's bbox, column values and interval (FeatureTable.select),
        kept per version for the filters of recent requests (FeatureTable.recent): a client paging
        through a selection has it made once per version, not once per page."""
        table = plan.table
        def selected() -> IntArray:
            return table.select(bbox=plan.bbox, equals=plan.equals, interval=plan.interval)
        if plan.bbox is None and not plan.equals and plan.interval is None:
            return selected()  # every feature: nothing worth keeping
        key = ("select", plan.bbox, tuple((k, tuple(v)) for k, v in plan.equals.items()), plan.interval)
        return table.recent(key, selected)

    @staticmethod
    def _cql_mask(expression: cql.Expression, table: FeatureTable,
                  queryables: tuple[Queryable, ...]) -> tuple[BoolArray, HashedKey | None]:
        """Where the CQL2 filter holds on this version: evaluated once per version and filter (an equal
        compiled filter, whatever request it came with), so paging through a filter does not evaluate
        it again for each page (FeatureTable.recent); and the key it is kept under (None: not kept)."""
        def evaluated() -> BoolArray:
            return cql.evaluate(expression, table.frame(queryables))
        try:
            # Hashed once here, not again by each lookup in the cache.
            key = HashedKey(("cql", expression, queryables))
        except TypeError:  # a literal that cannot be a key: evaluated every time
            return evaluated(), None
        return table.recent(key, evaluated), key

    def _check_parameters(self, table: FeatureTable, params: dict[str, str],
                          ) -> tuple[tuple[tuple[Queryable, list[object]], ...], bool]:
        """The queryable parameters with their values in the queryable's type, and whether one is a
        queryable of another collection only; a 400 problem naming any parameter that is no queryable of
        any collection (/req/core/query-param-unknown: the API definition declares those on the items
        path) or whose value does not fit its type.

        A queryable of another collection only is declared, so not unknown: no feature here has that
        property, so none matches it (/req/queryables-query-parameters/parameters B)."""
        queryables = self.parameter_queryables(table)
        foreign = [name for name in params if name not in queryables]
        if foreign:
            elsewhere = self.elsewhere()
            unknown = [name for name in foreign if name not in elsewhere]
            if unknown:
                raise unknown_parameters(unknown, f"the items of {self.id} (nor one of its queryables)")
        matches: list[tuple[Queryable, list[object]]] = []
        nothing = False
        for name, text in params.items():
            if not text:
                continue  # an empty value means the parameter was not given
            queryable = queryables.get(name)
            if queryable is None:
                nothing = True
            else:
                matches.append((queryable, queryable_values(queryable, text)))
        return tuple(matches), nothing

    def _check_properties(self, table: FeatureTable, wanted: tuple[str, ...]) -> None:
        known = self.property_names(table)
        unknown = [w for w in wanted if w not in known]
        if unknown:
            raise InvalidInput(f"properties: {', '.join(unknown)} is not a property of {self.id}",
                               errors=[{"field": "properties", "message": f"unknown property {u!r}"}
                                       for u in unknown])


def _selection_key(filters: Filters) -> tuple[object, ...] | None:
    """What a plan's selection depends on besides the table version, as a key (None when some part of
    it cannot be one: a filter literal that is not hashable)."""
    key = ("selection", filters.bbox, None if filters.bbox_shape is None else filters.bbox_shape.wkb,
           tuple(sorted((k, tuple(v)) for k, v in filters.equals.items())), filters.interval,
           tuple(sorted(filters.params.items())), filters.ids, filters.cql, filters.sortby)
    try:
        hash(key)
    except TypeError:
        return None
    return key


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
        # What every collection shares: the settings' page sizes, and the names of all queryables.
        collection = partial(Collection, elsewhere=self.parameter_names,
                             default_limit=settings.default_limit, max_limit=settings.max_limit)
        self.collections: dict[str, Collection] = {
            c.id: c for c in (
                collection(
                    id="provinces", title="Provinces of Afghanistan",
                    description="The 34 provinces (ADM1) with ISO 3166-2:AF codes, names and areas "
                                "(geoBoundaries gbOpen, boundary year 2007).",
                    keywords=("Afghanistan", "provinces", "ADM1", "boundaries"),
                    load=self._provinces, filters={"province": "code"},
                    licence="Public Domain", attribution="geoBoundaries (Runfola et al.), source Wikimedia"),
                collection(
                    id="salang", title="Salang Pass tunnels",
                    description="The Salang road tunnel (1964) and the proposed second tunnel, with "
                                "names, dates, lengths and sources. Geometry is approximate.",
                    keywords=("Salang", "tunnel", "Hindu Kush", "transport"),
                    load=StaticLayer("salang", settings.layers_dir / "salang.geojson", ("status",)),
                    filters={"status": "status"},
                    licence="CC BY-SA 4.0 (facts from Wikipedia and news sources named per feature)",
                    attribution="See each feature's sources"),
                collection(
                    id="projects", title="Infrastructure projects",
                    description="Proposed and ongoing infrastructure and social-infrastructure projects "
                                "(schools, health, housing, water, energy, transport) with their status.",
                    keywords=("projects", "infrastructure", "schools", "health", "housing"),
                    load=store.snapshot, filters={f: f for f in PROJECT_FILTERS},
                    temporal=PROJECT_SCHEMA.temporal(), queryables=PROJECT_QUERYABLES,
                    schema=PROJECT_SCHEMA,
                    editable=store.editable, licence="CC BY 4.0",
                    attribution="Contributors to this service; sources per project"),
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

    def province_names(self) -> Mapping[str, str]:
        """Province codes mapped to names (empty when the layer is unavailable)."""
        try:
            table = self._provinces()
        except LayerUnavailable:
            return {}
        # Kept per version of the layer: every POST asks, and decoding the 34 provinces cost 0.45 ms.
        return table.derived("province names", lambda: {
            f["id"]: f["properties"]["name"] for f in table.features})
