"""CQL2 filters (text and JSON), parsed by pygeofilter and evaluated column-wise on a `Frame`.

The evaluator extends pygeofilter's geopandas backend: it checks property names against the
queryables, turns date literals into timestamps the columns compare with, maps missing values to
"no match", and reads BBOX from both encodings the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any, Literal, TypeAlias, TypeVar, cast

import numpy as np
import orjson
import pandas as pd
import shapely
from pygeofilter import ast, values
from pygeofilter.backends.evaluator import handle as _untyped_handle
from pygeofilter.backends.geopandas.evaluate import GeoPandasEvaluator
from pygeofilter.parsers.cql2_json import parse as parse_json
from pygeofilter.parsers.cql2_text import parse as parse_text

from geo.errors import InvalidInput
from geo.frame import Frame
from geo.queryables import GEOMETRY

Lang = Literal["cql2-text", "cql2-json"]
LANGS: tuple[Lang, ...] = ("cql2-text", "cql2-json")
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


def _normalise(node: Any) -> Any:
    """Rewrite the CQL2 JSON forms pygeofilter 0.4 misreads into ones it reads correctly."""
    if isinstance(node, list):
        return [_normalise(v) for v in node]
    if not isinstance(node, dict):
        return node
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


def parse(text: str, lang: str) -> Expression:
    """Parse a `filter` value in `lang`, or raise a 400 problem saying why."""
    if lang not in LANGS:
        raise bad_filter(f"must be one of {', '.join(LANGS)}, not {lang!r}", "filter-lang")
    # Any exception here comes from parsing untrusted text (lark, json, pygeofilter's own checks):
    # each one means "this is not a filter we can read".
    try:
        if lang == "cql2-json":
            doc = orjson.loads(text)
            if not isinstance(doc, dict):
                raise ValueError("a CQL2 JSON expression is an object")
            return cast(Expression, parse_json(_normalise(doc)))
        return cast(Expression, parse_text(text))
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise bad_filter(f"not a valid {lang} expression ({first})") from None


def _literal(value: Any) -> Any:
    # Columns hold naive UTC instants; CQL2 DATE and TIMESTAMP literals are turned into the same.
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(UTC).replace(tzinfo=None)
        return pd.Timestamp(value)
    if isinstance(value, date):
        return pd.Timestamp(value)
    return value


def _polygon(x1: float, y1: float, x2: float, y2: float) -> shapely.Polygon:
    return shapely.box(min(x1, x2), min(y1, y2), max(x1, x2), max(y1, y2))


# S_WITHIN(a, b) is S_CONTAINS(b, a); the other operators are symmetric.
_CONVERSE = {"WITHIN": "CONTAINS", "CONTAINS": "WITHIN"}
_SPATIAL_METHODS = {"INTERSECTS": "intersects", "DISJOINT": "disjoint", "CONTAINS": "contains",
                    "WITHIN": "within", "TOUCHES": "touches", "CROSSES": "crosses", "OVERLAPS": "overlaps",
                    "EQUALS": "geom_equals"}


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
        return _unknown_if_null(super().between(node, lhs, low, high), lhs, low, high)

    @handle(ast.Like)
    def like(self, node: Any, lhs: Any) -> Any:
        """[NOT] LIKE, unknown where the value is null."""
        if isinstance(lhs, pd.Series) and lhs.dtype != "str":
            raise bad_filter("LIKE compares text properties only")
        return _unknown_if_null(super().like(node, lhs), lhs)

    @handle(ast.In)
    def in_(self, node: Any, lhs: Any, *options: Any) -> Any:
        """[NOT] IN, unknown where the value is null."""
        return _unknown_if_null(super().in_(node, lhs, *options), lhs)

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
        return value.str.lower() if isinstance(value, pd.Series) else str(value).lower()

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
    """The features of `frame` that match `expression`, as a boolean mask."""
    try:
        result = _Evaluator(frame).evaluate(expression)
    except InvalidInput:
        raise
    except (TypeError, ValueError, AttributeError, NotImplementedError, KeyError,
            shapely.errors.GEOSException) as exc:
        # pandas refuses comparisons between incompatible types (text with a number, ...).
        raise bad_filter(f"cannot be evaluated: {exc}") from None
    if isinstance(result, bool | np.bool_):
        return np.full(len(frame.columns), bool(result))
    if not isinstance(result, pd.Series) or len(result) != len(frame.columns):
        raise bad_filter("is not a condition (it must be true or false for each feature)")
    if result.dtype != bool:
        result = result.astype("boolean").fillna(False)
    mask: BoolArray = result.to_numpy(dtype=bool)
    return mask
