"""`http_request` against a real local HTTP server, with and without an http connection."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from app.connections.http import HttpConnection
from app.errors import InvalidConnectionError, NonRetryableError, TaskError
from app.tasks import TaskContext
from app.tasks.builtins.http import registry
from tests.http_server import LocalHttpServer, refused_url, serve


async def request(
    context: TaskContext, connection: httpx.AsyncClient | None = None, **arguments: Any
) -> dict[str, Any]:
    task = registry.get("http_request")
    return await task.invoke(arguments, context=context, connection=connection)


@pytest.fixture
async def api(http_server: LocalHttpServer) -> AsyncIterator[httpx.AsyncClient]:
    """An open http connection whose base_url has a path prefix and default headers."""
    plugin = HttpConnection(
        "api", {"base_url": http_server.url + "/api/v1", "headers": {"X-Api-Key": "secret"}}
    )
    await plugin.open()
    async with plugin.session() as client:
        yield client
    await plugin.close()


def test_spec() -> None:
    spec = registry.get("http_request").spec
    assert spec.builtin
    assert spec.outputs == frozenset({"status_code", "headers", "json", "text"})
    assert spec.connection_types == {"http"}
    assert not spec.connection_required
    assert not spec.required_params
    assert spec.optional_params == {
        "method",
        "url",
        "path",
        "headers",
        "params",
        "json",
        "body",
        "timeout",
        "expect_status",
    }


async def test_get_an_absolute_url_without_a_connection(
    context: TaskContext, http_server: LocalHttpServer
) -> None:
    outputs = await request(context, url=http_server.url + "/json")
    assert outputs["status_code"] == 200
    assert outputs["json"] == {"hello": "world"}
    assert outputs["text"] == '{"hello": "world"}'
    assert outputs["headers"]["content-type"] == "application/json; charset=utf-8"
    assert http_server.requests[-1].method == "GET"


async def test_a_body_that_is_not_json_gives_json_none(
    context: TaskContext, http_server: LocalHttpServer
) -> None:
    text = await request(context, url=http_server.url + "/text")
    assert (text["json"], text["text"]) == (None, "plain text")
    claimed = await request(context, url=http_server.url + "/bad-json")
    assert (claimed["json"], claimed["text"]) == (None, "not json {")


async def test_json_body_headers_and_query_params_are_sent(
    context: TaskContext, http_server: LocalHttpServer
) -> None:
    outputs = await request(
        context,
        method="post",
        url=http_server.url + "/users",
        json={"name": "Ada", "tags": ["x"]},
        headers={"X-Trace": "abc", "X-Number": 7},
        params={"page": 2, "q": "a b"},
    )
    echo = outputs["json"]
    assert echo["method"] == "POST"
    assert echo["path"] == "/users"
    assert echo["query"] == "page=2&q=a+b"
    assert echo["headers"]["x-trace"] == "abc"
    assert echo["headers"]["x-number"] == "7"
    assert echo["headers"]["content-type"] == "application/json"
    assert json.loads(echo["body"]) == {"name": "Ada", "tags": ["x"]}


async def test_a_text_body_is_sent_as_is(
    context: TaskContext, http_server: LocalHttpServer
) -> None:
    await request(context, method="PUT", url=http_server.url + "/raw", body="a=1&b=2")
    received = http_server.requests[-1]
    assert (received.method, received.body) == ("PUT", b"a=1&b=2")


async def test_a_path_is_relative_to_the_connections_base_url(
    context: TaskContext, http_server: LocalHttpServer, api: httpx.AsyncClient
) -> None:
    outputs = await request(context, api, path="/users/7", params={"full": "true"})
    echo = outputs["json"]
    assert echo["path"] == "/api/v1/users/7"  # the base_url's own path is kept
    assert echo["query"] == "full=true"
    assert echo["headers"]["x-api-key"] == "secret"  # the connection's default headers


async def test_a_relative_url_is_relative_to_the_connections_base_url(
    context: TaskContext, api: httpx.AsyncClient
) -> None:
    outputs = await request(context, api, url="items")
    assert outputs["json"]["path"] == "/api/v1/items"


async def test_step_headers_add_to_the_connections_headers(
    context: TaskContext, api: httpx.AsyncClient
) -> None:
    outputs = await request(context, api, path="/x", headers={"X-Extra": "1"})
    headers = outputs["json"]["headers"]
    assert (headers["x-api-key"], headers["x-extra"]) == ("secret", "1")


async def test_an_absolute_url_through_a_connection_goes_where_it_says(
    context: TaskContext, http_server: LocalHttpServer, api: httpx.AsyncClient
) -> None:
    outputs = await request(context, api, url=http_server.url + "/elsewhere")
    assert outputs["json"]["path"] == "/elsewhere"


@pytest.mark.parametrize("code", [200, 201, 204, 302, 399])
async def test_any_status_below_400_passes_by_default(
    context: TaskContext, http_server: LocalHttpServer, code: int
) -> None:
    outputs = await request(context, url=f"{http_server.url}/status/{code}")
    assert outputs["status_code"] == code


@pytest.mark.parametrize("code", [400, 404, 500, 503])
async def test_a_status_from_400_fails_with_a_retryable_task_error(
    context: TaskContext, http_server: LocalHttpServer, code: int
) -> None:
    url = f"{http_server.url}/status/{code}"
    with pytest.raises(TaskError) as raised:
        await request(context, method="delete", url=url)
    assert not isinstance(raised.value, NonRetryableError)
    assert raised.value.message == (
        f"DELETE {url} answered {code}, expected a status below 400: status {code}"
    )


async def test_expect_status_accepts_the_listed_statuses_only(
    context: TaskContext, http_server: LocalHttpServer
) -> None:
    base = http_server.url + "/status"
    assert (await request(context, url=base + "/404", expect_status=404))["status_code"] == 404
    passing = await request(context, url=base + "/409", expect_status=[200, 409])
    assert passing["status_code"] == 409
    with pytest.raises(TaskError, match=r"answered 200, expected one of \[201, 202\]"):
        await request(context, url=base + "/200", expect_status=[202, 201])


@pytest.mark.parametrize(
    ("arguments", "complaint"),
    [
        ({}, "exactly one of `url` and `path`"),
        ({"url": "http://127.0.0.1:1/a", "path": "/a"}, "exactly one of `url` and `path`"),
        ({"url": "/relative"}, "is not absolute"),
        ({"path": "/a"}, "needs an http `connection`|relative to a connection"),
        ({"url": "http://127.0.0.1:1/", "json": {}, "body": "x"}, "`json` or `body`"),
        ({"url": "http://127.0.0.1:1/", "body": {"a": 1}}, "`body` must be text"),
        ({"url": "http://127.0.0.1:1/", "expect_status": "200"}, "expect_status"),
        ({"url": "http://127.0.0.1:1/", "expect_status": []}, "expect_status"),
        ({"url": "http://127.0.0.1:1/", "expect_status": [200, True]}, "expect_status"),
        ({"url": "http://127.0.0.1:1/", "timeout": 0}, "`timeout`"),
        ({"url": "http://127.0.0.1:1/", "headers": ["a"]}, "`headers` must be a mapping"),
        ({"url": "http://127.0.0.1:1/", "method": ""}, "`method`"),
    ],
)
async def test_invalid_requests_are_non_retryable(
    context: TaskContext, arguments: dict[str, Any], complaint: str
) -> None:
    with pytest.raises(NonRetryableError, match=complaint):
        await request(context, **arguments)


async def test_an_absolute_path_through_a_connection_is_refused(
    context: TaskContext, api: httpx.AsyncClient
) -> None:
    with pytest.raises(NonRetryableError, match="relative path"):
        await request(context, api, path="http://example.org/x")


async def test_a_refused_connection_propagates_as_httpx_connect_error(
    context: TaskContext,
) -> None:
    with refused_url() as url, pytest.raises(httpx.ConnectError):
        await request(context, url=url + "/x")


async def test_a_slow_answer_times_out_with_httpx_read_timeout(
    context: TaskContext, http_server: LocalHttpServer
) -> None:
    with pytest.raises(httpx.ReadTimeout):
        await request(context, url=http_server.url + "/hang", timeout=0.2)


async def test_the_connections_timeout_applies_when_the_step_gives_none(
    context: TaskContext, http_server: LocalHttpServer
) -> None:
    plugin = HttpConnection("slow", {"base_url": http_server.url, "timeout": 0.2})
    await plugin.open()
    try:
        async with plugin.session() as client:
            with pytest.raises(httpx.ReadTimeout):
                await request(context, client, path="/hang")
    finally:
        await plugin.close()


async def test_a_transport_error_names_the_method_and_the_url_without_credentials(
    context: TaskContext,
) -> None:
    with refused_url() as url:
        secret_url = url.replace("http://", "http://ada:s3cr3t@") + "/x?token=t0k3n&page=2"
        shown = url.replace("http://", "http://ada:***@") + "/x?token=***&page=2"
        with pytest.raises(httpx.ConnectError) as refused:
            await request(context, method="post", url=secret_url)

    assert str(refused.value).startswith(f"POST {shown} failed: ")
    for secret in ("s3cr3t", "t0k3n"):
        assert secret not in str(refused.value)
        assert secret not in repr(refused.value)


async def test_a_refused_status_shows_the_url_without_credentials(
    context: TaskContext, http_server: LocalHttpServer
) -> None:
    url = http_server.url.replace("http://", "http://ada:s3cr3t@") + "/status/500?api_key=k3y"

    with pytest.raises(TaskError) as refused:
        await request(context, url=url)

    assert "ada:***@" in refused.value.message
    assert "api_key=***" in refused.value.message
    assert "s3cr3t" not in refused.value.message
    assert "k3y" not in refused.value.message


async def test_the_connections_headers_go_to_its_own_origin_only(
    context: TaskContext, http_server: LocalHttpServer
) -> None:
    plugin = HttpConnection(
        "api", {"base_url": http_server.url, "headers": {"Authorization": "Bearer secret"}}
    )
    await plugin.open()
    try:
        async with plugin.session() as client:
            await request(context, client, path="/own")
            own = http_server.requests[-1]
            with serve() as other:  # same host, another port: another origin
                await request(context, client, url=other.url + "/elsewhere")
                elsewhere = other.requests[-1]
                # Nor does a redirect carry them from the connection's origin to another.
                target = other.url + "/after-redirect"
                await client.get("/redirect", params={"to": target}, follow_redirects=True)
                redirected = other.requests[-1]
    finally:
        await plugin.close()

    assert own.headers["authorization"] == "Bearer secret"
    assert "authorization" not in elsewhere.headers
    assert redirected.path == "/after-redirect"
    assert "authorization" not in redirected.headers


async def test_a_steps_own_header_wins_over_the_connections(
    context: TaskContext, http_server: LocalHttpServer
) -> None:
    plugin = HttpConnection("api", {"base_url": http_server.url, "headers": {"X-Key": "conn"}})
    await plugin.open()
    try:
        async with plugin.session() as client:
            outputs = await request(context, client, path="/x", headers={"x-key": "step"})
    finally:
        await plugin.close()

    assert outputs["json"]["headers"]["x-key"] == "step"


def test_headers_without_a_base_url_are_refused() -> None:
    with pytest.raises(InvalidConnectionError, match="give the connection a base_url"):
        HttpConnection("api", {"headers": {"Authorization": "Bearer t"}})


async def test_cookies_set_by_an_answer_are_not_kept(
    context: TaskContext, http_server: LocalHttpServer
) -> None:
    plugin = HttpConnection("api", {"base_url": http_server.url})
    await plugin.open()
    try:
        async with plugin.session() as client:
            await request(context, client, path="/set-cookie")
            outputs = await request(context, client, path="/echo")
    finally:
        await plugin.close()

    assert "cookie" not in outputs["json"]["headers"]
