"""Dependencies of the routes, as `Annotated` aliases: the services and the request's parts.

They are `async def` although they await nothing: FastAPI runs a plain `def` dependency in a
worker thread, a thread hop per dependency per request.
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Depends, Header, Path, Request, Security

from app.api.body import DefinitionBody, read_definition
from app.api.security import authorize, public
from app.domain.access import USERNAME, Caller, Scope
from app.dsl.fields import FLOW_NAME
from app.services.audit import AuditService
from app.services.container import Services
from app.services.flow_manager import FlowManagerService
from app.services.flows import FlowService
from app.services.keys import KeyService
from app.services.runs import RunService
from app.services.schedules import ScheduleService
from app.services.users import UserService
from app.services.workers import WorkerService
from app.settings import Settings


async def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


SettingsDep = Annotated[Settings, Depends(get_settings)]


async def get_flows(services: ServicesDep) -> FlowService:
    return services.flows


async def get_runs(services: ServicesDep) -> RunService:
    return services.runs


async def get_schedules(services: ServicesDep) -> ScheduleService:
    return services.schedules


async def get_flow_manager(services: ServicesDep) -> FlowManagerService:
    return services.flow_manager


async def get_workers(services: ServicesDep) -> WorkerService:
    return services.workers


async def get_users(services: ServicesDep) -> UserService:
    return services.users


async def get_keys(services: ServicesDep) -> KeyService:
    return services.keys


async def get_audit(services: ServicesDep) -> AuditService:
    return services.audit


UsersDep = Annotated[UserService, Depends(get_users)]
KeysDep = Annotated[KeyService, Depends(get_keys)]
AuditDep = Annotated[AuditService, Depends(get_audit)]
FlowsDep = Annotated[FlowService, Depends(get_flows)]
WorkersDep = Annotated[WorkerService, Depends(get_workers)]
RunsDep = Annotated[RunService, Depends(get_runs)]
SchedulesDep = Annotated[ScheduleService, Depends(get_schedules)]
FlowManagerDep = Annotated[FlowManagerService, Depends(get_flow_manager)]

DefinitionDep = Annotated[DefinitionBody, Depends(read_definition)]

# Who may call a route: every route takes one of these (or is PUBLIC); see app/api/security.py.
AnyCaller = Annotated[Caller, Security(authorize)]
FlowsReader = Annotated[Caller, Security(authorize, scopes=[Scope.FLOWS_READ])]
FlowsWriter = Annotated[Caller, Security(authorize, scopes=[Scope.FLOWS_WRITE])]
RunsReader = Annotated[Caller, Security(authorize, scopes=[Scope.RUNS_READ])]
RunsWriter = Annotated[Caller, Security(authorize, scopes=[Scope.RUNS_WRITE])]
GraphRunner = Annotated[Caller, Security(authorize, scopes=[Scope.FLOWS_WRITE, Scope.RUNS_WRITE])]
Admin = Annotated[Caller, Security(authorize, scopes=[Scope.ADMIN])]
PUBLIC = Depends(public)

# Path and header parameters: what cannot name a stored thing is refused before the store sees it.
FlowName = Annotated[
    str, Path(pattern=FLOW_NAME.pattern, description="the flow's name", examples=["UserManager"])
]
Version = Annotated[int, Path(ge=1, le=2**31 - 1, description="a version number, from 1")]
Username = Annotated[str, Path(pattern=USERNAME.pattern, description="a user's name")]
KeyId = Annotated[str, Path(pattern=r"^[0-9a-f]{16}$", description="a key's id")]
RunId = Annotated[uuid.UUID, Path(description="the run's id")]
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=255,
        pattern=r"^[\x20-\x7e]+$",
        description="repeat a request safely: the same key answers the first run (200)",
    ),
]
# W3C trace context: a malformed one is ignored (as the W3C recommendation says), not refused.
TraceParent = Annotated[
    str | None,
    Header(description="W3C trace context; the run's spans join this trace (otel extra)"),
]
