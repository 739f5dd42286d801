"""The hot-path SQL of PostgreSQL, named: one statement (one round trip, one commit) each.

Writable CTEs let a task's completion, the cancellation of its fan-out siblings, the release of
its dependents and the run's bookkeeping happen in a single statement, as pgflow's
`complete_task` does. Every value is a bind parameter.
"""

from __future__ import annotations

from app.store.runs import UNFINISHED_TASK_STATUSES

UNFINISHED = "(" + ", ".join(f"'{status}'" for status in UNFINISHED_TASK_STATUSES) + ")"

# $1 run_id, $2 started_at, $3 remaining_steps, $4 ready step ids
START_FRESH_RUN = f"""
WITH run AS (
    UPDATE flow_runs
    SET status = 'running', started_at = $2, finished_at = NULL, outputs = NULL,
        error = NULL, remaining_steps = $3
    WHERE id = $1
)
UPDATE task_runs
SET status = 'queued', available_at = $2
WHERE run_id = $1 AND step_id = ANY($4::text[]) AND task_index = 0
    AND status IN {UNFINISHED}
"""

# The task's own row. $1 run_id, $2 step_id, $3 task_index, $4 status, $5 outputs, $6 error,
# $7 finished_at, $8 attempts (or NULL), $9 started_at (or NULL).
_FINISHED = """
WITH finished AS (
    UPDATE task_runs
    SET status = $4, outputs = $5::jsonb, error = $6::jsonb, finished_at = $7,
        attempts = COALESCE($8, attempts), started_at = COALESCE(started_at, $9)
    WHERE run_id = $1 AND step_id = $2 AND task_index = $3
)"""

# $10 released step ids, $11 steps finished (0|1)
FINISH_TASK = f"""{_FINISHED}, siblings AS (
    UPDATE task_runs
    SET status = 'cancelled', finished_at = $7
    WHERE run_id = $1 AND step_id = $2 AND task_index <> $3 AND $4 = 'failed'
        AND status IN {UNFINISHED}
), released AS (
    UPDATE task_runs
    SET status = 'queued', available_at = $7
    WHERE run_id = $1 AND step_id = ANY($10::text[]) AND task_index = 0 AND status = 'pending'
)
UPDATE flow_runs SET remaining_steps = remaining_steps - $11 WHERE id = $1
"""

# As FINISH_TASK for the task that ends its run: $10 run status, $11 run outputs,
# $12 run error; every other unfinished task of the run is cancelled. A run that already
# ended (cancelled from another process) keeps its end.
FINISH_TASK_AND_RUN = f"""{_FINISHED}, unfinished AS (
    UPDATE task_runs
    SET status = 'cancelled', finished_at = $7
    WHERE run_id = $1 AND NOT (step_id = $2 AND task_index = $3)
        AND status IN {UNFINISHED}
)
UPDATE flow_runs
SET status = $10, outputs = $11::jsonb, error = $12::jsonb, finished_at = $7,
    remaining_steps = 0
WHERE id = $1 AND status = 'running'
"""
