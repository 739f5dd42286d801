"""Starting runs from SQL, in the caller's transaction (PostgreSQL): `flow_manager.start_run`.

Revision ID: 0011_sql_start_run
Revises: 0010_run_priority
Create Date: 2026-12-02

`flow_definitions.start_spec` (every database): what starting a run of the version needs, as
JSON SQL reads (`app/dsl/start_spec.py`); the service writes it with each new version, and this
migration describes the versions stored before it with the service's own parser (a version it
cannot parse keeps none: the function refuses it clearly).

On PostgreSQL only, the schema `flow_manager` and its functions (docs/architecture.md,
"Starting runs from SQL"):

    flow_manager.start_run(flow text, inputs jsonb DEFAULT '{}', idempotency_key text DEFAULT
        NULL, priority integer DEFAULT 0, version integer DEFAULT NULL, started_by text
        DEFAULT NULL) RETURNS text                        -- the run's id
    flow_manager.start_runs(flow text, inputs jsonb (an array: one object per run), priority
        integer DEFAULT 0, version integer DEFAULT NULL, started_by text DEFAULT NULL)
        RETURNS text[]                                    -- their ids, in order

They check the inputs as the service does and insert queued runs as `POST /flows/{name}/runs`
does (`app/store/queries/runs.py`, `PG_CREATE`), then notify the workers, which PostgreSQL
delivers only when the caller's transaction commits. A refusal raises an error whose SQLSTATE
says what it is (`app/store/enqueue.py` maps them to Python types) and aborts the caller's
transaction. The functions run as the caller (SECURITY INVOKER) with the search path the
tables were found on, whatever the caller's.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import context, op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0011_sql_start_run"
down_revision: str | Sequence[str] | None = "0010_run_priority"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "flow_definitions",
        sa.Column("start_spec", sa.JSON().with_variant(JSONB(), "postgresql"), nullable=True),
    )
    if not context.is_offline_mode():  # `--sql` prints DDL; describing versions reads them
        _describe_stored_versions()
    if op.get_context().dialect.name == "postgresql":
        schema = (  # where the tables are; a printed script assumes the default
            "public"
            if context.is_offline_mode()
            else op.get_bind().execute(sa.text("SELECT current_schema()")).scalar_one()
        )
        for statement in _functions(schema):
            op.execute(sa.text(statement))


def downgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        op.execute(sa.text("DROP SCHEMA flow_manager CASCADE"))
    with op.batch_alter_table("flow_definitions") as batch:
        batch.drop_column("start_spec")


def _describe_stored_versions() -> None:
    """`start_spec` for every stored version, from its source (`app/store/start_specs.py`); a
    version whose text cannot be read keeps none: the function refuses it clearly."""
    # Imported here: Alembic imports every migration for any command, and this one needs the
    # parser only when it upgrades.
    from app.store.start_specs import described  # noqa: PLC0415

    bind = op.get_bind()
    definitions = sa.table(
        "flow_definitions",
        sa.column("id", sa.BigInteger),
        sa.column("source", sa.Text),
        sa.column("format", sa.String),
        sa.column("start_spec", sa.JSON().with_variant(JSONB(), "postgresql")),
    )
    rows = bind.execute(sa.select(definitions.c.id, definitions.c.source, definitions.c.format))
    for definition_id, source, format in rows.all():
        spec = described(source, format)
        if spec is not None:
            bind.execute(
                definitions.update()
                .where(definitions.c.id == definition_id)
                .values(start_spec=spec)
            )


def _functions(schema: str) -> list[str]:
    """The schema and its functions, finding the tables in `schema`. No `:name` in the text:
    each statement goes through `sa.text`, which would take it for a parameter."""
    search_path = '"' + schema.replace('"', '""') + '", pg_temp'
    return [statement.replace("@SEARCH_PATH@", search_path) for statement in _STATEMENTS]


_STATEMENTS = [
    r"""
CREATE SCHEMA flow_manager
""",
    r"""
COMMENT ON SCHEMA flow_manager IS
    'Flow Manager: start runs in your own transaction, '
    'e.g. SELECT flow_manager.start_run(''Name'', ''{"n": 1}'')'
""",
    # Errors: the SQLSTATE says which (app/store/enqueue.py maps them to Python types).
    r"""
CREATE FUNCTION flow_manager._refuse(code text, message text, detail text DEFAULT NULL)
RETURNS void LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    IF detail IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = code, MESSAGE = message;
    END IF;
    RAISE EXCEPTION USING ERRCODE = code, MESSAGE = message, DETAIL = detail;
END
$$
""",
    # A database setting, or its default: ALTER DATABASE ... SET flow_manager.<name> = ...
    r"""
CREATE FUNCTION flow_manager._limit(name text, fallback integer)
RETURNS integer LANGUAGE sql STABLE AS $$
    SELECT coalesce(nullif(current_setting('flow_manager.' || name, true), '')::integer, fallback)
$$
""",
    # Text as Python's repr() writes it, as the service's messages quote names and values.
    r"""
CREATE FUNCTION flow_manager._repr(value text)
RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT quote || replace(replace(replace(replace(replace(
            value, '\', '\\'), quote, '\' || quote), E'\n', '\n'), E'\r', '\r'), E'\t', '\t')
        || quote
    FROM (SELECT CASE WHEN strpos(value, '''') > 0 AND strpos(value, '"') = 0 THEN '"'
        ELSE '''' END AS quote) AS chosen
$$
""",
    # A JSON value as Python's repr() writes it (an object's keys in JSONB's order).
    r"""
CREATE FUNCTION flow_manager._repr_json(value jsonb)
RETURNS text LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    RETURN CASE jsonb_typeof(value)
        WHEN 'null' THEN 'None'
        WHEN 'boolean' THEN CASE WHEN value::boolean THEN 'True' ELSE 'False' END
        WHEN 'string' THEN flow_manager._repr(value #>> '{}')
        WHEN 'array' THEN '[' || coalesce((
            SELECT string_agg(flow_manager._repr_json(item), ', ' ORDER BY ordinal)
            FROM jsonb_array_elements(value) WITH ORDINALITY AS element(item, ordinal)), '') || ']'
        WHEN 'object' THEN '{' || coalesce((
            SELECT string_agg(flow_manager._repr(key) || ': ' || flow_manager._repr_json(item),
                ', ')
            FROM jsonb_each(value) AS member(key, item)), '') || '}'
        ELSE value::text END;
END
$$
""",
    # A refused value as the service shows it: repr(), cut at 60 characters.
    r"""
CREATE FUNCTION flow_manager._shown(value jsonb)
RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN length(written) <= 60 THEN written ELSE left(written, 57) || '...' END
    FROM (SELECT flow_manager._repr_json(value) AS written) AS shown
$$
""",
    # `("runs", 3, "inputs", "n")` -> `runs[3].inputs.n`, as app.errors.format_loc writes it.
    r"""
CREATE FUNCTION flow_manager._loc(loc jsonb)
RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT coalesce(nullif(string_agg(CASE
        WHEN jsonb_typeof(part) = 'number' THEN '[' || (part #>> '{}') || ']'
        WHEN ordinal = 1 THEN part #>> '{}'
        ELSE '.' || (part #>> '{}') END, '' ORDER BY ordinal), ''), '<definition>')
    FROM jsonb_array_elements(loc) WITH ORDINALITY AS item(part, ordinal)
$$
""",
    # InputValidationError: the message the service gives, the problems as JSON in DETAIL.
    r"""
CREATE FUNCTION flow_manager._refuse_inputs(problems jsonb)
RETURNS void LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    summary text;
BEGIN
    SELECT string_agg(flow_manager._loc(problem -> 'loc') || ': ' || (problem ->> 'msg'), '; '
        ORDER BY ordinal)
    INTO summary
    FROM jsonb_array_elements(problems) WITH ORDINALITY AS item(problem, ordinal);
    PERFORM flow_manager._refuse('FM010',
        'The run''s inputs do not match the flow''s declared inputs: ' || summary,
        problems::text);
END
$$
""",
    # One input as its declared type, as app/dsl/inputs.py coerces it; NULL: not of the type.
    r"""
CREATE FUNCTION flow_manager._coerced(kind text, value jsonb)
RETURNS jsonb LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    given text := jsonb_typeof(value);
    written text;
    number double precision;
BEGIN
    IF kind = 'any' OR kind = given AND kind IN ('string', 'object', 'array', 'boolean') THEN
        RETURN value;
    END IF;
    IF given = 'string' THEN
        written := btrim(value #>> '{}', E' \t\n\r\f\v');
    END IF;
    IF kind = 'boolean' THEN
        IF lower(written) IN ('true', 'false') THEN
            RETURN to_jsonb(lower(written) = 'true');
        END IF;
        RETURN NULL;
    END IF;
    IF kind = 'integer' AND given = 'number' THEN
        IF value::numeric = trunc(value::numeric) THEN
            RETURN to_jsonb(trunc(value::numeric));
        END IF;
        RETURN NULL;
    END IF;
    IF kind IN ('integer', 'number') AND written ~ '^[+-]?[0-9]{1,100}$' THEN
        RETURN to_jsonb(written::numeric);
    END IF;
    IF kind <> 'number' THEN
        RETURN NULL;
    END IF;
    IF given = 'number' THEN
        RETURN value;
    END IF;
    -- Python's float() of text: decimal or exponent notation, finite.
    IF written IS NULL OR written !~* '^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)(e[+-]?[0-9]+)?$' THEN
        RETURN NULL;
    END IF;
    BEGIN
        number := written::double precision;
    EXCEPTION WHEN numeric_value_out_of_range THEN
        IF written !~* 'e-' THEN
            RETURN NULL;  -- too large: infinite for Python
        END IF;
        number := 0;  -- too small: 0.0 for Python
    END;
    IF number = trunc(number) AND abs(number) < 1e16 THEN
        RETURN (trunc(number)::numeric::text || '.0')::jsonb;  -- a float, as JSON writes it
    END IF;
    RETURN to_jsonb(number);
END
$$
""",
    # The run's inputs as stored: checked against the version's declared inputs, defaults
    # applied (app/dsl/inputs.py, validate_inputs); every problem at once, placed under `place`.
    r"""
CREATE FUNCTION flow_manager._checked_inputs(spec jsonb, given jsonb, place jsonb)
RETURNS jsonb LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    declared jsonb;
    name text;
    value jsonb;
    coerced jsonb;
    checked jsonb := '{}';
    problems jsonb := '[]';
    known text;
BEGIN
    IF given IS NULL OR jsonb_typeof(given) = 'null' THEN
        given := '{}';
    END IF;
    IF jsonb_typeof(given) <> 'object' THEN
        PERFORM flow_manager._refuse_inputs(jsonb_build_array(jsonb_build_object(
            'loc', place || '["inputs"]',
            'msg', 'the inputs must be an object, got ' || flow_manager._shown(given),
            'type', 'type_error')));
    END IF;
    FOR declared IN SELECT item FROM jsonb_array_elements(spec -> 'inputs') AS item LOOP
        name := declared ->> 'name';
        IF NOT given ? name THEN
            IF (declared ->> 'required')::boolean THEN
                problems := problems || jsonb_build_object(
                    'loc', place || jsonb_build_array('inputs', name),
                    'msg', 'missing required input ' || flow_manager._repr(name),
                    'type', 'missing');
            END IF;
            checked := checked || jsonb_build_object(name, CASE
                WHEN (declared ->> 'has_default')::boolean THEN declared -> 'default'
                ELSE 'null'::jsonb END);
            CONTINUE;
        END IF;
        value := given -> name;
        IF jsonb_typeof(value) = 'null' AND NOT (declared ->> 'required')::boolean THEN
            coerced := value;  -- null is a value of every optional input
        ELSE
            coerced := flow_manager._coerced(declared ->> 'type', value);
        END IF;
        IF coerced IS NULL THEN
            problems := problems || jsonb_build_object(
                'loc', place || jsonb_build_array('inputs', name),
                'msg', format('input %s must be %s, got %s', flow_manager._repr(name),
                    CASE declared ->> 'type'
                        WHEN 'string' THEN 'a string' WHEN 'integer' THEN 'an integer'
                        WHEN 'number' THEN 'a number' WHEN 'boolean' THEN 'a boolean'
                        WHEN 'object' THEN 'an object' WHEN 'array' THEN 'an array'
                        ELSE 'any value' END,
                    flow_manager._shown(value)),
                'type', 'type_error');
        ELSE
            checked := checked || jsonb_build_object(name, coerced);
        END IF;
    END LOOP;
    FOR name IN SELECT key FROM jsonb_object_keys(given) AS key LOOP
        CONTINUE WHEN spec -> 'inputs' @> jsonb_build_array(jsonb_build_object('name', name));
        IF (spec ->> 'strict_inputs')::boolean THEN
            SELECT coalesce(string_agg(item ->> 'name', ', ' ORDER BY item ->> 'name' COLLATE "C"),
                'none')
            INTO known
            FROM jsonb_array_elements(spec -> 'inputs') AS item;
            problems := problems || jsonb_build_object(
                'loc', place || jsonb_build_array('inputs', name),
                'msg', format('unknown input %s (inputs: %s)', flow_manager._repr(name), known),
                'type', 'extra');
        ELSE
            checked := checked || jsonb_build_object(name, given -> name);
        END IF;
    END LOOP;
    IF jsonb_array_length(problems) > 0 THEN
        PERFORM flow_manager._refuse_inputs(problems);
    END IF;
    RETURN checked;
END
$$
""",
    # The run's concurrency key as the store keeps it (`<flow>` or `<flow>:<key>`,
    # app/domain/concurrency.py), its `key` rendered from the checked inputs as the service
    # renders it (app/dsl/models.py, Concurrency.key_for); NULL: the flow declares no limit.
    r"""
CREATE FUNCTION flow_manager._concurrency_key(spec jsonb, flow text, inputs jsonb)
RETURNS text LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    limits jsonb := spec -> 'concurrency';
    part jsonb;
    value jsonb;
    written text := '';
    number double precision;
BEGIN
    IF limits IS NULL OR jsonb_typeof(limits) = 'null' THEN
        RETURN NULL;
    END IF;
    IF jsonb_typeof(limits -> 'key') = 'null' AND NOT (limits ->> 'computed')::boolean THEN
        RETURN flow;
    END IF;
    IF (limits ->> 'computed')::boolean THEN
        PERFORM flow_manager._refuse('FM020', format(
            'flow %s: its concurrency.key %s computes a value, which only the service does: '
            'start its runs through the API (POST /flows/%s/runs), or make the key text and '
            'plain reads of inputs', flow_manager._repr(flow), limits ->> 'written', flow));
    END IF;
    FOR part IN SELECT item FROM jsonb_array_elements(limits -> 'key') AS item LOOP
        IF jsonb_typeof(part) = 'string' THEN
            written := written || (part #>> '{}');
            CONTINUE;
        END IF;
        value := inputs #> ARRAY(SELECT jsonb_array_elements_text(part));
        IF value IS NULL THEN
            PERFORM flow_manager._refuse_inputs(jsonb_build_array(jsonb_build_object(
                'loc', '[]'::jsonb,
                'msg', format('the flow''s concurrency.key cannot be rendered: %s has no value',
                    flow_manager._loc('["inputs"]'::jsonb || part)),
                'type', 'concurrency_key')));
        END IF;
        IF jsonb_typeof(value) IN ('object', 'array') THEN
            PERFORM flow_manager._refuse('FM020', format(
                'flow %s: its concurrency.key %s reads %s, an %s, which only the service '
                'writes as a key: start its runs through the API', flow_manager._repr(flow),
                limits ->> 'written', flow_manager._loc('["inputs"]'::jsonb || part),
                CASE jsonb_typeof(value) WHEN 'object' THEN 'object' ELSE 'array' END));
        END IF;
        IF jsonb_typeof(value) = 'string' THEN
            written := written || (value #>> '{}');
        ELSIF jsonb_typeof(value) <> 'number' OR value::text ~ '^-?[0-9]+$' THEN
            written := written || value::text;  -- true, false, null, an integer
        ELSE  -- a float, as Python writes it
            number := value::numeric::double precision;
            written := written || CASE WHEN number = trunc(number) AND abs(number) < 1e16
                THEN trunc(number)::numeric::text || '.0' ELSE number::text END;
        END IF;
    END LOOP;
    IF length(written) > 128 THEN
        PERFORM flow_manager._refuse_inputs(jsonb_build_array(jsonb_build_object(
            'loc', '[]'::jsonb,
            'msg', format('the flow''s concurrency.key renders to %s characters; at most 128 '
                'are allowed', to_char(length(written), 'FM999,999,999,999')),
            'type', 'concurrency_key')));
    END IF;
    RETURN flow || ':' || written;
END
$$
""",
    # The version to start: the latest, or `version`; one that has no description is refused.
    r"""
CREATE FUNCTION flow_manager._version(flow text, wanted integer)
RETURNS flow_definitions LANGUAGE plpgsql STABLE SET search_path = @SEARCH_PATH@ AS $$
DECLARE
    found flow_definitions;
BEGIN
    IF wanted IS NULL THEN
        SELECT * INTO found FROM flow_definitions AS d WHERE d.name = flow
        ORDER BY d.version DESC LIMIT 1;
    ELSE
        SELECT * INTO found FROM flow_definitions AS d WHERE d.name = flow AND d.version = wanted;
    END IF;
    IF found.id IS NULL THEN
        IF wanted IS NOT NULL AND EXISTS (SELECT 1 FROM flow_definitions AS d WHERE d.name = flow)
        THEN
            PERFORM flow_manager._refuse('FM002',
                format('flow %s has no version %s', flow_manager._repr(flow), wanted));
        END IF;
        PERFORM flow_manager._refuse('FM001',
            'no flow is registered under the name ' || flow_manager._repr(flow));
    END IF;
    IF found.start_spec IS NULL OR (found.start_spec ->> 'format') IS DISTINCT FROM '1' THEN
        PERFORM flow_manager._refuse('FM020', format(
            'version %s of flow %s was stored without what starting its runs from SQL needs '
            '(its definition could not be read when the store was migrated): register the '
            'flow again, or start its runs through the API', found.version,
            flow_manager._repr(flow)));
    END IF;
    RETURN found;
END
$$
""",
    # Who starts the runs: the user named, else the local admin as the service picks it (the
    # user `admin`, else the oldest admin). A database connection is trusted like an admin.
    r"""
CREATE FUNCTION flow_manager._starter(wanted text)
RETURNS text LANGUAGE plpgsql STABLE SET search_path = @SEARCH_PATH@ AS $$
DECLARE
    found text;
BEGIN
    IF wanted IS NOT NULL THEN
        SELECT u.id INTO found FROM users AS u WHERE u.username = wanted AND u.deleted_at IS NULL;
        IF found IS NULL THEN
            PERFORM flow_manager._refuse('FM003',
                'no user is named ' || flow_manager._repr(wanted));
        END IF;
        RETURN found;
    END IF;
    SELECT u.id INTO found FROM users AS u WHERE u.is_admin AND u.deleted_at IS NULL
    ORDER BY u.username = 'admin' DESC, u.created_at LIMIT 1;
    IF found IS NULL THEN
        PERFORM flow_manager._refuse('FM003',
            'no admin user exists to start runs as: name a user with started_by');
    END IF;
    RETURN found;
END
$$
""",
    # The queued runs, one pending task per step in order, their concurrency keys' lock rows
    # (as queries/runs.py, PG_CREATE); the workers notified when the transaction commits. The
    # ids of the runs created: none when the idempotency key was taken meanwhile.
    r"""
CREATE FUNCTION flow_manager._insert_runs(
    in_definition bigint, in_flow text, in_steps text[], in_ids text[], in_inputs jsonb[],
    in_keys text[], in_limit integer, in_creator text, in_priority integer,
    in_idempotency_key text)
RETURNS text[] LANGUAGE plpgsql VOLATILE SET search_path = @SEARCH_PATH@ AS $$
DECLARE
    created text[];
    at timestamptz := clock_timestamp();
BEGIN
    WITH run AS (
        INSERT INTO flow_runs (id, flow_name, definition_id, status, inputs, remaining_steps,
            idempotency_key, created_at, created_by, priority, concurrency_key,
            concurrency_limit)
        SELECT item.id, in_flow, in_definition, 'queued', item.inputs, cardinality(in_steps),
            in_idempotency_key, at, in_creator, in_priority, item.key,
            CASE WHEN item.key IS NULL THEN NULL ELSE in_limit END
        FROM unnest(in_ids, in_inputs, in_keys)
            WITH ORDINALITY AS item(id, inputs, key, position)
        ORDER BY item.position
        ON CONFLICT (idempotency_key, flow_name, created_by) DO NOTHING
        RETURNING id
    )
    SELECT coalesce(array_agg(id), '{}') INTO created FROM run;
    IF cardinality(created) = 0 THEN
        RETURN created;
    END IF;
    INSERT INTO task_runs (run_id, step_id, task_index, status, attempts)
    SELECT item.id, step.id, 0, 'pending', 0
    FROM unnest(in_ids) WITH ORDINALITY AS item(id, position),
        unnest(in_steps) WITH ORDINALITY AS step(id, position)
    WHERE item.id = ANY(created)
    ORDER BY item.position, step.position;
    INSERT INTO concurrency_keys (name)
    SELECT DISTINCT key FROM unnest(in_keys) AS key WHERE key IS NOT NULL ORDER BY key
    ON CONFLICT (name) DO NOTHING;
    PERFORM pg_notify('flow_manager_runs_queued', '');
    RETURN created;
END
$$
""",
    # What a call may ask for, checked before anything is read.
    r"""
CREATE FUNCTION flow_manager._check_request(priority integer, idempotency_key text)
RETURNS void LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    IF priority IS NULL OR priority NOT BETWEEN -1000 AND 1000 THEN
        PERFORM flow_manager._refuse('FM011', format(
            'priority must be an integer from -1000 to 1000, got %s', coalesce(priority::text,
            'null')));
    END IF;
    IF idempotency_key IS NOT NULL AND idempotency_key !~ '^[\x20-\x7e]{1,255}$' THEN
        PERFORM flow_manager._refuse('FM011',
            'an idempotency key is 1 to 255 printable ASCII characters');
    END IF;
END
$$
""",
    r"""
CREATE FUNCTION flow_manager._check_size(inputs jsonb, place text)
RETURNS void LANGUAGE plpgsql STABLE AS $$
DECLARE
    allowed integer := flow_manager._limit('max_input_bytes', 1048576);
    size integer := octet_length(inputs::text);
BEGIN
    IF size > allowed THEN
        PERFORM flow_manager._refuse('FM011', format(
            '%s take %s bytes as JSON; the database setting flow_manager.max_input_bytes '
            'allows %s', place, size, allowed));
    END IF;
END
$$
""",
    r"""
CREATE FUNCTION flow_manager.start_run(
    flow text,
    inputs jsonb DEFAULT '{}',
    idempotency_key text DEFAULT NULL,
    priority integer DEFAULT 0,
    version integer DEFAULT NULL,
    started_by text DEFAULT NULL)
RETURNS text LANGUAGE plpgsql VOLATILE SET search_path = @SEARCH_PATH@ AS $$
#variable_conflict use_column
DECLARE
    chosen flow_definitions;
    creator text;
    existing text;
    checked jsonb;
    created text[];
BEGIN
    PERFORM flow_manager._check_request(start_run.priority, start_run.idempotency_key);
    PERFORM flow_manager._check_size(start_run.inputs, 'the inputs');
    chosen := flow_manager._version(start_run.flow, start_run.version);
    creator := flow_manager._starter(start_run.started_by);
    IF start_run.idempotency_key IS NOT NULL THEN  -- a repeated call: the first one's run
        SELECT r.id INTO existing FROM flow_runs AS r
        WHERE r.idempotency_key = start_run.idempotency_key AND r.flow_name = start_run.flow
            AND r.created_by = creator;
        IF existing IS NOT NULL THEN
            RETURN existing;
        END IF;
    END IF;
    checked := flow_manager._checked_inputs(chosen.start_spec, start_run.inputs, '[]');
    created := flow_manager._insert_runs(
        chosen.id, start_run.flow,
        ARRAY(SELECT jsonb_array_elements_text(chosen.start_spec -> 'steps')),
        ARRAY[gen_random_uuid()::text], ARRAY[checked],
        ARRAY[flow_manager._concurrency_key(chosen.start_spec, start_run.flow, checked)],
        (chosen.start_spec #>> '{concurrency,limit}')::integer,
        creator, start_run.priority, start_run.idempotency_key);
    IF cardinality(created) = 0 THEN  -- an identical call committed first: its run
        SELECT r.id INTO existing FROM flow_runs AS r
        WHERE r.idempotency_key = start_run.idempotency_key AND r.flow_name = start_run.flow
            AND r.created_by = creator;
        RETURN existing;
    END IF;
    RETURN created[1];
END
$$
""",
    r"""
CREATE FUNCTION flow_manager.start_runs(
    flow text,
    inputs jsonb,
    priority integer DEFAULT 0,
    version integer DEFAULT NULL,
    started_by text DEFAULT NULL)
RETURNS text[] LANGUAGE plpgsql VOLATILE SET search_path = @SEARCH_PATH@ AS $$
#variable_conflict use_column
DECLARE
    allowed integer := flow_manager._limit('max_batch_runs', 1000);
    chosen flow_definitions;
    creator text;
    given jsonb;
    n integer;
    checked jsonb[] := '{}';
    keys text[] := '{}';
    ids text[] := '{}';
BEGIN
    PERFORM flow_manager._check_request(start_runs.priority, NULL);
    IF jsonb_typeof(start_runs.inputs) IS DISTINCT FROM 'array' THEN
        PERFORM flow_manager._refuse('FM011',
            'start_runs takes a JSON array of the runs'' inputs, one object per run');
    END IF;
    IF jsonb_array_length(start_runs.inputs) > allowed THEN
        PERFORM flow_manager._refuse('FM011', format(
            '%s runs in one batch; the database setting flow_manager.max_batch_runs allows %s',
            jsonb_array_length(start_runs.inputs), allowed));
    END IF;
    chosen := flow_manager._version(start_runs.flow, start_runs.version);
    creator := flow_manager._starter(start_runs.started_by);
    FOR given, n IN
        SELECT item, ordinality - 1 FROM jsonb_array_elements(start_runs.inputs)
            WITH ORDINALITY AS element(item, ordinality)
    LOOP
        PERFORM flow_manager._check_size(given, format('the inputs of runs[%s]', n));
        checked := checked || flow_manager._checked_inputs(
            chosen.start_spec, given, jsonb_build_array('runs', n));
        keys := keys || flow_manager._concurrency_key(
            chosen.start_spec, start_runs.flow, checked[n + 1]);
        ids := ids || gen_random_uuid()::text;
    END LOOP;
    IF cardinality(ids) > 0 THEN
        PERFORM flow_manager._insert_runs(
            chosen.id, start_runs.flow,
            ARRAY(SELECT jsonb_array_elements_text(chosen.start_spec -> 'steps')),
            ids, checked, keys, (chosen.start_spec #>> '{concurrency,limit}')::integer,
            creator, start_runs.priority, NULL);
    END IF;
    RETURN ids;
END
$$
""",
]
