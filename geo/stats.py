"""Project figures for the map and for scripts: counts and budgets by province, status and category.

The figures are computed with numpy group-bys over integer codes built once per store version
(`StatsInputs`), so a request never loops over features in Python. `Stats` and the models under it
are the shape of the answer: the OpenAPI document shows them, and tests/test_stats.py checks real
answers against them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field

from geo.catalogue import Catalogue
from geo.query.featuretable import FeatureTable, IntArray
from geo.query.params import Filters
from geo.schema import PROJECT_SCHEMA


def _vocabulary(name: str) -> tuple[str, ...]:
    prop = PROJECT_SCHEMA.by_name(name)
    if prop is None or not prop.enum:
        raise LookupError(f"the project schema has no vocabulary for {name}")
    return prop.enum


# The figures group by these, in the schema's order (the life cycle for statuses).
STATUSES: tuple[str, ...] = _vocabulary("status")
CATEGORIES: tuple[str, ...] = _vocabulary("category")


class Figures(BaseModel):
    """How many projects, and the sum of their known budgets."""

    # The answer holds these members and no others (`additionalProperties: false` in the document).
    model_config = ConfigDict(extra="forbid")

    count: int
    budget_usd: float = Field(description="Sum of the known `budget_usd` values.")
    with_budget: int = Field(description="How many of the projects have a budget.")


class Total(Figures):
    """The figures of all the chosen projects."""

    without_province: int = Field(description="Projects that could not be placed in a province.")


class ProvinceFigures(Figures):
    """The figures of one province, with its counts by status and category."""

    name: str
    by_status: dict[str, int]
    by_category: dict[str, int]


class Stats(BaseModel):
    """Project figures, for the map and for scripts."""

    model_config = ConfigDict(extra="forbid")

    filters: dict[str, str] = Field(description="The filters applied, as given in the query.")
    total: Total
    by_status: dict[str, Figures]
    by_category: dict[str, Figures]
    by_province: dict[str, ProvinceFigures] = Field(description="Every province, by ISO 3166-2 code.")


@dataclass(frozen=True)
class StatsInputs:
    """What the figures are computed from, per store version: each project's status, category and
    province as an integer code (-1 outside the vocabulary), its budget (0 where unknown) and whether
    it has one."""

    version: str
    status: npt.NDArray[np.intp]
    category: npt.NDArray[np.intp]
    province: npt.NDArray[np.intp]
    provinces: tuple[str, ...]
    budget: npt.NDArray[np.float64]
    has_budget: npt.NDArray[np.bool_]


def _codes(values: list[Any], vocabulary: tuple[str, ...]) -> npt.NDArray[np.intp]:
    # -1 marks a value outside the vocabulary (e.g. no province): counted in totals only.
    lookup = {v: i for i, v in enumerate(vocabulary)}
    return np.array([lookup.get(v, -1) for v in values], dtype=np.intp)


def _values(features: list[dict[str, Any]], name: str) -> list[Any]:
    return [f["properties"].get(name) for f in features]


def _budgets(features: list[dict[str, Any]]) -> npt.NDArray[np.float64]:
    # NaN where unknown: a stored budget is never NaN (JSON has none).
    return np.array([float(b) if isinstance(b, int | float) and not isinstance(b, bool) else np.nan
                     for b in _values(features, "budget_usd")], dtype=np.float64)


def _other_provinces(features: list[dict[str, Any]], known: tuple[str, ...]) -> npt.NDArray[np.object_]:
    # The province of a project placed outside the known ones (None for the others): rare, kept as is.
    out = np.full(len(features), None, dtype=object)
    for i, value in enumerate(_values(features, "province")):
        if value and value not in known:
            out[i] = value
    return out


def build_inputs(table: FeatureTable, province_codes: tuple[str, ...]) -> StatsInputs:
    """The inputs of one table version. Each column is computed per project and kept with the table,
    so a later version computes it only for the projects a write changed (FeatureTable.rows)."""
    status = table.rows(("stats", "status"), lambda fs: _codes(_values(fs, "status"), STATUSES))
    category = table.rows(("stats", "category"), lambda fs: _codes(_values(fs, "category"), CATEGORIES))
    province = table.rows(("stats", "province", province_codes),
                          lambda fs: _codes(_values(fs, "province"), province_codes))
    others = table.rows(("stats", "other province", province_codes),
                        lambda fs: _other_provinces(fs, province_codes))
    budgets = table.rows(("stats", "budget"), _budgets)
    odd = {int(i): others[i] for i in np.flatnonzero(province < 0) if others[i] is not None}
    extra = sorted({str(v) for v in odd.values()})
    if odd:
        province = province.copy()
        lookup = {v: len(province_codes) + i for i, v in enumerate(extra)}
        for i, value in odd.items():
            province[i] = lookup.get(value, -1)
    has = ~np.isnan(budgets)
    return StatsInputs(table.version, status, category, province, tuple(province_codes) + tuple(extra),
                       np.where(has, budgets, 0.0), has)


def inputs_of(table: FeatureTable, province_codes: tuple[str, ...]) -> StatsInputs:
    """The stats inputs of this table version, built on first use and kept with the table."""
    return table.derived(("stats", province_codes), lambda: build_inputs(table, province_codes))


def _group(codes: npt.NDArray[np.intp], names: tuple[str, ...], budget: npt.NDArray[np.float64],
           has: npt.NDArray[np.bool_]) -> dict[str, dict[str, Any]]:
    ok = codes >= 0
    size = len(names)
    counts = np.bincount(codes[ok], minlength=size)
    sums = np.bincount(codes[ok], weights=budget[ok], minlength=size)
    known = np.bincount(codes[ok], weights=has[ok].astype(np.float64), minlength=size)
    return {name: {"count": int(counts[i]), "budget_usd": float(sums[i]), "with_budget": int(known[i])}
            for i, name in enumerate(names)}


def _cross(rows: npt.NDArray[np.intp], n_rows: int, cols: npt.NDArray[np.intp],
           names: tuple[str, ...]) -> list[dict[str, int]]:
    ok = (rows >= 0) & (cols >= 0)
    flat = np.bincount(rows[ok] * len(names) + cols[ok], minlength=n_rows * len(names))
    grid = flat.reshape(n_rows, len(names))
    return [{name: int(grid[r, c]) for c, name in enumerate(names)} for r in range(n_rows)]


def project_stats(inputs: StatsInputs, chosen: IntArray, province_names: Mapping[str, str],
                  filters: Mapping[str, str]) -> dict[str, Any]:
    """Counts and budgets of the chosen projects: in total, by status, category and province (the
    shape of `Stats`)."""
    status, category, province = inputs.status[chosen], inputs.category[chosen], inputs.province[chosen]
    budget, has = inputs.budget[chosen], inputs.has_budget[chosen]
    by_province = _group(province, inputs.provinces, budget, has)
    n = len(inputs.provinces)
    status_grid = _cross(province, n, status, STATUSES)
    category_grid = _cross(province, n, category, CATEGORIES)
    for i, code in enumerate(inputs.provinces):
        by_province[code] = {"name": province_names.get(code, code), **by_province[code],
                             "by_status": status_grid[i], "by_category": category_grid[i]}
    return {
        "filters": dict(filters),
        "total": {"count": len(chosen), "budget_usd": float(budget.sum()), "with_budget": int(has.sum()),
                  "without_province": int((province < 0).sum())},
        "by_status": _group(status, STATUSES, budget, has),
        "by_category": _group(category, CATEGORIES, budget, has),
        "by_province": by_province,
    }


def collect(catalogue: Catalogue, filters: Filters) -> tuple[dict[str, Any], str]:
    """The figures of the projects that pass `filters`, and the store version they describe."""
    projects = catalogue.get("projects")
    table = projects.table()
    chosen = projects.select(table, filters)
    names = catalogue.province_names()
    inputs = inputs_of(table, tuple(sorted(names)))
    return project_stats(inputs, chosen, names, filters.raw), table.version
