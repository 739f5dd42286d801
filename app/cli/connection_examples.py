"""A working example flow for each connection plugin (`flowlang connection example PLUGIN`).

Each is a complete definition that uses only built-in tasks, takes its server's address from
the environment (`${env...}`, as the tutorial's flow does) and writes only what its `prefix`
input names, or nothing that outlives the run, so that it can be tried on any server.
"""

from __future__ import annotations

POSTGRES = """\
# Try it: DATABASE_URL=postgresql://postgres:secret@localhost:5432/users_db \\
#   python -m app run postgres_example.yaml --inputs '{"note": "hello"}'
flow: PostgresExample
description: Query PostgreSQL, and run statements in one transaction that leaves nothing behind

connections:
  db:
    type: postgres
    url: ${env.DATABASE_URL}
    pool_size: 5
    timeout: 30

inputs:
  - name: note
    type: string
    required: true

steps:
  # One query; values are passed as $1, $2... in `params`, never spliced into the SQL.
  - pg_query:
      id: server
      connection: db
      query: "SELECT current_database() AS database, $1::text AS note"
      params: [${inputs.note}]
      outputs: [rows]

  # All or nothing; the temporary table is dropped when the transaction commits.
  - pg_transaction:
      id: notes
      connection: db
      queries:
        - query: "CREATE TEMP TABLE example_notes (note text) ON COMMIT DROP"
        - query: "INSERT INTO example_notes (note) VALUES ($1), ($1)"
          params: [${inputs.note}]
        - query: "SELECT count(*) AS notes FROM example_notes"
      outputs: [results]

outputs:
  - name: database
    value: ${server.rows[0].database}
  - name: note
    value: ${server.rows[0].note}
  - name: notes_written
    value: ${notes.results[2].rows[0].notes}
"""

REDIS = """\
# Try it: REDIS_URL=redis://localhost:6379/0 \\
#   python -m app run redis_example.yaml --inputs '{"page": "home"}'
flow: RedisExample
description: Cache a value in Redis, read it back and count views

connections:
  cache:
    type: redis
    url: ${env.REDIS_URL}
    max_connections: 10
    decode_responses: true

inputs:
  - name: page
    type: string
    required: true
  - name: prefix
    type: string
    default: "example"
    description: Every key this flow writes starts with it

steps:
  - redis_exists:
      id: check
      connection: cache
      keys: ["${inputs.prefix}:last_page"]
      outputs: [exists]

  - redis_set:
      id: remember
      connection: cache
      key: "${inputs.prefix}:last_page"
      value: {page: "${inputs.page}"}
      ex: 3600
      outputs: [success]

  - redis_get:
      id: read_back
      connection: cache
      key: "${inputs.prefix}:last_page"
      outputs: [value]

  - redis_incr:
      id: count
      connection: cache
      key: "${inputs.prefix}:views:${inputs.page}"
      amount: 1
      outputs: [value]

outputs:
  - name: was_cached
    value: ${check.exists}
  - name: cached
    value: ${read_back.value}
  - name: views
    value: ${count.value}
"""

HTTP = """\
# Try it against Flow Manager itself (python -m app serve): API_URL=http://127.0.0.1:8000 \\
#   python -m app run http_example.yaml
flow: HttpExample
description: Call an HTTP API through a pooled connection with a base URL

connections:
  api:
    type: http
    base_url: ${env.API_URL}
    timeout: 10

inputs:
  - name: path
    type: string
    default: /health

steps:
  - http_request:
      id: call
      connection: api
      method: GET
      path: ${inputs.path}
      expect_status: 200
      outputs: [status_code, json]

outputs:
  - name: status_code
    value: ${call.status_code}
  - name: answer
    value: ${call.json}
"""

EXAMPLES: dict[str, str] = {"postgres": POSTGRES, "redis": REDIS, "http": HTTP}
