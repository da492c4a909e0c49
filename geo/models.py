"""The project vocabulary, the pydantic model of what a client may send, and what the server sets.

These models are the one declaration of a project's properties: geo/schema.py derives the collection
schema from them (kinds from the annotations, titles from `Field(title=...)`, vocabularies from the
enums and literals), together with the two facts marked here on a property's annotation: `Filterable`
(the items filter on it by a parameter of its name) and `Temporal` (what `datetime` filters on).
Adding a property is one edit here.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    HttpUrl,
    field_validator,
    model_validator,
)


class Category(StrEnum):
    """What a project builds."""

    school = "school"
    health = "health"
    housing = "housing"
    water = "water"
    energy = "energy"
    transport = "transport"
    other = "other"


class Status(StrEnum):
    """Where a project stands; the order is the usual life cycle."""

    proposed = "proposed"
    planned = "planned"
    approved = "approved"
    under_construction = "under_construction"
    completed = "completed"
    suspended = "suspended"
    cancelled = "cancelled"


@dataclass(frozen=True)
class Filterable:
    """Marks a property the items filter on by a query parameter of its name (`?status=a,b`: any of
    these), which the store indexes. Its values are its enum, or the ids of the features of the
    collection `values_of` (a province is the code of a feature of `provinces`)."""

    values_of: str = ""


@dataclass(frozen=True)
class Temporal:
    """Marks the property that starts (or ends) a feature's time span: what `datetime` filters on."""

    bound: Literal["start", "end"]


# Characters no name or description needs: C0 and C1 controls (NUL truncates values in GeoPackage and
# FlatGeobuf) and the bidirectional embeddings, overrides and isolates (U+202A-U+202E, U+2066-U+2069),
# which can make a name read differently from what it holds. Tab, newline and carriage return are
# allowed in the long texts (description, source_note) only.
FORBIDDEN_IN_LINE = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
FORBIDDEN_IN_TEXT = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def _clean(pattern: re.Pattern[str]) -> Callable[[str], str]:
    def check(value: str) -> str:
        found = pattern.search(value)
        if found:
            raise ValueError(f"must not contain the control or bidirectional formatting character "
                             f"U+{ord(found.group()):04X} (at position {found.start()})")
        return value
    return check


ShortText = Annotated[str, Field(min_length=1, max_length=300), AfterValidator(_clean(FORBIDDEN_IN_LINE))]
LongText = Annotated[str, AfterValidator(_clean(FORBIDDEN_IN_TEXT))]


def _clean_raw(value: Any) -> Any:
    # Before URL parsing, which would percent-encode the character and hide what was sent.
    return _clean(FORBIDDEN_IN_LINE)(value) if isinstance(value, str) else value


SourceUrl = Annotated[HttpUrl, BeforeValidator(_clean_raw)]


class ProjectProperties(BaseModel):
    """The properties of a project as a client writes them."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: ShortText = Field(title="Name", description="Name of the project.")
    name_prs: ShortText | None = Field(None, title="Name in Dari")
    name_ps: ShortText | None = Field(None, title="Name in Pashto")
    # Status before category: the filter fields are listed in this order (the map's panel, the CLI).
    status: Annotated[Status, Filterable()] = Field(title="Status")
    category: Annotated[Category, Filterable()] = Field(title="Category")
    description: LongText | None = Field(None, title="Description", max_length=10_000)
    # strict: a JSON number only (`true` or "1000" would otherwise be read as 1.0 and 1000.0).
    budget_usd: float | None = Field(None, title="Budget (US dollars)", ge=0, le=1e12, strict=True)
    funders: list[ShortText] | None = Field(None, title="Funders", max_length=50)
    start_date: Annotated[date | None, Temporal("start")] = Field(None, title="Start date")
    end_date: Annotated[date | None, Temporal("end")] = Field(None, title="End date")
    source_url: SourceUrl | None = Field(None, title="Source URL")
    source_note: LongText | None = Field(None, title="Source note", max_length=2_000)
    geometry_quality: Literal["exact", "approximate"] | None = Field(
        None, title="Geometry quality",
        description="How good the geometry is; say `approximate` for a guessed location.")

    @field_validator("budget_usd")
    @classmethod
    def _finite(cls, value: float | None) -> float | None:
        if value is not None and not math.isfinite(value):
            raise ValueError("must be a finite number")
        return value

    @model_validator(mode="after")
    def _dates_in_order(self) -> ProjectProperties:
        if self.start_date and self.end_date and self.end_date < self.start_date:
            raise ValueError("end_date is before start_date")
        return self

    def to_properties(self) -> dict[str, Any]:
        """JSON-ready properties, leaving out what was not given."""
        return self.model_dump(mode="json", exclude_none=True)


class StatusChange(BaseModel):
    """One entry of a project's status history."""

    status: Status = Field(title="Status")
    at: datetime = Field(title="Changed at")
    note: str | None = Field(None, title="Note")
    # Set by the server (geo/workflow.py): the name of the key that made the change, never the key.
    by: str | None = Field(None, title="Changed by")
    source: str | None = Field(None, title="Source of the change")


class ServerProperties(BaseModel):
    """The properties only the server sets (geo/projects.py), next to the client's: read-only in the
    schema. A client may send them back (a GIS client echoes whole features); they are ignored."""

    province: Annotated[str | None, Filterable(values_of="provinces")] = Field(
        None, title="Province", description="ISO 3166-2 code, set by the server from the geometry.")
    province_name: str | None = Field(None, title="Province name")
    created_at: datetime | None = Field(None, title="Created at")
    updated_at: datetime | None = Field(None, title="Updated at")
    status_history: list[StatusChange] | None = Field(None, title="Status history")


# Properties only the server sets, and the feature id: never taken from a client.
SERVER_FIELDS = frozenset({"id", *ServerProperties.model_fields})
