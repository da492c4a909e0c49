"""Project figures at /stats: counts and budgets by province, status and category."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field
from starlette.responses import Response

from geo.http.conditional import make_etag, not_modified, validators
from geo.query.params import Filters, filters_dependency
from geo.responses import JSONResponse
from geo.routers.deps import CatalogueDep
from geo.stats import collect

router = APIRouter(tags=["Statistics"])


class Figures(BaseModel):
    """How many projects, and the sum of their known budgets."""

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

    filters: dict[str, str] = Field(description="The filters applied, as given in the query.")
    total: Total
    by_status: dict[str, Figures]
    by_category: dict[str, Figures]
    by_province: dict[str, ProvinceFigures] = Field(description="Every province, by ISO 3166-2 code.")


@router.get("/stats", summary="Project counts and budgets by province, status and category",
            response_model=Stats,
            responses={200: {"model": Stats}, 304: {"description": "Not modified (`If-None-Match`)."}})
def stats(request: Request, catalogue: CatalogueDep,
          filters: Annotated[Filters, Depends(filters_dependency)]) -> Response:
    """Figures of the projects that pass the filters (the same filters as items); every province is listed.

    Budgets are sums of the known `budget_usd` values; `with_budget` says how many projects had one.
    """
    figures, version = collect(catalogue, filters)
    etag = make_etag("stats", version, sorted(filters.raw.items()), tuple(figures["by_province"]))
    answer = not_modified(request, etag)
    if answer is not None:
        return answer
    return JSONResponse(figures, headers=validators(etag))
