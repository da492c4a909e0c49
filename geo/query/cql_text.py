"""CQL2 text (OGC 21-065r2, clause 8 and Annex B) read into CQL2 JSON, the one form `geo.query.cql` compiles.

A LALR grammar (lark): parsing takes time linear in the text and does not recurse, whatever the
nesting. Libraries were tried first and each read the standard differently:

- pygeofilter 0.4: `.` as LIKE's single-character wildcard (the standard's is `_`), no boolean
  literals, no `''` or `\\'` in strings, case-sensitive `POINT`/`DATE`, no `%`, `div`, `^`, no
  geometry on both sides of S_INTERSECTS, no `POINT Z`, no one-letter property names;
- cql2 0.6 (cql2-rs): no `\\'`, no `.5`, no property names starting with `_` or `:`, and its
  backtracking parser takes time exponential in the nesting of parentheses when the text does not
  parse: `((((((((((((((((((((1=))))))))))))))))))))`, 42 characters, took 3 s, ten more parentheses
  would take an hour.

Where this reading goes beyond the letter, it is said at the rule. Keywords are case-insensitive
(clause 8); property names are case-sensitive and may be written in double quotes.

The commonest filters (`fast_terms`: comparisons of a property with a literal, joined by AND alone or
by OR alone) are read by one regular expression, without lark's parse, to what the grammar reads them as
(`fast_json`); `geo.query.cql.parse` tries it first.
"""

from __future__ import annotations

import functools
import re
from typing import Any

from lark import Lark, Token, Transformer, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

# Annex B's identifierStart and identifierPart; identifiers are case-sensitive.
_START = ("_:A-Za-z\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u02ff\u0370-\u037d\u037f-\u1ffe\u200c-\u200d"
          "\u2070-\u218f\u2c00-\u2fef\u3001-\ud7ff\uf900-\ufdcf\ufdf0-\ufffd\U00010000-\U000effff")
_PART = _START + ".0-9\u0300-\u036f\u203f-\u2040"

GRAMMAR = r"""
?start: or_expr

?or_expr: and_expr
        | or_expr _OR and_expr                        -> or_
?and_expr: not_expr
         | and_expr _AND not_expr                     -> and_
?not_expr: predicate
         | _NOT not_expr                              -> not_
?predicate: sum
          | sum COMPARE sum                           -> compare
          | sum _LIKE sum                             -> like
          | sum _NOT _LIKE sum                        -> not_like
          | sum _BETWEEN sum _AND sum                 -> between
          | sum _NOT _BETWEEN sum _AND sum            -> not_between
          | sum _IN "(" items ")"                     -> in_
          | sum _NOT _IN "(" items ")"                -> not_in
          | sum _IS _NULL                             -> is_null
          | sum _IS _NOT _NULL                        -> is_not_null
items: or_expr ("," or_expr)*

?sum: product
    | sum "+" product                                 -> add
    | sum "-" product                                 -> subtract
?product: power
        | product "*" power                           -> multiply
        | product "/" power                           -> divide
        | product "%" power                           -> modulo
        | product _DIV power                          -> div
// Annex B: powerTerm = arithmeticFactor ["^" arithmeticFactor], and the sign belongs to the factor,
// so `-2^2` is 4 and `2^3^2` is not CQL2.
?power: factor
      | factor "^" factor                             -> power
?factor: primary
       | "-" factor                                   -> negative
       | "+" factor

?primary: NUMBER                                      -> number
        | STRING                                      -> string
        | _TRUE                                       -> true
        | _FALSE                                      -> false
        | NAME                                        -> property
        | QUOTED_NAME                                 -> quoted_property
        | NAME "(" [items] ")"                        -> function
        | geometry
        | "(" or_expr ")"

// Well-known text. `Z` is read as a name so that a property may be called z.
geometry: geometry_tag [NAME] coordinates
coordinates: "(" _coordinate ("," _coordinate)* ")"
_coordinate: position | coordinates | geometry
position: signed signed [signed]
signed: NUMBER | "-" NUMBER -> negative_number | "+" NUMBER
!geometry_tag: "POINT"i | "LINESTRING"i | "POLYGON"i | "MULTIPOINT"i | "MULTILINESTRING"i
             | "MULTIPOLYGON"i | "GEOMETRYCOLLECTION"i

_OR: "OR"i
_AND: "AND"i
_NOT: "NOT"i
_LIKE: "LIKE"i
_BETWEEN: "BETWEEN"i
_IN: "IN"i
_IS: "IS"i
_NULL: "NULL"i
_TRUE: "TRUE"i
_FALSE: "FALSE"i
_DIV: "DIV"i
COMPARE: "<>" | "<=" | ">=" | "=" | "<" | ">"
NUMBER: /(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?/
// Annex B: '' or \' is a quote inside a string; other escapes are read by `_unquote`.
STRING: /'(?:[^'\\]|''|\\.)*'/s
QUOTED_NAME: /"[^"]+"/
NAME: /[START][PART]*/

%ignore /\s+/
""".replace("START", _START).replace("PART", _PART)

# `name(...)` in text -> the op of CQL2 JSON (its spelling is exact: `t_finishedBy`, `isNull`).
_OPS = {op.lower(): op for op in (
    "s_intersects", "s_equals", "s_disjoint", "s_touches", "s_within", "s_overlaps", "s_crosses",
    "s_contains", "t_after", "t_before", "t_contains", "t_disjoint", "t_during", "t_equals",
    "t_finishedBy", "t_finishes", "t_intersects", "t_meets", "t_metBy", "t_overlappedBy", "t_overlaps",
    "t_startedBy", "t_starts", "a_equals", "a_contains", "a_containedBy", "a_overlaps", "casei", "accenti")}
# /req/cql2-text/escaping C: the control characters a string may spell with a backslash.
_CONTROLS = {"a": "\a", "b": "\b", "t": "\t", "n": "\n", "v": "\v", "f": "\f", "r": "\r", "'": "'",
             "\\": "\\"}
_TAG_TYPES = {t.upper(): t for t in ("Point", "LineString", "Polygon", "MultiPoint", "MultiLineString",
                                     "MultiPolygon", "GeometryCollection")}


class TextError(ValueError):
    """CQL2 text that cannot be read, with the reason."""


def _unquote(token: str) -> str:
    """A string literal's value: `''` and `\\'` are a quote, `\\\\` a backslash, `\\n` and the other
    control escapes of /req/cql2-text/escaping their character. Any other backslash is kept with the
    character after it, so that `'100\\% under\\_score'` reaches LIKE as the pattern its writer meant
    (LIKE's escape is the backslash too, /req/advanced-comparison-operators/like-predicate K)."""
    body, out, i = token[1:-1], [], 0
    while i < len(body):
        char = body[i]
        if char == "'":  # the grammar lets a quote in only as ''
            out.append("'")
            i += 2
        elif char == "\\" and i + 1 < len(body):
            nxt = body[i + 1]
            out.append(_CONTROLS.get(nxt, "\\" + nxt))
            i += 2
        else:
            out.append(char)
            i += 1
    return "".join(out)


def _number(token: str) -> float:
    """A numeric literal as a float (CQL2 numbers are compared with float columns); one no float
    holds is an error, not infinity."""
    value = float(token)
    if value == float("inf"):
        shown = f"{token[:20]}… ({len(token)} digits)" if token.isdigit() else token[:40]
        raise TextError(f"the number {shown} is beyond the range of a 64-bit float")
    return value


def _is_number(node: Any) -> bool:
    return isinstance(node, float | int) and not isinstance(node, bool)


def _times_minus_one(node: Any) -> Any:
    return -node if _is_number(node) else {"op": "*", "args": [-1.0, node]}


def _bbox(name: str, args: list[Any]) -> Any:
    """`BBOX(x1, y1, x2, y2)` (or six numbers) is the literal of Annex B. `BBOX(geometry, x1, y1, x2, y2)`
    is this service's older predicate, kept: it means S_INTERSECTS with that box."""
    numbers = args[1:] if args and not _is_number(args[0]) else args
    if len(numbers) not in (4, 6) or not all(_is_number(n) for n in numbers):
        raise TextError(f"{name}(…) takes 4 or 6 numbers (west, south, east, north), optionally after a "
                        "geometry property")
    box = {"bbox": numbers}
    return box if numbers is args else {"op": "s_intersects", "args": [args[0], box]}


def _instant(name: str, args: list[Any]) -> Any:
    if len(args) != 1 or not isinstance(args[0], str):
        raise TextError(f"{name}(…) takes one quoted string, e.g. {name}('2024-05-01')")
    return {name.lower(): args[0]}


def _interval(name: str, args: list[Any]) -> Any:
    if len(args) != 2:
        raise TextError(f"{name}(…) takes two instants")
    return {"interval": args}


_LITERAL_FUNCTIONS = {"bbox": _bbox, "date": _instant, "timestamp": _instant, "interval": _interval}


def _shape(tag: str, items: list[Any]) -> dict[str, Any]:
    """A GeoJSON geometry from a WKT tag and its parsed coordinates (positions are tuples)."""
    kind = _TAG_TYPES[tag]

    def positions(group: Any, at_least: int) -> list[Any]:
        if (not isinstance(group, list) or len(group) < at_least
                or not all(isinstance(p, tuple) for p in group)):
            raise TextError(f"{tag} takes lists of at least {at_least} positions")
        return [list(p) for p in group]

    if kind == "GeometryCollection":
        if not all(isinstance(i, dict) for i in items):
            raise TextError("GEOMETRYCOLLECTION takes geometries")
        return {"type": kind, "geometries": items}
    if kind == "Point":
        if len(items) != 1:
            raise TextError("POINT takes one position")
        return {"type": kind, "coordinates": positions(items, 1)[0]}
    if kind == "LineString":
        return {"type": kind, "coordinates": positions(items, 2)}
    if kind == "Polygon":
        return {"type": kind, "coordinates": [positions(ring, 4) for ring in items]}
    if kind == "MultiPoint":  # MULTIPOINT((1 2), (3 4)) of Annex B, and MULTIPOINT(1 2, 3 4) of WKT
        return {"type": kind, "coordinates": [positions(p, 1)[0] if isinstance(p, list) else list(p)
                                              for p in items]}
    if kind == "MultiLineString":
        return {"type": kind, "coordinates": [positions(line, 2) for line in items]}
    polygons = [[positions(ring, 4) for ring in _list(poly, tag)] for poly in items]
    return {"type": kind, "coordinates": polygons}


def _list(value: Any, tag: str) -> list[Any]:
    if not isinstance(value, list):
        raise TextError(f"{tag} takes polygons in parentheses")
    return value


@v_args(inline=True)
class _ToJson(Transformer[Token, Any]):
    """Builds CQL2 JSON at each reduction (lark applies it while parsing: no recursion)."""

    def or_(self, left: Any, right: Any) -> Any:
        return {"op": "or", "args": [left, right]}

    def and_(self, left: Any, right: Any) -> Any:
        return {"op": "and", "args": [left, right]}

    def not_(self, arg: Any) -> Any:
        return {"op": "not", "args": [arg]}

    def compare(self, left: Any, op: Token, right: Any) -> Any:
        return {"op": str(op), "args": [left, right]}

    def like(self, value: Any, pattern: Any) -> Any:
        return {"op": "like", "args": [value, pattern]}

    def not_like(self, value: Any, pattern: Any) -> Any:
        return self.not_(self.like(value, pattern))

    def between(self, value: Any, low: Any, high: Any) -> Any:
        return {"op": "between", "args": [value, low, high]}

    def not_between(self, value: Any, low: Any, high: Any) -> Any:
        return self.not_(self.between(value, low, high))

    def in_(self, value: Any, options: list[Any]) -> Any:
        return {"op": "in", "args": [value, options]}

    def not_in(self, value: Any, options: list[Any]) -> Any:
        return self.not_(self.in_(value, options))

    def is_null(self, value: Any) -> Any:
        return {"op": "isNull", "args": [value]}

    def is_not_null(self, value: Any) -> Any:
        return self.not_(self.is_null(value))

    @v_args(inline=False)
    def items(self, children: list[Any]) -> list[Any]:
        return children

    def add(self, left: Any, right: Any) -> Any:
        return {"op": "+", "args": [left, right]}

    def subtract(self, left: Any, right: Any) -> Any:
        return {"op": "-", "args": [left, right]}

    def multiply(self, left: Any, right: Any) -> Any:
        return {"op": "*", "args": [left, right]}

    def divide(self, left: Any, right: Any) -> Any:
        return {"op": "/", "args": [left, right]}

    def modulo(self, left: Any, right: Any) -> Any:
        return {"op": "%", "args": [left, right]}

    def div(self, left: Any, right: Any) -> Any:
        return {"op": "div", "args": [left, right]}

    def power(self, left: Any, right: Any) -> Any:
        return {"op": "^", "args": [left, right]}

    def negative(self, value: Any) -> Any:
        return _times_minus_one(value)

    def number(self, token: Token) -> float:
        return _number(token)

    def string(self, token: Token) -> str:
        return _unquote(token)

    def true(self) -> bool:
        return True

    def false(self) -> bool:
        return False

    def property(self, token: Token) -> Any:
        return {"property": str(token)}

    def quoted_property(self, token: Token) -> Any:
        return {"property": token[1:-1]}

    def function(self, name: Token, args: list[Any] | None) -> Any:
        arguments = args or []
        literal = _LITERAL_FUNCTIONS.get(name.lower())
        if literal is not None:
            return literal(str(name).upper(), arguments)
        return {"op": _OPS.get(name.lower(), str(name)), "args": arguments}

    def geometry_tag(self, tag: Token) -> str:
        return tag.upper()

    def geometry(self, tag: str, z: Token | None, coordinates: list[Any]) -> Any:
        if z is not None and z.upper() != "Z":
            raise TextError(f"{tag} {z[:20]}: only Z may follow a geometry's type")
        return _shape(tag, coordinates)

    @v_args(inline=False)
    def coordinates(self, children: list[Any]) -> list[Any]:
        return children

    @v_args(inline=False)
    def position(self, children: list[Any]) -> tuple[float, ...]:
        return tuple(c for c in children if c is not None)

    def signed(self, token: Token) -> float:
        return _number(token)

    def negative_number(self, token: Token) -> float:
        return -_number(token)


@functools.cache
def _parser() -> Lark:
    # Built on the first filter, not at start-up (about 0.1 s); lark parsers are safe to share.
    return Lark(GRAMMAR, parser="lalr", transformer=_ToJson(), maybe_placeholders=True)


def _describe(exc: UnexpectedInput, text: str) -> str:
    """Where and why the text stops being CQL2, in a line a client can act on."""
    if isinstance(exc, UnexpectedEOF) or (isinstance(exc, UnexpectedToken) and exc.token.type == "$END"):
        return "the filter ends before the expression is complete"
    if isinstance(exc, UnexpectedToken):
        word = str(exc.token.value)
        shown = word if len(word) <= 40 else word[:40] + "…"
        return f"unexpected {shown!r} at character {(exc.token.start_pos or 0) + 1}"
    if isinstance(exc, UnexpectedCharacters) and exc.pos_in_stream is not None:
        return f"unexpected {text[exc.pos_in_stream]!r} at character {exc.pos_in_stream + 1}"
    return str(exc).splitlines()[0][:200]


# The commonest filter, read without lark (whose parse costs a new filter ~100 us): comparisons of a
# plain property name with a number or a string, joined by AND alone or by OR alone. Anything else
# (and any keyword or function name used as a property) goes to the grammar, which reads these the
# same way: tests/test_cql_text_fast.py compares the two on every form this path takes.
_FAST_COMPARISON = (r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*(<>|<=|>=|=|<|>)\s*"
                    r"((?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?(?![A-Za-z0-9_.:'\"])"
                    r"|'(?:[^'\\]|''|\\.)*')\s*")
_FAST_ONE = re.compile(_FAST_COMPARISON, re.DOTALL)
_FAST_JOIN = re.compile(r"(?i:(AND|OR))(?=\s)", re.DOTALL)
_KEYWORDS = frozenset({"or", "and", "not", "like", "between", "in", "is", "null", "true", "false", "div",
                       *(tag.lower() for tag in _TAG_TYPES), *_LITERAL_FUNCTIONS, *_OPS})
# At most this many comparisons: the tree then nests FAST_MAX_TERMS operators deep at most, within
# geo.query.cql's limits, which need not walk it.
FAST_MAX_TERMS = 16


# One comparison the fast path read: property name, operator, value (a string or a float).
FastTerm = tuple[str, str, "str | float"]


def fast_json(text: str) -> Any:
    """What the grammar reads `text` as, when it is at most FAST_MAX_TERMS comparisons joined by AND
    alone or OR alone; None when it is anything else (the grammar then reads it)."""
    found = fast_terms(text)
    if found is None:
        return None
    terms, joiner = found
    tree: Any = None
    for name, op, value in terms:  # left-associative, as the grammar's rules
        term = {"op": op, "args": [{"property": name}, value]}
        tree = term if tree is None else {"op": joiner, "args": [tree, term]}
    return tree


def fast_terms(text: str) -> tuple[list[FastTerm], str | None] | None:
    """The comparisons of `text` in order and the word joining them ("and", "or"; None for one
    comparison), when `fast_json` reads it; None when the grammar reads it."""
    terms: list[FastTerm] = []
    joiner: str | None = None
    at = 0
    while True:
        match = _FAST_ONE.match(text, at)
        if match is None:
            return None
        name, op, literal = match.groups()
        if name.lower() in _KEYWORDS:
            return None
        if literal[0] == "'":
            value: str | float = _unquote(literal)
        else:
            value = float(literal)
            if value == float("inf"):
                return None  # the grammar's error message
        terms.append((name, op, value))
        if len(terms) > FAST_MAX_TERMS:
            return None
        at = match.end()
        if at == len(text):
            break
        join = _FAST_JOIN.match(text, at)
        if join is None or (joiner is not None and join.group(1).lower() != joiner):
            return None
        joiner = join.group(1).lower()
        at = join.end()
    return terms, joiner


def to_json(text: str) -> Any:
    """CQL2 text as CQL2 JSON (dicts, lists and literals), or a TextError saying where it fails.

    By the grammar: `geo.query.cql.parse` has already tried the fast reading (`fast_terms`), which gives
    the same JSON (`fast_json`) for what it takes."""
    try:
        return _parser().parse(text)
    except UnexpectedInput as exc:
        raise TextError(_describe(exc, text)) from None
