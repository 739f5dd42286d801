"""What a run may keep: the sizes of its steps' outputs and of its whole stored document, and
the width of a fan-out; and how long an attempt of a step without `timeout` may run. The
service sets them from its settings; library use gets the same sizes, so a flow that runs in
a test runs the same in the service, but no default timeout: in the user's own process, a
task may take as long as it takes, as it would without the engine.

Sizes are bytes of compact UTF-8 JSON (`app.domain.storable.json_size`), what a store keeps.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from app.domain.storable import JsonData, json_size, sized_json_data
from app.errors import (
    OutputTooLargeError,
    RunTooLargeError,
    UnstorableValueError,
    ValueTooLargeError,
)

MIB = 1024 * 1024


@dataclass(frozen=True)
class RunLimits:
    max_step_output_bytes: int = MIB  # one task's outputs (one element's, for a fan-out)
    max_run_document_bytes: int = 16 * MIB  # what every task of a run stores, and its outputs
    max_fan_out: int = 10_000  # elements of one for_each: each is a task (a row, in a store)
    # Seconds an attempt of a step that sets no `timeout` may run (MAX_STEP_TIMEOUT_SECONDS in
    # the service, where an attempt holds a worker slot); None: as long as it takes.
    default_step_timeout: float | None = None
    # What a task logs (`context.logger`) and an attempt keeps (MAX_TASK_LOG_BYTES).
    max_task_log_bytes: int = 64 * 1024
    # How long a `sleep` or a `wait_for`'s `timeout` may wait (MAX_DURABLE_WAIT_SECONDS).
    max_durable_wait_seconds: float = 366 * 86_400
    # A fan-out of at least this many elements is handed to the workers, where the store can
    # (SHARED_FAN_OUT_MIN); None: every fan-out runs in its run's process (library use).
    shared_fan_out_min: int | None = None


def step_outputs(limits: RunLimits, step_id: str, outputs: Any) -> JsonData:
    """A task's outputs as they are kept: checked storable (UnstorableValueError naming the
    step and the value's path), measured, and capped (OutputTooLargeError)."""
    try:
        return sized_json_data(outputs, root="outputs", max_bytes=limits.max_step_output_bytes)
    except UnstorableValueError as error:
        raise UnstorableValueError(
            f"step {step_id!r} returned a value that cannot be stored: {error.message}",
            loc=error.loc,
            path=error.path,
            reason=error.reason,
        ) from None
    except ValueTooLargeError as error:
        size = f"{error.size} bytes" if error.exact else f"at least {error.size} bytes"
        raise OutputTooLargeError(
            f"the outputs of step {step_id!r} take {size} as JSON; MAX_STEP_OUTPUT_BYTES "
            f"allows {limits.max_step_output_bytes}",
            size=error.size,
            exact=error.exact,
        ) from None


class DocumentBudget:
    """What a run has stored so far, against MAX_RUN_DOCUMENT_BYTES.

    Every task's outputs are charged as it finishes, before the store records them, and the
    run's outputs at its end: the first charge that would pass the limit is refused, so what
    the store holds never does.
    """

    def __init__(self, limits: RunLimits) -> None:
        self.limit = limits.max_run_document_bytes
        self.used = 0

    def restore(self, outputs: Any) -> None:
        """Outputs kept from an earlier execution of the run (retried, or taken over)."""
        if outputs is not None:
            self.used += json_size(outputs)

    def charge(self, size: int, what: str) -> RunTooLargeError | None:
        """Charge `size` bytes for `what`; the error (nothing charged) when it does not fit."""
        if self.used + size > self.limit:
            return RunTooLargeError(
                f"{what} ({size} bytes) would bring what the run stores to "
                f"{self.used + size} bytes; MAX_RUN_DOCUMENT_BYTES allows {self.limit}",
                size=self.used + size,
            )
        self.used += size
        return None
