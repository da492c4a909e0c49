"""CQL2 filters (OGC 21-065r2), text and JSON: read, checked against the limits, compiled, evaluated.

Both encodings share one path. CQL2 text is read into CQL2 JSON (geo/query/cql_text.py, a linear-time
grammar), then either JSON is compiled here into typed nodes (geo/query/cql_nodes.py), which evaluate
column-wise on a `Frame`. What the standard leaves open, or where this service goes beyond it, is said
at the rule. (pygeofilter, used before, read cql2-json with quirks of its own: a bbox's miny and maxx
swapped, BETWEEN's bounds wanted in a nested list. `_compile` reads the JSON as the standard's schema,
cql2.json, writes it.)

Filters come from anyone, so every way one can fail is a 400 problem naming `filter`: a filter is at
most MAX_LENGTH characters and MAX_DEPTH operators deep (compiling and evaluating recurse), and the
faults evaluation can meet are turned into problems in `evaluate`, the one place they become one.
"""

from __future__ import annotations

import logging
import re
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any, TypeAlias
from typing import Literal as Lit

import numpy as np
import orjson
import pandas as pd
import shapely
import shapely.geometry

from geo.crs import DEFAULT as DEFAULT_CRS
from geo.crs import Crs, envelope_to_crs84, geometry_to_crs84
from geo.errors import InvalidInput
from geo.query import cql_fast
from geo.query import cql_nodes as n
from geo.query.cql_nodes import bad_filter
from geo.query.cql_text import FastTerm, TextError, fast_terms, to_json
from geo.query.frame import Frame
from geo.query.spatialindex import boxes

__all__ = ["LANGS", "MAX_DEPTH", "MAX_LENGTH", "Expression", "bad_filter", "evaluate", "parse"]

log = logging.getLogger(__name__)

Lang = Lit["cql2-text", "cql2-json"]
LANGS: tuple[Lang, ...] = ("cql2-text", "cql2-json")
# The longest filter read (characters): room for a polygon of a few hundred vertices, and within the
# 8 kB request line that proxies commonly allow.
MAX_LENGTH = 8192
# How deep operators may nest (`name = 'a' AND status = 'b'` is 2 deep, one more AND makes 3; an
# AND or OR of n conditions counts as the n - 1 ANDs it stands for): compiling and evaluating recurse
# per level, so this keeps both far from Python's limit.
MAX_DEPTH = 100
# JSON levels per operator level (the operator's object and its `args` array), and a margin for the
# literals at the bottom: a bound checked before anything recursive reads the document.
_JSON_LEVELS = 2
_JSON_MARGIN = 8
# What evaluating a compiled filter may still raise for a filter that cannot be evaluated on this data
# (the nodes check kinds first, so these are the rare rest): numbers leaving the float range in
# pandas, dates leaving the calendar, shapely refusing a geometry.
EVALUATION_FAULTS: tuple[type[Exception], ...] = (
    TypeError, ValueError, ArithmeticError, RecursionError, NotImplementedError, KeyError,
    shapely.errors.ShapelyError)
# What reading a filter raises for text that is not one: TextError (a ValueError) from the grammar,
# ValueError from JSON, dates and shapely's GeoJSON reader, and the rest for members of the wrong kind.
PARSE_FAULTS: tuple[type[Exception], ...] = (
    ValueError, TypeError, LookupError, ArithmeticError, RecursionError, AttributeError,
    shapely.errors.ShapelyError)

# A compiled filter.
Expression: TypeAlias = n.Node


class _TooDeep(Exception):
    """The filter nests deeper than MAX_DEPTH."""


class _Invalid(ValueError):
    """Well-formed JSON that is not a CQL2 expression, with the reason."""


def _nesting(doc: Any) -> int:
    """How deep a JSON document nests (a scalar is 0), found without recursion."""
    deepest, stack = 0, [(doc, 1)]
    while stack:
        node, depth = stack.pop()
        children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else None
        if children is not None:
            deepest = max(deepest, depth)
            stack.extend((child, depth + 1) for child in children)
    return deepest


def _depth(doc: Any) -> int:
    """How deep operators nest in CQL2 JSON (`{"op": "and", "args": [a, b, c]}` over comparisons is 3,
    like `a AND b AND c`), found without recursion."""
    deepest, stack = 0, [(doc, 0)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, list):
            stack.extend((item, depth) for item in node)
        elif isinstance(node, dict) and isinstance(node.get("args"), list):
            args = node["args"]
            level = depth + max(1, len(args) - 1 if node.get("op") in ("and", "or") else 1)
            deepest = max(deepest, level)
            stack.extend((arg, level) for arg in args)
    return deepest


# --- literals -------------------------------------------------------------------------------------

def _number(value: int | float) -> n.Literal:
    # Every number is compared as a float, as the columns hold them; a Python int no float holds is a
    # 400 rather than infinity.
    try:
        number = float(value)
    except OverflowError:
        digits = len(str(abs(int(value))))
        raise _Invalid(f"the number {str(value)[:20]}… ({digits} digits) is beyond the range of a "
                       "64-bit float") from None
    return n.Literal("number", number, _text(number))


def _text(number: float) -> str:
    """A number as CQL2 text writes it (7, not 7.0)."""
    text = repr(float(number))
    return text[:-2] if text.endswith(".0") else text


# ASCII digits only, as every other number a client sends (`\d` would take Arabic-Indic digits too).
_DATE = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})")
# RFC 3339: CQL2 writes timestamps in UTC with Z; an offset is read too and converted.
_TIMESTAMP = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt]([0-9]{2}):([0-9]{2}):([0-9]{2})"
                        r"(?:\.([0-9]+))?([Zz]|[+-][0-9]{2}:[0-9]{2})")


def _date(text: Any) -> n.Literal:
    match = _DATE.fullmatch(text) if isinstance(text, str) else None
    try:
        if match is None:
            raise ValueError
        value = date(*map(int, match.groups()))
    except ValueError:
        raise _Invalid(f"DATE({str(text)[:40]!r}) is not a date (YYYY-MM-DD, years 1 to 9999)") from None
    return n.Literal("instant", pd.Timestamp(value), f"DATE('{text}')")


def _timestamp(text: Any) -> n.Literal:
    match = _TIMESTAMP.fullmatch(text) if isinstance(text, str) else None
    try:
        if match is None:
            raise ValueError
        y, mo, d, h, mi, s, fraction, zone = match.groups()
        offset = timedelta(0)
        if zone not in ("Z", "z"):
            sign = -1 if zone[0] == "-" else 1
            offset = sign * timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6]))
        micro = int((fraction or "").ljust(6, "0")[:6])
        stamp = datetime(int(y), int(mo), int(d), int(h), int(mi), int(s), micro, tzinfo=timezone(offset))
    except ValueError:
        raise _Invalid(f"TIMESTAMP({str(text)[:40]!r}) is not a timestamp (YYYY-MM-DDTHH:MM:SSZ)") from None
    try:
        # Columns hold naive UTC instants.
        utc = stamp.astimezone(UTC).replace(tzinfo=None)
    except OverflowError:
        raise _Invalid(f"TIMESTAMP('{text}') lies outside the years 1 to 9999 in UTC") from None
    return n.Literal("instant", pd.Timestamp(utc), f"TIMESTAMP('{text}')")


# GeoJSON's geometry types; read in any case, as shapely does.
_GEOMETRY_TYPES = {t.lower(): t for t in ("Point", "MultiPoint", "LineString", "MultiLineString", "Polygon",
                                          "MultiPolygon", "GeometryCollection")}


def _geometry(doc: dict[str, Any]) -> n.Literal:
    kind = doc.get("type")
    if not isinstance(kind, str) or kind.lower() not in _GEOMETRY_TYPES:
        raise _Invalid(f"{str(kind)[:40]!r} is not a GeoJSON geometry type (the types: "
                       f"{', '.join(_GEOMETRY_TYPES.values())})")
    try:
        shape = shapely.geometry.shape(doc)
    except PARSE_FAULTS:
        raise _Invalid(f"not a valid GeoJSON {kind}") from None
    return n.Literal("geometry", shape, f"{_GEOMETRY_TYPES[kind.lower()].upper()}(…)")


def _bbox(numbers: Any) -> n.Literal:
    """A bbox literal: west, south, east, north (or with minimum and maximum heights, which a 2D test
    ignores). West greater than east crosses the antimeridian, as in OGC API bbox parameters."""
    if (not isinstance(numbers, list) or len(numbers) not in (4, 6)
            or not all(isinstance(x, int | float) and not isinstance(x, bool) for x in numbers)):
        raise _Invalid("a bbox is 4 or 6 numbers: west, south, (min height,) east, north(, max height)")
    west, south, east, north = (numbers[0], numbers[1], numbers[3], numbers[4]) if len(numbers) == 6 \
        else numbers
    if south > north:
        raise _Invalid(f"BBOX south {_text(south)} is above its north {_text(north)}")
    parts = boxes(west, south, east, north)
    box = parts[0] if len(parts) == 1 else shapely.MultiPolygon(parts)
    return n.Literal("geometry", box, f"BBOX({', '.join(_text(x) for x in numbers)})")


# --- operators ------------------------------------------------------------------------------------

_COMPARISONS = ("=", "<>", "<", ">", "<=", ">=")
_ARITHMETIC = ("+", "-", "*", "/", "%", "div", "^")
_SPATIAL = {f"s_{op}": op for op in ("intersects", "equals", "disjoint", "touches", "within", "overlaps",
                                     "crosses", "contains")}
_TEMPORAL = ("t_after", "t_before", "t_contains", "t_disjoint", "t_during", "t_equals", "t_finishedBy",
             "t_finishes", "t_intersects", "t_meets", "t_metBy", "t_overlappedBy", "t_overlaps",
             "t_startedBy", "t_starts")
_ARRAY = ("a_equals", "a_contains", "a_containedBy", "a_overlaps")
# op -> (fewest, most) arguments
_ARITY: dict[str, tuple[int, int]] = {
    "and": (2, 10**9), "or": (2, 10**9), "not": (1, 1), "like": (2, 2), "between": (3, 3), "in": (2, 2),
    "isNull": (1, 1), "casei": (1, 1), "accenti": (1, 1),
    **dict.fromkeys((*_COMPARISONS, *_ARITHMETIC, *_SPATIAL), (2, 2))}


def _pattern(doc: Any) -> n.Node:
    """LIKE's pattern: a string, or CASEI/ACCENTI of a pattern (the rule patternExpression)."""
    if isinstance(doc, str):
        return n.Literal("string", doc, "'" + doc.replace("'", "''") + "'")
    if isinstance(doc, dict) and (doc.get("op") == "casei" or doc.get("op") == "accenti"):
        return n.Fold("casei" if doc["op"] == "casei" else "accenti", _pattern(_args(doc, 1, 1)[0]))
    raise _Invalid("LIKE takes a text pattern: a string, or CASEI/ACCENTI of one")


def _args(doc: dict[str, Any], fewest: int, most: int) -> list[Any]:
    args = doc.get("args")
    if not isinstance(args, list):
        raise _Invalid(f"the operator {str(doc.get('op'))[:40]!r} needs an `args` array")
    if not fewest <= len(args) <= most:
        count = str(fewest) if fewest == most else f"at least {fewest}"
        raise _Invalid(f"{doc['op']} takes {count} argument{'s' if fewest != 1 else ''}, not {len(args)}")
    return args


def _operation(doc: dict[str, Any]) -> n.Node:
    op = doc["op"]
    if not isinstance(op, str):
        raise _Invalid("`op` is a string")
    if set(doc) - {"op", "args"}:
        raise _Invalid(f"an operation has only `op` and `args`, not {sorted(set(doc) - {'op', 'args'})}")
    if op in _TEMPORAL:
        raise _Invalid(f"the temporal operator {op} is not offered; compare date properties with =, <, >, "
                       "BETWEEN instead")
    if op in _ARRAY:
        raise _Invalid(f"the array operator {op} is not offered")
    if op not in _ARITY:
        raise _Invalid(f"unknown function or operator {op[:40]!r} (the functions: CASEI, ACCENTI)")
    args = _args(doc, *_ARITY[op])
    if op == "like":
        return n.Like(_compile(args[0]), _pattern(args[1]))
    if op == "in":
        if not isinstance(args[1], list) or not args[1]:
            raise _Invalid("IN takes a value and a non-empty list of values")
        return n.In(_compile(args[0]), tuple(_compile(a) for a in args[1]))
    nodes = [_compile(a) for a in args]
    if op == "and" or op == "or":
        return n.Logical("and" if op == "and" else "or", tuple(nodes))
    if op == "not":
        return n.Not(nodes[0])
    if op == "isNull":
        return n.IsNull(nodes[0])
    if op == "between":
        return n.Between(*nodes)
    if op == "casei" or op == "accenti":
        return n.Fold("casei" if op == "casei" else "accenti", nodes[0])
    if op in _SPATIAL:
        return n.Spatial(_SPATIAL[op], *nodes)
    if op in _COMPARISONS:
        return n.Compare(op, *nodes)
    return n.Arithmetic(op, *nodes)


def _compile(doc: Any) -> n.Node:
    """CQL2 JSON (as the standard's schema cql2.json describes it) as a compiled node."""
    if isinstance(doc, bool):
        return n.Literal("boolean", doc, str(doc).upper())
    if isinstance(doc, int | float):
        return _number(doc)
    if isinstance(doc, str):
        return n.Literal("string", doc, "'" + doc.replace("'", "''") + "'")
    if not isinstance(doc, dict):
        raise _Invalid(f"{type(doc).__name__ if doc is not None else 'null'} is not a CQL2 expression here"
                       + (" (a list is IN's second argument only)" if isinstance(doc, list) else ""))
    if "op" in doc:
        return _operation(doc)
    keys = set(doc)
    if keys == {"property"} and isinstance(doc["property"], str):
        return n.Property(doc["property"])
    if keys == {"date"}:
        return _date(doc["date"])
    if keys == {"timestamp"}:
        return _timestamp(doc["timestamp"])
    if keys == {"bbox"}:
        return _bbox(doc["bbox"])
    if keys == {"interval"}:
        raise _Invalid("an interval is an argument of temporal operators, which are not offered")
    if "type" in doc:
        return _geometry(doc)
    raise _Invalid(f"an object with {sorted(keys)[:5]} is not a CQL2 expression")


# --- parse and evaluate ---------------------------------------------------------------------------

def _read(text: str, lang: str) -> Any:
    """The filter as CQL2 JSON, within the depth limit."""
    if lang == "cql2-json":
        doc = orjson.loads(text)
        if not isinstance(doc, dict) and not isinstance(doc, bool):
            raise _Invalid("a CQL2 JSON expression is an object (or true, or false)")
        if isinstance(doc, dict) and "filter-lang" in doc:
            if doc["filter-lang"] != "cql2-json":
                lang_in_doc = str(doc["filter-lang"])[:40]
                raise _Invalid(f"a cql2-json document cannot hold filter-lang {lang_in_doc!r}")
            doc = {k: v for k, v in doc.items() if k != "filter-lang"}
    else:
        # `parse` has built what the fast path reads (`_fast_nodes`); the grammar reads the rest.
        doc = to_json(text)
    # Compiling recurses: bound the document before it starts.
    if _nesting(doc) > _JSON_LEVELS * MAX_DEPTH + _JSON_MARGIN or _depth(doc) > MAX_DEPTH:
        raise _TooDeep
    return doc


def parse(text: str, lang: str, crs: Crs = DEFAULT_CRS) -> Expression:
    """Read and compile a `filter` value in `lang`, its geometry literals given in `crs` (`filter-crs`),
    or raise a 400 problem saying why."""
    if lang not in LANGS:
        raise bad_filter(f"must be one of {', '.join(LANGS)}, not {lang!r}", "filter-lang")
    if len(text) > MAX_LENGTH:
        raise bad_filter(f"is {len(text)} characters long; filters are at most {MAX_LENGTH}")
    if not text.strip():
        raise bad_filter("is empty; leave `filter` out to select every feature")
    if lang == "cql2-text":
        fast = fast_terms(text)
        if fast is not None:
            # Comparisons of a property with a number or a text: no literal a CRS changes.
            return _fast_nodes(*fast)
    try:
        return _compile(_literals_to_crs84(_read(text, lang), crs))
    except _TooDeep:
        raise bad_filter(f"nests operators more than {MAX_DEPTH} deep") from None
    except (TextError, _Invalid) as exc:
        raise bad_filter(f"not a valid {lang} expression ({exc})") from None
    except PARSE_FAULTS as exc:
        # Reading untrusted text: each of these means "this is not a filter we can read" (the trace
        # at debug level only, so that bad filters cannot flood the log).
        log.debug("filter cannot be parsed", exc_info=True)
        raise bad_filter(f"not a valid {lang} expression ({_first_line(exc)})") from None


def _fast_nodes(terms: list[FastTerm], joiner: str | None) -> Expression:
    """The nodes `_compile` makes of `fast_json`'s reading of these comparisons, made directly (about
    2 us rather than 9 for two comparisons; tests/test_cql_text_fast.py checks they are equal)."""
    tree: Expression | None = None
    for name, op, value in terms:
        literal = (_number(value) if isinstance(value, float)
                   else n.Literal("string", value, "'" + value.replace("'", "''") + "'"))
        term = n.Compare(op, n.Property(name), literal)
        tree = term if tree is None else n.Logical("and" if joiner == "and" else "or", (tree, term))
    assert tree is not None  # the fast path reads at least one comparison
    return tree


def _literals_to_crs84(doc: Any, crs: Crs) -> Any:
    """CQL2 JSON with its geometry and bbox literals carried from `crs` into CRS84, where the columns are
    (Part 3 /req/filter/filter-crs-param B; the tree is already within the depth limit)."""
    if crs.is_default:
        return doc
    if isinstance(doc, list):
        return [_literals_to_crs84(item, crs) for item in doc]
    if not isinstance(doc, dict):
        return doc
    kind = doc.get("type")
    if isinstance(kind, str) and kind.lower() in _GEOMETRY_TYPES:
        return geometry_to_crs84(doc, crs)
    box = doc.get("bbox")
    if len(doc) == 1 and isinstance(box, list) and len(box) in (4, 6) and all(
            isinstance(v, int | float) and not isinstance(v, bool) for v in box):
        # A 6-number box holds heights, which a 2D selection leaves out.
        x1, y1, x2, y2 = (box[0], box[1], box[3], box[4]) if len(box) == 6 else box
        return envelope_to_crs84((float(x1), float(y1), float(x2), float(y2)), crs)
    return {key: _literals_to_crs84(value, crs) for key, value in doc.items()}


def _first_line(exc: BaseException, limit: int = 200) -> str:
    """An exception's first line, cut short (messages may quote client-sized input)."""
    text = str(exc).strip()
    first = text.splitlines()[0] if text else type(exc).__name__
    return first if len(first) <= limit else first[:limit] + "…"


BoolArray = np.ndarray[Any, np.dtype[np.bool_]]


def evaluate(expression: Expression, frame: Frame) -> BoolArray:
    """The features of `frame` that match `expression` as a boolean mask, or a 400 problem saying why not.

    Unknown (a comparison with a missing value) does not match.
    """
    try:
        # Overflow to infinity and 0/0 in columns are answers (no match), not warnings for the log.
        with np.errstate(all="ignore"):
            # The commonest filters on numpy arrays (geo/query/cql_fast.py); the nodes read the rest.
            fast = cql_fast.truth(expression, frame)
            if fast is not None:
                return fast  # an array of its own: callers keep it
            result = expression.condition(frame).data
    except InvalidInput:
        raise
    except EVALUATION_FAULTS as exc:
        # The client's filter, not the service, is at fault; kept at debug level so that a stream of
        # bad filters cannot flood the log, yet an operator can still see the trace.
        log.debug("filter cannot be evaluated", exc_info=True)
        raise bad_filter(f"cannot be evaluated: {_first_line(exc)}") from None
    if not isinstance(result, pd.Series):
        return np.full(len(frame.columns), bool(result))
    mask: BoolArray = result.to_numpy(dtype=np.bool_, na_value=False)
    return mask
