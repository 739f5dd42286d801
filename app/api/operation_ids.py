"""OpenAPI operation ids: the route function's name (`execute_flow`, `get_run`), so that a
client generated from the schema has methods named as the API's own code names them, not
FastAPI's default of name, path and method (`execute_flow_flows__name__execute_post`).

FastAPI asks for one route's id at a time; that every id is unique is checked once all routes
are known (`duplicate_operation_ids`), and the app refuses to start otherwise.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from fastapi.routing import APIRoute
from starlette.routing import BaseRoute


def operation_id(route: APIRoute) -> str:
    """The route function's name: already snake_case, verb first, unique in the API."""
    return route.name


def duplicate_operation_ids(routes: Iterable[BaseRoute]) -> list[str]:
    """The operation ids that more than one documented operation would share."""
    counts = Counter(
        operation_id(route)
        for route in routes
        if isinstance(route, APIRoute) and route.include_in_schema
        for _ in route.methods or ()
    )
    return sorted(name for name, count in counts.items() if count > 1)
