"""Named API keys with roles (issue 14): `geo keys create|list|revoke`, editor and admin permissions on
every write, GEO_API_KEYS keys as admins, a created or revoked key taking effect within a second on
two server processes, and keys never shown: not in `geo keys list`, the keys file, the server's log or
a problem.

Expected facts from outside the code: the shipped store's 2 projects; the roles as issue 14 defines
them (editor: POST, PUT, PATCH, the import; admin: also DELETE); SHA-256 as hashlib computes it.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import os
import stat
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, Any

import httpx
import pytest
from fastapi import Depends, Request
from fastapi.testclient import TestClient

from geo.app import create_app
from geo.auth import require_editor, require_role
from geo.cli import main
from geo.fsutil import exclusive_lock
from geo.keys import KeyRing, parse_keys
from geo.settings import Settings
from tests.conftest import KEY, point_feature, workspace
from tests.server import live_server
from tests.test_import import KABUL, csv_bytes

ITEMS = "/collections/projects/items"
IMPORT = "/collections/projects/import"
SHIPPED = "salang-tunnel-2"  # one of the shipped store's 2 projects
ENV_NAME = "env-key-" + hashlib.sha256(KEY.encode()).hexdigest()[:6]
WITHIN_S = 1.0  # issue 14: created and revoked keys take effect within a second
_names = itertools.count()

GeoKeys = Callable[..., tuple[int, str, str]]


def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _feature(**props: object) -> dict[str, object]:
    # A new name each time: one name and category twice at one place is a duplicate (409).
    return point_feature(name=f"Roles school {next(_names)}", **props)


@pytest.fixture
def ring_settings(tmp_path: Path, provinces_cache: Path) -> Settings:
    """A workspace with one GEO_API_KEYS key, no write limit; named keys in the default place."""
    return workspace(tmp_path / "ws", provinces_cache, api_keys=KEY, write_rate_per_key=0)


@pytest.fixture
def geo_keys(ring_settings: Settings, monkeypatch: pytest.MonkeyPatch,
             capsys: pytest.CaptureFixture[str]) -> GeoKeys:
    """`geo keys ...` run in this process on the workspace (GEO_PROJECTS only: the keys file is found
    beside the store, where the servers look): (exit code, stdout, stderr)."""
    for name in [n for n in os.environ if n.startswith("GEO_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("GEO_PROJECTS", str(ring_settings.projects))
    monkeypatch.setenv("GEO_API_KEYS", KEY)

    def run(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        code = main(["keys", *args])
        out, err = capsys.readouterr()
        return code, out, err

    return run


def _create(geo_keys: GeoKeys, name: str, role: str) -> str:
    code, out, err = geo_keys("create", name, "--role", role)
    assert code == 0, err
    lines = out.splitlines()
    assert len(lines) == 1, out  # the key alone on stdout
    return lines[0]


# -- each role's permissions, through a real server ------------------------------------------------


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory,
           provinces_cache: Path) -> Iterator[tuple[str, dict[str, str], Path]]:
    """One real server with an editor, an admin and a revoked key: its URL, the keys by name, its log."""
    folder = tmp_path_factory.mktemp("roles")
    settings = workspace(folder, provinces_cache, api_keys=KEY, write_rate_per_key=0)
    ring = KeyRing(settings.keys_path())
    keys = {"editor": ring.create("ministry", "editor"), "admin": ring.create("operator", "admin"),
            "revoked": ring.create("former-donor", "editor"), "env": KEY}
    ring.revoke("former-donor")
    log = folder / "server.log"
    with live_server(settings, log=log) as base:
        yield base, keys, log
    text = log.read_text(errors="replace")
    assert "Traceback" not in text
    for key in keys.values():
        assert key not in text


def _writes(base: str, key: str) -> dict[str, int]:
    """Every write a caller may try, on a project it creates: the status of each."""
    auth = _bearer(key)
    statuses: dict[str, int] = {}
    created = httpx.post(f"{base}{ITEMS}", json=_feature(), headers=auth, timeout=30)
    statuses["POST"] = created.status_code
    url = f"{base}{ITEMS}/{created.json()['id']}"
    statuses["PUT"] = httpx.put(url, json=_feature(budget_usd=100), headers=auth, timeout=30).status_code
    statuses["PATCH"] = httpx.patch(url, json={"properties": {"budget_usd": 200}},
                                    headers={**auth, "Content-Type": "application/merge-patch+json"},
                                    timeout=30).status_code
    body = csv_bytes([[f"Imported school {next(_names)}", "school", "proposed", "1000", *KABUL]])
    statuses["import"] = httpx.post(f"{base}{IMPORT}", content=body,
                                    headers={**auth, "Content-Type": "text/csv"}, timeout=30).status_code
    statuses["DELETE"] = httpx.delete(url, headers=auth, timeout=30).status_code
    statuses["after"] = httpx.get(url, timeout=30).status_code  # still there?
    return statuses


@pytest.mark.parametrize("who, expected", [
    ("editor", {"POST": 201, "PUT": 200, "PATCH": 200, "import": 200, "DELETE": 403, "after": 200}),
    ("admin", {"POST": 201, "PUT": 200, "PATCH": 200, "import": 200, "DELETE": 204, "after": 404}),
    ("env", {"POST": 201, "PUT": 200, "PATCH": 200, "import": 200, "DELETE": 204, "after": 404}),
])
def test_each_role_on_each_write(server: tuple[str, dict[str, str], Path], who: str,
                                 expected: dict[str, int]) -> None:
    base, keys, _ = server
    statuses = _writes(base, keys[who])
    # A deleted project may answer 404 or (soft delete, issue 14) 410 Gone.
    if statuses["after"] == 410:
        statuses["after"] = 404
    assert statuses == expected


def test_an_editors_delete_is_a_403_problem_that_names_no_key(
        server: tuple[str, dict[str, str], Path]) -> None:
    base, keys, _ = server
    refused = httpx.delete(f"{base}{ITEMS}/{SHIPPED}", headers=_bearer(keys["editor"]), timeout=30)
    assert refused.status_code == 403
    assert refused.headers["content-type"] == "application/problem+json"
    problem = refused.json()
    assert problem["type"].endswith(":forbidden") and keys["editor"] not in refused.text
    assert "ministry" not in refused.text  # not even whose key it was
    assert httpx.get(f"{base}{ITEMS}/{SHIPPED}", timeout=30).status_code == 200


def test_missing_unknown_and_revoked_keys_get_one_answer(server: tuple[str, dict[str, str], Path]) -> None:
    base, keys, _ = server
    sent = {"missing": {}, "unknown": _bearer("no-such-key-" + "x" * 30),
            "revoked": _bearer(keys["revoked"]), "basic": {"Authorization": "Basic dGVzdA=="}}
    answers = {what: httpx.post(f"{base}{ITEMS}", json=_feature(), headers=headers, timeout=30)
               for what, headers in sent.items()}
    assert {what: r.status_code for what, r in answers.items()} == dict.fromkeys(sent, 401)
    bodies = {what: r.json() for what, r in answers.items()}
    assert len({(b["type"], b["title"], b["detail"]) for b in bodies.values()}) == 1, bodies
    assert all(r.headers["www-authenticate"].startswith("Bearer") for r in answers.values())
    assert keys["revoked"] not in answers["revoked"].text and "former-donor" not in answers["revoked"].text
    # The same answer on a DELETE (an admin route): a revoked key is no key, not a key of low role.
    revoked_delete = httpx.delete(f"{base}{ITEMS}/{SHIPPED}", headers=_bearer(keys["revoked"]), timeout=30)
    assert revoked_delete.status_code == 401
    assert revoked_delete.json()["detail"] == bodies["missing"]["detail"]


# -- created and revoked keys on two server processes ----------------------------------------------


def _admits(base: str, key: str) -> bool:
    """Whether the server takes `key` as an admin's: a DELETE of a project that does not exist is a 404
    past the key check, a 401 before it (nothing is written either way)."""
    status = httpx.delete(f"{base}{ITEMS}/no-such-project", headers=_bearer(key), timeout=30).status_code
    assert status in (401, 404), status
    return status == 404


def _until(condition: Callable[[], bool], limit_s: float) -> float:
    """Seconds until `condition` held (polled); fails past `limit_s`."""
    start = time.monotonic()
    while not condition():
        assert time.monotonic() - start < limit_s, f"not within {limit_s} s"
        time.sleep(0.02)
    return time.monotonic() - start


def test_created_and_revoked_keys_take_effect_within_a_second_on_two_processes(
        ring_settings: Settings, geo_keys: GeoKeys, tmp_path: Path) -> None:
    log = tmp_path / "servers.log"
    # Two processes on one store and one keys file, as `geo serve --workers 2` runs them.
    with live_server(ring_settings, log=log) as one, live_server(ring_settings, log=log) as two:
        # Both have looked for the keys file (there is none yet) and hold that reading.
        assert not _admits(one, "not-yet") and not _admits(two, "not-yet")
        key = _create(geo_keys, "field-office", "admin")
        took = [_until(lambda base=base: _admits(base, key), WITHIN_S) for base in (one, two)]
        code, out, _ = geo_keys("revoke", "field-office")
        assert code == 0 and "field-office: revoked at" in out
        took += [_until(lambda base=base: not _admits(base, key), WITHIN_S) for base in (one, two)]
        assert all(t < WITHIN_S for t in took), took
        # The GEO_API_KEYS key was admitted throughout.
        assert _admits(one, KEY) and _admits(two, KEY)
    text = log.read_text(errors="replace")
    assert "Traceback" not in text and key not in text


# -- keys never shown -------------------------------------------------------------------------------


def test_geo_keys_list_shows_names_and_roles_never_keys(geo_keys: GeoKeys, ring_settings: Settings) -> None:
    editor = _create(geo_keys, "ministry", "editor")
    admin = _create(geo_keys, "operator", "admin")
    assert geo_keys("revoke", "ministry")[0] == 0
    code, out, err = geo_keys("list")
    assert code == 0, err
    rows = [line.split() for line in out.splitlines()]
    assert rows[0] == ["NAME", "ROLE", "CREATED", "REVOKED"]
    by_name = {row[0]: row[1:] for row in rows[1:]}
    assert set(by_name) == {"ministry", "operator", ENV_NAME}
    assert by_name["ministry"][0] == "editor" and by_name["ministry"][2] != "-"  # revoked: when
    assert by_name["operator"][0] == "admin" and by_name["operator"][2] == "-"
    assert by_name[ENV_NAME][0] == "admin"
    hashes = [k.hash.removeprefix("sha256:") for k in KeyRing(ring_settings.keys_path()).read()]
    for secret in (editor, admin, KEY, *hashes, *(h[:8] for h in hashes)):
        assert secret not in out + err


def test_the_keys_file_holds_hashes_only_with_mode_0600(geo_keys: GeoKeys, ring_settings: Settings) -> None:
    key = _create(geo_keys, "ministry", "editor")
    path = ring_settings.keys_path()
    assert path == ring_settings.projects.parent / ".geo-keys.json"  # the default: beside the store
    data = path.read_bytes()
    assert key.encode() not in data and key[:12].encode() not in data
    assert f"sha256:{hashlib.sha256(key.encode()).hexdigest()}".encode() in data
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(key) >= 43  # secrets.token_urlsafe(32): 256 random bits
    # No lock or temporary file is left beside it.
    assert sorted(p.name for p in path.parent.iterdir() if p.name.startswith(".")) == [".geo-keys.json"]
    (record,) = parse_keys(data)
    assert (record.name, record.role, record.revoked) == ("ministry", "editor", None)


def test_keys_are_never_logged_nor_echoed(ring_settings: Settings, caplog: pytest.LogCaptureFixture) -> None:
    ring = KeyRing(ring_settings.keys_path())
    editor, gone = ring.create("ministry", "editor"), ring.create("gone", "admin")
    ring.revoke("gone")
    wrong = "wrong-key-" + "q" * 32
    caplog.set_level(logging.DEBUG)
    with TestClient(create_app(ring_settings)) as client:
        answers = [client.post(ITEMS, json=_feature(), headers=_bearer(k))
                   for k in (editor, gone, wrong, KEY)]
        answers.append(client.delete(f"{ITEMS}/{SHIPPED}", headers=_bearer(editor)))
    assert [a.status_code for a in answers] == [201, 401, 401, 201, 403]
    logged = "\n".join(r.getMessage() for r in caplog.records)
    for key in (editor, gone, wrong, KEY):
        assert key not in logged
        assert all(key not in a.text for a in answers)


# -- names, GEO_API_KEYS, rate limit ----------------------------------------------------------------


def _whoami_app(settings: Settings) -> Any:
    """The app with one more route that shows what a request knows of its caller."""
    app = create_app(settings)

    @app.post("/whoami")
    async def whoami(request: Request, name: Annotated[str, Depends(require_editor)]) -> dict[str, str]:
        return {"returned": name, "key_name": request.state.key_name, "key_role": request.state.key_role}

    return app


def test_a_request_knows_its_keys_name_and_role(ring_settings: Settings) -> None:
    ring = KeyRing(ring_settings.keys_path())
    editor, admin = ring.create("ministry", "editor"), ring.create("operator", "admin")
    with TestClient(_whoami_app(ring_settings)) as client:
        seen = {k: client.post("/whoami", headers=_bearer(k)).json() for k in (editor, admin, KEY)}
    assert seen == {
        editor: {"returned": "ministry", "key_name": "ministry", "key_role": "editor"},
        admin: {"returned": "operator", "key_name": "operator", "key_role": "admin"},
        # GEO_API_KEYS keys are admins, known by a name that does not reveal them.
        KEY: {"returned": ENV_NAME, "key_name": ENV_NAME, "key_role": "admin"},
    }


def test_the_write_rate_is_counted_per_key_name(ring_settings: Settings) -> None:
    ring = KeyRing(ring_settings.keys_path())
    first, second = ring.create("first", "editor"), ring.create("second", "editor")
    # 0.01 writes a second: a bucket of one write, refilled after 100 s (not within this test).
    settings = ring_settings.model_copy(update={"write_rate_per_key": 0.01})
    with TestClient(create_app(settings)) as client:
        statuses = [client.post(ITEMS, json=_feature(), headers=_bearer(k)).status_code
                    for k in (first, first, second, KEY, KEY)]
        buckets = set(client.app.state.write_limit._buckets)  # type: ignore[attr-defined]
    assert statuses == [201, 429, 201, 201, 429]
    assert buckets == {"first", "second", ENV_NAME}  # names, never keys, are held


def test_geo_api_keys_alone_still_works(ring_settings: Settings) -> None:
    # No keys file at all: the GEO_API_KEYS key writes and deletes as before.
    assert not ring_settings.keys_path().exists()
    with TestClient(create_app(ring_settings)) as client:
        assert client.post(ITEMS, json=_feature(), headers=_bearer(KEY)).status_code == 201
        assert client.delete(f"{ITEMS}/{SHIPPED}", headers=_bearer(KEY)).status_code in (204,)
        assert client.post(ITEMS, json=_feature(), headers=_bearer("nope")).status_code == 401


def test_named_keys_alone_enable_writes(ring_settings: Settings) -> None:
    settings = ring_settings.model_copy(update={"api_keys": None})
    with TestClient(create_app(settings)) as client:
        disabled = client.post(ITEMS, json=_feature(), headers=_bearer(KEY))
        assert disabled.status_code == 403 and disabled.json()["type"].endswith("writes-disabled")
        assert "POST" not in client.options(ITEMS).headers["allow"]
        key = KeyRing(settings.keys_path()).create("ministry", "editor")
        assert "POST" in client.options(ITEMS).headers["allow"]
        assert client.post(ITEMS, json=_feature(), headers=_bearer(key)).status_code == 201


def test_a_corrupt_keys_file_refuses_named_keys_with_503_and_keeps_env_keys(ring_settings: Settings,
                                                                           geo_keys: GeoKeys) -> None:
    key = KeyRing(ring_settings.keys_path()).create("ministry", "editor")
    ring_settings.keys_path().write_text('{"keys": [{"name": "ministry"')  # a hand edit gone wrong
    with TestClient(create_app(ring_settings)) as client:
        refused = client.post(ITEMS, json=_feature(), headers=_bearer(key))
        assert refused.status_code == 503 and refused.json()["type"].endswith("keys-unavailable")
        assert str(ring_settings.keys_path()) not in refused.text
        # The GEO_API_KEYS key is still known: its writes go on.
        assert client.post(ITEMS, json=_feature(), headers=_bearer(KEY)).status_code == 201
    code, _, err = geo_keys("list")
    assert code == 1 and "not valid JSON" in err


# -- geo keys: what it refuses, and two at once ------------------------------------------------------


@pytest.mark.parametrize("args, message", [
    (("create", "env-key-abc123", "--role", "admin"), "not a usable key name"),
    (("create", "two words", "--role", "admin"), "not a usable key name"),
    (("create", ".hidden", "--role", "admin"), "not a usable key name"),
    (("create", "x" * 65, "--role", "admin"), "not a usable key name"),
    (("revoke", "nobody"), "no key named 'nobody'"),
])
def test_geo_keys_refuses_with_a_message(geo_keys: GeoKeys, args: tuple[str, ...], message: str) -> None:
    code, out, err = geo_keys(*args)
    assert (code, out) == (2, "") and message in err


def test_a_name_is_never_reused_even_once_revoked(geo_keys: GeoKeys) -> None:
    _create(geo_keys, "ministry", "editor")
    assert geo_keys("revoke", "ministry")[0] == 0
    code, out, err = geo_keys("create", "ministry", "--role", "admin")
    assert (code, out) == (2, "") and "exists already" in err
    assert geo_keys("revoke", "ministry")[0] == 0  # revoking again changes nothing


def test_an_unknown_role_is_refused(geo_keys: GeoKeys) -> None:
    with pytest.raises(SystemExit):
        geo_keys("create", "ministry", "--role", "owner")
    with pytest.raises(ValueError):
        require_role("owner")


def test_two_creates_at_once_both_keep_their_key(ring_settings: Settings) -> None:
    ring = KeyRing(ring_settings.keys_path())
    made: dict[str, str] = {}

    def create(name: str) -> None:
        made[name] = ring.create(name, "editor")

    threads = [threading.Thread(target=create, args=(name,)) for name in ("one", "two")]
    # Both are under way while the test holds the lock, then go at once: the lock orders their
    # read-change-write, so neither writes over the other's key.
    with exclusive_lock(ring.path.parent / f".{ring.path.name}.lock", timeout=10):
        for thread in threads:
            thread.start()
        time.sleep(0.3)
        assert all(thread.is_alive() for thread in threads), "a create finished without the lock"
    for thread in threads:
        thread.join(30)
    stored = {k.name: k.hash for k in ring.read()}
    assert stored == {name: f"sha256:{hashlib.sha256(key.encode()).hexdigest()}"
                      for name, key in made.items()}
