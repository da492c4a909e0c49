"""The requirements of every OGC conformance class this service claims, or is about to claim.

Each class lists its requirement ids as the standard's text writes them, the source they were taken from,
whether `/conformance` claims the class, and, for what HTTP cannot show, why. tests/test_conformance.py
runs one test per checked id against a real server; `python -m tests.test_conformance --list` prints
these tables.

Sources (the requirement files of github.com/opengeospatial/ogcapi-features, by tag or commit):

- Part 1 Core 1.0.1 (OGC 17-069r4): tag `1.0.1`, core/standard/requirements/{core,oas30,geojson,html};
- Part 2 CRS by Reference 1.0.1 (OGC 18-058r1): tag `part2-1.0.1`, extensions/crs/standard/requirements;
- Part 3 Filtering 1.0.0 (OGC 19-079r2): tag `part3-1.0.0`, extensions/filtering/standard/requirements;
- CQL2 1.0.0 (OGC 21-065r2): tag `cql2-1.0.0`, cql2/standard/requirements;
- Part 4 Create, Replace, Update and Delete (draft 20-002, master 94e814b, 2026-06-18):
  extensions/transactions/create-replace-update-delete/standard/requirements;
- Part 5 / Common Part 3 Schemas 1.0 (OGC 23-058r2, published 2026-04-30; `{standard}` is
  `ogcapi-common-3`): extensions/schemas/standard/clause_{7,10,12}.

OGC API - Tiles - Part 1: Core 1.0 (OGC 20-057): github.com/opengeospatial/ogcapi-tiles, tag `1.0.0`
(bcc9e01), core/standard/requirements/{core,tileset,tilesets-list,geodata-tilesets,mvt}. Its ids are
written here as full requirement URIs (`.../ogcapi-tiles-1/1.0/req/core/...`): Tiles' core reuses
Features' `/req/core/conformance-success`, and a bare id would name two requirements. The tileset
metadata it inherits (OGC 17-083r4, 2D Tile Matrix Set and Tile Set Metadata 2.0) is read from
github.com/opengeospatial/2D-Tile-Matrix-Set, schemas/tms/2.0/json (7cee2f8).

The official test suite of Part 1 and 2, github.com/opengeospatial/ets-ogcapi-features10 (1.9), shows how
the OGC checks the Part 1 and 2 ids; the tests here follow it where it exists and the text elsewhere.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field

SPEC = "http://www.opengis.net/spec"
P1 = f"{SPEC}/ogcapi-features-1/1.0/conf"
P2 = f"{SPEC}/ogcapi-features-2/1.0/conf"
P3 = f"{SPEC}/ogcapi-features-3/1.0/conf"
P4 = f"{SPEC}/ogcapi-features-4/1.0/conf"
CQL2 = f"{SPEC}/cql2/1.0/conf"
C3 = f"{SPEC}/ogcapi-common-3/1.0/conf"
TILES = f"{SPEC}/ogcapi-tiles-1/1.0/conf"
TREQ = f"{SPEC}/ogcapi-tiles-1/1.0/req"


@dataclass(frozen=True)
class ConformanceClass:
    """One conformance class: its URI, where its requirements were read, and how each is checked.

    `checked` are the ids tests/test_conformance.py tests over HTTP (one test each); `partly` says, for
    some of them, what that test cannot observe; `not_testable` are the ids with no HTTP test, and why.
    `pending` is set when `/conformance` does not claim the class yet: it names what is missing.
    """

    uri: str
    source: str
    checked: tuple[str, ...]
    not_testable: dict[str, str] = field(default_factory=dict)
    partly: dict[str, str] = field(default_factory=dict)
    pending: str | None = None

    @property
    def claimed(self) -> bool:
        """Whether `/conformance` lists this class."""
        return self.pending is None


@dataclass(frozen=True)
class Condition:
    """A requirement that applies only when other classes are (`when`) or are not (`unless`) implemented."""

    when: tuple[str, ...] = ()
    unless: tuple[str, ...] = ()


_P1_SRC = "OGC 17-069r4 (Part 1 1.0.1), tag 1.0.1"
_CQL2_SRC = "OGC 21-065r2 (CQL2 1.0.0), tag cql2-1.0.0"
_P3_SRC = "OGC 19-079r2 (Part 3 1.0.0), tag part3-1.0.0"
_P4_SRC = "draft 20-002 (Part 4), master 94e814b"
_C3_SRC = "OGC 23-058r2 (Part 5 / Common Part 3 1.0)"
_TILES_SRC = "OGC 20-057 (Tiles Part 1 1.0.0), tag 1.0.0"
_NO_XML = "the XML part is conditional on offering application/xml, which the tile documents do not."
_CQL2_FUNCTIONS = "the CQL2 'Functions' class is not implemented (no /functions)"
_NOT_IMPLEMENTED = "conditional on a class not implemented"
# CASEI and ACCENTI work (tests/test_cql2.py pins their answers), but their classes are not claimed yet.
_NOT_CLAIMED_CASE = "conditional on case-insensitive-comparison, implemented but not claimed (CASEI)"
_NOT_CLAIMED_ACCENT = "conditional on accent-insensitive-comparison, implemented but not claimed (ACCENTI)"

CLASSES: tuple[ConformanceClass, ...] = (
    ConformanceClass(
        f"{P1}/core", _P1_SRC,
        checked=(
            "/req/core/http", "/req/core/root-op", "/req/core/root-success", "/req/core/api-definition-op",
            "/req/core/api-definition-success", "/req/core/conformance-op", "/req/core/conformance-success",
            "/req/core/crs84", "/req/core/fc-md-op", "/req/core/fc-md-success", "/req/core/fc-md-links",
            "/req/core/fc-md-items", "/req/core/fc-md-items-links", "/req/core/fc-md-extent",
            "/req/core/fc-md-extent-multi", "/req/core/sfc-md-op", "/req/core/sfc-md-success",
            "/req/core/fc-op", "/req/core/fc-limit-definition", "/req/core/fc-limit-response-1",
            "/req/core/fc-bbox-definition", "/req/core/fc-bbox-response", "/req/core/fc-time-definition",
            "/req/core/fc-time-response", "/req/core/fc-response", "/req/core/fc-links",
            "/req/core/fc-rel-type", "/req/core/fc-timeStamp", "/req/core/fc-numberMatched",
            "/req/core/fc-numberReturned", "/req/core/f-op", "/req/core/f-success", "/req/core/f-links",
            "/req/core/query-param-invalid", "/req/core/query-param-unknown",
        ),
        partly={
            "/req/core/http": "A: the test sees HTTP/1.1 status lines, keep-alive and HEAD, as the official "
                              "suite does; conformance to RFC 7230-7235 as a whole cannot be shown by "
                              "requests. B (HTTPS): the service speaks plain HTTP; TLS belongs to the proxy "
                              "in front of it.",
            "/req/core/fc-bbox-response": "B is the server's choice (one geometry per feature here); C has "
                                          "nothing to match: every shipped feature has a geometry.",
            "/req/core/fc-md-extent": "B is the server's choice (start_date/end_date of projects).",
            "/req/core/fc-timeStamp": "conditional: checked when a page carries timeStamp.",
        }),
    ConformanceClass(
        f"{P1}/oas30", _P1_SRC,
        checked=("/req/oas30/oas-definition-1", "/req/oas30/oas-definition-2", "/req/oas30/completeness",
                 "/req/oas30/exceptions-codes", "/req/oas30/oas-impl", "/req/oas30/security"),
        partly={
            "/req/oas30/completeness": "checks every status this suite provokes against the document; "
                                       "statuses only faults produce (500, 503 from a stuck store) are "
                                       "documented but not provoked here.",
            "/req/oas30/exceptions-codes": "as completeness, for the error statuses provoked here.",
            "/req/oas30/oas-impl": "every GET path of the document answers 200 with real path values, and "
                                   "every documented items parameter is accepted; not every combination.",
        }),
    ConformanceClass(f"{P1}/geojson", _P1_SRC, checked=("/req/geojson/definition", "/req/geojson/content")),
    ConformanceClass(
        f"{P1}/html", _P1_SRC, checked=("/req/html/definition", "/req/html/content"),
        partly={
            "/req/html/definition": "the Part 1 operations (landing page, conformance, collections, "
                                    "collection, items, feature; the API definition as service-doc). "
                                    "Queryables and sortables answer application/schema+json only, which "
                                    "is what Parts 3 and 5 require of them.",
            "/req/html/content": "links and identifying values (ids, titles, property values) are looked "
                                 "for in the body; 'all information' is not compared field by field.",
        }),
    ConformanceClass(
        f"{P2}/crs", "OGC 18-058r1 (Part 2 1.0.1), tag part2-1.0.1",
        checked=(
            "/req/crs/crs-uri", "/req/crs/fc-md-crs-list", "/req/crs/fc-md-storageCrs",
            "/req/crs/fc-md-storageCrs-valid-value", "/req/crs/fc-md-crs-list-global",
            "/req/crs/fc-crs-definition", "/req/crs/fc-crs-valid-value", "/req/crs/fc-crs-default-value",
            "/req/crs/fc-crs-action", "/req/crs/fc-bbox-crs-definition", "/req/crs/fc-bbox-crs-valid-value",
            # The text labels it /req/crs/fc-bbox-crs-valid-default-value (file REQ_fc-bbox-crs-default-value,
            # and the official suite's name).
            "/req/crs/fc-bbox-crs-default-value", "/req/crs/fc-bbox-crs-action", "/req/crs/ogc-crs-header",
            "/req/crs/ogc-crs-header-value",
        ),
        not_testable={
            "/req/crs/geojson": "binds server and client to RFC 7946's 'prior arrangement' for non-WGS84 "
                                "GeoJSON: an agreement, not a behaviour; what can be seen of it is tested "
                                "under fc-crs-action and ogc-crs-header.",
        },
        partly={"/req/crs/fc-md-crs-list-global": "conditional: checked when a collection points at #/crs."}),
    ConformanceClass(
        f"{P3}/filter", _P3_SRC,
        checked=("/req/filter/filter-param", "/req/filter/filter-lang-param", "/req/filter/filter-crs-wgs84",
                 "/req/filter/filter-crs-param", "/req/filter/mixing-expressions", "/req/filter/response"),
        not_testable={
            "/req/filter/get-functions-operation": _CQL2_FUNCTIONS,
            "/req/filter/get-functions-response-json": _CQL2_FUNCTIONS,
        }),
    ConformanceClass(
        f"{P3}/features-filter", _P3_SRC,
        checked=("/req/features-filter/filter-param", "/req/features-filter/filter-lang-param",
                 "/req/features-filter/filter-crs-param", "/req/features-filter/get-queryables-op",
                 "/req/features-filter/queryables-link", "/req/features-filter/response")),
    ConformanceClass(
        f"{P3}/queryables", _P3_SRC,
        checked=("/req/queryables/get-queryables-op", "/req/queryables/get-queryables-response",
                 "/req/queryables/queryables-link", "/req/queryables/expression-construction")),
    ConformanceClass(
        f"{P3}/queryables-query-parameters", _P3_SRC,
        checked=("/req/queryables-query-parameters/parameters",)),
    ConformanceClass(
        f"{CQL2}/basic-cql2", _CQL2_SRC,
        checked=("/req/basic-cql2/cql2-filter", "/req/basic-cql2/property",
                 "/req/basic-cql2/binary-comparison-predicate", "/req/basic-cql2/null-predicate")),
    ConformanceClass(
        f"{CQL2}/advanced-comparison-operators", _CQL2_SRC,
        checked=("/req/advanced-comparison-operators/like-predicate",
                 "/req/advanced-comparison-operators/between-predicate",
                 "/req/advanced-comparison-operators/in-predicate")),
    ConformanceClass(
        f"{CQL2}/basic-spatial-functions", _CQL2_SRC,
        # The text labels the second one /req/basic-spatial-operators/spatial-predicate (a left-over of
        # the class's old name; its anchor is req_basic-spatial-functions_spatial-predicate).
        checked=("/req/basic-spatial-functions/spatial-functions",
                 "/req/basic-spatial-functions/spatial-predicate")),
    ConformanceClass(
        f"{CQL2}/basic-spatial-functions-plus", _CQL2_SRC,
        checked=("/req/basic-spatial-functions-plus/spatial-data-types",)),
    ConformanceClass(
        f"{CQL2}/spatial-functions", _CQL2_SRC, checked=("/req/spatial-functions/spatial-functions",)),
    ConformanceClass(
        f"{CQL2}/property-property", _CQL2_SRC, checked=("/req/property-property/withdraw-permissions",)),
    ConformanceClass(f"{CQL2}/arithmetic", _CQL2_SRC, checked=("/req/arithmetic/arithmetic",)),
    ConformanceClass(
        f"{CQL2}/cql2-text", _CQL2_SRC,
        checked=("/req/cql2-text/basic-cql2", "/req/cql2-text/escaping",
                 "/req/cql2-text/advanced-comparison-operators", "/req/cql2-text/basic-spatial-functions",
                 "/req/cql2-text/basic-spatial-functions-plus", "/req/cql2-text/spatial-functions",
                 "/req/cql2-text/property-property", "/req/cql2-text/arithmetic"),
        not_testable={
            "/req/cql2-text/case-insensitive-comparison": _NOT_CLAIMED_CASE,
            "/req/cql2-text/accent-insensitive-comparison": _NOT_CLAIMED_ACCENT,
            "/req/cql2-text/temporal-functions": f"{_NOT_IMPLEMENTED} (T_* functions)",
            "/req/cql2-text/array-functions": f"{_NOT_IMPLEMENTED} (A_* functions)",
            "/req/cql2-text/functions": f"{_NOT_IMPLEMENTED} (Functions)",
        }),
    ConformanceClass(
        f"{CQL2}/cql2-json", _CQL2_SRC,
        # The JSON advanced-comparison requirement is labelled /req/cql2-text/... in the text (a copy slip;
        # its anchor is req_cql2-json_advanced-comparison-operators).
        checked=("/req/cql2-json/basic-cql2", "/req/cql2-json/advanced-comparison-operators",
                 "/req/cql2-json/basic-spatial-functions", "/req/cql2-json/basic-spatial-functions-plus",
                 "/req/cql2-json/spatial-functions", "/req/cql2-json/property-property",
                 "/req/cql2-json/arithmetic"),
        not_testable={
            "/req/cql2-json/case-insensitive-comparison": _NOT_CLAIMED_CASE,
            "/req/cql2-json/accent-insensitive-comparison": _NOT_CLAIMED_ACCENT,
            "/req/cql2-json/temporal-functions": f"{_NOT_IMPLEMENTED} (t_* functions)",
            "/req/cql2-json/array-functions": f"{_NOT_IMPLEMENTED} (a_* functions)",
            "/req/cql2-json/functions": f"{_NOT_IMPLEMENTED} (functions)",
        }),
    ConformanceClass(
        f"{P4}/create-replace-delete", _P4_SRC,
        checked=(
            # /req/core/methods is Part 4's own id (its create-replace-delete clause), not Part 1's.
            "/req/core/methods", "/req/create-replace-delete/post-op", "/req/create-replace-delete/post-body",
            "/req/create-replace-delete/post-content-type", "/req/create-replace-delete/post-response-rid",
            "/req/create-replace-delete/post-response", "/req/create-replace-delete/put-op",
            "/req/create-replace-delete/put-body", "/req/create-replace-delete/put-content-type",
            "/req/create-replace-delete/put-response", "/req/create-replace-delete/put-rid",
            "/req/create-replace-delete/put-rid-exception", "/req/create-replace-delete/delete-op",
            "/req/create-replace-delete/delete-response", "/req/create-replace-delete/options-op",
            "/req/create-replace-delete/options-response",
        ),
        partly={
            "/req/create-replace-delete/put-op": "PUT is exercised on features the test creates; replacing "
                                                 "the shipped ones would change the data other checks count.",
            "/req/create-replace-delete/delete-op": "as put-op, on features the test creates.",
        }),
    ConformanceClass(
        f"{P4}/update", _P4_SRC,
        checked=("/req/update/methods", "/req/update/update-patch-op", "/req/update/update-patch-body",
                 "/req/update/update-patch-response", "/req/update/rid")),
    ConformanceClass(
        f"{P4}/features", _P4_SRC,
        checked=("/req/features/resources-endpoint", "/req/features/resource-endpoint",
                 "/req/features/collection-endpoint", "/req/features/crs-crs84",
                 "/req/features/content-crs-header", "/req/features/default-crs",
                 "/req/features/crs-other-crs",
                 "/req/features/schema", "/req/features/update-json-merge-patch",
                 "/req/features/geojson-create-replace"),
        not_testable={
            "/req/features/gml-create-replace": "conditional on GML, which the service does not offer",
            "/req/features/gml-srsname": "conditional on GML, which the service does not offer",
        },
        pending=("a JSON merge patch over the schema's view of a feature ({\"status\": ...}) is refused "
                 "(422; /req/features/update-json-merge-patch, in force with Part 5 "
                 "returnables-and-receivables); every other requirement of the class passes")),
    ConformanceClass(
        f"{P4}/optimistic-locking-etags", _P4_SRC,
        checked=("/req/optimistic-locking-etags/get-etag-response",
                 "/req/optimistic-locking-etags/put-etag-response",
                 "/req/optimistic-locking-etags/patch-etag-response",
                 "/req/optimistic-locking-etags/ifmatch-put-op",
                 "/req/optimistic-locking-etags/ifmatch-put-eval",
                 "/req/optimistic-locking-etags/ifmatch-patch-op",
                 "/req/optimistic-locking-etags/ifmatch-patch-eval"),
        partly={
            "/req/optimistic-locking-etags/ifmatch-put-op": "binds the client ('a PUT SHALL include "
                "If-Match'); the server side is the permission "
                "/per/optimistic-locking-etags/ifmatch-patch-op "
                "(428 or 409, or carry out the write): the test checks a PUT with If-Match succeeds and one "
                "without is carried out (2xx), not refused.",
            "/req/optimistic-locking-etags/ifmatch-patch-op": "as ifmatch-put-op, for PATCH.",
        }),
    ConformanceClass(
        f"{C3}/schemas", _C3_SRC,
        checked=("/req/schemas/json-schema", "/req/schemas/properties", "/req/schemas/additional-keywords",
                 "/req/schemas/role", "/req/schemas/role-id", "/req/schemas/property-seq",
                 "/req/schemas/unit",
                 "/req/schemas/definition", "/req/schemas/nullvalues"),
        partly={
            "/req/schemas/property-seq": "conditional: checked on each x-ogc-propertySeq the schemas carry.",
            "/req/schemas/unit": "conditional: checked on each x-ogc-unit the schemas carry.",
            "/req/schemas/definition": "conditional: checked on each x-ogc-definition the schemas carry.",
            "/req/schemas/nullvalues": "conditional: checked on each x-ogc-nullValues the schemas carry.",
        }),
    ConformanceClass(
        f"{C3}/returnables-and-receivables", _C3_SRC,
        checked=("/req/returnables-and-receivables/link", "/req/returnables-and-receivables/op",
                 "/req/returnables-and-receivables/response")),
    ConformanceClass(
        f"{C3}/sortables", _C3_SRC,
        checked=("/req/sortables/link", "/req/sortables/op", "/req/sortables/response")),
    ConformanceClass(
        f"{TILES}/core", _TILES_SRC,
        checked=(f"{TREQ}/core/conformance-success", f"{TREQ}/core/tc-op", f"{TREQ}/core/tc-success",
                 f"{TREQ}/core/tc-error", f"{TREQ}/core/tc-tilematrix-definition",
                 f"{TREQ}/core/tc-tilerow-definition", f"{TREQ}/core/tc-tilecol-definition"),
        partly={
            f"{TREQ}/core/tc-success": "B: a tile also carries the features within 1/16 of a tile of its "
                                       "edges (the usual MVT buffer, so that what is drawn across an edge "
                                       "is not cut there); the test allows that margin. C (image tiles) "
                                       "and D (coverage tiles) do not apply: the tiles are vector tiles.",
            f"{TREQ}/core/tc-error": "B is the server's choice of 204 or an empty 200; this one answers 204.",
        }),
    ConformanceClass(
        f"{TILES}/tileset", _TILES_SRC, checked=(f"{TREQ}/tileset/description",),
        partly={f"{TREQ}/tileset/description": f"B: {_NO_XML}"}),
    ConformanceClass(
        f"{TILES}/tilesets-list", _TILES_SRC,
        checked=(f"{TREQ}/tilesets-list/tileset-links", f"{TREQ}/tilesets-list/tileset-path"),
        partly={f"{TREQ}/tilesets-list/tileset-links": f"D: {_NO_XML}"}),
    ConformanceClass(
        f"{TILES}/geodata-tilesets", _TILES_SRC,
        checked=(f"{TREQ}/geodata-tilesets/desc-links", f"{TREQ}/geodata-tilesets/operation")),
    ConformanceClass(
        f"{TILES}/mvt", _TILES_SRC, checked=(f"{TREQ}/mvt/content",),
        partly={f"{TREQ}/mvt/content": "C: no prior arrangement for another CRS exists, so the mapping is "
                                       "checked against the tileset's CRS (EPSG:3857)."}),
)

_ADVANCED = f"{CQL2}/advanced-comparison-operators"
_RR = f"{C3}/returnables-and-receivables"
# Requirements that apply only with (or without) other classes; the rest apply whenever their class does.
CONDITIONS: dict[str, Condition] = {
    "/req/filter/filter-crs-param": Condition(when=(f"{P2}/crs",)),
    "/req/features-filter/filter-crs-param": Condition(when=(f"{P2}/crs",)),
    "/req/cql2-text/advanced-comparison-operators": Condition(when=(_ADVANCED,)),
    "/req/cql2-text/basic-spatial-functions": Condition(when=(f"{CQL2}/basic-spatial-functions",)),
    "/req/cql2-text/basic-spatial-functions-plus": Condition(when=(f"{CQL2}/basic-spatial-functions-plus",)),
    "/req/cql2-text/spatial-functions": Condition(when=(f"{CQL2}/spatial-functions",)),
    "/req/cql2-text/property-property": Condition(when=(f"{CQL2}/property-property",)),
    "/req/cql2-text/arithmetic": Condition(when=(f"{CQL2}/arithmetic",)),
    "/req/cql2-json/advanced-comparison-operators": Condition(when=(_ADVANCED,)),
    "/req/cql2-json/basic-spatial-functions": Condition(when=(f"{CQL2}/basic-spatial-functions",)),
    "/req/cql2-json/basic-spatial-functions-plus": Condition(when=(f"{CQL2}/basic-spatial-functions-plus",)),
    "/req/cql2-json/spatial-functions": Condition(when=(f"{CQL2}/spatial-functions",)),
    "/req/cql2-json/property-property": Condition(when=(f"{CQL2}/property-property",)),
    "/req/cql2-json/arithmetic": Condition(when=(f"{CQL2}/arithmetic",)),
    "/req/features/crs-crs84": Condition(unless=(f"{P2}/crs",)),
    "/req/features/content-crs-header": Condition(when=(f"{P2}/crs",)),
    "/req/features/default-crs": Condition(when=(f"{P2}/crs",)),
    "/req/features/crs-other-crs": Condition(when=(f"{P2}/crs",)),
    "/req/features/schema": Condition(when=(f"{C3}/returnables-and-receivables",)),
    "/req/features/update-json-merge-patch": Condition(when=(f"{P4}/update", _RR)),
    "/req/features/geojson-create-replace": Condition(when=(f"{P1}/geojson", _RR)),
    "/req/optimistic-locking-etags/patch-etag-response": Condition(when=(f"{P4}/update",)),
    "/req/optimistic-locking-etags/ifmatch-patch-op": Condition(when=(f"{P4}/update",)),
    "/req/optimistic-locking-etags/ifmatch-patch-eval": Condition(when=(f"{P4}/update",)),
}

CLASS_OF: dict[str, ConformanceClass] = {req: cls for cls in CLASSES for req in cls.checked}


def claimed_uris() -> list[str]:
    """The URIs of the classes `/conformance` claims, in table order."""
    return [cls.uri for cls in CLASSES if cls.claimed]


def applies(req: str) -> bool:
    """Whether a checked requirement applies, given which classes are claimed (its condition, if any)."""
    claimed = set(claimed_uris())
    condition = CONDITIONS.get(req, Condition())
    return all(uri in claimed for uri in condition.when) and not claimed & set(condition.unless)


def report() -> str:
    """Both tables as text: every class with its checked ids (and their limits), then the untestable ids."""
    lines = ["Requirements checked over HTTP (tests/test_conformance.py, one test per id):", ""]
    for cls in CLASSES:
        state = "claimed" if cls.claimed else f"NOT claimed: {cls.pending}"
        lines.append(f"{cls.uri}  [{state}; {cls.source}]")
        for req in cls.checked:
            note = "" if applies(req) else "  (condition not met: not applicable now)"
            lines.append(f"  {req}{note}")
            if req in cls.partly:
                lines.append(f"      partly: {cls.partly[req]}")
        lines.append("")
    lines += ["Requirements not testable over HTTP:", ""]
    for cls in CLASSES:
        for req, why in cls.not_testable.items():
            lines.append(f"  {req} ({cls.uri.rsplit('/conf/', 1)[-1]}): {why}")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    """`--list`: print the tables."""
    if argv[1:] != ["--list"]:
        print("usage: python -m tests.test_conformance --list", file=sys.stderr)
        return 2
    print(report())
    return 0
