"""API keys: the list and the file forms, and every state a keys file can be in (never a 500)."""

from __future__ import annotations

import itertools
import os
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from geo import auth
from geo.app import create_app
from geo.auth import KeyFile, parse_key_lines, parse_key_list
from geo.errors import KeysUnavailable
from geo.settings import Settings
from tests.conftest import point_feature

ITEMS = "/collections/projects/items"


def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


_names = itertools.count()


def _post(client: TestClient, key: str) -> Any:
    # A new name each time: a second project of one name and category at one place is a duplicate (409).
    return client.post(ITEMS, json=point_feature(name=f"School {next(_names)}"), headers=_bearer(key))


@pytest.fixture
def keys_file(tmp_path: Path) -> Path:
    """Where a test writes its keys file (not created)."""
    return tmp_path / "keys.txt"


@pytest.fixture
def file_client(settings: Settings, keys_file: Path) -> Any:
    """A client of an app whose keys come from `keys_file`."""
    with TestClient(create_app(settings.model_copy(update={"api_keys": f"@{keys_file}"}))) as client:
        yield client


def test_one_key_per_line_whatever_it_holds(file_client: TestClient, keys_file: Path) -> None:
    keys_file.write_bytes(b"# editors\nalpha\n  beta  \n\nkey,with,commas\n#not-a-key-but-a-comment\r\n")
    for key in ("alpha", "beta", "key,with,commas"):
        assert _post(file_client, key).status_code == 201, key
    for wrong in ("# editors", "key", "with", "commas", "#not-a-key-but-a-comment", "#"):
        assert _post(file_client, wrong).status_code == 401, wrong


def test_a_byte_order_mark_is_not_part_of_the_first_key(file_client: TestClient, keys_file: Path) -> None:
    keys_file.write_bytes("\ufeffalpha\nbeta\n".encode())
    assert _post(file_client, "alpha").status_code == 201
    assert _post(file_client, "beta").status_code == 201


def test_a_utf8_key_is_accepted_as_sent(file_client: TestClient, keys_file: Path) -> None:
    keys_file.write_text("clé-é\n", encoding="utf-8")
    response = file_client.post(ITEMS, json=point_feature(name="School with a UTF-8 key"),
                                headers=[(b"authorization", "Bearer clé-é".encode())])
    assert response.status_code == 201


@pytest.mark.parametrize("content, status, retry_after", [
    (None, 503, None),  # missing
    (b"", 503, "1"),  # empty, or truncated while being rewritten
    (b"# only a comment\n\n", 503, "1"),
    (b"\xff\xfe\x00k", 503, None),  # not UTF-8
])
def test_an_unusable_keys_file_answers_503_never_500(file_client: TestClient, keys_file: Path,
                                                     settings: Settings, content: bytes | None, status: int,
                                                     retry_after: str | None) -> None:
    if content is not None:
        keys_file.write_bytes(content)
    before = settings.projects.read_bytes()
    for response in (_post(file_client, "alpha"),
                     file_client.delete(f"{ITEMS}/salang-tunnel-2", headers=_bearer("alpha")),
                     file_client.patch(f"{ITEMS}/salang-tunnel-2", json={}, headers=_bearer("alpha"))):
        assert response.status_code == status, response.text
        assert response.headers["content-type"] == "application/problem+json"
        problem = response.json()
        assert problem["type"].endswith("keys-unavailable") and "keys file" in problem["detail"]
        assert str(keys_file) not in problem["detail"]  # the server's paths are not for strangers
        assert response.headers.get("retry-after") == retry_after
    # Reads go on, and OPTIONS offers no writes rather than failing.
    assert file_client.get(ITEMS).status_code == 200
    assert file_client.options(ITEMS).headers["allow"] == "GET, HEAD, OPTIONS"
    assert settings.projects.read_bytes() == before


def test_a_keys_file_that_is_a_folder_answers_503(file_client: TestClient, keys_file: Path) -> None:
    keys_file.mkdir()
    assert _post(file_client, "alpha").status_code == 503


def test_a_rewritten_keys_file_takes_effect_at_once(file_client: TestClient, keys_file: Path) -> None:
    keys_file.write_text("old\n")
    assert _post(file_client, "old").status_code == 201
    # Being rewritten in place: for a moment the file is empty.
    keys_file.write_text("")
    assert _post(file_client, "old").status_code == 503
    keys_file.write_text("new-key\n")
    assert _post(file_client, "old").status_code == 401
    assert _post(file_client, "new-key").status_code == 201
    # Replaced by a rename (how editors and config tools usually write), and removed.
    replacement = keys_file.with_suffix(".new")
    replacement.write_text("newer\n")
    os.replace(replacement, keys_file)
    assert _post(file_client, "new-key").status_code == 401
    assert _post(file_client, "newer").status_code == 201
    keys_file.unlink()
    assert _post(file_client, "newer").status_code == 503


def test_the_file_is_read_once_while_it_is_unchanged(keys_file: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    reads: list[bytes] = []
    real = auth.parse_key_lines

    def counted(data: bytes) -> frozenset[str]:
        reads.append(data)
        return real(data)

    monkeypatch.setattr(auth, "parse_key_lines", counted)
    keys_file.write_text("alpha\n")
    key_file = KeyFile(keys_file, recheck_s=3600)
    for _ in range(50):
        assert key_file.keys() == {"alpha"}
    assert len(reads) == 1
    keys_file.write_text("alpha\nbeta\n")  # another size: read again at once
    assert key_file.keys() == {"alpha", "beta"}
    assert len(reads) == 2


def test_a_same_size_rewrite_in_the_same_tick_is_seen_within_the_recheck(keys_file: Path) -> None:
    now = [100.0]
    keys_file.write_text("alpha\n")
    key_file = KeyFile(keys_file, recheck_s=1.0, clock=lambda: now[0])
    assert key_file.keys() == {"alpha"}
    st = os.stat(keys_file)
    with keys_file.open("r+") as fh:  # in place: same inode, same size
        fh.write("omega\n")
    os.utime(keys_file, ns=(st.st_atime_ns, st.st_mtime_ns))  # and the same mtime
    assert (os.stat(keys_file).st_ino, os.stat(keys_file).st_size) == (st.st_ino, st.st_size)
    now[0] += 0.5
    assert key_file.keys() == {"alpha"}  # cached: nothing visible changed yet
    now[0] += 0.5  # a second after the last reading, the file is read again whatever its stat says
    assert key_file.keys() == {"omega"}


def test_the_list_form_splits_on_commas_and_keeps_keys_starting_with_a_hash() -> None:
    assert parse_key_list(" alpha, #beta ,,gamma ") == {"alpha", "#beta", "gamma"}
    assert parse_key_lines(b"\xef\xbb\xbfa,b\n# c\n d \n") == {"a,b", "d"}


def test_the_list_form_through_the_api(settings: Settings) -> None:
    with TestClient(create_app(settings.model_copy(update={"api_keys": "alpha,#beta"}))) as client:
        assert _post(client, "#beta").status_code == 201
        assert _post(client, "alpha").status_code == 201
        assert _post(client, "alpha,#beta").status_code == 401


def test_configured_keys_raise_keys_unavailable_for_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(KeysUnavailable):
        Settings(api_keys=f"@{tmp_path / 'missing'}").keys()
    assert Settings(api_keys=None).keys() == frozenset()
