"""What surrounds the features: the context's lifecycle, the admin server, the client.

- `lifecycle`: `new_context`, and what launch and shutdown run.
- `admin`: the optional admin HTTP server.
- `admin_fields`: reading and checking the fields of its requests' JSON bodies.
- `client`: `Client`, for code that is not an application.
"""

from __future__ import annotations
