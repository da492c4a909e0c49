"""One schema per collection, declared once, driving everything.

The project schema is derived from the pydantic models (geo/models.py). These tests pin what it holds
to expectations from outside the code: DESIGN.md "Project features" (the properties, the two
vocabularies, what the server sets), the README (what a client writes), the HTTP contract (the items
filter on `status`, `category` and `province`; `datetime` on `start_date`..`end_date`) and the shipped
projects.geojson (2 projects). Then each consumer is checked to take its filters from the schema: the
store's indexes, the `geo` command's options and the map page's filter panel (the OpenAPI parameters:
tests/test_openapi.py; the panel in a browser: tests/test_browser.py).
"""

from __future__ import annotations

import json
import re
from datetime import date
from typing import Annotated, Any

import pytest
from fastapi.testclient import TestClient
from pydantic import BaseModel, Field

from geo.cli import build_parser
from geo.models import SERVER_FIELDS, Filterable, ProjectProperties, ServerProperties, Temporal
from geo.schema import PROJECT_FILTERS, PROJECT_SCHEMA, PROJECT_TEMPORAL, declared_schema
from geo.web.page import MapOptions, render_page
from tests.conftest import AUTH, ROOT, point_feature

# DESIGN.md, "Project features", in its order.
STATUSES = ["proposed", "planned", "approved", "under_construction", "completed", "suspended", "cancelled"]
CATEGORIES = ["school", "health", "housing", "water", "energy", "transport", "other"]
# What a client writes (the README, "Using it") and what the server sets (DESIGN.md), the id aside.
WRITABLE = ["name", "name_prs", "name_ps", "status", "category", "description", "budget_usd", "funders",
            "start_date", "end_date", "source_url", "source_note", "geometry_quality"]
SERVER_SET = ["province", "province_name", "created_at", "updated_at", "status_history"]
# Each property's JSON Schema type (and an array's items), as a GIS client reads the schema.
TYPES = {"name": "string", "name_prs": "string", "name_ps": "string", "status": "string",
         "category": "string", "description": "string", "budget_usd": "number", "funders": "array",
         "start_date": "date", "end_date": "date", "source_url": "string", "source_note": "string",
         "geometry_quality": "string", "province": "string", "province_name": "string",
         "created_at": "date-time", "updated_at": "date-time", "status_history": "array"}


def test_the_schema_holds_the_designed_properties_in_order() -> None:
    assert [p.name for p in PROJECT_SCHEMA.properties] == WRITABLE + SERVER_SET
    assert [p.name for p in PROJECT_SCHEMA.properties if p.read_only] == SERVER_SET
    assert set(SERVER_FIELDS) == {"id", *SERVER_SET}
    assert sorted(PROJECT_SCHEMA.required) == ["category", "name", "status"]
    assert PROJECT_SCHEMA.closed and PROJECT_SCHEMA.geometry == "geometry-any"


def test_types_vocabularies_and_titles_come_from_the_models() -> None:
    got = {p.name: p for p in PROJECT_SCHEMA.properties}
    assert {name: p.kind for name, p in got.items()} == TYPES
    assert list(got["status"].enum) == STATUSES and list(got["category"].enum) == CATEGORIES
    assert got["geometry_quality"].enum == ("exact", "approximate")
    assert [n for n, p in got.items() if p.enum] == ["status", "category", "geometry_quality"]
    assert got["funders"].items == "string" and not got["funders"].members
    history = got["status_history"]
    assert history.items == "object"
    assert [(m.name, m.kind, m.title) for m in history.members] == [
        ("status", "string", "Status"), ("at", "date-time", "Changed at"), ("note", "string", "Note"),
        ("by", "string", "Changed by"), ("source", "string", "Source of the change")]
    assert list(history.members[0].enum) == STATUSES
    titles = {"name_prs": "Name in Dari", "name_ps": "Name in Pashto", "budget_usd": "Budget (US dollars)",
              "source_url": "Source URL", "province": "Province", "created_at": "Created at"}
    assert {name: got[name].title for name in titles} == titles
    # Every property has a title of its own, not one made up from its name.
    assert all(p.title for p in PROJECT_SCHEMA.properties)


def test_filters_and_the_time_span_are_marks_of_the_schema() -> None:
    # The items' plain filters and what `datetime` spans (DESIGN.md, HTTP contract).
    assert PROJECT_FILTERS == ("status", "category", "province")
    assert PROJECT_TEMPORAL == ("start_date", "end_date")
    province = PROJECT_SCHEMA.by_name("province")
    assert province is not None and province.filterable == Filterable(values_of="provinces")
    assert not province.enum  # its values are the 34 provinces' codes, not a vocabulary of its own


def test_the_shipped_projects_fit_the_models() -> None:
    features = json.loads((ROOT / "projects.geojson").read_bytes())["features"]
    assert len(features) == 2
    declared = {p.name for p in PROJECT_SCHEMA.properties}
    for feature in features:
        props = feature["properties"]
        assert set(props) <= declared, set(props) - declared
        ProjectProperties.model_validate({k: v for k, v in props.items() if k not in SERVER_FIELDS})
        ServerProperties.model_validate({k: v for k, v in props.items() if k in SERVER_FIELDS})


def test_what_the_server_sets_fits_its_model(client: TestClient) -> None:
    """A project the server built (POST, then a status change): every server-set property present,
    each of the declared type, the history holding both statuses."""
    created = client.post("/collections/projects/items", json=point_feature(), headers=AUTH)
    assert created.status_code == 201
    url = created.headers["location"]
    changed = client.patch(url, json={"properties": {"status": "approved"}}, headers=AUTH)
    assert changed.status_code == 200
    props = client.get(url).json()["properties"]
    assert set(SERVER_SET) <= set(props)
    server = ServerProperties.model_validate({k: v for k, v in props.items() if k in SERVER_FIELDS})
    assert server.province == "AF-KAB" and server.created_at is not None
    assert [c.status for c in server.status_history or []] == ["proposed", "approved"]


def test_a_new_property_is_one_edit_to_the_model() -> None:
    class WithDistrict(ProjectProperties):
        district: Annotated[str | None, Filterable()] = Field(None, title="District")

    schema = declared_schema(WithDistrict, ServerProperties)
    district = schema.by_name("district")
    assert district is not None and district.kind == "string" and district.title == "District"
    assert [p.name for p in schema.filters()] == ["status", "category", "district", "province"]
    assert "district" in {q.name for q in schema.queryables()}
    assert schema.temporal() == ("start_date", "end_date")


def test_what_the_schema_cannot_say_is_refused_when_it_is_declared() -> None:
    class Mixed(BaseModel):
        code: int | str

    class TwoStarts(BaseModel):
        begun: Annotated[date | None, Temporal("start")] = None
        opened: Annotated[date | None, Temporal("start")] = None

    class OnlyAnEnd(BaseModel):
        closed: Annotated[date | None, Temporal("end")] = None

    with pytest.raises(TypeError, match="one type per property"):
        declared_schema(Mixed, ServerProperties)
    with pytest.raises(ValueError, match="more than one property marks the start"):
        declared_schema(TwoStarts, ServerProperties)
    with pytest.raises(ValueError, match="needs a start"):
        declared_schema(OnlyAnEnd, ServerProperties)


def test_the_store_indexes_the_schemas_filters_and_time_span(client: TestClient) -> None:
    table = client.app.state.catalogue.get("projects").table()  # type: ignore[attr-defined]
    assert tuple(table.filter_columns) == ("status", "category", "province")
    assert table.temporal == ("start_date", "end_date")


def _options(capsys: pytest.CaptureFixture[str], command: str) -> str:
    with pytest.raises(SystemExit):
        build_parser().parse_args([command, "--help"])
    return capsys.readouterr().out


@pytest.mark.parametrize("command", ["export", "map"])
def test_the_command_options_are_the_filter_fields(capsys: pytest.CaptureFixture[str], command: str) -> None:
    text = " ".join(_options(capsys, command).split())  # argparse wraps the help
    for name in ("status", "category", "province"):
        assert f"--{name} {name.upper()}[,...]" in text
    for value in STATUSES + CATEGORIES:
        assert re.search(rf"\b{value}\b", text), value
    assert "ids of provinces features" in text
    positional = ["projects", "out.csv"] if command == "export" else ["out.html"]
    args = build_parser().parse_args([command, *positional, "--status", "proposed,planned",
                                      "--province", "AF-KAB"])
    assert (args.status, args.category, args.province) == ("proposed,planned", None, "AF-KAB")


def test_the_map_page_sends_the_filter_fields_in_its_config() -> None:
    page = render_page(MapOptions(tiles="none"))
    found = re.search(r'<script type="application/json" id="geo-config">(.*?)</script>', page, re.S)
    assert found is not None
    config: dict[str, Any] = json.loads(found.group(1))
    assert config["filter_fields"] == [
        {"name": "status", "title": "Status", "values": STATUSES, "values_of": "", "marks": "statuses"},
        {"name": "category", "title": "Category", "values": CATEGORIES, "values_of": "", "marks": "icons"},
        {"name": "province", "title": "Province", "values": None, "values_of": "provinces", "marks": ""},
    ]
    # What the marks name is in the config: a colour per status, an icon per category.
    assert list(config["statuses"]) == STATUSES and list(config["icons"]) == CATEGORIES
