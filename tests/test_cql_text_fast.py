"""The CQL2 text fast path (geo.query.cql_text.fast_json) reads what it takes exactly as the grammar does,
and leaves everything else to the grammar."""

from __future__ import annotations

import itertools
import random
from typing import Any

import pytest
from lark.exceptions import UnexpectedInput

from geo.errors import GeoError
from geo.query import cql, cql_text
from geo.query import cql_nodes as n
from geo.query.cql_text import FAST_MAX_TERMS, TextError, _parser, fast_json, to_json


def _by_grammar(text: str) -> Any:
    return _parser().parse(text)


# Hand-written CQL2 JSON (OGC 21-065r2 clause 7): what each text means.
KNOWN = [
    ("category='school'", {"op": "=", "args": [{"property": "category"}, "school"]}),
    ("budget_usd>1000", {"op": ">", "args": [{"property": "budget_usd"}, 1000.0]}),
    ("category = 'school' AND budget_usd > 1000000",
     {"op": "and", "args": [{"op": "=", "args": [{"property": "category"}, "school"]},
                            {"op": ">", "args": [{"property": "budget_usd"}, 1000000.0]}]}),
    ("a<>1 or b<=2.5 OR c>=.5",
     {"op": "or", "args": [{"op": "or", "args": [{"op": "<>", "args": [{"property": "a"}, 1.0]},
                                                 {"op": "<=", "args": [{"property": "b"}, 2.5]}]},
                           {"op": ">=", "args": [{"property": "c"}, 0.5]}]}),
    ("name='it''s'", {"op": "=", "args": [{"property": "name"}, "it's"]}),
    ("x < 1e3", {"op": "<", "args": [{"property": "x"}, 1000.0]}),
]


@pytest.mark.parametrize(("text", "expected"), KNOWN)
def test_fast_path_reads_the_common_filters(text: str, expected: Any) -> None:
    assert fast_json(text) == expected
    assert to_json(text) == expected
    assert _by_grammar(text) == expected


# Texts the fast path must leave to the grammar (it would read them differently, or they are errors).
LEFT = ["a=1 AND b=2 OR c=3", "a=-1", "true=1", "and=1", "point=1", "date='2024-01-01'", "a.b=1",
        '"a"=1', "a=1 AND", "a==1", "a=1e", "a=1AND b=2", "a=b", "1=a", "a=1 and (b=2)", "NOT a=1",
        "a=1" + "0" * 400, "a IN (1,2)", "a='x' AND b LIKE 'y%'", "", "   ", "a=1 ANDb=2"]


@pytest.mark.parametrize("text", LEFT)
def test_fast_path_leaves_the_rest_to_the_grammar(text: str) -> None:
    assert fast_json(text) is None


def test_fast_path_agrees_with_the_grammar_on_generated_filters() -> None:
    """Every text built from the fast path's pieces (and near misses): the fast path's reading, when it
    has one, is the grammar's, and an error of the grammar is never a fast-path reading."""
    rng = random.Random(7)
    names = ["a", "_x", "budget_usd", "Z", "e", "in", "andy", "ORb", "null", "x1"]
    ops = ["=", "<>", "<", ">", "<=", ">=", "=="]
    literals = ["1", "1.", ".5", "2.5e-3", "1E+2", "'s'", "''", "'a''b'", "'a\\'b'", "'x\\n'", "'AND'",
                "007", "1e", "-1", "'unterminated"]
    joins = [" AND ", " and ", " OR ", " or ", " AnD ", "\tAND\n", " AND", "AND ", " "]
    spaces = ["", " ", "  ", "\n"]
    checked = 0
    for _ in range(3000):
        parts = []
        for term in range(rng.randint(1, 3)):
            if term:
                parts.append(rng.choice(joins))
            parts += [rng.choice(spaces), rng.choice(names), rng.choice(spaces), rng.choice(ops),
                      rng.choice(spaces), rng.choice(literals), rng.choice(spaces)]
        text = "".join(parts)
        fast = fast_json(text)
        try:
            expected = _by_grammar(text)
        except (TextError, UnexpectedInput):
            assert fast is None, text
            continue
        if fast is not None:
            assert fast == expected, text
            checked += 1
    assert checked > 500  # the corpus does exercise the fast path


def test_fast_path_ops_each_as_the_grammar(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each comparison operator and join, against the grammar."""
    for op, join in itertools.product(["=", "<>", "<", ">", "<=", ">="], ["AND", "OR"]):
        text = f"p {op} 3 {join} q{op}'v'"
        assert fast_json(text) == _by_grammar(text)
    monkeypatch.setattr(cql_text, "fast_json", lambda text: None)
    assert to_json("a=1") == {"op": "=", "args": [{"property": "a"}, 1.0]}


def test_fast_path_takes_at_most_its_bound_of_terms() -> None:
    """Past FAST_MAX_TERMS comparisons the grammar reads the text, and the depth limit still applies."""
    many = " AND ".join(f"p{i}={i}" for i in range(FAST_MAX_TERMS))
    assert fast_json(many) == _by_grammar(many)
    assert fast_json(many + " AND q=1") is None
    chain = " AND ".join(f"p{i}={i}" for i in range(cql.MAX_DEPTH + 5))
    with pytest.raises(GeoError, match="more than 100 deep"):
        cql.parse(chain, "cql2-text")
    assert cql.parse("a=1 AND b='x'", "cql2-text") is not None


def test_fast_nodes_are_the_compiled_fast_reading() -> None:
    """cql.parse builds the nodes of a text the fast path reads directly: they equal what compiling
    fast_json's reading gives, on the known texts and on generated ones (strings with quotes, numbers
    that are integers and not, AND, OR, one term and FAST_MAX_TERMS)."""
    rng = random.Random(11)
    texts = [text for text, _ in KNOWN]
    for _ in range(500):
        count = rng.choice([1, 2, 3, FAST_MAX_TERMS])
        join = rng.choice([" AND ", " or "])
        texts.append(join.join(
            f"{rng.choice(['a', 'budget_usd', 'x1'])}{rng.choice(['=', '<>', '<', '>', '<=', '>='])}"
            f"{rng.choice(['1', '2.5', '1e3', '.5', chr(39) + 'it' + chr(39) * 2 + 's' + chr(39), '0.1'])}"
            for _ in range(count)))
    for text in texts:
        reading = fast_json(text)
        assert reading is not None, text
        parsed = cql.parse(text, "cql2-text")
        assert parsed == cql._compile(reading), text
        assert parsed.label() == cql._compile(reading).label()
    # By hand (OGC 21-065r2: a number literal compares as a number, a quoted one as text).
    assert cql.parse("category='school' AND budget_usd>1000", "cql2-text") == n.Logical("and", (
        n.Compare("=", n.Property("category"), n.Literal("string", "school", "'school'")),
        n.Compare(">", n.Property("budget_usd"), n.Literal("number", 1000.0, "1000"))))
