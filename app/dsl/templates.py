"""Definition values that may hold `${...}` placeholders, compiled once and rendered per run.

`compile_template` turns a value from a flow definition (a string, or dicts and lists holding
strings) into a `Template`. A string that is exactly one placeholder renders to the expression's
native value; text around placeholders renders to a string, each value written with
`format_value` (`true`, `null`, compact JSON); parts without placeholders render to themselves,
the same object every time and without work, so callers must not mutate what they get.
Dict keys are literal, never templated.

`compile_condition` compiles an `if:` field into one expression in which each `${X}` stands for
the value `(X)`: `"not ${check_cache.exists}"` means `not (check_cache.exists)`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from app.dsl.expressions import (
    MAX_VALUE_SIZE,
    Budget,
    Expression,
    Reference,
    Scope,
    charge,
    compile_expression,
    estimated_size,
    format_value,
    new_budget,
    shorten,
    type_name,
)
from app.dsl.placeholders import Placeholder, find_placeholders, unescape
from app.errors import (
    ExpressionEvaluationError,
    ExpressionLimitError,
    ExpressionSyntaxError,
    Loc,
    format_loc,
)

_NO_REFERENCES: frozenset[Reference] = frozenset()
_NO_DEADLINE = float("inf")  # each expression sets its own


class Template(ABC):
    """A compiled definition value."""

    __slots__ = ("is_constant", "references")

    def __init__(self, references: frozenset[Reference], *, is_constant: bool) -> None:
        self.references = references
        self.is_constant = is_constant  # no placeholder anywhere inside

    def render(self, scope: Scope) -> Any:
        """The value for one run; raises `ExpressionEvaluationError` (or `ExpressionLimitError`).

        Everything the render builds counts against one budget (`MAX_ALLOCATED`): what its
        expressions build, the text it joins around placeholders, and each value it places in
        a list or mapping of the definition, as often as it appears there."""
        return self.render_within(scope, [_NO_DEADLINE, 0])  # a `new_budget()`, inline

    @abstractmethod
    def render_within(self, scope: Scope, budget: Budget) -> Any:
        """As `render`, counting what it builds in `budget` (shared with other templates)."""


def render_all(templates: Mapping[str, Template], scope: Scope) -> dict[str, Any]:
    """Render each template (a step's arguments), all of them within one budget.

    An error names the input it happened in, and its expression when the input is one
    placeholder: `input 'user_data' = `${fetch_from_db.rows[0]}`: ...` (the step is named by
    whoever reports it)."""
    budget = new_budget()
    rendered: dict[str, Any] = {}
    for name, template in templates.items():
        try:
            rendered[name] = template.render_within(scope, budget)
        except ExpressionEvaluationError as error:
            raise type(error)(f"input {name!r}{_written(template)}: {error.message}") from error
    return rendered


def _written(template: Template) -> str:
    """` = `${expression}`` for a template that is one placeholder, else nothing (the error
    names the path it failed on)."""
    if isinstance(template, _Native):
        return f" = `${{{shorten(template.expression.source)}}}`"
    return ""


class _Constant(Template):
    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        super().__init__(_NO_REFERENCES, is_constant=True)
        self.value = value

    def render(self, scope: Scope) -> Any:
        return self.value

    def render_within(self, scope: Scope, budget: Budget) -> Any:
        return self.value


class _Native(Template):
    """A string that is exactly one placeholder: the expression's value, of any type."""

    __slots__ = ("expression",)

    def __init__(self, expression: Expression) -> None:
        super().__init__(expression.references, is_constant=False)
        self.expression = expression

    def render(self, scope: Scope) -> Any:
        return self.expression.evaluate(scope)

    def render_within(self, scope: Scope, budget: Budget) -> Any:
        return self.expression.evaluate_within(scope, budget)


class _Text(Template):
    """Text around placeholders: always a string."""

    __slots__ = ("parts",)

    def __init__(self, parts: tuple[str | Expression, ...]) -> None:
        references = frozenset().union(
            *(part.references for part in parts if isinstance(part, Expression))
        )
        super().__init__(references, is_constant=False)
        self.parts = parts

    def render_within(self, scope: Scope, budget: Budget) -> str:
        pieces: list[str] = []
        length = 0
        for part in self.parts:
            if isinstance(part, str):
                piece = part
            else:
                value = part.evaluate_within(scope, budget)
                if isinstance(value, str):
                    piece = value
                else:  # written out as text: a new string (refused past 1 MiB before writing)
                    piece = format_value(value)
                    charge(budget, len(piece))
            length += len(piece)
            if length > MAX_VALUE_SIZE:
                raise ExpressionLimitError(
                    f"the text would be over {MAX_VALUE_SIZE:,} characters (1 MiB)"
                )
            pieces.append(piece)
        charge(budget, length)  # the joined text, before it is joined
        return "".join(pieces)


class _Dict(Template):
    __slots__ = ("items",)

    def __init__(self, items: tuple[tuple[Any, Template], ...]) -> None:
        super().__init__(_union(template for _, template in items), is_constant=False)
        self.items = items

    def render_within(self, scope: Scope, budget: Budget) -> dict[Any, Any]:
        rendered = {}
        for key, template in self.items:
            rendered[key] = value = template.render_within(scope, budget)
            if type(value) not in _SCALARS and type(template) is _Native:
                _count_placed(value, budget)
        return rendered


class _List(Template):
    __slots__ = ("items",)

    def __init__(self, items: tuple[Template, ...]) -> None:
        super().__init__(_union(items), is_constant=False)
        self.items = items

    def render_within(self, scope: Scope, budget: Budget) -> list[Any]:
        rendered = []
        for template in self.items:
            value = template.render_within(scope, budget)
            if type(value) not in _SCALARS and type(template) is _Native:
                _count_placed(value, budget)
            rendered.append(value)
        return rendered


_SCALARS = frozenset({int, float, bool, type(None)})  # placed, they add nothing worth counting


def _count_placed(value: Any, budget: Budget) -> None:
    """A value a placeholder reads, placed in a list or mapping of the definition, counts as
    built there: `[${a.big}, ${a.big}, ...]` writes it out once per item."""
    charge(budget, estimated_size(value), one_value=False)


def written_at(template: Template, path: Sequence[str]) -> bool:
    """Whether every value `path` reaches in `template` is written in the definition: no
    placeholder makes it, nor a container on the way to it. In `path`, `[]` stands for every
    element of a list; a key the value does not have reaches nothing."""
    if template.is_constant:
        return True
    if not path:
        return False
    head, rest = path[0], path[1:]
    if head == "[]":
        return isinstance(template, _List) and all(
            written_at(item, rest) for item in template.items
        )
    if not isinstance(template, _Dict):
        return False
    return all(written_at(item, rest) for key, item in template.items if key == head)


def _union(templates: Iterable[Template]) -> frozenset[Reference]:
    return frozenset().union(*(template.references for template in templates))


def compile_template(value: Any) -> Template:
    """Compile a definition value; raises `ExpressionSyntaxError` for a bad placeholder, with
    `.offset` into the string that holds it (and that string's place in the message when the
    value is a dict or list)."""
    try:
        return _compile(value, ())
    except RecursionError:
        raise ExpressionSyntaxError("the value is nested too deeply") from None


def _compile(value: Any, loc: Loc) -> Template:
    if isinstance(value, str):
        return _compile_string(value, loc)
    if isinstance(value, Mapping):
        return _compile_dict(value, loc)
    if isinstance(value, list):
        return _compile_list(value, loc)
    return _Constant(value)


def _compile_string(text: str, loc: Loc) -> Template:
    try:
        placeholders = find_placeholders(text)
        if not placeholders:
            return _Constant(unescape(text))
        if len(placeholders) == 1 and _is_whole(placeholders[0], text):
            return _Native(_compile_placeholder(placeholders[0]))
        return _Text(_text_parts(text, placeholders))
    except ExpressionSyntaxError as error:
        if not loc:
            raise
        raise ExpressionSyntaxError(
            f"{format_loc(loc)}: {error.message}", offset=error.offset
        ) from None


def _is_whole(placeholder: Placeholder, text: str) -> bool:
    return placeholder.start == 0 and placeholder.end == len(text)


def _compile_placeholder(placeholder: Placeholder) -> Expression:
    try:
        return compile_expression(placeholder.expression)
    except ExpressionSyntaxError as error:
        offset = None if error.offset is None else placeholder.start + 2 + error.offset
        raise ExpressionSyntaxError(error.message, offset=offset) from None


def _text_parts(text: str, placeholders: list[Placeholder]) -> tuple[str | Expression, ...]:
    parts: list[str | Expression] = []
    position = 0
    for placeholder in placeholders:
        if placeholder.start > position:
            parts.append(unescape(text[position : placeholder.start]))
        parts.append(_compile_placeholder(placeholder))
        position = placeholder.end
    if position < len(text):
        parts.append(unescape(text[position:]))
    return tuple(parts)


def _compile_dict(value: Mapping[Any, Any], loc: Loc) -> Template:
    items = tuple((key, _compile(item, (*loc, _loc_part(key)))) for key, item in value.items())
    constants: dict[Any, Any] = {}
    for key, template in items:
        if not isinstance(template, _Constant):
            return _Dict(items)
        constants[key] = template.value
    # Reuse the definition's own object unless an escape (`$${`) changed a string inside.
    unchanged = all(constants[key] is item for key, item in value.items())
    return _Constant(value if unchanged else constants)


def _compile_list(value: list[Any], loc: Loc) -> Template:
    items = tuple(_compile(item, (*loc, index)) for index, item in enumerate(value))
    constants: list[Any] = []
    for template in items:
        if not isinstance(template, _Constant):
            return _List(items)
        constants.append(template.value)
    unchanged = all(new is old for new, old in zip(constants, value, strict=True))
    return _Constant(value if unchanged else constants)


def _loc_part(key: Any) -> str | int:
    return key if isinstance(key, str | int) else str(key)


def compile_condition(value: str | bool) -> Expression:
    """Compile an `if:` field. A bool is a constant; in a string each `${X}` becomes `(X)` and
    the whole is one expression (a string without placeholders is an expression as it is)."""
    if isinstance(value, bool):
        return compile_expression("True" if value else "False")
    if not isinstance(value, str):
        raise ExpressionSyntaxError(
            f"a condition must be a string or a boolean, not {type_name(value)}"
        )
    placeholders = find_placeholders(value)
    if not placeholders:
        return compile_expression(value)
    source, origins = _inline(value, placeholders)
    try:
        return compile_expression(source)
    except ExpressionSyntaxError as error:
        offset = None if error.offset is None else origins[min(error.offset, len(source))]
        raise ExpressionSyntaxError(error.message, offset=offset) from None


def _inline(text: str, placeholders: list[Placeholder]) -> tuple[str, list[int]]:
    """`text` with each `${X}` written `(X)` and `$${` unescaped, and for every character of
    the result (and its end) the index in `text` it came from, to report offsets."""
    pieces: list[str] = []
    origins: list[int] = []

    def copy(start: int, end: int, *, unescaping: bool = True) -> None:
        index = start
        while index < end:
            if unescaping and text.startswith("$${", index) and index + 3 <= end:
                pieces.append("${")
                origins.extend((index + 1, index + 2))
                index += 3
            else:
                pieces.append(text[index])
                origins.append(index)
                index += 1

    position = 0
    for placeholder in placeholders:
        copy(position, placeholder.start)
        pieces.append("(")
        origins.append(placeholder.start)
        copy(placeholder.start + 2, placeholder.end - 1, unescaping=False)
        pieces.append(")")
        origins.append(placeholder.end - 1)
        position = placeholder.end
    copy(position, len(text))
    origins.append(len(text))
    return "".join(pieces), origins


# A template as literal text and the run inputs it reads, for those who render it without the
# expression engine (PostgreSQL's `flow_manager.start_run` renders a concurrency key).
TextPart = str | tuple[str | int, ...]  # literal text, or the path of an input read as is


def text_parts(template: Template) -> list[TextPart] | None:
    """The template as literal text and plain input reads (`${inputs.tenant}`: the path
    `("tenant",)`), in order; None when it computes anything else (`${lower(inputs.x)}`) or is
    not text. Rendering it is writing each part (a read with `format_value`) and joining."""
    if isinstance(template, _Constant):
        return [template.value] if isinstance(template.value, str) else None
    if isinstance(template, _Native):
        read = _input_read(template.expression)
        return None if read is None else [read]
    if isinstance(template, _Text):
        parts: list[TextPart] = []
        for part in template.parts:
            if isinstance(part, str):
                parts.append(part)
                continue
            read = _input_read(part)
            if read is None:
                return None
            parts.append(read)
        return parts
    return None


def written_text(template: Template) -> str:
    """The template as its definition wrote it (the text of a string template)."""
    if isinstance(template, _Constant):
        return str(template.value)
    if isinstance(template, _Native):
        return f"${{{template.expression.source}}}"
    if isinstance(template, _Text):
        return "".join(
            part if isinstance(part, str) else f"${{{part.source}}}" for part in template.parts
        )
    return repr(template)


def _input_read(expression: Expression) -> tuple[str | int, ...] | None:
    """The input path an expression that is nothing but `inputs.a.b[0]` reads; else None."""
    if len(expression.references) != 1:
        return None
    (reference,) = expression.references
    if reference.root != "inputs" or not reference.path:
        return None
    return reference.path if expression.source.strip() == str(reference) else None
