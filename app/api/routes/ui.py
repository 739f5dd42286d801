"""`/ui`: the dashboard's page and its assets, files of `app.ui` served as they are.

Public: the files hold no data (the page asks the API for everything, with the caller's
session), so a browser that is not signed in yet can load the page that signs it in. Assets
are named by a pattern before any file is looked at, so no path can leave the directory.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path
from fastapi.responses import FileResponse, RedirectResponse, Response

from app.api.deps import PUBLIC
from app.api.errors import error_answer
from app.ui import INDEX, STATIC_DIRECTORY

router = APIRouter(prefix="/ui", tags=["dashboard"], include_in_schema=False)

MEDIA_TYPES = {
    "js": "text/javascript; charset=utf-8",
    "css": "text/css; charset=utf-8",
    "svg": "image/svg+xml",
}
# The page's scripts and styles come from this site only; data from the API on this site only.
HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; "
        "frame-ancestors 'none'; form-action 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-cache",  # revalidated (ETag) so that an upgrade shows at once
}
AssetName = Annotated[str, Path(pattern=r"^[a-z0-9][a-z0-9_-]*\.(js|css|svg)$", max_length=64)]


@router.get("", dependencies=[PUBLIC])
async def ui_root() -> Response:
    # Relative asset URLs in the page resolve under /ui/ only with the trailing slash.
    return RedirectResponse("/ui/", status_code=308)


@router.get("/", dependencies=[PUBLIC])
async def ui_page() -> Response:
    return FileResponse(INDEX, media_type="text/html; charset=utf-8", headers=HEADERS)


@router.get("/assets/{name}", dependencies=[PUBLIC])
async def ui_asset(name: AssetName) -> Response:
    path = STATIC_DIRECTORY / name
    if not path.is_file():
        return error_answer(404, f"no dashboard file {name!r}")
    media_type = MEDIA_TYPES[name.rsplit(".", 1)[1]]
    return FileResponse(path, media_type=media_type, headers=HEADERS)
