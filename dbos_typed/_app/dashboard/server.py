"""`dbos-typed dashboard`: the dashboard on its own server, over any system database.

Read-only unless started with `allow_actions`; then cancel, resume and fork run, and each
needs the token this process drew at start (`secrets.token_urlsafe`), sent as
`Authorization: Bearer <token>`. The page learns it from the URL's fragment
(`#token=...`), which browsers never send to a server or put in a Referer. With
`require_token` every request needs it, reads too; only then may the server listen on an
address that is not a loopback one.
"""

from __future__ import annotations

import secrets
import threading
from typing import Final

from dbos_typed._app.admin import WORKFLOW_ROUTES
from dbos_typed._app.dashboard import assets, dashboard_routes
from dbos_typed._app.http_layer import DEFAULT_LIMITS, Limits, Listener, Naming, Policy
from dbos_typed._core.context import DBOSContext

#: The largest page of workflows one request may ask for.
MAX_PAGE_SIZE: Final = 1000
DEFAULT_PORT: Final = 8090

_NAMING = Naming(
    server="the dashboard",
    host_setting="--host",
    port_setting="--port",
    token_fix="pass --require-token",
)
_ACTIONS_OFF = "actions are off: start the dashboard with --allow-actions to cancel, resume or fork"


class DashboardServer:
    """The dashboard's pages and endpoints for one context.

    The port is bound when it is made; `serve_forever` (or `start`, on a thread) serves.
    """

    def __init__(
        self,
        ctx: DBOSContext,
        host: str = "127.0.0.1",
        port: int = DEFAULT_PORT,
        *,
        allow_actions: bool = False,
        require_token: bool = False,
        limits: Limits = DEFAULT_LIMITS,
    ) -> None:
        """Bind to `host`:`port`.

        Raises:
            InitializationError: the host is not a loopback one and `require_token` is
                off, the host does not resolve, or the port cannot be bound.
        """
        #: The per-process token, when actions are on or every request needs one.
        self.token: str | None = (
            secrets.token_urlsafe(24) if allow_actions or require_token else None
        )
        self.allow_actions = allow_actions
        self._listener = Listener(host, port, has_token=require_token, naming=_NAMING)
        policy = Policy(
            label="dashboard",
            token=None if self.token is None else self.token.encode("ascii"),
            token_for_reads=require_token,
            hosts=self._listener.hosts,
            limits=limits,
            writes_refused=None if allow_actions else _ACTIONS_OFF,
            max_page_size=MAX_PAGE_SIZE,
        )
        routes = (assets.ROOT, *WORKFLOW_ROUTES, *dashboard_routes())
        self._listener.handle_with(ctx, policy, routes)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The base URL the server listens on."""
        return self._listener.url

    @property
    def page_url(self) -> str:
        """The page's URL, carrying the token (if any) in its fragment."""
        page = self.url + "/dashboard/"
        return page if self.token is None else f"{page}#token={self.token}"

    def serve_forever(self) -> None:
        """Answer requests on this thread until `shutdown` is called from another."""
        self._listener.server.serve_forever()

    def start(self) -> None:
        """Serve on a background thread."""
        self._thread = threading.Thread(
            target=self.serve_forever, name="dbos-dashboard", daemon=True
        )
        self._thread.start()

    def shutdown(self) -> None:
        """Stop serving (if serving) and release the port."""
        if self._thread is not None and self._thread.is_alive():
            self._listener.server.shutdown()
            self._thread.join()
        self._listener.server.server_close()
