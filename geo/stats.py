"""Project figures for the map and for scripts: counts and budgets by province, status and category.

The figures are computed with numpy group-bys over columns built once per store version, so a
request never loops over features in Python.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from geo.catalogue import Catalogue
from geo.models import Category, Status
from geo.query.featuretable import FeatureTable, IntArray
from geo.query.params import Filters

STATUSES: tuple[str, ...] = tuple(s.value for s in Status)
CATEGORIES: tuple[str, ...] = tuple(c.value for c in Category)


@dataclass(frozen=True)
class Columns:
    """The columns the figures group by, as integer codes, and the budgets (0 where unknown)."""

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


def build_columns(table: FeatureTable, province_codes: tuple[str, ...]) -> Columns:
    """Columns of one table version (one pass over the features, done once per version)."""
    props = [f["properties"] for f in table.features]
    raw = [p.get("budget_usd") for p in props]
    has = np.array([isinstance(b, int | float) and not isinstance(b, bool) for b in raw], dtype=bool)
    budget = np.array([float(b) if ok else 0.0 for b, ok in zip(raw, has, strict=True)], dtype=np.float64)
    extra = sorted({str(p.get("province")) for p in props if p.get("province")} - set(province_codes))
    provinces = tuple(province_codes) + tuple(extra)
    return Columns(table.version, _codes([p.get("status") for p in props], STATUSES),
                   _codes([p.get("category") for p in props], CATEGORIES),
                   _codes([p.get("province") for p in props], provinces), provinces, budget, has)


def columns_of(table: FeatureTable, province_codes: tuple[str, ...]) -> Columns:
    """The stats columns of this table version, built on first use and kept with the table."""
    return table.derived(("stats", province_codes), lambda: build_columns(table, province_codes))


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


def project_stats(columns: Columns, chosen: IntArray, province_names: Mapping[str, str],
                  filters: Mapping[str, str]) -> dict[str, Any]:
    """Counts and budgets of the chosen projects: in total, by status, category and province."""
    status, category, province = columns.status[chosen], columns.category[chosen], columns.province[chosen]
    budget, has = columns.budget[chosen], columns.has_budget[chosen]
    by_province = _group(province, columns.provinces, budget, has)
    n = len(columns.provinces)
    status_grid = _cross(province, n, status, STATUSES)
    category_grid = _cross(province, n, category, CATEGORIES)
    for i, code in enumerate(columns.provinces):
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
    columns = columns_of(table, tuple(sorted(names)))
    return project_stats(columns, chosen, names, filters.raw), table.version
