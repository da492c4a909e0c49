"""Where a new items page's time goes: each layer of the app, in process, against a bare ASGI call.

Run: GEO_DATA_MIRROR=../shared/data .venv/bin/python bench/bench_layers.py [--projects 10000]

Every case answers GET /collections/projects/items with a new `offset` each request (the response cache
misses), driven on one asyncio event loop as uvicorn drives the app (so the store is not stat'ed by
the route: StoreRefresh does that once per request). It prints microseconds per request (the best of
several rounds, which the machine's other load moves least) and the ratio to the reference, a bare
ASGI app that sends fixed bytes: one middleware at a time around that app, all of them, FastAPI with one
trivial route, and the whole app with and without DirectDispatch (geo/routers/dispatch.py).
HTTP parsing and the socket are not in these figures; bench_items.py measures them with a real server.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fastapi import FastAPI  # noqa: E402
from starlette.responses import Response  # noqa: E402
from starlette.types import ASGIApp, Message, Receive, Scope, Send  # noqa: E402

from bench.synth import bench_settings, synthetic_projects, write_store  # noqa: E402
from geo.app import create_app, open_store  # noqa: E402
from geo.catalogue import Catalogue  # noqa: E402
from geo.http.compression import Compression  # noqa: E402
from geo.http.cors import CORSMiddleware  # noqa: E402
from geo.http.head import HeadAsGet  # noqa: E402
from geo.http.responsecache import ResponseCache  # noqa: E402
from geo.http.securityheaders import SecurityHeaders  # noqa: E402
from geo.routers import dispatch  # noqa: E402
from geo.store import StoreRefresh  # noqa: E402
from geo.tiles.responses import TileResponses  # noqa: E402

PATH = "/collections/projects/items"
BODY = b"x" * 4_000
HEADERS = [(b"content-type", b"application/geo+json"), (b"content-length", b"4000"), (b"etag", b'"e"')]


async def bare(scope: Scope, receive: Receive, send: Send) -> None:
    """The reference: fixed bytes."""
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": BODY})


def scope_of(n: int) -> Scope:
    """A GET of a new page (the `n`th: no two of the first 360,000 alike), with the headers wrk sends."""
    query = f"f=json&offset={n % 9_000}&limit={10 + n // 9_000 % 40}"
    return {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
            "scheme": "http", "path": PATH, "raw_path": PATH.encode(), "query_string": query.encode(),
            "root_path": "", "headers": [(b"host", b"127.0.0.1:8000"), (b"accept", b"*/*")],
            "client": ("127.0.0.1", 50_000), "server": ("127.0.0.1", 8_000), "state": {}}


async def receive() -> Message:
    """An empty request body."""
    return {"type": "http.request", "body": b"", "more_body": False}


async def sink(message: Message) -> None:
    """Where the answers go."""


async def per_request(app: ASGIApp, first: int, count: int) -> float:
    """Microseconds per request over `count` new pages, the first numbered `first`."""
    began = time.perf_counter()
    for n in range(first, first + count):
        await app(scope_of(n), receive, sink)
    return (time.perf_counter() - began) / count * 1e6


def trivial_fastapi() -> FastAPI:
    """FastAPI with one route at the items' path that answers fixed bytes."""
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)

    @app.get(PATH.replace("projects", "{collection_id}"))
    async def items(collection_id: str) -> Response:
        return Response(BODY, media_type="application/geo+json")

    return app


RUNNING: list[asyncio.Task[None]] = []  # the apps' lifespans, kept: a task no one holds may be collected


async def status(app: ASGIApp) -> int:
    """The status of the app's answer to a new page."""
    sent: list[Message] = []

    async def keep(message: Message) -> None:
        sent.append(message)

    await app(scope_of(7), receive, keep)
    return int(sent[0]["status"])


async def lifespan(app: ASGIApp) -> None:
    """Start the app (its catalogue warms), as uvicorn does."""
    started = asyncio.Event()

    async def startup() -> Message:
        if started.is_set():
            await asyncio.Event().wait()  # never shut down
        started.set()
        return {"type": "lifespan.startup"}

    RUNNING.append(asyncio.get_running_loop().create_task(
        app({"type": "lifespan", "asgi": {"version": "3.0"}}, startup, sink)))
    await started.wait()
    await asyncio.sleep(0.2)


async def measure(args: argparse.Namespace) -> None:
    """Build the cases and print the table."""
    work = Path(tempfile.mkdtemp(prefix="bench-layers-"))
    settings = bench_settings(work)
    write_store(settings.projects, synthetic_projects(args.projects, settings))
    catalogue = Catalogue(settings, open_store(settings))
    store = open_store(settings)
    singles: dict[str, Callable[[ASGIApp], ASGIApp]] = {
        "SecurityHeaders": SecurityHeaders,
        "CORSMiddleware": lambda app: CORSMiddleware(app, write_origins=frozenset()),
        "HeadAsGet": HeadAsGet,
        "StoreRefresh (a stat)": lambda app: StoreRefresh(app, store=store),
        "ResponseCache (a miss, kept)": lambda app: ResponseCache(app, catalogue=catalogue),
        "TileResponses (not a tile)": lambda app: TileResponses(app, catalogue=catalogue, max_bytes=1 << 20),
        "Compression (identity)": lambda app: Compression(app, minimum_size=1024, level=5),
    }
    everything: ASGIApp = bare
    for wrap in reversed(singles.values()):
        everything = wrap(everything)
    whole = create_app(settings)
    routed = create_app(settings)
    real = dispatch.leading_direct_gets
    dispatch.leading_direct_gets = lambda app: ()  # type: ignore[assignment]
    await lifespan(routed)
    await routed(scope_of(0), receive, sink)  # its leading routes found (none), and kept
    dispatch.leading_direct_gets = real  # type: ignore[assignment]
    await lifespan(whole)
    cases: dict[str, ASGIApp] = {"reference: bare ASGI call": bare}
    cases.update({f"{name} around it": wrap(bare) for name, wrap in singles.items()})
    cases["all the app's middleware around it"] = everything
    cases["FastAPI, one trivial route"] = trivial_fastapi()
    cases["the app, through FastAPI's router"] = routed
    cases["the app (DirectDispatch)"] = whole
    for name, app in cases.items():  # warm: imports, first-request set-up, the table's derived values
        assert await status(app) == 200, name
        await per_request(app, 1, 500)
    # The cases in turn, round after round, so that a change in the machine's load touches them alike;
    # each request of a case a page it has not answered before.
    best = dict.fromkeys(cases, float("inf"))
    first = 1_000
    for _ in range(args.rounds):
        for name, app in cases.items():
            best[name] = min(best[name], await per_request(app, first, args.requests))
        first += args.requests
    print(f"{args.projects:,} projects; a new page every request, best of {args.rounds} rounds of "
          f"{args.requests} requests")
    print(f"{'case':44} {'us/request':>11} {'vs ref':>7} {'over ref us':>12}")
    reference = best["reference: bare ASGI call"]
    for name, cost in best.items():
        print(f"{name:44} {cost:11.1f} {cost / reference:7.1f} {cost - reference:12.1f}")


def main() -> None:
    """Parse the options and run."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--projects", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=12)
    asyncio.run(measure(parser.parse_args()))


if __name__ == "__main__":
    main()
