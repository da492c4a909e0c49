"""Shared fixtures: settings on temporary files, apps, clients, and the data mirror."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from geo import provinces
from geo.app import create_app
from geo.settings import Settings

if TYPE_CHECKING:
    from geo.store.postgis import PostGISStore

ROOT = Path(__file__).resolve().parents[1]
KEY = "test-key-1"
AUTH = {"Authorization": f"Bearer {KEY}"}


def mirror_dir() -> Path:
    """The folder that holds the provinces source (GEO_DATA_MIRROR, or ../shared/data)."""
    return Path(os.environ.get("GEO_DATA_MIRROR") or ROOT.parent / "shared" / "data")


def require(reason: str) -> None:
    """Skip for a missing external part, or fail in CI where every part must be present."""
    if os.environ.get("GEO_REQUIRE_ALL") == "1":
        pytest.fail(f"required in CI: {reason}")
    pytest.skip(reason)


# Untracked paths that tests and tools may leave: environments, caches, the browser tests' screenshots.
LEFT_ALONE = (".venv/", ".pytest_cache/", ".mypy_cache/", ".ruff_cache/", ".hypothesis/", "test-artifacts/")


@dataclass(frozen=True)
class CheckoutState:
    """What tests must not change in a checkout: file digests, and the files git does not track."""

    digests: dict[str, str]
    untracked: frozenset[str] | None  # None: not a git checkout (or no git), so not compared


def checkout_state(root: Path) -> CheckoutState:
    """The digest of the store and of every file under layers/ (tracked or not), and the untracked or
    ignored paths git reports (a store's `.<name>.lock` and `.<name>.<random>.tmp` among them)."""
    files = [root / "projects.geojson", *(p for p in sorted((root / "layers").rglob("*")) if p.is_file())]
    digests = {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
               for p in files if p.is_file() and "__pycache__" not in p.parts}
    try:
        # --ignored=matching names an ignored folder (.venv/) without listing what is inside it.
        out = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "-z", "--ignored=matching",
                              "--untracked-files=all"], capture_output=True, check=True, timeout=60).stdout
    except (OSError, subprocess.SubprocessError):
        return CheckoutState(digests, None)
    untracked = frozenset(
        path for status, path in ((r[:2], r[3:].decode("utf-8", "replace")) for r in out.split(b"\0") if r)
        if status in (b"??", b"!!") and not path.startswith(LEFT_ALONE)
        and "__pycache__" not in path.split("/") and not path.rstrip("/").endswith(".egg-info"))
    return CheckoutState(digests, untracked)


def checkout_changes(before: CheckoutState, after: CheckoutState) -> list[str]:
    """What changed between two states, one line each (empty when nothing did)."""
    changes = [f"{name}: {'removed' if name not in after.digests else 'changed'}"
               for name in before.digests if after.digests.get(name) != before.digests[name]]
    created = [name for name in after.digests if name not in before.digests]
    changes += [f"{name}: created" for name in created]
    if before.untracked is not None and after.untracked is not None:
        new = sorted(after.untracked - before.untracked - set(created))
        changes += [f"{name}: left behind (not tracked by git)" for name in new]
    return changes


@pytest.fixture(scope="session", autouse=True)
def checkout_store_untouched() -> Iterator[None]:
    """No test may change the checkout: the store and every file under layers/ keep their bytes, and no
    untracked file (a `.lock`, a `.tmp`, an export written to the working directory) is left behind."""
    before = checkout_state(ROOT)
    yield
    changes = checkout_changes(before, checkout_state(ROOT))
    assert not changes, "tests changed the checkout:\n" + "\n".join(changes)


@pytest.fixture(scope="session")
def provinces_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A layers folder with the provinces obtained once per session from the mirror."""
    folder = tmp_path_factory.mktemp("layers-cache")
    if not (mirror_dir() / provinces.SOURCE_FILE).is_file():
        require(f"{provinces.SOURCE_FILE} not found in {mirror_dir()}; set GEO_DATA_MIRROR")
    provinces.fetch(Settings(layers_dir=folder, data_mirror=mirror_dir()))
    return folder


def workspace(folder: Path, provinces_cache: Path | None, **overrides: Any) -> Settings:
    """Settings on copies, in `folder`, of the shipped store and Salang layer and (if given) the
    cached provinces; `overrides` are further settings."""
    layers = folder / "layers"
    layers.mkdir(parents=True)
    shutil.copy(ROOT / "layers" / "salang.geojson", layers)
    if provinces_cache is not None:
        for name in (provinces.CACHE_NAME, provinces.PROVENANCE_NAME):
            shutil.copy(provinces_cache / name, layers)
    store = folder / "projects.geojson"
    shutil.copy(ROOT / "projects.geojson", store)
    return Settings(projects=store, layers_dir=layers, **{"data_mirror": mirror_dir(), **overrides})


@pytest.fixture
def settings(tmp_path: Path, provinces_cache: Path) -> Settings:
    """Settings on temporary copies of the shipped store and layers, with one API key."""
    return workspace(tmp_path, provinces_cache, api_keys=KEY)


@pytest.fixture
def app(settings: Settings) -> FastAPI:
    """An application on the temporary settings."""
    return create_app(settings)


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    """A client for the app, with its start-up run."""
    with TestClient(app) as test_client:
        yield test_client


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A URL of a fresh, empty schema in the test database, dropped afterwards (tests/pg.py); skips
    without a database (fails in CI)."""
    from tests.pg import pg_schema  # here: tests.pg imports this module

    with pg_schema() as url:
        yield url


@pytest.fixture
def stores(pg_url: str) -> Iterator[Callable[..., PostGISStore]]:
    """Opens PostGIS store objects on the test's schema (as servers do); closes them after the test."""
    from geo.store.postgis import PostGISStore  # here: the other tests need no database driver

    opened: list[PostGISStore] = []

    def open_store(url: str = pg_url, **options: float) -> PostGISStore:
        store = PostGISStore(url, **options)  # type: ignore[arg-type]
        opened.append(store)
        return store

    yield open_store
    for store in opened:
        store.close()


def point_feature(lon: float = 69.1723, lat: float = 34.5281, **props: object) -> dict[str, object]:
    """A valid project feature (a school in Kabul unless told otherwise)."""
    properties: dict[str, object] = {"name": "Girls' secondary school", "category": "school",
                                     "status": "proposed"}
    properties.update(props)
    return {"type": "Feature", "geometry": {"type": "Point", "coordinates": [lon, lat]},
            "properties": properties}
