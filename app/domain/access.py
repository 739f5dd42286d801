"""Who is calling and what they may do: scopes, permissions on a flow, the caller.

DESIGN.md section 7. A key's *scopes* say which kinds of action it may take at all; a user's
*permission* on a flow says how far it may act on that flow. An action needs both.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import IntEnum, StrEnum

USERNAME = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$")
BOOTSTRAP_ADMIN = "admin"  # owns what existed before users did; the local admin's name


class Scope(StrEnum):
    FLOWS_READ = "flows:read"
    FLOWS_WRITE = "flows:write"
    RUNS_READ = "runs:read"
    RUNS_WRITE = "runs:write"
    ADMIN = "admin"


USER_SCOPES = frozenset(Scope) - {Scope.ADMIN}  # everything a user who is not an admin may hold
ALL_SCOPES = frozenset(Scope)


class Permission(IntEnum):
    """What a user may do with one flow; each level includes the ones below it."""

    VIEW = 1  # read the flow and its runs
    RUN = 2  # start, cancel and retry its runs
    EDIT = 3  # register new versions
    ADMIN = 4  # manage its shares, make it public, delete it (what its owner may do)

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def of(cls, label: str) -> Permission:
        return cls[label.upper()]


SHARE_PERMISSIONS = tuple(permission.label for permission in Permission)


def rights_of(is_admin: bool) -> frozenset[Scope]:
    """The scopes a user may hold: an admin all of them, anyone else all but `admin`."""
    return ALL_SCOPES if is_admin else USER_SCOPES


@dataclass(frozen=True)
class Caller:
    """The user a request acts for, through one credential."""

    user_id: str
    username: str
    is_admin: bool  # the user is an administrator
    scopes: frozenset[Scope]  # what the credential allows, never more than the user's rights
    key_id: str | None = None  # the API key or session used; None for the anonymous local admin
    via_session: bool = False  # signed in with the dashboard's cookie (CSRF rules apply)

    @property
    def acts_as_admin(self) -> bool:
        """Admin powers need both: an admin user and a credential with the `admin` scope."""
        return self.is_admin and Scope.ADMIN in self.scopes

    def holds(self, scope: Scope) -> bool:
        return scope in self.scopes


# The command line acts with every right, as whoever runs it on the server's machine may.
COMMAND_LINE = Caller(user_id="", username="(command line)", is_admin=True, scopes=ALL_SCOPES)


@dataclass(frozen=True)
class FlowAccess:
    """What decides a user's permission on one flow: its owner, its visibility, and the
    permission it is shared with that user (None when it is not)."""

    flow_id: int
    owner_id: str
    is_public: bool
    shared: Permission | None

    def permission_of(self, caller: Caller) -> Permission | None:
        """The caller's permission on the flow; None when it may not even see it."""
        if caller.acts_as_admin or caller.user_id == self.owner_id:
            return Permission.ADMIN
        if self.shared is not None:
            return self.shared
        return Permission.VIEW if self.is_public else None
