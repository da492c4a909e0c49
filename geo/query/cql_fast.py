"""A fast path for the commonest CQL2 filters: AND, OR and NOT of comparisons between a property and
a literal (`category = 'school' AND budget_usd > 1000000`, `status IN ('planned', 'approved')`).

The compiled nodes (geo/query/cql_nodes.py) evaluate on pandas columns, with nullable booleans for
CQL2's three-valued logic; each pandas operation costs tens of microseconds before any work, and a
filter of two comparisons cost about 0.4 ms at 100,000 rows. Here the same logic runs on plain numpy
arrays: strings compare the frame's small integer codes of their column (`Frame.codes`), numbers the
column's float64 array (`Frame.numbers`).

Only where a condition is TRUE is ever wanted (unknown never matches), and Kleene logic gives that
without computing where it is unknown: AND is TRUE where every part is TRUE and FALSE where one is
FALSE, OR the other way round, and NOT is TRUE where its part is FALSE. So each node is asked where it
is TRUE, or, under an odd number of NOTs, where it is FALSE (`_where`): one array per node.

A filter with any other part (LIKE, arithmetic, spatial, temporal, two properties, a name that is no
queryable, a type mismatch) is not read here (`truth` gives None) and the nodes evaluate it, with
their checks and messages.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from geo.query import cql_nodes as n
from geo.query.frame import Frame

BoolArray = npt.NDArray[np.bool_]


def truth(node: n.Node, frame: Frame) -> BoolArray | None:
    """Where `node` is TRUE on `frame` (an array of its own, writeable), or None when it is not a filter
    this path reads (the nodes then evaluate it)."""
    found = _where(node, frame, True)
    if found is None:
        return None
    # Arrays the frame keeps are read-only: a caller keeps (and may lock) what it gets.
    return found if found.flags.writeable else found.copy()


def _where(node: n.Node, frame: Frame, want: bool) -> BoolArray | None:
    """Where `node` is TRUE (`want`) or FALSE (not `want`); None when this path does not read it.

    The array is either kept by the frame (read-only) or made here (writeable, so that a caller may
    combine into it)."""
    if isinstance(node, n.Logical):
        # AND is TRUE where all parts are TRUE, FALSE where any part is FALSE; OR the other way round.
        every = (node.op == "and") == want
        out: BoolArray | None = None
        for arg in node.args:
            part = _where(arg, frame, want)
            if part is None:
                return None
            if out is None:
                out = part
            elif not out.flags.writeable:
                out = (out & part) if every else (out | part)
            elif every:
                np.logical_and(out, part, out=out)
            else:
                np.logical_or(out, part, out=out)
        return out
    if isinstance(node, n.Not):
        return _where(node.arg, frame, not want)
    if isinstance(node, n.Compare):
        return _compare(node, frame, want)
    if isinstance(node, n.In):
        return _in(node, frame, want)
    return None


def _kind(node: n.Node, frame: Frame) -> str | None:
    """The compared type of a property node's column, or None (not a property, or not a queryable)."""
    if not isinstance(node, n.Property):
        return None
    kind = frame.kinds.get(node.name)
    return None if kind is None else n._VALUE_TYPES[kind]


# Where a comparison of a number with NaN (a missing value) is TRUE: only `<>`.
_NAN_TRUE = frozenset({"<>"})
# The comparison that is TRUE where another is FALSE (both FALSE where a value is missing).
_OPPOSITE = {"=": "<>", "<>": "=", "<": ">=", ">": "<=", "<=": ">", ">=": "<"}


def _compare(node: n.Compare, frame: Frame, want: bool) -> BoolArray | None:
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
        return frame.equal_any(name, [literal.value], (node.op == "=") == want)
    array = frame.numbers(name) if kind == "number" else None
    if array is None or not n.is_number(literal.value):
        return None
    # FALSE where the comparison is known and does not hold: where its opposite holds.
    op = node.op if want else _OPPOSITE[node.op]
    compare = n._COMPARE[op]
    values = np.asarray(compare(literal.value, array) if flipped else compare(array, literal.value),
                        dtype=np.bool_)
    if op in _NAN_TRUE or math.isnan(literal.value):
        # A comparison with a missing value (NaN) is unknown, never TRUE.
        np.logical_and(values, ~frame.missing(name), out=values)
    return values


def _in(node: n.In, frame: Frame, want: bool) -> BoolArray | None:
    """A string property IN a list of texts."""
    if _kind(node.value, frame) != "string" or not all(
            isinstance(o, n.Literal) and o.kind == "string" for o in node.options):
        return None
    assert isinstance(node.value, n.Property)
    return frame.equal_any(node.value.name, [o.value for o in node.options if isinstance(o, n.Literal)],
                           want)
