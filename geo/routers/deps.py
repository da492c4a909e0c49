"""Dependencies shared by the routers: the catalogue, a collection by path id, base URLs.

They are `async def` although they never await: FastAPI runs plain `def` dependencies in a thread
pool, and that hop costs more than the work they do.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path, Request

from geo.catalogue import Catalogue, Collection
from geo.settings import Settings


async def get_catalogue(request: Request) -> Catalogue:
    """The app's catalogue."""
    catalogue: Catalogue = request.app.state.catalogue
    return catalogue


async def get_settings(request: Request) -> Settings:
    """The app's settings."""
    settings: Settings = request.app.state.settings
    return settings


async def get_collection(
    catalogue: Annotated[Catalogue, Depends(get_catalogue)],
    collection_id: Annotated[str, Path(description="A collection: provinces, salang or projects.")],
) -> Collection:
    """Turn the path's collection id into the collection, or a 404 problem."""
    return catalogue.get(collection_id)


def base_url(request: Request) -> str:
    """The service's root URL as the client sees it, without a trailing slash."""
    return str(request.base_url).rstrip("/")


CatalogueDep = Annotated[Catalogue, Depends(get_catalogue)]
CollectionDep = Annotated[Collection, Depends(get_collection)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
