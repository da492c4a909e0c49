"""The `geo` command: `geo serve` really serves, stops with a message when GEO_DATABASE_URL cannot be
reached, and `geo export` filters right.

The expected ids come from the shipped projects.geojson, read by hand (two projects, both transport,
both in Baghlan AF-BGL, both on the meridian 69.026944 E):

- `salang-tunnel-2`: proposed; a north-south LineString from 35.268003 to 35.376163 N; no start_date
  or end_date (no temporal geometry).
- `salang-highway-reconstruction`: under_construction; a Point at 35.322083 N (a vertex of the tunnel's
  line); start_date 2023-07-12 and no end_date (open-ended).
"""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from geo.app import create_app
from geo.cli import main
from geo.errors import StoreUnavailable
from geo.settings import Settings
from tests.conftest import ROOT, checkout_changes, checkout_state

TUNNEL, HIGHWAY = "salang-tunnel-2", "salang-highway-reconstruction"
BOTH = [HIGHWAY, TUNNEL]
GEO = Path(sys.executable).with_name("geo")  # the console script the package installs
STOP_WITHIN_S = 20.0  # a limit, not a measurement: only turns a hang into a failure


def _environment(settings: Settings, **extra: str) -> dict[str, str]:
    """The process environment for these settings, without the developer's own GEO_* variables."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GEO_")}
    env.update({f"GEO_{name.upper()}": str(value) for name, value in settings.model_dump().items()
                if value is not None})
    env["GEO_ALLOW_DOWNLOAD"] = "false"
    env.update(extra)
    return env


@pytest.fixture
def cli_env(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """`geo` run in this process reads the test's temporary workspace, and nothing of the developer's."""
    for name in [n for n in os.environ if n.startswith("GEO_")]:
        monkeypatch.delenv(name)
    for name, value in _environment(settings).items():
        if name.startswith("GEO_"):
            monkeypatch.setenv(name, value)
    return settings


@contextmanager
def _geo_serve(settings: Settings, *options: str, sock: socket.socket | None = None,
               log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as stderr:
        fds = (sock.fileno(),) if sock is not None else ()
        proc = subprocess.Popen([str(GEO), "serve", "--log-level", "info", "--no-access-log", *options],
                                env=_environment(settings), pass_fds=fds, stderr=stderr,
                                cwd=settings.projects.parent)
        try:
            yield proc
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def _wait_until_up(proc: subprocess.Popen[bytes], base: str) -> None:
    deadline = time.monotonic() + 60
    while True:
        assert proc.poll() is None, f"geo serve exited with {proc.returncode} during start-up"
        try:
            if httpx.get(f"{base}/conformance", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, "geo serve did not start"
        time.sleep(0.1)


def _stop(proc: subprocess.Popen[bytes], log: Path) -> None:
    """SIGTERM, as systemd or `docker stop` sends: a graceful shutdown, then uvicorn re-raises the signal
    (so the exit status says what stopped it)."""
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=STOP_WITHIN_S) in (0, -signal.SIGTERM)
    text = log.read_text()
    assert "Finished server process" in text, text  # uvicorn's last line of a graceful shutdown
    assert "Traceback" not in text


def _serves_the_data(base: str) -> None:
    items = httpx.get(f"{base}/collections/projects/items", timeout=10).json()
    assert items["numberMatched"] == 2
    assert sorted(f["id"] for f in items["features"]) == BOTH


def test_geo_serve_on_an_inherited_socket(settings: Settings, tmp_path: Path) -> None:
    """`geo serve --fd`: the socket bound here is handed over, so there is no race for the port."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    base = f"http://127.0.0.1:{sock.getsockname()[1]}"
    log = tmp_path / "serve.log"
    with _geo_serve(settings, "--fd", str(sock.fileno()), sock=sock, log=log) as proc:
        sock.close()
        _wait_until_up(proc, base)
        _serves_the_data(base)
        _stop(proc, log)


def test_geo_serve_on_host_and_port(settings: Settings, tmp_path: Path) -> None:
    """`geo serve --host --port`, as an operator starts it."""
    with socket.socket() as probe:  # a port free a moment ago; loopback ports are not reused at once
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / "serve.log"
    with _geo_serve(settings, "--host", "127.0.0.1", "--port", str(port), log=log) as proc:
        _wait_until_up(proc, base)
        _serves_the_data(base)
        _stop(proc, log)


# Nothing listens on port 1: the database cannot be reached (tests/test_postgis.py covers reachable ones).
DATABASE_URL = "postgresql://geo:s3cret@127.0.0.1:1/geo"


def test_an_unreachable_database_is_refused_by_the_app(settings: Settings) -> None:
    """A configured database that cannot be reached stops the start, rather than the file being used."""
    with pytest.raises(StoreUnavailable, match="GEO_DATABASE_URL"):
        create_app(settings.model_copy(update={"database_url": DATABASE_URL}))


def test_an_unreachable_database_stops_geo_serve_with_a_message(settings: Settings) -> None:
    done = subprocess.run([str(GEO), "serve", "--host", "127.0.0.1", "--port", "0"], capture_output=True,
                          env=_environment(settings, GEO_DATABASE_URL=DATABASE_URL), timeout=60,
                          cwd=settings.projects.parent)
    assert done.returncode != 0
    err = done.stderr.decode()
    assert "refusing to start" in err and "GEO_DATABASE_URL" in err and "Traceback" not in err
    assert "s3cret" not in err


@pytest.mark.parametrize("command", [["export", "projects", "out.geojson"], ["map", "out.html"]])
def test_an_unreachable_database_stops_the_other_commands_with_a_message(cli_env: Settings, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch,
                                                              capsys: pytest.CaptureFixture[str],
                                                              command: list[str]) -> None:
    monkeypatch.setenv("GEO_DATABASE_URL", DATABASE_URL)
    command[-1] = str(tmp_path / command[-1])
    assert main(command) == 1
    assert "GEO_DATABASE_URL" in capsys.readouterr().err
    assert not Path(command[-1]).exists()


def test_a_corrupt_store_stops_geo_export_with_a_message(cli_env: Settings, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    broken = b'{"type": "FeatureCollection", "features": ['  # cut short, as by a full disk
    cli_env.projects.write_bytes(broken)
    dest = tmp_path / "out.geojson"
    assert main(["export", "projects", str(dest)]) == 1
    err = capsys.readouterr().err
    assert str(cli_env.projects) in err and "Traceback" not in err
    assert cli_env.projects.read_bytes() == broken and not dest.exists()


def _export_ids(tmp_path: Path, *options: str) -> list[str]:
    dest = tmp_path / f"export-{len(list(tmp_path.iterdir()))}.geojson"
    assert main(["export", "projects", str(dest), *options]) == 0
    return sorted(f["id"] for f in json.loads(dest.read_bytes())["features"])


@pytest.mark.parametrize("options, expected", [
    ((), BOTH),
    (("--status", "proposed"), [TUNNEL]),
    (("--status", "under_construction"), [HIGHWAY]),
    (("--status", "planned"), []),
    (("--category", "transport"), BOTH),
    (("--category", "water,energy"), []),
    (("--province", "AF-BGL"), BOTH),
    (("--province", "AF-KAB"), []),
    # South of 35.30 N lies only the line's southern end; the point (35.322083 N) lies on the line.
    (("--bbox", "69.0,35.25,69.05,35.30"), [TUNNEL]),
    (("--bbox", "69.0,35.30,69.05,35.35"), BOTH),
    (("--bbox", "69.1,35.0,69.2,35.5"), []),  # east of the meridian both lie on
    # /req/core/fc-time-response A and C: the highway from 2023-07-12 on; the tunnel has no time, so it
    # matches every datetime.
    (("--datetime", "2024-01-01T00:00:00Z"), BOTH),
    (("--datetime", "../2020-01-01T00:00:00Z"), [TUNNEL]),
    (("--filter", "status = 'under_construction'"), [HIGHWAY]),
    (("--filter", "S_INTERSECTS(geometry, POINT(69.026944 35.322083))"), BOTH),
    (("--status", "proposed,under_construction", "--bbox", "69.0,35.25,69.05,35.30"), [TUNNEL]),
])
def test_geo_export_options_select_the_hand_computed_features(cli_env: Settings, tmp_path: Path,
                                                              options: tuple[str, ...],
                                                              expected: list[str]) -> None:
    assert _export_ids(tmp_path, *options) == expected


@pytest.mark.parametrize("status, expected", [("open", 1), ("proposed", 1), ("open,proposed", 2)])
def test_geo_export_takes_another_layers_own_values(cli_env: Settings, tmp_path: Path, status: str,
                                                    expected: int) -> None:
    """The filter options come from the project schema, but `geo export` writes any layer: the Salang
    layer's `status` is `open` (the 1964 tunnel) or `proposed` (the second tunnel), and `open` is no
    project status. The collection judges the values, as over HTTP."""
    dest = tmp_path / "salang.geojson"
    assert main(["export", "salang", str(dest), "--status", status]) == 0
    assert len(json.loads(dest.read_bytes())["features"]) == expected


def test_geo_export_bom_prefixes_the_csv_and_changes_nothing_else(cli_env: Settings, tmp_path: Path) -> None:
    plain, marked = tmp_path / "plain.csv", tmp_path / "marked.csv"
    assert main(["export", "projects", str(plain)]) == 0
    assert main(["export", "projects", str(marked), "--bom"]) == 0
    utf8_bom = b"\xef\xbb\xbf"  # U+FEFF in UTF-8, what Excel looks for
    assert marked.read_bytes() == utf8_bom + plain.read_bytes()
    assert not plain.read_bytes().startswith(utf8_bom)
    rows = list(csv.DictReader(io.StringIO(plain.read_text(encoding="utf-8"))))
    assert sorted(row["id"] for row in rows) == BOTH


@pytest.mark.parametrize("option, value", [("--status", "dreaming"), ("--bbox", "69,35,70"),
                                           ("--bbox", "69,35,north,36"), ("--datetime", "yesterday"),
                                           ("--filter", "status ="), ("--category", "castle")])
def test_geo_export_refuses_a_bad_option_value_with_exit_code_2(cli_env: Settings, tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str],
                                                                 option: str, value: str) -> None:
    """A bad value is the caller's mistake: exit code 2 (as argparse uses for usage errors), a message on
    stderr, and no file."""
    dest = tmp_path / "out.geojson"
    assert main(["export", "projects", str(dest), option, value]) == 2
    assert capsys.readouterr().err.startswith("geo: ")
    assert not dest.exists()


def test_geo_export_reports_a_server_side_failure_with_exit_code_1(cli_env: Settings, tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str],
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """No provinces file, no mirror, no download allowed: the layer is unavailable (a 503 over HTTP)."""
    empty = tmp_path / "no-layers"
    empty.mkdir()
    monkeypatch.setenv("GEO_LAYERS_DIR", str(empty))
    monkeypatch.delenv("GEO_DATA_MIRROR", raising=False)
    dest = tmp_path / "provinces.geojson"
    assert main(["export", "provinces", str(dest)]) == 1
    assert capsys.readouterr().err.startswith("geo: ")
    assert not dest.exists()


def test_the_checkout_guard_sees_what_a_test_leaves_behind(tmp_path: Path) -> None:
    """conftest's session guard, on a copy of the checkout's layout: a store lock and temporary file,
    a changed layer, a created layer and a stray export are each reported; an untouched copy is not."""
    repo = tmp_path / "checkout"
    (repo / "layers").mkdir(parents=True)
    for name in (".gitignore", "projects.geojson", "layers/salang.geojson"):
        (repo / name).write_bytes((ROOT / name).read_bytes())
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    subprocess.run(["git", "-C", str(repo), "add", "-A"], check=True)
    before = checkout_state(repo)
    assert before.untracked == frozenset()
    assert checkout_changes(before, checkout_state(repo)) == []
    (repo / ".projects.geojson.lock").write_bytes(b"")
    (repo / ".projects.geojson.k3j9x2.tmp").write_bytes(b"{}")
    (repo / "layers" / "salang.geojson").write_bytes(b"{}")
    (repo / "layers" / "provinces.geojson").write_bytes(b"{}")
    (repo / "out.csv").write_bytes(b"id\n")
    changes = checkout_changes(before, checkout_state(repo))
    assert sorted(changes) == sorted([
        ".projects.geojson.k3j9x2.tmp: left behind (not tracked by git)",
        ".projects.geojson.lock: left behind (not tracked by git)",
        "layers/provinces.geojson: created",
        "layers/salang.geojson: changed",
        "out.csv: left behind (not tracked by git)",
    ])
