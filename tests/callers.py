"""Who the tests that call the services directly act as."""

from __future__ import annotations

from app.domain.access import Caller
from app.services.container import Services


async def admin(services: Services) -> Caller:
    """The local admin: who a caller without a key acts as when authentication is off."""
    return await services.users.local_admin()
