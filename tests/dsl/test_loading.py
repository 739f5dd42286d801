"""Loading definitions: data, positions, unquoted placeholders, the YAML 1.2 schema, refusals."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from app.dsl.loading import MAX_DEFINITION_BYTES, Document, Position, load_document
from app.dsl.reading import yaml_nodes
from app.errors import DefinitionError

FIXTURES = Path(__file__).parent / "fixtures"
TUTORIAL = (FIXTURES / "tutorial_flow.yaml").read_text(encoding="utf-8")
CONDITION_GRAPH = (FIXTURES / "condition_graph.json").read_text(encoding="utf-8")

EXAMPLE = """\
flow: X
steps:
  - pg_query:
      id: q
      params: [${inputs.user_id}]
"""

PARSERS = ["libyaml", "python"] if yaml.__with_libyaml__ else ["python"]


@pytest.fixture(params=PARSERS)
def parser(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Runs a test with libyaml and with pure-Python PyYAML: both must load alike."""
    if request.param == "python":
        monkeypatch.setattr(yaml_nodes, "_PARSER", yaml.SafeLoader)


def problems_of(text: str | bytes, **options: Any) -> list[dict[str, Any]]:
    with pytest.raises(DefinitionError) as caught:
        load_document(text, **options)
    return [problem.as_dict() for problem in caught.value.problems]


def only_problem(text: str | bytes, **options: Any) -> dict[str, Any]:
    problems = problems_of(text, **options)
    assert len(problems) == 1, problems
    return problems[0]


def position_of(text: str, needle: str, offset: int = 0) -> Position:
    """Where `needle` (which must be unique) plus `offset` characters is in `text`."""
    assert text.count(needle) == 1, needle
    index = text.index(needle) + offset
    line = text.count("\n", 0, index) + 1
    return Position(line, index - (text.rfind("\n", 0, index) + 1) + 1)


# --- The tutorial ----------------------------------------------------------------------------


@pytest.mark.usefixtures("parser")
def test_tutorial_flow_loads_with_placeholders_as_written() -> None:
    document = load_document(TUTORIAL)
    data = document.data

    assert document.format == "yaml"
    assert data["flow"] == "UserManager"
    assert data["connections"]["db"] == {
        "type": "postgres",
        "url": "${env.DATABASE_URL}",
        "pool_size": 10,
        "timeout": 30,
    }
    assert data["connections"]["cache"]["decode_responses"] is True
    assert data["inputs"] == [
        {"name": "user_id", "type": "integer", "required": True, "description": "User ID to fetch"}
    ]
    steps = data["steps"]
    assert steps[0]["redis_exists"]["keys"] == ["user:${inputs.user_id}"]
    assert steps[1]["redis_get"]["if"] == "${check_cache.exists}"
    assert steps[2]["pg_query"]["params"] == ["${inputs.user_id}"]
    assert steps[2]["pg_query"]["query"] == (
        "SELECT id, email, name, active, last_login FROM users WHERE id = $1"
    )
    assert steps[2]["pg_query"]["if"] == "not ${check_cache.exists}"
    assert steps[3]["inputs"] == {"user_data": "${fetch_from_db.rows[0]}"}
    assert steps[4]["redis_set"]["ex"] == 3600
    assert [list(step) for step in steps] == [
        ["redis_exists"],
        ["redis_get"],
        ["pg_query"],
        ["task", "id", "inputs", "outputs", "if"],
        ["redis_set"],
        ["task", "id", "connection", "inputs", "outputs", "if"],
        ["redis_incr"],
    ]
    assert data["outputs"] == [
        {
            "name": "user",
            "value": "${get_cached_user.value if check_cache.exists else transform.user}",
        },
        {"name": "from_cache", "value": "${check_cache.exists}"},
        {"name": "total_views", "value": "${increment_views.value}"},
    ]


@pytest.mark.usefixtures("parser")
def test_tutorial_positions_point_at_keys_and_items() -> None:
    positions = load_document(TUTORIAL).positions

    assert positions[()] == Position(1, 1)
    assert positions[("steps", 2, "pg_query", "params", 0)] == position_of(
        TUTORIAL, "params: [${inputs.user_id}]", len("params: [")
    )
    assert positions[("steps", 1, "redis_get", "if")] == position_of(
        TUTORIAL, "if: ${check_cache.exists}"
    )
    assert positions[("outputs", 0, "value")] == position_of(TUTORIAL, "value: ${get_cached_user")
    assert positions[("steps", 3)] == position_of(TUTORIAL, "task: TransformUser")


def test_tutorial_loads_in_a_few_milliseconds() -> None:
    load_document(TUTORIAL)  # warm up the regular expressions
    fastest = math.inf
    for _ in range(5):
        started = time.perf_counter()
        load_document(TUTORIAL)
        fastest = min(fastest, time.perf_counter() - started)
    assert fastest < 0.05


# --- Positions -------------------------------------------------------------------------------


@pytest.mark.usefixtures("parser")
def test_positions_of_keys_and_sequence_items() -> None:
    document = load_document(EXAMPLE)

    assert document.positions[("steps", 0, "pg_query", "params", 0)] == Position(5, 16)
    assert document.positions[("steps", 0, "pg_query", "id")] == Position(4, 7)
    assert document.positions[("steps", 0)] == Position(3, 5)
    assert document.positions[("steps",)] == Position(2, 1)
    assert document.positions[()] == Position(1, 1)


def test_position_falls_back_to_the_nearest_ancestor() -> None:
    document = load_document(EXAMPLE)

    assert document.position(("steps", 0, "pg_query", "params", 0, "x")) == Position(5, 16)
    assert document.position(("steps", 0, "pg_query", "missing")) == Position(3, 5)
    assert document.position(("nowhere",)) == Position(1, 1)


def test_positions_start_at_the_first_key_after_leading_comments() -> None:
    assert load_document("# a flow\n\n  flow: X\n").positions[()] == Position(3, 3)


def test_columns_count_characters_not_bytes() -> None:
    document = load_document("café: [ü, ${x}, 3]\n")

    assert document.positions[("café",)] == Position(1, 1)
    assert document.positions[("café", 1)] == Position(1, 11)
    assert document.positions[("café", 2)] == Position(1, 17)


def test_values_behind_an_alias_are_positioned_at_the_anchor() -> None:
    document = load_document("base: &retry {attempts: 3}\nstep:\n  retry: *retry\n")

    assert document.data["step"]["retry"] == {"attempts": 3}
    assert document.positions[("step", "retry")] == Position(3, 3)
    assert document.positions[("step", "retry", "attempts")] == Position(1, 15)


# --- Unquoted placeholders -------------------------------------------------------------------


@pytest.mark.usefixtures("parser")
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("params: [${inputs.user_id}]", {"params": ["${inputs.user_id}"]}),
        ("a: {a: ${x}, b: [${y}, 2]}", {"a": {"a": "${x}", "b": ["${y}", 2]}}),
        ("value: ${a if b else c}", {"value": "${a if b else c}"}),
        ("items: [${max(a, b)}]", {"items": ["${max(a, b)}"]}),
        (
            "items: [${a, b: c}, ${ {'k': '}'}['k'] }]",
            {"items": ["${a, b: c}", "${ {'k': '}'}['k'] }"]},
        ),
        ("value: ${ x + ' #not a comment' } # a comment", {"value": "${ x + ' #not a comment' }"}),
        ("value: ${a}: ${b}", None),  # YAML's own rule: `: ` in a plain value
        ("items: [${x}${y}, pre-${z}-post]", {"items": ["${x}${y}", "pre-${z}-post"]}),
        ("map: {${key}: [${value}]}", {"map": {"${key}": ["${value}"]}}),
        ("- ${x}", None),  # still has to be a mapping
        ("steps:\n- ${x}\n- [${y},\n   ${z}]", {"steps": ["${x}", ["${y}", "${z}"]]}),
        ("items: [$${literal}]", {"items": ["$${literal}"]}),
        (
            "description: Bob's flow\nparams: [${x}]",
            {"description": "Bob's flow", "params": ["${x}"]},
        ),
        ("# Bob's flow, isn't it\nparams: [${x}] # it's", {"params": ["${x}"]}),
        ("# an unclosed ${ here\nparams: [${x}]", {"params": ["${x}"]}),
        (
            "query: |\n  'tis ${x} # not a comment\n\n  [\nparams: [${y}]",
            {"query": "'tis ${x} # not a comment\n\n[\n", "params": ["${y}"]},
        ),
        (
            "steps:\n  - run: >\n      it's ${a}\n    next: [${b}]",
            {"steps": [{"run": "it's ${a}\n", "next": ["${b}"]}]},
        ),
        ("text: one ${x}\n  two [${y}]", {"text": "one ${x} two [${y}]"}),
    ],
)
def test_unquoted_placeholders_load_as_written(text: str, expected: dict[str, Any] | None) -> None:
    if expected is None:
        problems_of(text)
    else:
        assert load_document(text).data == expected


@pytest.mark.usefixtures("parser")
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('key: "user:${inputs.user_id}"', "user:${inputs.user_id}"),
        ("key: '${x}'", "${x}"),
        ("key: 'it''s ${x}'", "it's ${x}"),
        ('key: "${ d[\\"k\\"] }"', '${ d["k"] }'),
        ('key: "${x}\\t"', "${x}\t"),
        ("key: \"${ x == 'y' }\" # ${ unclosed", "${ x == 'y' }"),
        ("key: [\"${x}\", '${y}']", ["${x}", "${y}"]),
        ("key: ['a #', ${y}]", ["a #", "${y}"]),
        ('key: ["a #", ${y}]', ["a #", "${y}"]),
        ("key: '${ a[''k''] }'", "${ a['k'] }"),
        ('key: "${ \\x41 }"', "${ A }"),
        ("key: '${x\n  }'", "${x }"),
    ],
)
def test_quoted_placeholders_load_as_yaml_loads_them(text: str, expected: Any) -> None:
    assert load_document(text).data == {"key": expected}


@pytest.mark.usefixtures("parser")
def test_unquoted_placeholders_keep_item_positions() -> None:
    document = load_document("params: [${a}, ${ max(b, c) }, 3]\n")

    assert document.data["params"] == ["${a}", "${ max(b, c) }", 3]
    assert [document.positions[("params", index)] for index in range(3)] == [
        Position(1, 10),
        Position(1, 16),
        Position(1, 32),
    ]


def test_private_use_characters_in_the_text_are_left_alone() -> None:
    text = "a: \ue000\ue002\ue001\nb: [${x}]\n"

    assert load_document(text).data == {"a": "\ue000\ue002\ue001", "b": ["${x}"]}


# --- YAML 1.2 core schema --------------------------------------------------------------------


def scalar(text: str) -> Any:
    return load_document(f"value: {text}\n").data["value"]


@pytest.mark.parametrize("text", ["on", "off", "yes", "no", "y", "n", "Y", "On", "NO"])
def test_yaml_1_1_booleans_stay_strings(text: str) -> None:
    assert scalar(text) == text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("true", True),
        ("True", True),
        ("TRUE", True),
        ("false", False),
        ("False", False),
        ("FALSE", False),
    ],
)
def test_only_true_and_false_are_booleans(text: str, expected: bool) -> None:
    assert scalar(text) is expected


@pytest.mark.parametrize("text", ["null", "Null", "NULL", "~", ""])
def test_nulls(text: str) -> None:
    assert scalar(text) is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [("42", 42), ("-7", -7), ("+3", 3), ("0", 0), ("007", 7), ("0x1F", 31), ("0o17", 15)],
)
def test_integers(text: str, expected: int) -> None:
    value = scalar(text)
    assert value == expected
    assert type(value) is int


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1.5", 1.5),
        ("1e3", 1000.0),
        ("-2.5E-1", -0.25),
        (".5", 0.5),
        ("1.", 1.0),
        (".inf", math.inf),
        ("-.Inf", -math.inf),
        ("+.INF", math.inf),
    ],
)
def test_floats(text: str, expected: float) -> None:
    value = scalar(text)
    assert value == expected
    assert type(value) is float


@pytest.mark.parametrize("text", [".nan", ".NaN", ".NAN"])
def test_not_a_number(text: str) -> None:
    assert math.isnan(scalar(text))


@pytest.mark.parametrize(
    "text",
    ["1:30", "2024-01-01", "2024-01-01T10:00:00Z", "0b101", "1_000", "0o8", "0X1F", "nan", "inf"],
)
def test_yaml_1_1_numbers_and_timestamps_stay_strings(text: str) -> None:
    assert scalar(text) == text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("!!str 42", "42"),
        ("!!str true", "true"),
        ("!!int '42'", 42),
        ("!!float 1", 1.0),
        ("!!bool 'false'", False),
        ("!!null ''", None),
        ("! 12", "12"),
        ("'12'", "12"),
    ],
)
def test_standard_tags(text: str, expected: Any) -> None:
    value = scalar(text)
    assert value == expected
    assert type(value) is type(expected)


def test_keys_are_text_and_merge_keys_are_plain_keys() -> None:
    text = "1: a\ntrue: b\nnull: c\nbase: &b {x: 1}\nother:\n  <<: *b\n"

    assert load_document(text).data == {
        "1": "a",
        "true": "b",
        "null": "c",
        "base": {"x": 1},
        "other": {"<<": {"x": 1}},
    }


def test_unsupported_tags_are_all_reported() -> None:
    text = (
        "a: !!python/object/apply:os.system ['echo hi']\n"
        "b: !!binary aGk=\n"
        "c: !!set {x, y}\n"
        "d: !!timestamp 2024-01-01\n"
        "e: !local value\n"
        "f: !!omap [x: 1]\n"
    )

    problems = problems_of(text)

    assert [(p["loc"], p["type"], p["line"], p["column"]) for p in problems] == [
        (["a"], "unsupported_tag", 1, 4),
        (["b"], "unsupported_tag", 2, 4),
        (["c"], "unsupported_tag", 3, 4),
        (["d"], "unsupported_tag", 4, 4),
        (["e"], "unsupported_tag", 5, 4),
        (["f"], "unsupported_tag", 6, 4),
    ]
    assert "!!python/object/apply:os.system" in problems[0]["msg"]


def test_a_scalar_that_does_not_fit_its_tag_is_refused() -> None:
    problems = problems_of("a: !!int abc\nb: !!bool yes\n")

    assert [(p["loc"], p["type"], p["line"]) for p in problems] == [
        (["a"], "invalid_scalar", 1),
        (["b"], "invalid_scalar", 2),
    ]


def test_a_collection_as_key_is_refused() -> None:
    problem = only_problem("? [a, b]\n: 1\n")

    assert problem["type"] == "invalid_key"
    assert (problem["line"], problem["column"]) == (1, 3)


def test_an_integer_with_too_many_digits_is_refused() -> None:
    assert only_problem("a: " + "9" * 5000)["type"] == "invalid_scalar"
    assert only_problem('{"a": ' + "9" * 5000 + "}")["type"] == "json_syntax"


# --- Refusals --------------------------------------------------------------------------------


def test_yaml_syntax_errors_carry_pyyaml_text_and_position() -> None:
    unclosed = only_problem("a: 1\nb: 'text\nc: 2\n")
    assert unclosed["type"] == "yaml_syntax"
    assert "found unexpected end of stream" in unclosed["msg"]
    assert "while scanning a quoted scalar at line 2, column 4" in unclosed["msg"]
    assert (unclosed["line"], unclosed["column"]) == (4, 1)

    indented = only_problem("a:\n  b: 1\n c: 2\n")
    assert indented["type"] == "yaml_syntax"
    assert (indented["line"], indented["column"]) == (3, 2)

    bad_flow = only_problem("a: [1, 2\nb: 1\n")
    assert "did not find expected ',' or ']'" in bad_flow["msg"]
    assert (bad_flow["line"], bad_flow["column"]) == (2, 2)


def test_json_syntax_errors_carry_json_text_and_position() -> None:
    problem = only_problem('{"a": 1,\n "b": }')

    assert problem == {
        "loc": [],
        "msg": "Expecting value",
        "type": "json_syntax",
        "line": 2,
        "column": 7,
    }


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_json_refuses_nan_and_infinity(constant: str) -> None:
    problem = only_problem('{"a": "NaN",\n "b": ' + constant + "}")

    assert problem["type"] == "json_syntax"
    assert constant in problem["msg"]
    assert (problem["line"], problem["column"]) == (2, 7)


def test_bytes_that_are_not_utf8_are_refused_with_their_position() -> None:
    problem = only_problem(b"a: 1\nb: caf\xc3\xa9 \xe9\n")

    assert problem["type"] == "encoding"
    assert "UTF-8" in problem["msg"]
    assert (problem["line"], problem["column"]) == (2, 9)
    assert only_problem("a: 1".encode("utf-16"))["type"] == "encoding"


@pytest.mark.parametrize(
    ("text", "options"),
    [
        ("", {}),
        ("  \n\n", {}),
        ("# only a comment\n", {}),
        ("---\n", {}),
        ("~", {}),
        ("", {"format": "json"}),
        (" \n", {"format": "json"}),
        ("null", {"format": "json"}),
    ],
)
def test_an_empty_definition_is_refused(text: str, options: dict[str, Any]) -> None:
    problem = only_problem(text, **options)

    assert problem["msg"] == "definition is empty"
    assert problem["type"] == "empty"


@pytest.mark.parametrize(
    ("text", "line", "column"),
    [("- a\n- b\n", 1, 1), ("just text", 1, 1), ("\n  42", 2, 3), ('  ["a"]', 1, 3)],
)
def test_a_top_level_that_is_not_a_mapping_is_refused(text: str, line: int, column: int) -> None:
    problem = only_problem(text)

    assert problem["msg"] == "a flow definition must be a mapping"
    assert (problem["line"], problem["column"]) == (line, column)


def test_duplicate_keys_are_all_reported_at_the_second_key() -> None:
    text = "a: 1\nb:\n  c: 1\n  d: 2\n  c: 3\na: 4\nsteps: [{x: 1, x: 2}]\n"

    problems = problems_of(text)

    assert [(p["loc"], p["type"], p["line"], p["column"]) for p in problems] == [
        (["b", "c"], "duplicate_key", 5, 3),
        (["a"], "duplicate_key", 6, 1),
        (["steps", 0, "x"], "duplicate_key", 7, 16),
    ]
    assert "first defined at line 3, column 3" in problems[0]["msg"]


def test_json_duplicate_keys_are_reported_like_yaml() -> None:
    problems = problems_of('{"a": 1,\n "b": {"c": 1, "c": 2},\n "a": 3}')

    assert [(p["loc"], p["type"], p["line"], p["column"]) for p in problems] == [
        (["b", "c"], "duplicate_key", 2, 16),
        (["a"], "duplicate_key", 3, 2),
    ]


def test_json_duplicate_keys_without_positions_still_name_their_place() -> None:
    # YAML refuses escaped surrogates in keys, so this JSON has no positions.
    problems = problems_of('{"\\ud83d\\ude00": 1, "\\ud83d\\ude00": 2}')

    assert problems == [{"loc": ["😀"], "msg": "duplicate key '😀'", "type": "duplicate_key"}]


def test_a_definition_over_one_mebibyte_is_refused() -> None:
    padding = "#" * (MAX_DEFINITION_BYTES - len("a: 1\n"))
    assert load_document("a: 1\n" + padding).data == {"a": 1}

    too_large_texts: list[str | bytes] = [
        "a: 1\n" + padding + "#",
        ("a: 1\n" + padding + "#").encode(),
    ]
    for too_large in too_large_texts:
        problem = only_problem(too_large)
        assert problem["type"] == "too_large"
        assert problem["msg"].startswith("definition too large")
    # The limit is on UTF-8 bytes, not characters.
    assert only_problem("a: " + "é" * (MAX_DEFINITION_BYTES // 2))["type"] == "too_large"


def test_more_than_one_yaml_document_is_refused() -> None:
    problem = only_problem("a: 1\n---\nb: 2\n")

    assert problem["type"] == "yaml_syntax"
    assert (problem["line"], problem["column"]) == (2, 1)


def test_an_undefined_alias_is_refused() -> None:
    problem = only_problem("a: 1\nb: *nowhere\n")

    assert problem["type"] == "yaml_syntax"
    assert "nowhere" in problem["msg"]
    assert (problem["line"], problem["column"]) == (2, 4)


def test_control_characters_are_refused_with_their_position() -> None:
    problem = only_problem("a: 1\nb: x\x01y\n")

    assert problem["type"] == "yaml_syntax"
    assert "#x0001" in problem["msg"]
    assert (problem["line"], problem["column"]) == (2, 5)


# --- Limits ----------------------------------------------------------------------------------

BILLION_LAUGHS = """\
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
"""


@pytest.mark.usefixtures("parser")
def test_billion_laughs_fails_fast() -> None:
    started = time.perf_counter()
    problem = only_problem(BILLION_LAUGHS)

    assert time.perf_counter() - started < 1
    assert problem["type"] == "too_many_nodes"
    assert "100000" in problem["msg"]


def test_aliases_within_the_node_limit_are_expanded() -> None:
    document = load_document("a: &a [1, 2]\nb: [*a, *a]\n")

    assert document.data == {"a": [1, 2], "b": [[1, 2], [1, 2]]}
    assert document.data["b"][0] == document.data["b"][1]


def test_too_many_nodes_without_aliases_are_refused() -> None:
    items = ",".join(["0"] * 100_000)

    assert only_problem(f"a: [{items}]")["type"] == "too_many_nodes"
    assert only_problem(f'{{"a": [{items}]}}')["type"] == "too_many_nodes"


def nested(levels: int, inner: str = "1") -> str:
    """`levels` nested flow lists under the top-level mapping's key `a`."""
    return "a: " + "[" * levels + inner + "]" * levels


@pytest.mark.usefixtures("parser")
def test_nesting_beyond_one_hundred_levels_is_refused() -> None:
    deepest = load_document(nested(99)).data["a"]
    for _ in range(98):
        deepest = deepest[0]
    assert deepest == [1]

    problem = only_problem(nested(100))
    assert problem["type"] == "too_deep"
    assert (problem["line"], problem["column"]) == (1, 103)


@pytest.mark.usefixtures("parser")
def test_very_deep_nesting_fails_fast_instead_of_overflowing() -> None:
    started = time.perf_counter()

    assert only_problem(nested(200_000))["type"] == "too_deep"
    assert only_problem('{"a": ' + "[" * 200_000 + "]" * 200_000 + "}")["type"] == "too_deep"
    assert only_problem('{"a": ' + "[" * 150 + "]" * 150 + "}")["type"] == "too_deep"
    assert time.perf_counter() - started < 2


def test_nesting_through_aliases_counts_once_expanded() -> None:
    text = "x: &x " + "[" * 60 + "1" + "]" * 60 + "\ny: " + "[" * 50 + "*x" + "]" * 50 + "\n"

    assert only_problem(text)["type"] == "too_deep"


def test_an_alias_inside_its_own_anchor_is_refused() -> None:
    problem = only_problem("a: &loop [1, *loop]\n")

    assert problem["type"] == "alias_cycle"
    assert (problem["line"], problem["column"]) == (1, 14)


# --- JSON ------------------------------------------------------------------------------------


def test_the_condition_graph_sample_loads_as_json() -> None:
    document = load_document(CONDITION_GRAPH)

    assert document.format == "json"
    assert document.data == json.loads(CONDITION_GRAPH)
    flow = document.data["flow"]
    assert flow["start_task"] == "task1"
    assert [task["name"] for task in flow["tasks"]] == ["task1", "task2", "task3"]
    assert document.positions[("flow", "conditions", 1, "source_task")] == position_of(
        CONDITION_GRAPH, '"source_task": "task2"'
    )
    assert document.positions[("flow", "tasks", 2)] == position_of(
        CONDITION_GRAPH, '{\n        "name": "task3"'
    )


def test_text_starting_with_a_brace_or_bracket_is_json() -> None:
    assert load_document('\n  {"a": 1}').format == "json"
    assert load_document('\ufeff{"a": 1}').format == "json"
    assert only_problem(" \n[1,")["type"] == "json_syntax"


@pytest.mark.parametrize("text", ["a: {b: 1}", "# {\na: 1", "---\n{a: 1}", "'{a}': 1"])
def test_other_text_is_yaml(text: str) -> None:
    assert load_document(text).format == "yaml"


def test_an_explicit_format_overrides_sniffing() -> None:
    assert load_document("{a: 1}", format="yaml").data == {"a": 1}
    assert only_problem("{a: 1}")["type"] == "json_syntax"
    assert only_problem("a: 1", format="json")["type"] == "json_syntax"


def test_json_values_are_plain_data() -> None:
    document = load_document('{"i": 1, "f": 1.0, "b": true, "n": null, "s": "x", "l": [{}]}')

    assert document.data == {"i": 1, "f": 1.0, "b": True, "n": None, "s": "x", "l": [{}]}
    assert type(document.data["f"]) is float


def test_json_positions_survive_tabs_and_escaped_emoji() -> None:
    text = '{\n\t"a":\t"\\ud83d\\ude00",\n\t"b":\t[1,\t2]\n}'

    document = load_document(text)

    assert document.data == {"a": "😀", "b": [1, 2]}
    assert document.positions[("a",)] == Position(2, 2)
    assert document.positions[("b", 1)] == Position(3, 11)


def test_json_that_yaml_cannot_place_only_has_the_start_position() -> None:
    document = load_document('{"\\ud83d\\ude00": {"x": 1}}')

    assert document.data == {"😀": {"x": 1}}
    assert dict(document.positions) == {(): Position(1, 1)}
    assert document.position(("😀", "x")) == Position(1, 1)


# --- Line endings and byte-order marks ------------------------------------------------------


@pytest.mark.usefixtures("parser")
def test_crlf_line_endings_load_like_lf() -> None:
    expected = load_document(TUTORIAL)

    crlf_texts: list[str | bytes] = [
        TUTORIAL.replace("\n", "\r\n"),
        TUTORIAL.replace("\n", "\r\n").encode(),
    ]
    for text in crlf_texts:
        document = load_document(text)
        assert document.data == expected.data
        assert document.positions == expected.positions

    block = load_document("q: |\r\n  one ${x}\r\n  two\r\np: [${y}]\r\n")
    assert block.data == {"q": "one ${x}\ntwo\n", "p": ["${y}"]}
    assert block.positions[("p", 0)] == Position(4, 5)


@pytest.mark.parametrize("text", [EXAMPLE, CONDITION_GRAPH])
def test_a_byte_order_mark_is_ignored(text: str) -> None:
    plain = load_document(text)

    sources: list[str | bytes] = ["\ufeff" + text, "\ufeff".encode() + text.encode()]
    for source in sources:
        document = load_document(source)
        assert document.data == plain.data
        assert document.positions == plain.positions
        assert document.format == plain.format


def test_a_loaded_document_is_read_only_where_it_matters() -> None:
    document: Document = load_document(EXAMPLE)

    with pytest.raises(TypeError):
        document.positions[("x",)] = Position(1, 1)  # type: ignore[index]


def test_a_problem_repeated_everywhere_is_listed_a_hundred_times_then_counted() -> None:
    text = json.dumps({"flow": "x", "steps": ["\u0000"] * 150})

    found = problems_of(text)

    assert len(found) == 101
    assert {problem["type"] for problem in found[:100]} == {"invalid_character"}
    assert found[-1] == {
        "loc": [],
        "msg": "50 more problems are not listed (the first 100 are)",
        "type": "too_many_problems",
    }
