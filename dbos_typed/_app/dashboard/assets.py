"""The dashboard's page, script, style sheet and vendored chart library, served as files.

They ship in the wheel under `static/` and are read once, on first request. Only the files
found there are served, looked up by exact name: a path never reaches the file system, so
no request can walk out of the folder. The page's Content-Security-Policy lets it run only
its own scripts and talk only to its own origin, and forbids framing (no clickjacking of
the action buttons).
"""

from __future__ import annotations

import functools
from http import HTTPStatus
from importlib import resources
from importlib.resources.abc import Traversable
from typing import Any, Final

from dbos_typed._app.http_layer import Handler, Raw, Refusal, Route, route

_TYPES: Final = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".png": "image/png",
    ".svg": "image/svg+xml",
}
_PLAIN = "text/plain; charset=utf-8"

# uPlot sizes its elements through the CSSOM (element.style), which style-src allows.
_POLICY: Final = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)
_HEADERS: Final = {
    "Content-Security-Policy": _POLICY,
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    # The files change only with the package; a revalidation per load keeps it simple.
    "Cache-Control": "no-cache",
}


def _walk(folder: Traversable, prefix: str) -> dict[str, bytes]:
    found: dict[str, bytes] = {}
    for entry in folder.iterdir():
        if entry.is_dir():
            found.update(_walk(entry, f"{prefix}{entry.name}/"))
        elif entry.is_file():
            found[prefix + entry.name] = entry.read_bytes()
    return found


@functools.cache
def files() -> dict[str, bytes]:
    """Every static file, by its path under `static/`."""
    return _walk(resources.files("dbos_typed._app.dashboard") / "static", "")


def _file(name: str) -> Raw:
    data = files().get(name)
    if data is None:
        raise Refusal(HTTPStatus.NOT_FOUND, f"the dashboard has no file {name!r}")
    suffix = name[name.rfind(".") :] if "." in name else ""
    return Raw(data, _TYPES.get(suffix, _PLAIN), _HEADERS)


def _index(handler: Handler, _: dict[str, str], __: Any) -> tuple[int, Any]:
    return HTTPStatus.OK, _file("index.html")


def _asset(handler: Handler, params: dict[str, str], __: Any) -> tuple[int, Any]:
    return HTTPStatus.OK, _file(params["asset"])


def _to_index(handler: Handler, _: dict[str, str], __: Any) -> tuple[int, Any]:
    # Relative URLs in the page resolve against /dashboard/, so the slash matters.
    return HTTPStatus.PERMANENT_REDIRECT, Raw(b"", _PLAIN, {"Location": "/dashboard/"})


ROUTES: tuple[Route, ...] = (
    route("GET", r"/dashboard", _to_index, "public"),
    route("GET", r"/dashboard/", _index, "public"),
    route("GET", r"/dashboard/(?P<asset>[A-Za-z0-9._-]+(?:/[A-Za-z0-9._-]+)*)", _asset, "public"),
)

#: `/` on the standalone dashboard, where nothing else lives.
ROOT: Final = route("GET", r"/", _to_index, "public")
