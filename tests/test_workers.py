"""Two worker processes on one store: two real servers on the same projects.geojson, as
`geo serve --workers 2` runs them (each process its own store, meeting only on disk), addressed one at
a time. Every write through one is seen by the other's next read, in every form a client reads
(items, filters, one item, HTML, downloads, /stats), and If-Match races between them lose no update."""

from __future__ import annotations

import csv
import io
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pyogrio
import pytest

from geo.fsutil import exclusive_lock
from tests.conftest import AUTH, KEY, point_feature, workspace
from tests.server import live_server

ITEMS = "/collections/projects/items"
PLAIN = {"Accept-Encoding": "identity"}  # the ETag of the representation itself


@pytest.fixture(scope="module")
def workers(tmp_path_factory: pytest.TempPathFactory,
            provinces_cache: Path) -> Iterator[tuple[str, str, Path]]:
    """Two servers on one store: their base URLs, and the store file."""
    folder = tmp_path_factory.mktemp("workers")
    settings = workspace(folder, provinces_cache, api_keys=KEY, write_rate_per_key=0)
    log = folder / "servers.log"
    with live_server(settings, log=log) as one, live_server(settings, log=log) as two:
        yield one, two, settings.projects
    assert "Traceback" not in log.read_text()


def _get(url: str, headers: dict[str, str] | None = None, **params: Any) -> httpx.Response:
    response = httpx.get(url, params=params, headers=headers, timeout=30)
    assert response.status_code == 200, (url, response.text)
    return response


def _count(base: str) -> int:
    matched: int = _get(f"{base}{ITEMS}").json()["numberMatched"]
    return matched


def test_every_write_through_one_worker_is_read_by_the_other(workers: tuple[str, str, Path]) -> None:
    one, two, _ = workers
    count = _count(one)
    for n in range(6):
        writer, reader = (one, two) if n % 2 == 0 else (two, one)
        created = httpx.post(f"{writer}{ITEMS}", json=point_feature(name=f"Round {n}"), headers=AUTH,
                             timeout=30)
        assert created.status_code == 201
        url = f"{ITEMS}/{created.json()['id']}"
        count += 1
        assert _get(f"{reader}{url}").json()["properties"]["name"] == f"Round {n}"
        assert _count(reader) == count
        patched = httpx.patch(f"{reader}{url}", json={"properties": {"name": f"Round {n}, renamed"}},
                              headers=AUTH, timeout=30)
        assert patched.status_code == 200
        assert _get(f"{writer}{url}").json()["properties"]["name"] == f"Round {n}, renamed"
        assert _get(f"{writer}{url}", headers=PLAIN).headers["etag"] == patched.headers["etag"]
        if n % 3 == 2:
            assert httpx.delete(f"{writer}{url}", headers=AUTH, timeout=30).status_code == 204
            count -= 1
            assert httpx.get(f"{reader}{url}", timeout=30).status_code == 410  # deleted: gone
            assert _count(reader) == count


def _race(workers: tuple[str, str, Path], bodies: tuple[dict[str, Any], dict[str, Any]],
          if_match: bool) -> tuple[str, list[int]]:
    """Two PATCHes of one new feature, one through each worker, both built from the same version: the
    test holds the store's write lock while both are sent, so both wait for it (a PATCH takes
    milliseconds otherwise), then lets them go. Returns the feature's URL and the two statuses."""
    one, two, store = workers
    # Each race makes a new "Raced" at the same place: past the duplicate guard (geo/duplicates.py).
    created = httpx.post(f"{one}{ITEMS}", json=point_feature(name="Raced"), headers=AUTH, timeout=30,
                         params={"duplicate": "allow"})
    url = f"{ITEMS}/{created.json()['id']}"
    etag = _get(f"{two}{url}", headers=PLAIN).headers["etag"]
    headers = {**AUTH, "If-Match": etag} if if_match else AUTH
    statuses: dict[int, int] = {}

    def patch(i: int, base: str) -> None:
        statuses[i] = httpx.patch(f"{base}{url}", json=bodies[i], headers=headers, timeout=60).status_code

    threads = [threading.Thread(target=patch, args=(i, base)) for i, base in enumerate((one, two))]
    with exclusive_lock(store.parent / f".{store.name}.lock", timeout=10):
        for thread in threads:
            thread.start()
        time.sleep(1.0)
        assert all(thread.is_alive() for thread in threads), "a PATCH finished without the lock"
    for thread in threads:
        thread.join(60)
    return url, [statuses[0], statuses[1]]


def test_an_if_match_race_between_workers_has_one_winner(workers: tuple[str, str, Path]) -> None:
    bodies = ({"properties": {"status": "approved"}}, {"properties": {"status": "cancelled"}})
    url, statuses = _race(workers, bodies, if_match=True)
    assert sorted(statuses) == [200, 412]
    winner = "approved" if statuses[0] == 200 else "cancelled"
    for base in workers[:2]:
        props = _get(f"{base}{url}").json()["properties"]
        assert props["status"] == winner
        assert [h["status"] for h in props["status_history"]].count(winner) == 1
        assert "approved" not in [h["status"] for h in props["status_history"]] or winner == "approved"


def test_racing_writes_without_if_match_are_both_kept(workers: tuple[str, str, Path]) -> None:
    bodies = ({"properties": {"budget_usd": 4321}}, {"properties": {"name": "Renamed by the other"}})
    url, statuses = _race(workers, bodies, if_match=False)
    assert statuses == [200, 200]
    for base in workers[:2]:
        props = _get(f"{base}{url}").json()["properties"]
        assert (props["budget_usd"], props["name"]) == (4321, "Renamed by the other")


def _forms(base: str, fid: str, folder: Path) -> dict[str, str | None]:
    """What each read form says of feature `fid`'s name (None where the feature is absent)."""
    def name_in(features: list[dict[str, Any]]) -> str | None:
        return next((f["properties"]["name"] for f in features if f["id"] == fid), None)

    out: dict[str, str | None] = {"items": name_in(_get(f"{base}{ITEMS}", limit=10_000).json()["features"])}
    item = httpx.get(f"{base}{ITEMS}/{fid}", timeout=30)
    out["item"] = item.json()["properties"]["name"] if item.status_code == 200 else None
    for form, params in {"status filter": {"status": "approved"}, "bbox": {"bbox": "69.0,34.4,69.3,34.7"},
                         "CQL2": {"filter": "category='health' AND budget_usd>=777"}}.items():
        out[form] = name_in(_get(f"{base}{ITEMS}", limit=10_000, **params).json()["features"])
    html = _get(f"{base}{ITEMS}", f="html", limit=10_000).text
    out["HTML"] = "present" if fid in html else None
    out["GeoJSON download"] = name_in(_get(f"{base}/layers/projects.geojson").json()["features"])
    rows = list(csv.DictReader(io.StringIO(_get(f"{base}/layers/projects.csv").text)))
    out["CSV download"] = next((r["name"] for r in rows if r["id"] == fid), None)
    gpkg = folder / "projects.gpkg"
    gpkg.write_bytes(_get(f"{base}/layers/projects.gpkg").content)
    frame = pyogrio.read_dataframe(gpkg)
    names = dict(zip(frame["id"], frame["name"], strict=True))
    out["GeoPackage download"] = names.get(fid)
    # The web map draws the items above and the figures of /stats, with the same filters.
    stats = _get(f"{base}/stats", category="health").json()
    out["stats"] = "counted" if stats["total"]["budget_usd"] == 777 * stats["total"]["count"] > 0 else None
    return out


def test_a_write_is_read_in_every_form_through_the_other_worker(workers: tuple[str, str, Path],
                                                                tmp_path: Path) -> None:
    one, two, _ = workers
    body = point_feature(name="In every form", status="approved", category="health", budget_usd=777)
    created = httpx.post(f"{one}{ITEMS}", json=body, headers=AUTH, timeout=30)
    assert created.status_code == 201
    fid = created.json()["id"]
    marks = {"HTML": "present", "stats": "counted"}
    seen = _forms(two, fid, tmp_path)
    assert seen == {**dict.fromkeys(seen, "In every form"), **marks}, seen
    renamed = httpx.patch(f"{two}{ITEMS}/{fid}", json={"properties": {"name": "Renamed in every form"}},
                          headers=AUTH, timeout=30)
    assert renamed.status_code == 200
    seen = _forms(one, fid, tmp_path)
    assert seen == {**dict.fromkeys(seen, "Renamed in every form"), **marks}, seen
    assert httpx.delete(f"{one}{ITEMS}/{fid}", headers=AUTH, timeout=30).status_code == 204
    seen = _forms(two, fid, tmp_path)
    assert seen == dict.fromkeys(seen), seen
