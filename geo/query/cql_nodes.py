"""A compiled CQL2 expression: typed nodes that evaluate column-wise on a `Frame`.

Each node evaluates to a `Value`: a kind (string, number, boolean, instant, geometry) and either one
scalar or a column aligned with the frame. Conditions are nullable boolean columns, so NULL follows
CQL2's three-valued logic (pandas' "boolean" dtype is Kleene logic): a comparison with a missing value
is unknown, `NOT unknown` is unknown, and unknown never matches.

Every fault a client's filter can cause here (a type mismatch, an unknown property, a division by
zero) is a 400 problem naming `filter` that says which part of the filter is at fault.
"""

from __future__ import annotations

import functools
import operator
import re
import unicodedata
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from typing import Literal as Lit

import numpy as np
import pandas as pd
import shapely

from geo.errors import InvalidInput
from geo.schema import GEOMETRY

if TYPE_CHECKING:
    from geo.query.frame import Frame

# The types CQL2 compares (geo.schema.ScalarType is a property's type in the schema: date and
# date-time are both instants here, integer and number both numbers).
ValueType = Lit["string", "number", "boolean", "instant", "geometry"]
BoolArray = np.ndarray[Any, np.dtype[np.bool_]]
# How a kind reads in a message.
_A = {"string": "text", "number": "a number", "boolean": "a boolean", "instant": "a date or timestamp",
      "geometry": "a geometry"}
# The frame's queryable types -> the types compared here (dates and date-times are both instants).
_VALUE_TYPES: dict[str, ValueType] = {"string": "string", "number": "number", "integer": "number",
                                      "boolean": "boolean", "date": "instant", "date-time": "instant"}
_LABEL = 60


def bad_filter(message: str, field: str = "filter") -> InvalidInput:
    """A 400 problem naming the filter parameter."""
    return InvalidInput.about(field, message)


def _short(text: str) -> str:
    return text if len(text) <= _LABEL else text[:_LABEL] + "…"


@dataclass(frozen=True, slots=True)
class Value:
    """What a node evaluates to: a kind, and one scalar or a column aligned with the frame."""

    kind: ValueType
    data: Any
    # Where a column is null, when already known (the frame caches it for its own columns).
    missing: BoolArray | None = None
    # The frame column this value is, unchanged (a Property's), so that a comparison may use the
    # frame's codes of it (`Frame.codes`); None for anything computed.
    source: str | None = None

    @property
    def column(self) -> bool:
        """Whether this is a column (one value per feature) rather than one scalar."""
        return isinstance(self.data, pd.Series)

    def nulls(self) -> BoolArray | None:
        """Where this column is null (None for a scalar, which never is)."""
        if not isinstance(self.data, pd.Series):
            return None
        if self.missing is not None:
            return self.missing
        return np.asarray(self.data.isna(), dtype=np.bool_)


def _boolean(values: BoolArray, unknown: BoolArray, index: pd.Index) -> pd.Series:
    # A nullable boolean column built from its two arrays: much cheaper than astype and mask.
    return pd.Series(pd.arrays.BooleanArray(values, unknown), index=index, copy=False)


def _condition(result: Any, *operands: Value) -> Value:
    """A predicate's result as a boolean Value, unknown (NA) where an operand is null."""
    if not isinstance(result, pd.Series):
        return Value("boolean", bool(result))
    values = np.asarray(result.to_numpy(dtype=np.bool_, na_value=False), dtype=np.bool_)
    if result.dtype == bool:
        unknown = np.zeros(len(result), dtype=np.bool_)
    else:
        unknown = np.asarray(result.isna(), dtype=np.bool_)
    for operand in operands:
        nulls = operand.nulls()
        if nulls is not None:
            unknown = unknown | nulls
    return Value("boolean", _boolean(values, unknown, result.index))


class Node(ABC):
    """One node of a compiled filter."""

    @abstractmethod
    def evaluate(self, frame: Frame) -> Value:
        """This node's value on every feature of `frame` (or one scalar)."""

    @abstractmethod
    def label(self) -> str:
        """The node as CQL2 text, for messages."""

    def condition(self, frame: Frame) -> Value:
        """This node evaluated as a condition: a boolean, or a 400 saying it is not one."""
        value = self.evaluate(frame)
        if value.kind != "boolean":
            raise bad_filter(f"{_short(self.label())} is {_A[value.kind]}, not a condition (true or false)")
        return value


@dataclass(frozen=True, slots=True)
class Literal(Node):
    """A literal: text, a number, a boolean, an instant (a naive UTC pd.Timestamp) or a geometry."""

    kind: ValueType
    value: Any
    text: str

    def evaluate(self, frame: Frame) -> Value:
        """The literal itself."""
        return Value(self.kind, self.value)

    def label(self) -> str:
        """As it was written."""
        return self.text


@dataclass(frozen=True, slots=True)
class Property(Node):
    """A queryable, by name (/req/basic-cql2/property)."""

    name: str

    def evaluate(self, frame: Frame) -> Value:
        """The property's column, or a 400 listing the queryables."""
        if self.name == GEOMETRY:
            return Value("geometry", frame.geometry, frame.missing(GEOMETRY))
        kind = frame.kinds.get(self.name)
        if kind is None:
            names = ", ".join([GEOMETRY, *frame.kinds])
            raise bad_filter(f"{_short(self.name)!r} is not a queryable of this collection (its queryables: "
                             f"{names})")
        return Value(_VALUE_TYPES[kind], frame.columns[self.name], frame.missing(self.name), self.name)

    def label(self) -> str:
        """Its name."""
        return self.name


@dataclass(frozen=True, slots=True)
class Logical(Node):
    """AND, OR over two or more conditions (Kleene logic: FALSE AND unknown is FALSE)."""

    op: Lit["and", "or"]
    args: tuple[Node, ...]

    def evaluate(self, frame: Frame) -> Value:
        """The conditions combined."""
        combine = operator.and_ if self.op == "and" else operator.or_
        # On the arrays rather than the Series: pandas' Series operators cost more than the logic.
        parts = [a.condition(frame).data for a in self.args]
        index = next((part.index for part in parts if isinstance(part, pd.Series)), None)
        arrays = (part.array if isinstance(part, pd.Series) else part for part in parts)
        result = functools.reduce(combine, arrays)
        return Value("boolean", result if index is None else pd.Series(result, index=index, copy=False))

    def label(self) -> str:
        """`a AND b`."""
        return f" {self.op.upper()} ".join(f"({a.label()})" for a in self.args)


@dataclass(frozen=True, slots=True)
class Not(Node):
    """NOT: unknown stays unknown (/req/basic-cql2/null-predicate's truth table)."""

    arg: Node

    def evaluate(self, frame: Frame) -> Value:
        """The condition negated."""
        data = self.arg.condition(frame).data
        return Value("boolean", ~data if isinstance(data, pd.Series) else not data)

    def label(self) -> str:
        """`NOT (a)`."""
        return f"NOT ({self.arg.label()})"


_COMPARE: dict[str, Callable[[Any, Any], Any]] = {"=": operator.eq, "<>": operator.ne, "<": operator.lt,
                                                  ">": operator.gt, "<=": operator.le, ">=": operator.ge}


def _same_kind(what: str, nodes: tuple[Node, ...], values: tuple[Value, ...]) -> ValueType:
    """The one kind of these values, or a 400 naming the two that differ (/req/basic-cql2/
    binary-comparison-predicate D: both sides evaluate to the same type)."""
    first = values[0]
    for node, value in zip(nodes[1:], values[1:], strict=True):
        if value.kind != first.kind:
            raise bad_filter(f"{what} compares values of one type, but {_short(nodes[0].label())} is "
                             f"{_A[first.kind]} and {_short(node.label())} is {_A[value.kind]}")
    return first.kind


def _compare(op: str, left: Value, right: Value) -> Value:
    fast = _numeric(op, left, right)
    if fast is not None:
        return fast
    return _condition(_COMPARE[op](left.data, right.data), left, right)


def is_number(data: Any) -> bool:
    """Whether a value is a number (an int or a float, not a bool)."""
    return isinstance(data, float | int) and not isinstance(data, bool)


def _numeric(op: str, left: Value, right: Value) -> Value | None:
    """A number column compared with a number on its numpy array (pandas' Series operator costs ten
    times the comparison); None when the operands are anything else. The same answer as `_condition`
    of the Series comparison: unknown where the column is missing (NaN)."""
    column, scalar = (left, right) if isinstance(left.data, pd.Series) else (right, left)
    data = column.data
    if not (isinstance(data, pd.Series) and data.dtype == np.float64 and is_number(scalar.data)):
        return None
    array = data.to_numpy()
    values = _COMPARE[op](left.data if column is right else array, right.data if column is left else array)
    unknown = column.nulls()
    assert unknown is not None
    known = np.asarray(values, dtype=np.bool_) & ~unknown
    return Value("boolean", _boolean(known, unknown.copy(), data.index))


def _coded_in(frame: Frame, column: Value, wanted: list[Any], equal: bool = True) -> Value | None:
    """Where a string column of the frame equals one of `wanted` (`equal`) or holds another value (not
    `equal`), from the frame's codes of it (`Frame.equal_any`): unknown where the column is missing, as
    the comparison of the strings says; None when the column is not one the frame codes."""
    if column.source is None or column.missing is None:
        return None
    values = frame.equal_any(column.source, wanted, equal)
    if values is None:
        return None
    return Value("boolean", _boolean(values, column.missing.copy(), column.data.index))


def _coded_equal(op: str, frame: Frame, left: Value, right: Value) -> Value | None:
    """`=` or `<>` between a coded string column and a text (`_coded_in`), or None."""
    column, scalar = (left, right) if left.column else (right, left)
    if scalar.column:
        return None
    return _coded_in(frame, column, [scalar.data], op == "=")


@dataclass(frozen=True, slots=True)
class Compare(Node):
    """=, <>, <, >, <=, >= between two values of one kind."""

    op: str
    left: Node
    right: Node

    def evaluate(self, frame: Frame) -> Value:
        """TRUE or FALSE, unknown where a side is null (/req/basic-cql2/binary-comparison-predicate)."""
        left, right = self.left.evaluate(frame), self.right.evaluate(frame)
        kind = _same_kind(self.op, (self.left, self.right), (left, right))
        if kind == "geometry":
            raise bad_filter(f"{self.op} does not compare geometries; S_EQUALS does")
        if kind == "boolean" and self.op not in ("=", "<>"):
            raise bad_filter(f"{self.op} does not order booleans; = and <> compare them")
        if kind == "string" and self.op in ("=", "<>"):
            coded = _coded_equal(self.op, frame, left, right)
            if coded is not None:
                return coded
        return _compare(self.op, left, right)

    def label(self) -> str:
        """`a = b`."""
        return f"{self.left.label()} {self.op} {self.right.label()}"


# LIKE's wildcards and escape (/req/advanced-comparison-operators/like-predicate E, H, K).
_WILDCARDS = {"%": ".*", "_": "."}


@functools.lru_cache(maxsize=256)
def like_regex(pattern: str) -> str:
    """A LIKE pattern as a regular expression matched against the whole value: `%` any run of characters,
    `_` one character, `\\` makes the next character literal. Literal ASCII punctuation is written as
    \\xHH, which both Python's re and pyarrow's RE2 (behind pandas' string columns) read the same way."""
    out, i = ["(?s)"], 0
    while i < len(pattern):
        char = pattern[i]
        if char == "\\" and i + 1 < len(pattern):
            char, i = pattern[i + 1], i + 1
            wild = None
        else:
            wild = _WILDCARDS.get(char)
        if wild is not None:
            out.append(wild)
        elif char.isascii() and not char.isalnum():
            out.append(f"\\x{ord(char):02x}")
        else:
            out.append(char)
        i += 1
    return "".join(out)


@dataclass(frozen=True, slots=True)
class Like(Node):
    """[NOT] LIKE (NOT is a Not node around it)."""

    value: Node
    pattern: Node

    def evaluate(self, frame: Frame) -> Value:
        """Whether each value matches the pattern; unknown where the value is null.

        The value may be a literal too (`'a' LIKE 'a%'`): the Property-Property class withdraws
        /per/advanced-comparison-operators/like-predicate, which let servers refuse one.
        """
        value = self.value.evaluate(frame)
        if value.kind != "string":
            raise bad_filter(f"LIKE compares text, and {_short(self.value.label())} is {_A[value.kind]}")
        pattern = self.pattern.evaluate(frame)
        if pattern.kind != "string" or pattern.column:
            raise bad_filter("LIKE takes a text pattern: a quoted string, or CASEI/ACCENTI of one")
        regex = like_regex(pattern.data)
        if not value.column:
            return Value("boolean", re.fullmatch(regex, value.data) is not None)
        return _condition(value.data.str.fullmatch(regex), value)

    def label(self) -> str:
        """`a LIKE 'p'`."""
        return f"{self.value.label()} LIKE {self.pattern.label()}"


@dataclass(frozen=True, slots=True)
class Between(Node):
    """[NOT] BETWEEN, inclusive at both ends."""

    value: Node
    low: Node
    high: Node

    def evaluate(self, frame: Frame) -> Value:
        """low <= value <= high, unknown where any of the three is null."""
        value, low, high = (n.evaluate(frame) for n in (self.value, self.low, self.high))
        kind = _same_kind("BETWEEN", (self.value, self.low, self.high), (value, low, high))
        if kind not in ("number", "instant", "string"):
            raise bad_filter(f"BETWEEN compares numbers (or dates, or text), not {_A[kind]}")
        above, below = _compare(">=", value, low), _compare("<=", value, high)
        return Value("boolean", above.data & below.data)

    def label(self) -> str:
        """`a BETWEEN b AND c`."""
        return f"{self.value.label()} BETWEEN {self.low.label()} AND {self.high.label()}"


@dataclass(frozen=True, slots=True)
class In(Node):
    """[NOT] IN: equal to one of a list of values of the value's own type."""

    value: Node
    options: tuple[Node, ...]

    def evaluate(self, frame: Frame) -> Value:
        """TRUE where equal to an option; unknown where the value is null (or where it equals no
        option and an option is null, as `x = a OR x = b` would be)."""
        value = self.value.evaluate(frame)
        options = tuple(o.evaluate(frame) for o in self.options)
        _same_kind("IN", (self.value, *self.options), (value, *options))
        scalars = [o.data for o in options if not o.column]
        if value.column and len(scalars) == len(options) and value.kind == "string":
            coded = _coded_in(frame, value, scalars)
            if coded is not None:
                return coded
        found = value.data.isin(scalars) if value.column else value.data in scalars
        result = _condition(found, value).data
        for option in options:
            if option.column:
                result = result | _compare("=", value, option).data
        return Value("boolean", result)

    def label(self) -> str:
        """`a IN (b, c)`."""
        return f"{self.value.label()} IN ({', '.join(o.label() for o in self.options)})"


@dataclass(frozen=True, slots=True)
class IsNull(Node):
    """IS NULL (IS NOT NULL is a Not node around it): never unknown."""

    value: Node

    def evaluate(self, frame: Frame) -> Value:
        """Whether each value is missing (a literal never is)."""
        value = self.value.evaluate(frame)
        nulls = value.nulls()
        if nulls is None:
            return Value("boolean", False)
        return Value("boolean", _boolean(nulls.copy(), np.zeros(len(nulls), np.bool_), value.data.index))

    def label(self) -> str:
        """`a IS NULL`."""
        return f"{self.value.label()} IS NULL"


# S_WITHIN(a, b) is S_CONTAINS(b, a); the other six are symmetric.
_CONVERSE = {"within": "contains", "contains": "within"}


@dataclass(frozen=True, slots=True)
class Spatial(Node):
    """S_INTERSECTS, S_EQUALS, S_DISJOINT, S_TOUCHES, S_WITHIN, S_OVERLAPS, S_CROSSES, S_CONTAINS: each
    side a geometry property or a literal (/req/property-property: a property on both sides too)."""

    op: str  # the shapely/geopandas predicate: "intersects", "within", ...
    left: Node
    right: Node

    def evaluate(self, frame: Frame) -> Value:
        """The predicate per feature (Simple Features' definitions, in 2D), unknown where a geometry is
        missing (/req/basic-spatial-functions/spatial-predicate C)."""
        left, right = self.left.evaluate(frame), self.right.evaluate(frame)
        for node, value in ((self.left, left), (self.right, right)):
            if value.kind != "geometry":
                raise bad_filter(f"S_{self.op.upper()} compares geometries, and {_short(node.label())} is "
                                 f"{_A[value.kind]}")
        op = self.op
        if not left.column and right.column:
            left, right, op = right, left, _CONVERSE.get(op, op)
        if left.column:
            method = "geom_equals" if op == "equals" else op
            return _condition(getattr(left.data, method)(right.data), left, right)
        return Value("boolean", bool(getattr(shapely, op)(left.data, right.data)))

    def label(self) -> str:
        """`S_OP(a, b)`."""
        return f"S_{self.op.upper()}({self.left.label()}, {self.right.label()})"


def _divides_by_zero(label: str) -> InvalidInput:
    return bad_filter(f"{_short(label)} divides by zero")


def _power(base: Any, exponent: Any) -> Any:
    result = np.power(base, exponent)
    if isinstance(result, pd.Series):
        # 0 ^ -1 is a division by zero: null, like x / 0 below.
        return result.mask((base == 0) & (exponent < 0))
    return result


_ARITHMETIC: dict[str, Callable[[Any, Any], Any]] = {
    "+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.truediv,
    # `%` and `div` truncate towards zero, as SQL's MOD and XPath's idiv do (CQL2 names them only):
    # -7 % 2 is -1 and -7 div 2 is -3.
    "%": np.fmod, "div": lambda a, b: np.trunc(a / b), "^": _power,
}


@dataclass(frozen=True, slots=True)
class Arithmetic(Node):
    """+, -, *, /, % (remainder), div (integer division), ^ (power) over numbers (/req/arithmetic)."""

    op: str
    left: Node
    right: Node

    def evaluate(self, frame: Frame) -> Value:
        """The result per feature, null where an operand is null (/req/arithmetic/arithmetic B).

        Dividing by zero never gives infinity: by a literal zero (or an expression of literals) it
        is a 400, by a column it is null where that column is zero. Overflow beyond a float is
        infinity, which compares as larger than any number.
        """
        left, right = self.left.evaluate(frame), self.right.evaluate(frame)
        for node, value in ((self.left, left), (self.right, right)):
            if value.kind != "number":
                raise bad_filter(f"{self.op} takes numbers, and {_short(node.label())} is {_A[value.kind]}")
        a, b = left.data, right.data
        if not right.column and ((self.op in ("/", "%", "div") and b == 0)
                                 or (self.op == "^" and not left.column and a == 0 and b < 0)):
            raise _divides_by_zero(self.label())
        if right.column and self.op in ("/", "%", "div"):
            b = b.where(b != 0)
        if not left.column and not right.column:
            result = float(_ARITHMETIC[self.op](np.float64(a), np.float64(b)))
            if result != result:  # NaN: (-8) ^ 0.5, or infinity minus infinity
                raise bad_filter(f"{_short(self.label())} is not a number")
            return Value("number", result)
        return Value("number", _ARITHMETIC[self.op](a, b))

    def label(self) -> str:
        """`(a op b)`."""
        return f"({self.left.label()} {self.op} {self.right.label()})"


def _strip_accents(text: str) -> str:
    decomposed = unicodedata.normalize("NFD", text)
    return unicodedata.normalize("NFC", "".join(c for c in decomposed if not unicodedata.combining(c)))


@dataclass(frozen=True, slots=True)
class Fold(Node):
    """CASEI (Unicode full case folding, str.casefold) and ACCENTI (diacritics removed after canonical
    decomposition): text in, text out, NULL stays NULL."""

    op: Lit["casei", "accenti"]
    arg: Node

    def evaluate(self, frame: Frame) -> Value:
        """The folded text."""
        value = self.arg.evaluate(frame)
        if value.kind != "string":
            raise bad_filter(f"{self.op.upper()} takes text, and {_short(self.arg.label())} is "
                             f"{_A[value.kind]}")
        if not value.column:
            text: str = value.data
            return Value("string", text.casefold() if self.op == "casei" else _strip_accents(text))
        column: pd.Series = value.data
        if self.op == "casei":
            return Value("string", column.str.casefold())
        return Value("string", column.map(_strip_accents, na_action="ignore").astype("str"))

    def label(self) -> str:
        """`CASEI(a)`."""
        return f"{self.op.upper()}({self.arg.label()})"
