"""A caller's permission on a flow: owner, admin, share, public."""

from __future__ import annotations

import pytest

from app.domain.access import (
    ALL_SCOPES,
    USER_SCOPES,
    Caller,
    FlowAccess,
    Permission,
    Scope,
    rights_of,
)

ADA = Caller("u-ada", "ada", is_admin=False, scopes=USER_SCOPES)
ROOT = Caller("u-root", "root", is_admin=True, scopes=ALL_SCOPES)


def flow(
    owner: str = "u-bob", public: bool = False, shared: Permission | None = None
) -> FlowAccess:
    return FlowAccess(1, owner, public, shared)


def test_the_owner_may_do_everything() -> None:
    assert flow(owner="u-ada").permission_of(ADA) is Permission.ADMIN


def test_a_stranger_may_not_even_see_a_private_flow() -> None:
    assert flow().permission_of(ADA) is None


def test_a_public_flow_is_viewable_by_everyone() -> None:
    assert flow(public=True).permission_of(ADA) is Permission.VIEW


@pytest.mark.parametrize("shared", list(Permission))
def test_a_share_gives_its_permission_even_on_a_public_flow(shared: Permission) -> None:
    assert flow(public=True, shared=shared).permission_of(ADA) is shared


def test_an_admin_acting_as_one_may_do_everything() -> None:
    assert flow().permission_of(ROOT) is Permission.ADMIN


def test_an_admins_key_without_the_admin_scope_acts_as_a_user() -> None:
    limited = Caller("u-root", "root", is_admin=True, scopes=frozenset({Scope.RUNS_READ}))

    assert not limited.acts_as_admin
    assert flow().permission_of(limited) is None


def test_permissions_are_ordered_view_run_edit_admin() -> None:
    assert Permission.VIEW < Permission.RUN < Permission.EDIT < Permission.ADMIN
    assert Permission.of("edit") is Permission.EDIT
    assert Permission.EDIT.label == "edit"


def test_only_admins_hold_the_admin_scope() -> None:
    assert Scope.ADMIN not in rights_of(is_admin=False)
    assert rights_of(is_admin=True) == ALL_SCOPES
