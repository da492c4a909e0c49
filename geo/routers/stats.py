"""Project figures at /stats: counts and budgets by province, status and category."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from geo.http.conditional import make_etag, not_modified, validators
from geo.openapi import problem_responses
from geo.query.params import Filters, filters_dependency
from geo.responses import JSONResponse
from geo.routers.deps import CatalogueDep
from geo.stats import Stats, collect

router = APIRouter(tags=["Statistics"])


# The 200 answer is documented as `Stats` (`responses`; the app's own JSON response class would
# otherwise be documented as a string). The route returns its own JSONResponse (for the ETag and the
# 304), which FastAPI passes through as it is: the figures are not validated again on every request;
# tests/test_stats.py checks real answers against `Stats` and the document.
@router.get("/stats", summary="Project counts and budgets by province, status and category",
            response_model=Stats, responses={200: {"model": Stats}, **problem_responses(304, 400, 503)})
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
