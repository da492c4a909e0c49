"""The per-key write rate limit: a token bucket answered with 429 and Retry-After; 0 turns it off."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from geo.app import create_app
from geo.ratelimit import WriteRateLimit
from geo.settings import Settings
from tests.conftest import AUTH, point_feature
from tests.server import live_server

ITEMS = "/collections/projects/items"


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_bucket_allows_a_burst_of_twice_the_rate_then_the_rate() -> None:
    clock = Clock()
    limit = WriteRateLimit(2.0, clock)  # 2 per second, bursts of 4
    assert [limit.take("k") for _ in range(4)] == [None] * 4
    assert limit.take("k") == 1  # empty: one token takes 0.5 s, announced as 1 whole second
    assert limit.take("other") is None  # per key
    clock.now += 0.5
    assert limit.take("k") is None
    assert limit.take("k") == 1
    clock.now += 60  # a long pause refills only up to the burst
    assert [limit.take("k") for _ in range(5)] == [None, None, None, None, 1]


def test_a_slow_rate_has_a_burst_of_one_and_a_long_retry_after() -> None:
    clock = Clock()
    limit = WriteRateLimit(0.25, clock)  # one write per 4 s
    assert limit.capacity == 1
    assert limit.take("k") is None
    assert limit.take("k") == 4
    clock.now += 3
    assert limit.take("k") == 1
    clock.now += 1
    assert limit.take("k") is None


def test_zero_turns_the_limit_off() -> None:
    limit = WriteRateLimit(0)
    assert not limit.enabled
    assert all(limit.take("k") is None for _ in range(10_000))


def test_the_429_problem_through_the_api(settings: Settings) -> None:
    limited = settings.model_copy(update={"write_rate_per_key": 0.01, "api_keys": "one,two"})
    one, two, wrong = ({"Authorization": f"Bearer {k}"} for k in ("one", "two", "wrong"))
    with TestClient(create_app(limited)) as client:
        assert client.post(ITEMS, json=point_feature(), headers=one).status_code == 201
        before = settings.projects.read_bytes()
        refused = client.post(ITEMS, json=point_feature(), headers=one)
        assert refused.status_code == 429
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.headers["retry-after"] == "100"  # one token at 0.01 per second
        assert refused.json()["type"].endswith("too-many-requests")
        assert "Wait 100 s" in refused.json()["detail"]
        # Every write method counts; another key has its own bucket; a wrong key is a 401, not a 429.
        assert client.delete(f"{ITEMS}/salang-tunnel-2", headers=one).status_code == 429
        assert client.post(ITEMS, json=point_feature(), headers=wrong).status_code == 401
        assert settings.projects.read_bytes() == before
        # The same project again, for the other key's bucket: past the duplicate guard (geo/duplicates.py).
        again = client.post(ITEMS, json=point_feature(), headers=two, params={"duplicate": "allow"})
        assert again.status_code == 201


def test_the_default_rate_lets_a_bulk_load_through(settings: Settings) -> None:
    # The default (50 per second, bursts of 100) must not get in the way of an import of 100 projects.
    assert Settings().write_rate_per_key == 50
    with TestClient(create_app(settings)) as client:
        codes = [client.post(ITEMS, json=point_feature(name=f"School {n}"), headers=AUTH).status_code
                 for n in range(100)]
    assert codes == [201] * 100


@pytest.mark.parametrize("rate, expected", [(0.01, [201, 429, 429]), (0, [201] * 30)])
def test_the_limit_through_a_real_server(settings: Settings, tmp_path: Path, rate: float,
                                         expected: list[int]) -> None:
    log = tmp_path / "server.log"
    with live_server(settings.model_copy(update={"write_rate_per_key": rate}), log=log) as base, \
            httpx.Client(base_url=base, headers=AUTH, timeout=30) as http:
        # The same project each time: past the duplicate guard (geo/duplicates.py).
        answers = [http.post(ITEMS, json=point_feature(), params={"duplicate": "allow"}) for _ in expected]
        assert [a.status_code for a in answers] == expected
        assert all(a.headers["retry-after"] == "100" for a in answers if a.status_code == 429)
        assert http.get(ITEMS).json()["numberMatched"] == 2 + expected.count(201)
    assert "Traceback" not in log.read_text()
