"""No request, however hostile, makes any route answer 500.

Every route gets random bytes, empty bodies, deeply nested JSON, huge and non-finite numbers,
every field with every wrong type, unicode (NUL, lone surrogates, right-to-left marks, emoji),
YAML bombs and foreign tags, hostile path parameters, query strings, cursors and headers.
"""

from __future__ import annotations

import base64
import json
import random
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from tests.api.flows import GREET_JSON, GREET_YAML
from tests.api.support import api_settings, register, serve, snapshot

SEED = 20240601
WRONG_VALUES: list[Any] = [None, True, 0, -1, 1.5, 2**31, 2**63, -(2**63), "x", "", [], {}, [{}]]


def nested(depth: int) -> Any:
    value: Any = {"leaf": 1}
    for level in range(depth):
        value = {"n": value} if level % 2 else [value]
    return value


def raw_bodies() -> Iterator[bytes]:
    noise = random.Random(SEED)
    yield b""
    yield b"   "
    for size in (1, 16, 512, 4096):
        yield noise.randbytes(size)
    yield b"\xff\xfe\x00{"
    yield b"\xef\xbb\xbf{}"  # a byte-order mark
    yield b"[" * 100_000 + b"]" * 100_000
    yield b'{"a":' * 5000 + b"1" + b"}" * 5000
    yield b"1e999"
    yield b"9" * 5000
    yield b'{"inputs": {"n": 1e999}}'
    yield b'{"inputs": {"n": -1e999}, "wait": 1e-999}'
    yield b'{"inputs": {"n": ' + b"9" * 4000 + b"}}"
    yield b'{"inputs": {"n": ' + b"9" * 5000 + b"}}"
    yield b'{"inputs": {"n": NaN}, "wait": Infinity}'
    yield b'{"wait": NaN}'
    yield b'{"wait": 1e308, "inputs": {"name": "x"}}'
    yield b'{"inputs": {"name": "\\u0000"}}'
    yield b'{"inputs": {"\\u0000": 1}}'
    yield b'{"inputs": {"name": "\\ud800"}}'
    yield b'{"inputs": {"name": "\\udfff\\ud800"}}'
    yield '{"inputs": {"name": "\u202e😀 ∑ ﷽ \U0010ffff"}}'.encode()
    yield b'{"inputs": {"name": "x"}, "inputs": 5}'
    yield '{"inputs": {"name": "x"}}'.encode("utf-16")
    yield b'{"inputs": {"name": "x"}, "wait": false, "version": true}'
    yield b'{"inputs": {"name": "x"}, "wait": "5", "version": "1"}'
    yield b"null"
    yield b"true"
    yield b'"inputs"'
    yield b"[]"


def json_bodies() -> Iterator[Any]:
    yield {}
    yield {"inputs": {"name": "x"}}
    for field in ("inputs", "version", "wait", "flow"):
        for wrong in WRONG_VALUES:
            yield {field: wrong}
            yield {field: wrong, "inputs": {"name": "x"}}
    for depth in (50, 99, 100, 101, 150, 900):
        yield {"inputs": {"name": "x", "deep": nested(depth)}}
        yield {"flow": nested(depth)}
    yield {"inputs": {"name": "x" * 100_000}}
    yield {"inputs": {str(key): key for key in range(2000)}}
    yield {"inputs": {"name": "x", "times": 10**300}}
    yield {"inputs": {"name": "x", "times": "9" * 200}}
    yield {"inputs": {"name": "x"}, "version": 2**31}
    yield {"flow": {"id": "x", "start_task": "a", "tasks": [{"name": "a"}], "conditions": []}}
    yield {"flow": {"id": "\u0661", "start_task": [], "tasks": {}, "conditions": "x"}}
    yield {"flow": {"id": "a" * 300, "start_task": "a", "tasks": [], "conditions": []}}
    yield {"flow": {"id": "flow123", "start_task": "task1", "tasks": [{"name": "task1"}] * 2}}
    yield {"unexpected": "field"}


def billion_laughs() -> bytes:
    """Nine levels of anchors, each nine aliases of the one before: 9**9 nodes expanded."""
    lines = ["a: &a [x, x, x, x, x, x, x, x, x]"]
    for level in range(9):
        previous, current = chr(97 + level), chr(98 + level)
        lines.append(f"{current}: &{current} [" + ", ".join([f"*{previous}"] * 9) + "]")
    return "\n".join(lines).encode()


def definitions() -> Iterator[bytes]:
    yield GREET_YAML.encode()
    yield GREET_YAML.replace("Greet", "Gr\u00e9et").encode()
    yield GREET_YAML.replace("Say hello", "\u202e😀 \U0010ffff").encode()
    yield GREET_YAML.replace("Say hello", '"a\\0b"').encode()
    yield GREET_YAML.replace("Say hello", '"\\ud800"').encode()
    yield GREET_YAML.replace("Say hello", '"\\x00"').encode()
    yield b"flow: X\ndescription: \x00\nsteps: []\n"
    yield b"flow: !!python/object:os.system {}\n"
    yield b"flow: !!binary aGVsbG8=\n"
    yield billion_laughs()
    yield b"a: &a [*a]\n"
    yield b"- " * 5000 + b"x\n"
    yield b"{" * 5000
    yield b"[" * 100_000 + b"]" * 100_000
    for text in ("\u0000", "\ud800", "a\udfffb", "\u202e😀"):
        yield json.dumps(GREET_JSON | {"description": text}).encode()
        yield json.dumps(GREET_JSON | {"inputs": {text: {"type": "string"}}}).encode()
    yield json.dumps(
        {"flow": "J", "steps": [{"set": {"id": "a", "values": {"n": 1e999}}}]}
    ).encode()
    yield b'{"flow": "J", "steps": [{"set": {"id": "a", "values": {"n": NaN}}}]}'
    yield b'{"flow": "J", "steps": [{"set": {"id": "a", "values": {"n": ' + b"9" * 5000 + b"}}}]}"
    yield json.dumps({"flow": "J", "steps": [{"set": {"id": "a", "values": nested(120)}}]}).encode()
    yield json.dumps(
        {
            "flow": "J",
            "steps": [
                {"set": {"id": "a", "values": {"x": "${" + "(" * 500 + "1" + ")" * 500 + "}"}}}
            ],
        }
    ).encode()
    yield json.dumps(
        {"flow": "J", "steps": [{"set": {"id": "a", "if": "${9**9**9**9}", "values": {}}}]}
    ).encode()
    yield json.dumps({"flow": "a" * 1000, "steps": []}).encode()
    yield json.dumps(
        {"id": "flow123", "start_task": "t", "tasks": [{"name": "t"}], "conditions": []}
    ).encode()
    yield json.dumps({"flow": 5, "mode": [], "steps": {}, "inputs": 3, "outputs": 4}).encode()


def cursor(value: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode()


QUERIES = [
    "limit=-1",
    "limit=0",
    "limit=1e9",
    f"limit={2**70}",
    "limit=%00",
    "status=%00",
    "status=" + "x" * 5000,
    "flow=%00",
    "flow=" + "a" * 5000,
    "flow=%F0%9F%98%80",
    "cursor=%00",
    "cursor=" + "A" * 5000,
    "cursor=" + cursor(["2024-01-01T00:00:00+00:00", "\u0000"]),
    "cursor=" + cursor(["2024-01-01T00:00:00+00:00", "\ud800"]),
    "cursor=" + cursor(["9999-12-31T23:59:59-14:00", "x"]),
    "cursor=" + cursor(["0001-01-01T00:00:00+14:00", "x"]),
    "cursor=" + cursor(["2024-01-01T00:00:00", "x"]),
    "cursor=" + cursor([1, 2]),
    "cursor=" + cursor({"a": 1}),
    "cursor=" + cursor(["2024-01-01T00:00:00+00:00", "y" * 10_000]),
    "limit=5&limit=6&status=failed&status=queued",
]

NAMES = ["Greet", "%00", "a" * 5000, "..", "%2F", "%F0%9F%98%80", "Gr%C3%A9et", "%FF"]
VERSIONS = ["1", "0", "-1", str(2**31), str(2**70), "1.5", "x", "%00"]
RUN_IDS = ["%00", "x" * 5000, "00000000-0000-4000-8000-000000000000", "%FF", "{run}"]
HEADERS: list[dict[str, str] | dict[str, bytes]] = [
    {},
    {"Host": "evil.example"},
    {"Host": ""},
    {"Host": "localhost:99999"},
    {"Host": "[::1"},
    {"Host": "\u00e9xample".encode("latin-1")},
    {"Host": "localhost, evil.example"},
    {"Idempotency-Key": "k" * 5000},
    {"Idempotency-Key": ""},
    {"Idempotency-Key": "\t"},
    {"Idempotency-Key": "\u00e9".encode("latin-1")},
    {"Idempotency-Key": b"\xff\xfe"},
    {"Content-Length": "not-a-number"},
]
CONTENT_TYPES: list[str | bytes | None] = [
    "application/json",
    "application/yaml",
    "text/plain",
    "multipart/form-data; boundary=x",
    "application/x-www-form-urlencoded",
    "application/json; charset=latin-1",
    "application/json; charset=utf-16",
    "application/problem+json",
    "APPLICATION/YAML",
    "application/yaml, application/json",
    ";",
    "\u00e9/\u00e9".encode("latin-1"),
    None,
]


def body_targets() -> Iterator[tuple[str, str, bool]]:
    """(method, path, whether the path names the registered flow) of the routes with a body."""
    for template in ("/flows/{name}/execute", "/flows/{name}/runs", "/flows/{name}"):
        method = "PUT" if template == "/flows/{name}" else "POST"
        for name in NAMES:
            yield method, template.format(name=name), name == "Greet"
    for path in ("/flow/run", "/flows", "/flows/validate"):
        yield "POST", path, True


def requests(run_id: str) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for method, path, everything in body_targets():
        for content_type in CONTENT_TYPES:
            headers = {"content-type": content_type} if content_type else {}
            for raw in raw_bodies():
                yield method, path, {"content": raw, "headers": headers}
        if not everything:
            continue
        for value in json_bodies():
            yield method, path, {"json": value}
        for source in definitions():
            for content_type in ("application/yaml", "application/json"):
                yield method, path, {"content": source, "headers": {"content-type": content_type}}
        for extra_headers in HEADERS:
            yield method, path, {"json": {"inputs": {"name": "x"}}, "headers": extra_headers}
    for name in NAMES:
        for path in ("/flows/{name}", "/flows/{name}/versions"):
            yield "GET", path.format(name=name), {}
        yield "DELETE", f"/flows/{name}x", {}
        for version in VERSIONS:
            yield "GET", f"/flows/{name}/versions/{version}", {}
    for query in QUERIES:
        yield "GET", f"/runs?{query}", {}
    for candidate in [*RUN_IDS, run_id]:
        for template in ("/runs/{id}", "/runs/{id}/cancel", "/runs/{id}/retry", "/runs/{id}/fork"):
            method = "GET" if template == "/runs/{id}" else "POST"
            yield method, template.format(id=candidate), {"content": b"\xff\x00" * 32}
    for path in ("/health", "/ready", "/connections", "/docs", "/openapi.json", "/flows", "/runs"):
        yield "GET", path, {"content": b"\x00" * 10, "headers": {"content-type": "text/plain"}}


@pytest.fixture(params=["sqlite", "postgresql", "mariadb"])
async def hostile_client(
    request: pytest.FixtureRequest, tmp_path: Any
) -> AsyncIterator[httpx.AsyncClient]:
    from tests.databases import fresh_store_database

    async with fresh_store_database(request.param, tmp_path) as url:
        settings = api_settings(url, max_wait_seconds=2, execute_wait_seconds=2)
        async with serve(settings, raise_app_exceptions=False) as client:
            yield client


@pytest.mark.timeout(600)
async def test_no_route_answers_500_to_hostile_requests(
    hostile_client: httpx.AsyncClient,
) -> None:
    await register(hostile_client, GREET_YAML)
    run = await hostile_client.post("/flows/Greet/execute", json={"inputs": {"name": "x"}})
    failures: list[str] = []
    count = 0

    for method, path, arguments in requests(run.json()["run_id"]):
        count += 1
        response = await hostile_client.request(method, path, **arguments)
        if response.status_code >= 500:
            shown = {key: repr(value)[:120] for key, value in arguments.items()}
            failures.append(f"{method} {path[:80]} {shown} -> {response.status_code}")

    assert count > 1000
    assert not failures, f"{len(failures)} of {count} requests failed:\n" + "\n".join(failures[:40])


# What a page on another site can make a browser send without asking the service first.
FORM_TYPES = ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"]
BODY_ROUTES = [
    ("POST", "/flows", GREET_YAML.encode()),
    ("PUT", "/flows/Greet", GREET_YAML.encode()),
    ("POST", "/flows/validate", GREET_YAML.encode()),
    ("POST", "/flows/Greet/execute", b'{"inputs": {"name": "x"}}'),
    ("POST", "/flows/Greet/runs", b'{"inputs": {"name": "x"}}'),
    ("POST", "/flow/run", json.dumps({"flow": GREET_JSON}).encode()),
]


async def test_a_cross_site_form_post_changes_nothing(client: httpx.AsyncClient) -> None:
    await register(client, GREET_YAML)
    before = await snapshot(client)

    for method, path, body in BODY_ROUTES:
        for content_type in [*FORM_TYPES, None]:
            headers = {"content-type": content_type} if content_type else {}
            response = await client.request(method, path, content=body, headers=headers)

            assert response.status_code == 415, (method, path, content_type, response.text)
            named = content_type.split(";")[0] if content_type else "Content-Type header"
            assert named in response.json()["detail"]

    assert await snapshot(client) == before


WRONGLY_TYPED = [
    (path, field, value)
    for path in ("/flows/Greet/execute", "/flows/Greet/runs")
    for field, value in [("version", True), ("version", "1"), ("version", 1.5)]
] + [("/flows/Greet/execute", "wait", value) for value in (False, True, "5", [1])]


@pytest.mark.parametrize(("path", "field", "value"), WRONGLY_TYPED)
async def test_values_of_another_type_are_refused_not_coerced(
    client: httpx.AsyncClient, path: str, field: str, value: Any
) -> None:
    """`"wait": false` is not 0 seconds, `"version": "1"` is not version 1 (found by
    schemathesis): the body's fields are taken only as the types the schema names."""
    await register(client, GREET_YAML)
    before = await snapshot(client)

    response = await client.post(path, json={"inputs": {"name": "x"}, field: value})

    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"] == ["body", field]
    assert await snapshot(client) == before
