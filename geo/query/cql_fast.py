"""A fast path for the commonest CQL2 filters: AND, OR and NOT of comparisons between a property and
a literal (`category = 'school' AND budget_usd > 1000000`, `status IN ('planned', 'approved')`).

The compiled nodes (geo/query/cql_nodes.py) evaluate on pandas columns, with nullable booleans for
CQL2's three-valued logic; each pandas operation costs tens of microseconds before any work, and a
filter of two comparisons cost about 0.4 ms at 100,000 rows. Here the same logic runs on plain numpy
arrays, as a pair (where TRUE, where unknown): strings compare the frame's integer codes of their
column (`Frame.codes`), numbers their float64 array. A filter with any other part (LIKE, arithmetic,
spatial, temporal, two properties, a name that is no queryable, a type mismatch) is not read here
(`truth` gives None) and the nodes evaluate it, with their checks and messages.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from geo.query import cql_nodes as n
from geo.query.frame import Frame

BoolArray = npt.NDArray[np.bool_]
# Where a condition is TRUE, and where it is unknown (it is FALSE elsewhere).
Truth = tuple[BoolArray, BoolArray]


def truth(node: n.Node, frame: Frame) -> Truth | None:
    """Where `node` is TRUE and where it is unknown on `frame`, or None when it is not a filter this
    path reads (the nodes then evaluate it)."""
    if isinstance(node, n.Logical):
        parts = []
        for arg in node.args:
            part = truth(arg, frame)
            if part is None:
                return None
            parts.append(part)
        return _combine(node.op, parts)
    if isinstance(node, n.Not):
        inner = truth(node.arg, frame)
        if inner is None:
            return None
        true, unknown = inner
        return ~true & ~unknown, unknown
    if isinstance(node, n.Compare):
        return _compare(node, frame)
    if isinstance(node, n.In):
        return _in(node, frame)
    return None


def _combine(op: str, parts: list[Truth]) -> Truth:
    """Kleene AND / OR: AND is FALSE when any part is, TRUE when all are; OR the other way round."""
    true, unknown = parts[0]
    false = ~true & ~unknown
    for part_true, part_unknown in parts[1:]:
        part_false = ~part_true & ~part_unknown
        if op == "and":
            true, false = true & part_true, false | part_false
        else:
            true, false = true | part_true, false & part_false
    return true, ~(true | false)


def _kind(node: n.Node, frame: Frame) -> str | None:
    """The compared type of a property node's column, or None (not a property, or not a queryable)."""
    if not isinstance(node, n.Property):
        return None
    kind = frame.kinds.get(node.name)
    return None if kind is None else n._VALUE_TYPES[kind]


def _is_number(value: Any) -> bool:
    return isinstance(value, float | int) and not isinstance(value, bool)


def _equal_any(frame: Frame, name: str, wanted: list[Any]) -> BoolArray | None:
    """Where string column `name` equals one of `wanted` (FALSE where it is missing), from its codes;
    None when the frame does not code the column."""
    found = frame.codes(name)
    if found is None or not all(isinstance(w, str) for w in wanted):
        return None
    codes, lookup = found
    chosen = [lookup[w] for w in wanted if w in lookup]
    if not chosen:
        return np.zeros(len(codes), dtype=np.bool_)
    if len(chosen) == 1:
        return np.asarray(codes == chosen[0], dtype=np.bool_)
    return np.isin(codes, chosen)


def _compare(node: n.Compare, frame: Frame) -> Truth | None:
    """A property compared with a literal of its type: `=`/`<>` on a string, any comparison on a number."""
    if isinstance(node.right, n.Literal):
        prop, literal, flipped = node.left, node.right, False
    elif isinstance(node.left, n.Literal):
        prop, literal, flipped = node.right, node.left, True
    else:
        return None
    kind = _kind(prop, frame)
    if kind is None or kind != literal.kind:
        return None
    assert isinstance(prop, n.Property)
    name = prop.name
    if kind == "string" and node.op in ("=", "<>"):
        equal = _equal_any(frame, name, [literal.value])
        if equal is None:
            return None
        unknown = frame.missing(name)
        return (equal, unknown) if node.op == "=" else (~equal & ~unknown, unknown)
    column = frame.columns[name]
    if kind != "number" or column.dtype != np.float64 or not _is_number(literal.value):
        return None
    array = column.to_numpy()
    compare = n._COMPARE[node.op]
    values = compare(literal.value, array) if flipped else compare(array, literal.value)
    unknown = frame.missing(name)
    return np.asarray(values, dtype=np.bool_) & ~unknown, unknown


def _in(node: n.In, frame: Frame) -> Truth | None:
    """A string property IN a list of texts."""
    if _kind(node.value, frame) != "string" or not all(
            isinstance(o, n.Literal) and o.kind == "string" for o in node.options):
        return None
    assert isinstance(node.value, n.Property)
    equal = _equal_any(frame, node.value.name, [o.value for o in node.options if isinstance(o, n.Literal)])
    if equal is None:
        return None
    return equal, frame.missing(node.value.name)
