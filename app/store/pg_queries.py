"""The hot-path SQL of PostgreSQL, named: one statement (one round trip, one commit) each.

Writable CTEs let a task's completion, the cancellation of its fan-out siblings, the release of
its dependents and the run's bookkeeping happen in a single statement, as pgflow's
`complete_task` does. Every statement first locks its run and checks the writer's lease (the
`run` CTE, as `queue.hold` does): when the lease is lost, the statement changes nothing and
returns false. Every value is a bind parameter.
"""

from __future__ import annotations

from app.store.runs import UNFINISHED_TASK_VALUES

UNFINISHED = "(" + ", ".join(f"'{status}'" for status in UNFINISHED_TASK_VALUES) + ")"

# Starting a run: the flow's version, then the run with a pending task per step.
LATEST_VERSION = """
SELECT id, version FROM flow_definitions WHERE name = $1 ORDER BY version DESC LIMIT 1
"""
GIVEN_VERSION = "SELECT id, version FROM flow_definitions WHERE name = $1 AND version = $2"

# $1 run_id, $2 flow_name, $3 definition_id, $4 status, $5 inputs, $6 step ids in order,
# $7 idempotency key, $8 created_at, $9 lease owner, $10 lease expiry, $11 latest only, $12 the
# id of the user who starts it. Its
# `Creation`: nothing is written when the key is taken or the version stale (a newer one
# exists, with $11, or it was deleted).
CREATE_RUN = """
WITH version AS (
    SELECT definition.id FROM flow_definitions AS definition
    WHERE definition.id = $3 AND NOT ($11 AND EXISTS (
        SELECT 1 FROM flow_definitions AS newer
        WHERE newer.name = definition.name AND newer.version > definition.version
    ))
), run AS (
    INSERT INTO flow_runs (id, flow_name, definition_id, status, inputs, remaining_steps,
        idempotency_key, created_at, lease_owner, lease_expires_at, created_by)
    SELECT $1, $2, version.id, $4, $5::jsonb, cardinality($6::text[]), $7, $8, $9, $10, $12
    FROM version
    ON CONFLICT (idempotency_key, flow_name, created_by) DO NOTHING
    RETURNING id
), tasks AS (
    INSERT INTO task_runs (run_id, step_id, task_index, status, attempts)
    SELECT run.id, step.id, 0, 'pending', 0
    FROM run, unnest($6::text[]) WITH ORDINALITY AS step(id, position)
    ORDER BY step.position
)
SELECT CASE WHEN EXISTS (SELECT 1 FROM run) THEN 'created'
    WHEN EXISTS (SELECT 1 FROM version) THEN 'key taken' ELSE 'stale' END
"""

# The engine's transitions, each: $1 run_id, $2 lease owner (the writer), $3 now.
_HOLD = """
WITH run AS (
    SELECT id FROM flow_runs
    WHERE id = $1 AND lease_owner = $2 AND status = 'running' AND lease_expires_at > $3
    FOR UPDATE
)"""

# $4 started_at, $5 remaining_steps, $6 ready step ids
START_FRESH_RUN = f"""{_HOLD}, started AS (
    UPDATE flow_runs
    SET started_at = $4, finished_at = NULL, outputs = NULL, error = NULL, remaining_steps = $5
    WHERE id = (SELECT id FROM run)
), ready AS (
    UPDATE task_runs
    SET status = 'queued', available_at = $4
    WHERE run_id = (SELECT id FROM run) AND step_id = ANY($6::text[]) AND task_index = 0
        AND status IN {UNFINISHED}
)
SELECT EXISTS (SELECT 1 FROM run)
"""

# A fan-out's elements 1..$5-1 (element 0 is the step's own row). $4 step_id, $5 count
EXPAND_TASKS = f"""{_HOLD}, expanded AS (
    INSERT INTO task_runs (run_id, step_id, task_index, status, attempts)
    SELECT id, $4, index, 'queued', 0 FROM run, generate_series(1, $5 - 1) AS index
)
SELECT EXISTS (SELECT 1 FROM run)
"""

# A task still running after the start-mark delay. $4 step_id, $5 task_index, $6 attempts,
# $7 started_at
START_TASK = f"""{_HOLD}, started AS (
    UPDATE task_runs
    SET status = CASE WHEN status IN {UNFINISHED} THEN 'running' ELSE status END,
        attempts = $6, started_at = COALESCE(started_at, $7), lease_owner = $2
    WHERE run_id = (SELECT id FROM run) AND step_id = $4 AND task_index = $5
)
SELECT EXISTS (SELECT 1 FROM run)
"""

# The task's own row. $4 step_id, $5 task_index, $6 status, $7 outputs, $8 error,
# $9 finished_at, $10 attempts (or NULL), $11 started_at (or NULL).
_FINISHED = f"""{_HOLD}, finished AS (
    UPDATE task_runs
    SET status = $6, outputs = $7::jsonb, error = $8::jsonb, finished_at = $9,
        attempts = COALESCE($10, attempts), started_at = COALESCE(started_at, $11),
        lease_owner = $2
    WHERE run_id = (SELECT id FROM run) AND step_id = $4 AND task_index = $5
)"""

# $12 released step ids, $13 steps finished (0|1)
FINISH_TASK = f"""{_FINISHED}, siblings AS (
    UPDATE task_runs
    SET status = 'cancelled', finished_at = $9
    WHERE run_id = (SELECT id FROM run) AND step_id = $4 AND task_index <> $5
        AND $6 = 'failed' AND status IN {UNFINISHED}
), released AS (
    UPDATE task_runs
    SET status = 'queued', available_at = $9
    WHERE run_id = (SELECT id FROM run) AND step_id = ANY($12::text[]) AND task_index = 0
        AND status = 'pending'
), counted AS (
    UPDATE flow_runs SET remaining_steps = remaining_steps - $13 WHERE id = (SELECT id FROM run)
)
SELECT EXISTS (SELECT 1 FROM run)
"""

# As FINISH_TASK for the task that ends its run: $12 run status, $13 run outputs,
# $14 run error; every other unfinished task of the run is cancelled, the lease is let go.
FINISH_TASK_AND_RUN = f"""{_FINISHED}, unfinished AS (
    UPDATE task_runs
    SET status = 'cancelled', finished_at = $9
    WHERE run_id = (SELECT id FROM run) AND NOT (step_id = $4 AND task_index = $5)
        AND status IN {UNFINISHED}
), ended AS (
    UPDATE flow_runs
    SET status = $12, outputs = $13::jsonb, error = $14::jsonb, finished_at = $9,
        remaining_steps = 0, lease_owner = NULL, lease_expires_at = NULL
    WHERE id = (SELECT id FROM run)
)
SELECT EXISTS (SELECT 1 FROM run)
"""
