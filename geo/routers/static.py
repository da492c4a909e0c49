"""The web map's own scripts, styles and icons at /static/{root}/{path}: nothing comes from a CDN."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Request
from fastapi import Path as PathParam
from starlette.responses import FileResponse, Response

from geo.errors import NotFound
from geo.http.conditional import make_etag, not_modified
from geo.web import assets

router = APIRouter(tags=["Map"], include_in_schema=False)

# Versioned URLs never change content; the app's own files are revalidated by ETag.
IMMUTABLE = "public, max-age=31536000, immutable"
REVALIDATE = "no-cache"


@router.get("/static/{root}/{path:path}")
def static_file(request: Request, root: Annotated[str, PathParam()], path: Annotated[str, PathParam()],
                ) -> Response:
    """One file of a served folder; 404 for anything else, including paths that leave the folder."""
    found = assets.resolve(root, path)
    if found is None:
        # The name as asked, shortened and with control characters shown escaped (it may be hostile).
        asked = f"{root}/{path}"
        shown = (asked[:100] + "...") if len(asked) > 100 else asked
        raise NotFound(f"There is no static file {shown.encode('unicode_escape').decode('ascii')}.")
    served, target = found
    stat = target.stat()
    etag = make_etag(str(target), stat.st_mtime_ns, stat.st_size)
    headers = {"ETag": etag, "Cache-Control": IMMUTABLE if served.immutable else REVALIDATE}
    answer = not_modified(request, etag)
    if answer is not None:
        answer.headers.update(headers)
        return answer
    return FileResponse(target, headers=headers)
