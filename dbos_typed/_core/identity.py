"""Who a workflow runs for, and the free-form attributes recorded with it.

Both are written on the workflow's row when it starts. The identity is inherited by the
workflows it starts (unless they are given their own); attributes are not.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from dbos_typed._core.context import WorkflowContext
from dbos_typed._core.validate import optional_name
from dbos_typed._sysdb._rows import NewWorkflow
from dbos_typed.errors import InvalidOptionError


@dataclass(frozen=True, slots=True)
class Identity:
    """The user a workflow acts for, recorded with it and inherited by its children.

    The library records and reports it (`WorkflowStatus`, `get_identity`); checking it is
    the application's business.

    Attributes:
        user: The authenticated user.
        roles: The roles that user holds.
        assumed_role: The role the workflow acts in.
    """

    user: str | None = None
    roles: tuple[str, ...] = ()
    assumed_role: str | None = None

    def __post_init__(self) -> None:
        optional_name(self.user, "identity.user")
        optional_name(self.assumed_role, "identity.assumed_role")
        if isinstance(self.roles, str) or not isinstance(self.roles, tuple | list):
            raise InvalidOptionError("identity.roles", "expected a tuple of role names")
        for role in self.roles:
            optional_name(role, "identity.roles")
        object.__setattr__(self, "roles", tuple(self.roles))


#: The identity of a workflow started for no one; immutable, so every such start shares it.
NO_IDENTITY = Identity()


def get_identity(ctx: WorkflowContext, /) -> Identity:
    """The identity the running workflow was started with (empty if none).

    Durability: it is read from the workflow's row, which never changes it, so a replay
    sees the same identity.
    """
    if not isinstance(ctx, WorkflowContext):
        raise InvalidOptionError("ctx", "expected a WorkflowContext")
    state = ctx._state
    if state.identity is None:
        # A run taken from a queue or recovered does not carry it: read it once.
        record = ctx._runtime.store.get_status(state.workflow_id)
        state.identity = (
            Identity()
            if record is None
            else identity_from(
                record.authenticated_user, record.assumed_role, record.authenticated_roles
            )
        )
    return state.identity


def identity_from(user: str | None, assumed_role: str | None, roles: str | None) -> Identity:
    """An identity from its stored columns (the roles are a JSON array, as DBOS stores them)."""
    parsed: Any = None
    if roles:
        try:
            parsed = json.loads(roles)
        except ValueError:
            parsed = None
    listed = tuple(r for r in parsed if isinstance(r, str)) if isinstance(parsed, list) else ()
    return Identity(user=user or None, roles=listed, assumed_role=assumed_role or None)


def attributes_text(value: object, argument: str = "attributes") -> str:
    """A mapping of JSON values as the compact JSON object text stored for it."""
    if not isinstance(value, Mapping):
        raise InvalidOptionError(argument, "expected a mapping of JSON values")
    try:
        text = json.dumps(dict(value), separators=(",", ":"), ensure_ascii=False)
    except (TypeError, ValueError) as exc:
        raise InvalidOptionError(argument, f"not JSON-serializable: {exc}") from exc
    if "\\u0000" in text:
        raise InvalidOptionError(argument, "must not contain NUL characters")
    return text


@dataclass(frozen=True, slots=True)
class Labels:
    """What a new workflow row records about who started it, and its attributes."""

    identity: Identity
    attributes: str | None = None

    def apply(self, row: NewWorkflow) -> NewWorkflow:
        """`row` with these labels."""
        identity = self.identity
        if (
            self.attributes is None
            and identity.user is None
            and identity.assumed_role is None
            and not identity.roles
            and row.attributes is None
            and row.authenticated_user is None
            and row.assumed_role is None
            and row.authenticated_roles is None
        ):
            return row  # nothing to write: spare every plain start a copy of its row
        return replace(
            row,
            authenticated_user=identity.user,
            assumed_role=identity.assumed_role,
            authenticated_roles=json.dumps(list(identity.roles)) if identity.roles else None,
            attributes=self.attributes,
        )


def labels_for(
    ctx: object, identity: Identity | None, attributes: Mapping[str, Any] | None
) -> Labels:
    """The labels of a workflow started from `ctx`: a child inherits its parent's identity.

    Raises:
        InvalidOptionError: `identity` is not an `Identity`, or `attributes` not JSON.
    """
    if identity is not None and not isinstance(identity, Identity):
        raise InvalidOptionError("identity", "expected a dbos_typed.Identity or None")
    text = None if attributes is None else attributes_text(attributes)
    if identity is None:
        identity = get_identity(ctx) if isinstance(ctx, WorkflowContext) else NO_IDENTITY
    return Labels(identity, text)
