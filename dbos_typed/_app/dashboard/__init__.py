"""The web dashboard: pages over the system database, served by the admin server and the CLI.

`dbos-typed dashboard` serves it on its own (`server.DashboardServer`), and an application
launched with `admin_server=True` serves it under `/dashboard/` of its admin server. Both
answer the same JSON endpoints: the admin server's, and the reads of `api`.
"""

from __future__ import annotations

from dbos_typed._app.http_layer import Route


def dashboard_routes() -> tuple[Route, ...]:
    """The dashboard's static files and read endpoints, for a server to add to its own."""
    from dbos_typed._app.dashboard import api, assets

    return (*assets.ROUTES, *api.ROUTES)
