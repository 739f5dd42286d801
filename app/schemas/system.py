"""Answers of the operational routes: health, readiness and connection plugins."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

from app.connections.manager import PluginInfo


class Health(BaseModel):
    status: Literal["ok"] = "ok"


class Readiness(BaseModel):
    status: Literal["ready"] = "ready"


class ConnectionPlugin(BaseModel):
    type: str
    driver: str
    installed: bool
    description: str

    @classmethod
    def of(cls, plugin: PluginInfo) -> ConnectionPlugin:
        return cls(
            type=plugin.type,
            driver=plugin.driver,
            installed=plugin.installed,
            description=plugin.description,
        )
