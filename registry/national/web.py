"""The registry's own web page (/ui) for the authority and regulators: plain files, no CDN, no build step.

The page asks for a key, keeps it in the tab's sessionStorage and calls the same JSON API as any script."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

UI_DIR = Path(__file__).resolve().parent / "ui"


def install(app: FastAPI) -> None:
    def index() -> FileResponse:
        return FileResponse(UI_DIR / "index.html", headers={"Cache-Control": "no-store"})

    app.mount("/ui/static", StaticFiles(directory=UI_DIR), name="registry-static")
    app.add_api_route("/ui", index, methods=["GET"], include_in_schema=False)
    app.add_api_route("/ui/", index, methods=["GET"], include_in_schema=False)
