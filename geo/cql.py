"""CQL2 filters (text and JSON), parsed by pygeofilter and evaluated column-wise on a `Frame`.

The evaluator extends pygeofilter's geopandas backend: it checks property names against the
queryables, turns date literals into timestamps the columns compare with, maps missing values to
"no match", and reads BBOX from both encodings the same way.

Filters come from anyone, so every way one can fail is a 400 problem naming `filter`: a filter is at
most MAX_LENGTH characters and MAX_DEPTH operators deep (the parser and the evaluator recurse), and
the faults evaluation can meet (division by zero, numbers beyond a float, dates beyond the calendar,
geometry types that do not exist) are caught in `evaluate`, the one place they become a problem.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any, Literal, TypeAlias, TypeVar, cast

import numpy as np
import orjson
import pandas as pd
import shapely
from lark.exceptions import LarkError
from pygeofilter import ast, values
from pygeofilter.backends.evaluator import handle as _untyped_handle
from pygeofilter.backends.geopandas.evaluate import GeoPandasEvaluator
from pygeofilter.parsers.cql2_json import parse as parse_json
from pygeofilter.parsers.cql2_text import parse as parse_text
from pygeofilter.parsers.cql2_text import parser as _text_parser

from geo.errors import InvalidInput
from geo.frame import Frame
from geo.queryables import GEOMETRY

log = logging.getLogger(__name__)

Lang = Literal["cql2-text", "cql2-json"]
LANGS: tuple[Lang, ...] = ("cql2-text", "cql2-json")
# The longest filter read (characters): room for a polygon of a few hundred vertices, and within the
# 8 kB request line that proxies commonly allow.
MAX_LENGTH = 8192
# How deep operators may nest (`name = 'a' AND status = 'b'` is 2 deep, one more AND makes 3):
# parsing cql2-json and evaluating recurse per level, so this keeps both far from Python's limit.
MAX_DEPTH = 100
# JSON levels per operator level: the operator's object and its `args` array.
_JSON_LEVELS = 2
# Python ints beyond this are read as floats, like the float64 columns they are compared with.
_INT_RANGE = 2**63
# What evaluating a parsed filter raises for a filter that cannot be evaluated on this data: pandas
# refuses to compare text with a number (TypeError), arithmetic divides by zero or leaves the float
# range, a date leaves the calendar (OverflowError, pandas' OutOfBoundsDatetime is a ValueError), a
# cql2-json geometry has a type that does not exist (shapely's GeometryTypeError, a ShapelyError).
EVALUATION_FAULTS: tuple[type[Exception], ...] = (
    TypeError, ValueError, ArithmeticError, RecursionError, NotImplementedError, KeyError,
    shapely.errors.ShapelyError)
# What parsing raises for text that is not a filter: lark's errors for cql2-text, ValueError from
# JSON, dates and pygeofilter's own checks, KeyError, IndexError and TypeError for cql2-json whose
# members are missing or of the wrong kind.
PARSE_FAULTS: tuple[type[Exception], ...] = (
    LarkError, ValueError, TypeError, LookupError, ArithmeticError, RecursionError)


def _quiet(parser: Any) -> None:
    """Turn off the debug output of pygeofilter's cql2-text parser.

    pygeofilter builds it with lark's `debug=True`: on every input its callbacks reject (a bad date,
    say) lark prints the whole parser state stack, about 9 kB, to stdout. pygeofilter also sets
    lark's logger to DEBUG. Neither belongs in a server's log.
    """
    inner = getattr(getattr(getattr(parser, "parser", None), "parser", None), "parser", None)
    if inner is not None and hasattr(inner, "debug"):
        inner.debug = False
    parser.options.debug = False
    logging.getLogger("lark").setLevel(logging.WARNING)


_quiet(_text_parser.parser)
# A parsed expression (pygeofilter's AST node; the library is untyped).
Expression: TypeAlias = Any
BoolArray = np.ndarray[Any, np.dtype[np.bool_]]


_F = TypeVar("_F", bound=Callable[..., Any])


def handle(*classes: Any, subclasses: bool = False) -> Callable[[_F], _F]:
    """pygeofilter's handler registration, typed."""
    return cast(Callable[[_F], _F], _untyped_handle(*classes, subclasses=subclasses))


def bad_filter(message: str, field: str = "filter") -> InvalidInput:
    """A 400 problem naming the filter parameter."""
    return InvalidInput(f"{field}: {message}", errors=[{"field": field, "message": message}])


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


def _depth(expression: Expression) -> int:
    """How many operators nest in a parsed expression (`name = 'a' AND id = 'b'` is 2), without recursion."""
    deepest, stack = 0, [(expression, 0)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, list):
            stack.extend((item, depth) for item in node)
            continue
        subs = node.get_sub_nodes() if isinstance(node, ast.Node) else None
        if subs:
            deepest = max(deepest, depth + 1)
            stack.extend((sub, depth + 1) for sub in (subs if isinstance(subs, list) else [subs]))
    return deepest


def _normalise(node: Any) -> Any:
    """Rewrite the CQL2 JSON forms pygeofilter 0.4 misreads into ones it reads correctly."""
    if isinstance(node, list):
        return [_normalise(v) for v in node]
    if not isinstance(node, dict):
        return node
    if node.get("filter-lang", "cql2-json") != "cql2-json":
        # pygeofilter raises a bare Exception for this; say it here instead.
        raise ValueError(f"a cql2-json document cannot hold filter-lang {node['filter-lang']!r}")
    if set(node) == {"bbox"} and isinstance(node["bbox"], list) and len(node["bbox"]) in (4, 6):
        # Its Envelope(x1, x2, y1, y2) is built from [minx, miny, maxx, maxy] positionally, swapping
        # miny and maxx; a GeoJSON polygon literal is read correctly.
        b = node["bbox"]
        x1, y1, x2, y2 = (b[0], b[1], b[3], b[4]) if len(b) == 6 else b
        return {"type": "Polygon", "coordinates": [[[x1, y1], [x2, y1], [x2, y2], [x1, y2], [x1, y1]]]}
    out = {k: _normalise(v) for k, v in node.items()}
    args = out.get("args")
    if out.get("op") == "between" and isinstance(args, list) and len(args) == 3:
        # CQL2 1.0 writes BETWEEN's args flat, [value, low, high]; the parser wants [value, [low, high]].
        out["args"] = [args[0], [args[1], args[2]]]
    return out


def _first_line(exc: BaseException, limit: int = 200) -> str:
    """An exception's first line, cut short: pygeofilter puts whole (client-sized) nodes in messages."""
    text = str(exc).strip()
    first = text.splitlines()[0] if text else type(exc).__name__
    return first if len(first) <= limit else first[:limit] + "…"


class _TooDeep(Exception):
    """The filter nests deeper than MAX_DEPTH."""


def _parse(text: str, lang: str) -> Expression:
    if lang == "cql2-json":
        doc = orjson.loads(text)
        if not isinstance(doc, dict):
            raise ValueError("a CQL2 JSON expression is an object")
        # pygeofilter walks the document recursively: bound it before it starts.
        if _nesting(doc) > _JSON_LEVELS * MAX_DEPTH + 8:
            raise _TooDeep
        return parse_json(_normalise(doc))
    return parse_text(text)


def parse(text: str, lang: str) -> Expression:
    """Parse a `filter` value in `lang`, or raise a 400 problem saying why."""
    if lang not in LANGS:
        raise bad_filter(f"must be one of {', '.join(LANGS)}, not {lang!r}", "filter-lang")
    if len(text) > MAX_LENGTH:
        raise bad_filter(f"is {len(text)} characters long; filters are at most {MAX_LENGTH}")
    too_deep = f"nests operators more than {MAX_DEPTH} deep"
    try:
        expression = _parse(text, lang)
        # A malformed cql2-json node (IN without a list, say) fails here, when its parts are listed.
        deep = _depth(expression) > MAX_DEPTH
    except _TooDeep:
        raise bad_filter(too_deep) from None
    except PARSE_FAULTS as exc:
        # Parsing untrusted text: each of these means "this is not a filter we can read" (the trace
        # at debug level only, so that bad filters cannot flood the log).
        log.debug("filter cannot be parsed", exc_info=True)
        raise bad_filter(f"not a valid {lang} expression ({_first_line(exc)})") from None
    if deep:
        raise bad_filter(too_deep)
    return expression


def _literal(value: Any) -> Any:
    # Columns hold naive UTC instants; CQL2 DATE and TIMESTAMP literals are turned into the same.
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            try:
                value = value.astimezone(UTC).replace(tzinfo=None)
            except OverflowError:
                raise bad_filter(f"TIMESTAMP('{value.isoformat()}') lies outside the years 1 to 9999 "
                                 "in UTC") from None
        return pd.Timestamp(value)
    if isinstance(value, date):
        return pd.Timestamp(value)
    if isinstance(value, int) and not isinstance(value, bool) and not -_INT_RANGE < value < _INT_RANGE:
        # A 400-digit literal: compared as the float it would become, or refused if no float holds it.
        try:
            return float(value)
        except OverflowError:
            raise bad_filter(f"the number {str(value)[:20]}… ({len(str(abs(value)))} digits) is beyond "
                             "the range of a 64-bit float") from None
    return value


def _polygon(x1: float, y1: float, x2: float, y2: float) -> shapely.Polygon:
    return shapely.box(min(x1, x2), min(y1, y2), max(x1, x2), max(y1, y2))


# S_WITHIN(a, b) is S_CONTAINS(b, a); the other operators are symmetric.
_CONVERSE = {"WITHIN": "CONTAINS", "CONTAINS": "WITHIN"}
_SPATIAL_METHODS = {"INTERSECTS": "intersects", "DISJOINT": "disjoint", "CONTAINS": "contains",
                    "WITHIN": "within", "TOUCHES": "touches", "CROSSES": "crosses", "OVERLAPS": "overlaps",
                    "EQUALS": "geom_equals"}


def _property(value: Any, operator: str) -> pd.Series:
    """The left side of an operator that tests a property (BETWEEN, LIKE, IN, IS NULL), or a 400:
    pygeofilter's geopandas backend calls Series methods on it."""
    if not isinstance(value, pd.Series):
        raise bad_filter(f"{operator} tests a property (or an expression over properties) on its left, "
                         f"not the literal {str(value)[:40]!r}")
    return value


# GeoJSON's geometry types; shapely reads any case (and fails on anything else, in several ways).
_GEOMETRY_TYPES = {t.lower(): t for t in ("Point", "MultiPoint", "LineString", "MultiLineString", "Polygon",
                                          "MultiPolygon", "GeometryCollection")}


def _unknown_if_null(result: Any, *operands: Any) -> Any:
    """A comparison's result, unknown (NA) where an operand is null: CQL2 follows SQL's three-valued
    logic, so `NOT (x = 1)` and `x NOT IN (...)` do not match features that lack `x`."""
    if not isinstance(result, pd.Series):
        return result
    out = result.astype("boolean")
    for operand in operands:
        if isinstance(operand, pd.Series) and operand.dtype != "geometry":
            out = out.mask(operand.isna())
    return out


class _Evaluator(GeoPandasEvaluator):  # type: ignore[misc]
    """pygeofilter's geopandas evaluator, on a Frame and checked against its queryables."""

    @handle(ast.Comparison, subclasses=True)
    def comparison(self, node: Any, lhs: Any, rhs: Any) -> Any:
        """=, <>, <, >, <=, >=, unknown where either side is null."""
        return _unknown_if_null(super().comparison(node, lhs, rhs), lhs, rhs)

    @handle(ast.Between)
    def between(self, node: Any, lhs: Any, low: Any, high: Any) -> Any:
        """[NOT] BETWEEN, unknown where a side is null."""
        lhs = _property(lhs, "BETWEEN")
        return _unknown_if_null(super().between(node, lhs, low, high), lhs, low, high)

    @handle(ast.Like)
    def like(self, node: Any, lhs: Any) -> Any:
        """[NOT] LIKE, unknown where the value is null."""
        if _property(lhs, "LIKE").dtype != "str":
            raise bad_filter("LIKE compares text properties only")
        if not isinstance(node.pattern, str):
            raise bad_filter("LIKE takes a text pattern")
        return _unknown_if_null(super().like(node, lhs), lhs)

    @handle(ast.In)
    def in_(self, node: Any, lhs: Any, *options: Any) -> Any:
        """[NOT] IN, unknown where the value is null."""
        lhs = _property(lhs, "IN")
        return _unknown_if_null(super().in_(node, lhs, *options), lhs)

    @handle(ast.IsNull)
    def null(self, node: Any, lhs: Any) -> Any:
        """IS [NOT] NULL."""
        return super().null(node, _property(lhs, "IS NULL"))

    @handle(values.Geometry)
    def geometry(self, node: values.Geometry) -> Any:
        """A GeoJSON geometry literal, or a 400 naming a type that is not one."""
        kind = node.geometry.get("type") if isinstance(node.geometry, dict) else None
        if not isinstance(kind, str) or kind.lower() not in _GEOMETRY_TYPES:
            raise bad_filter(f"{str(kind)[:40]!r} is not a GeoJSON geometry type (the types: "
                             f"{', '.join(_GEOMETRY_TYPES.values())})")
        return super().geometry(node)

    def __init__(self, frame: Frame) -> None:
        super().__init__(frame.columns, None, {"bbox": self._bbox_function, "lower": self._lower})
        self.frame = frame

    @staticmethod
    def _bbox_function(*args: Any) -> Any:
        if len(args) == 6:
            args = (args[0], args[1], args[3], args[4])
        if len(args) != 4 or not all(isinstance(a, int | float) for a in args):
            raise bad_filter("BBOX takes 4 (or 6) numbers")
        return _polygon(*args)

    @staticmethod
    def _lower(value: Any) -> Any:
        if isinstance(value, pd.Series):
            if value.dtype != "str":
                raise bad_filter("CASEI and LOWER take text properties only")
            return value.str.lower()
        return str(value).lower()

    @handle(ast.Attribute)
    def attribute(self, node: ast.Attribute) -> Any:
        """A property's column, or a 400 naming the queryables."""
        if node.name == GEOMETRY:
            return self.frame.geometry
        if node.name not in self.frame.kinds:
            names = ", ".join([GEOMETRY, *self.frame.kinds])
            raise bad_filter(f"{node.name!r} is not a queryable of this collection (its queryables: {names})")
        return self.frame.columns[node.name]

    @handle(*values.LITERALS)
    def literal(self, node: Any) -> Any:
        """A literal, with dates made comparable with the date columns."""
        return _literal(node)

    @handle(values.Envelope)
    def envelope(self, node: values.Envelope) -> Any:
        """A CQL2-text envelope, as a polygon."""
        return _polygon(node.x1, node.y1, node.x2, node.y2)

    @handle(ast.Function)
    def function(self, node: ast.Function, *arguments: Any) -> Any:
        """The functions this service knows (BBOX, CASEI); others are a 400."""
        func: Callable[..., Any] | None = self.function_map.get(node.name.lower())
        if func is None:
            raise bad_filter(f"unknown function {node.name!r}")
        return func(*arguments)

    @handle(ast.SpatialComparisonPredicate, subclasses=True)
    def spatial_operation(self, node: Any, lhs: Any, rhs: Any) -> Any:
        """S_INTERSECTS, S_WITHIN, ...: the geometry column against a literal geometry, either way round."""
        import geopandas as gpd  # already loaded by the Frame; kept out of start-up

        op = node.op.name
        if not isinstance(lhs, gpd.GeoSeries) and isinstance(rhs, gpd.GeoSeries):
            lhs, rhs, op = rhs, lhs, _CONVERSE.get(op, op)
        if not isinstance(lhs, gpd.GeoSeries) or isinstance(rhs, gpd.GeoSeries | pd.Series):
            raise bad_filter(f"S_{op} compares the geometry with a literal geometry")
        return getattr(lhs, _SPATIAL_METHODS[op])(rhs)

    @handle(ast.Arithmetic, subclasses=True)
    def arithmetic(self, node: Any, lhs: Any, rhs: Any) -> Any:
        """+, -, *, /. Dividing by a literal zero is a 400 whatever the left side (`1/0` fails in Python,
        a column over 0 would give infinities); over columns IEEE rules hold (NaN matches nothing)."""
        if node.op.value == "/" and isinstance(rhs, int | float) and rhs == 0:
            raise bad_filter("divides by zero")
        return super().arithmetic(node, lhs, rhs)

    @handle(ast.TemporalPredicate, subclasses=True)
    def temporal(self, node: Any, lhs: Any, rhs: Any) -> Any:
        """Temporal operators are not offered (not advertised); compare dates with <, > instead."""
        raise bad_filter(f"temporal operator {node.op.value} is not supported; compare date properties "
                         "with =, <, >, BETWEEN instead")

    @handle(ast.ArrayPredicate, subclasses=True)
    def array(self, node: Any, lhs: Any, rhs: Any) -> Any:
        """Array operators are not offered."""
        raise bad_filter(f"array operator {node.op.value} is not supported")


def evaluate(expression: Expression, frame: Frame) -> BoolArray:
    """The features of `frame` that match `expression` as a boolean mask, or a 400 problem saying why not."""
    try:
        # Overflow to inf and 0/0 in columns are answers (no match), not warnings for the log.
        with np.errstate(all="ignore"):
            result = _Evaluator(frame).evaluate(expression)
    except InvalidInput:
        raise
    except EVALUATION_FAULTS as exc:
        # The client's filter, not the service, is at fault; kept at debug level so that a stream of
        # bad filters cannot flood the log, yet an operator can still see the trace.
        log.debug("filter cannot be evaluated", exc_info=True)
        raise bad_filter(f"cannot be evaluated: {_first_line(exc)}") from None
    if isinstance(result, bool | np.bool_):
        return np.full(len(frame.columns), bool(result))
    if (not isinstance(result, pd.Series) or len(result) != len(frame.columns)
            or not pd.api.types.is_bool_dtype(result.dtype)):
        raise bad_filter("is not a condition (it must be true or false for each feature)")
    if result.dtype != bool:
        result = result.fillna(False)
    mask: BoolArray = result.to_numpy(dtype=bool)
    return mask
