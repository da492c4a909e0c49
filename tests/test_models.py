"""The project model: which characters and values a client's text and numbers may hold."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from geo.models import ProjectProperties

BASE = {"name": "School", "category": "school", "status": "planned"}
# Unicode's bidirectional embeddings/overrides (U+202A-U+202E) and isolates (U+2066-U+2069), by hand.
BIDI = ["\u202a", "\u202b", "\u202c", "\u202d", "\u202e", "\u2066", "\u2067", "\u2068", "\u2069"]
# C0 controls other than tab, newline and carriage return; DEL; a C1 control (NEL).
CONTROLS = ["\x00", "\x01", "\x08", "\x0b", "\x0c", "\x1b", "\x1f", "\x7f", "\x85", "\x9f"]
SHORT_FIELDS = ["name", "name_prs", "name_ps"]
LONG_FIELDS = ["description", "source_note"]


def _fields(props: dict[str, Any]) -> list[str]:
    try:
        ProjectProperties.model_validate({**BASE, **props})
    except ValidationError as exc:
        return [".".join(str(p) for p in e["loc"]) for e in exc.errors()]
    return []


@pytest.mark.parametrize("char", BIDI + CONTROLS + ["\t", "\n", "\r"])
@pytest.mark.parametrize("field", SHORT_FIELDS)
def test_short_texts_refuse_controls_and_bidi_formatting(field: str, char: str) -> None:
    assert _fields({field: f"Kabul{char}school"}) == [field]


@pytest.mark.parametrize("char", BIDI + CONTROLS)
@pytest.mark.parametrize("field", LONG_FIELDS)
def test_long_texts_refuse_controls_and_bidi_formatting(field: str, char: str) -> None:
    assert _fields({field: f"Line{char}text"}) == [field]


@pytest.mark.parametrize("field", LONG_FIELDS)
def test_long_texts_keep_tabs_and_line_breaks(field: str) -> None:
    text = "First line\r\n\tindented\nlast"
    props = ProjectProperties.model_validate({**BASE, field: text}).to_properties()
    assert props[field] == text


def test_right_to_left_marks_are_text_not_formatting() -> None:
    # U+200F (RLM) and U+200E (LRM) are ordinary in Dari and Pashto text; Arabic letters of course too.
    props = ProjectProperties.model_validate({**BASE, "name_prs": "مکتب\u200f 1", "name_ps": "\u200eښوونځی"})
    assert props.name_prs == "مکتب\u200f 1" and props.name_ps == "\u200eښوونځی"


def test_each_funder_and_the_source_url_are_checked() -> None:
    assert _fields({"funders": ["Ministry", "Bank\u202e"]}) == ["funders.1"]
    assert _fields({"source_url": "https://example.org/a\u0000b"}) == ["source_url"]
    assert _fields({"source_url": "https://example.org/\u2066"}) == ["source_url"]


@pytest.mark.parametrize("value", [True, False, "1000", "1e3", None])
def test_budget_is_a_json_number_only(value: Any) -> None:
    expected = [] if value is None else ["budget_usd"]
    assert _fields({"budget_usd": value}) == expected


@pytest.mark.parametrize("value, stored", [(0, 0.0), (1200000, 1200000.0), (2.5, 2.5)])
def test_budget_numbers_are_accepted(value: Any, stored: float) -> None:
    assert ProjectProperties.model_validate({**BASE, "budget_usd": value}).budget_usd == stored
