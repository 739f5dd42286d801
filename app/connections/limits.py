"""The limits every connection pool of a process obeys: timeouts, sizes, idleness, a total.

The service builds them from its settings; library and CLI use get the same defaults.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ConnectionLimits:
    connect_timeout: float = 10.0  # seconds to open one connection, when a connection sets none
    command_timeout: float = 300.0  # seconds per statement or reply, when a connection sets none
    idle_seconds: float = 300.0  # a pool nobody borrowed for this long is closed
    max_pool_size: int = 100  # the largest pool_size / max_connections a connection may ask
    max_total: int = 500  # connections all open pools may hold (each counts its largest size)


DEFAULT_LIMITS = ConnectionLimits()
