"""The `${...}` expression language: a safe, Python-like evaluator.

An expression is parsed with `ast.parse(mode="eval")`, checked against an allow-list of syntax,
and compiled once into a tree of closures; `Expression.evaluate` runs those closures against a
scope. User text never reaches Python's eval/exec/compile, and no attribute is ever read from a
Python object: `a.b` means `a["b"]` on mappings only. Every operation that could build a large
value checks the size of its result before computing it, and each evaluation has a time and an
allocation budget, so an expression can neither run code nor exhaust the process.

Choices a flow author sees: `true`/`false`/`null` are aliases of `True`/`False`/`None` (flows come
from YAML and JSON, so those names can never be scope names); set literals are refused so that
every value stays JSON-shaped; `str(x)` writes values the way templates do (`true`, `null`,
compact JSON), not Python's `repr`; `is` only compares with `None`.
"""

from __future__ import annotations

import ast
import functools
import itertools
import json
import operator
import re
import threading
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from app.errors import (
    ExpressionError,
    ExpressionEvaluationError,
    ExpressionLimitError,
    ExpressionSyntaxError,
    format_loc,
)

MAX_SOURCE_LENGTH: Final = 4096
COMPILED_CACHE_SIZE: Final = 1024  # distinct expression texts kept compiled
MAX_DEPTH: Final = 64
MAX_NODES: Final = 2000
MAX_VALUE_SIZE: Final = 1 << 20  # bytes, by `estimated_size`
MAX_ALLOCATED: Final = 8 * MAX_VALUE_SIZE  # new values built by one evaluation, all together
MAX_INTEGER: Final = 10**100
TIME_BUDGET_SECONDS: Final = 0.1

_MAX_INTEGER_BITS: Final = MAX_INTEGER.bit_length()  # 2 ** (this - 1) already exceeds 10**100
_MAX_ROUND_DIGITS: Final = 1000  # round(x, -n) computes 10**n
_SLOT_SIZE: Final = 8  # what one element of a list or tuple costs
_ALIASES: Final[Mapping[str, Any]] = {"true": True, "false": False, "null": None}
_SEQUENCES: Final = (str, list, tuple)
_INDEXABLE: Final = (str, list, tuple, Sequence)
_MAPPINGS: Final = (dict, Mapping)
_TEXTS: Final = (str, bytes)
_ARRAYS: Final = (list, tuple)
_NUMBERS: Final = (int, float)

Scope = Mapping[str, Any]

# The evaluating thread's CPU time, not the wall clock: a process descheduled on a busy machine
# (or waiting for a lock) must not fail an expression that did little work. Module level so
# tests can replace the clock instead of sleeping.
_clock = time.thread_time


@dataclass(frozen=True)
class Reference:
    """A name an expression reads, with the constant attribute/index path read after it."""

    root: str
    path: tuple[str | int, ...] = ()

    def __str__(self) -> str:
        return format_loc((self.root, *self.path))


# What one evaluation may still spend, as `[deadline, bytes of new values built so far]`: a list
# because one is made per evaluation and a list costs a fraction of an object to create. A
# template shares one budget's bytes between its expressions (`Expression.evaluate_within`).
Budget = list[float]
_UNUSED_BUDGET: Final[Budget] = [float("inf"), 0]  # for expressions that never consult it


def new_budget() -> Budget:
    """A budget for one evaluation (or one template's render): nothing built yet."""
    return [float("inf"), 0]


def charge(budget: Budget, size: float, *, one_value: bool = True) -> None:
    """Account for a new value of about `size` bytes, before it is built: refuse it past the
    per-value limit (unless `size` is not `one_value`), or when the evaluation has built too
    much altogether."""
    if one_value and size > MAX_VALUE_SIZE:
        raise ExpressionLimitError(
            f"the result would be about {size:,} bytes, over the limit of "
            f"{MAX_VALUE_SIZE:,} bytes (1 MiB) for one value"
        )
    budget[1] += size
    if budget[1] > MAX_ALLOCATED:
        raise ExpressionLimitError(
            f"the expression builds more than {MAX_ALLOCATED:,} bytes of values"
        )


_Evaluator = Callable[[Scope, Budget], Any]


def _over_time() -> ExpressionLimitError:
    return ExpressionLimitError(
        f"the expression took longer than {TIME_BUDGET_SECONDS * 1000:.0f} ms of CPU to evaluate"
    )


class Expression:
    """A compiled expression. Immutable: evaluate it as often as needed, from any thread."""

    __slots__ = ("_budgeted", "_evaluator", "references", "source")

    def __init__(
        self,
        source: str,
        evaluator: _Evaluator,
        references: frozenset[Reference],
        *,
        budgeted: bool = True,
    ) -> None:
        self.source = source
        self.references = references
        self._evaluator = evaluator
        self._budgeted = budgeted  # False: no part of it does work worth a clock reading

    def evaluate(self, scope: Scope) -> Any:
        """The expression's value in `scope`; raises only `ExpressionEvaluationError` (or its
        subclass `ExpressionLimitError`)."""
        budget = [_clock() + TIME_BUDGET_SECONDS, 0] if self._budgeted else _UNUSED_BUDGET
        return self._run(scope, budget)

    def evaluate_within(self, scope: Scope, budget: Budget) -> Any:
        """As `evaluate`, counting what it builds in `budget` (a template's, shared by its
        expressions); its time budget is its own."""
        if self._budgeted:
            budget[0] = _clock() + TIME_BUDGET_SECONDS
        return self._run(scope, budget)

    def _run(self, scope: Scope, budget: Budget) -> Any:
        try:
            return self._evaluator(scope, budget)
        except ExpressionError:
            raise
        except (RecursionError, MemoryError) as error:
            raise ExpressionLimitError(
                f"`{_shorten(self.source)}` is too costly to evaluate ({type(error).__name__})"
            ) from None
        except Exception as error:  # a scope value misbehaved; never leak a raw exception
            raise ExpressionEvaluationError(
                f"`{_shorten(self.source)}` failed: {type(error).__name__}: {error}"
            ) from error

    def __repr__(self) -> str:
        return f"Expression({self.source!r})"


def compile_expression(source: str) -> Expression:
    """Compile `source` once; raises `ExpressionSyntaxError` (with `.offset` into `source` when
    known) for bad syntax, a construct outside the language, or an expression too large."""
    if not isinstance(source, str):
        raise ExpressionSyntaxError(f"an expression must be a string, not {type_name(source)}")
    compiled = _compiled(source)
    if isinstance(compiled, ExpressionSyntaxError):  # a new error each time: one per place
        raise ExpressionSyntaxError(compiled.message, offset=compiled.offset)
    return compiled


@functools.lru_cache(maxsize=COMPILED_CACHE_SIZE)
def _compiled(source: str) -> Expression | ExpressionSyntaxError:
    """The compiled expression or why it is refused, remembered by text: a definition may
    repeat one text thousands of times (a YAML alias expands it wherever it is used), and a
    compiled expression is immutable, so every place can share it."""
    try:
        return _compile(source)
    except ExpressionSyntaxError as error:
        return error


def _compile(source: str) -> Expression:
    if len(source) > MAX_SOURCE_LENGTH:
        raise ExpressionSyntaxError(
            f"the expression is {len(source):,} characters long; the limit is "
            f"{MAX_SOURCE_LENGTH:,}",
            offset=MAX_SOURCE_LENGTH,
        )
    stripped = source.strip()
    start = len(source) - len(source.lstrip())
    if not stripped:
        raise ExpressionSyntaxError("the expression is empty", offset=0)
    tree = _parse(stripped, start)
    compiler = _Compiler(stripped, start)
    compiler.check_size(tree.body)
    evaluator = compiler.compile(tree.body)
    references = _references_of(tree.body)
    return Expression(source, evaluator, references, budgeted=compiler.uses_budget)


def _parse(source: str, start: int) -> ast.Expression:
    try:
        return _quiet_parse(source)
    except SyntaxError as error:  # IndentationError included
        offset = None
        if error.lineno is not None and error.offset is not None:
            # SyntaxError columns count characters from 1.
            offset = start + _line_start(source, error.lineno) + max(error.offset - 1, 0)
        message = error.msg if error.msg.startswith("invalid") else f"invalid syntax: {error.msg}"
        raise ExpressionSyntaxError(message, offset=offset) from None
    except ValueError as error:
        raise ExpressionSyntaxError(f"invalid expression: {error}") from None
    except (RecursionError, MemoryError):
        raise ExpressionSyntaxError(
            f"the expression is nested too deeply (the limit is {MAX_DEPTH} levels)"
        ) from None


# `warnings.catch_warnings` swaps the process's filter list: two threads doing it at once
# could leave one's filter installed for good.
_QUIET = threading.Lock()
_PARSER_WARNINGS: Final = (SyntaxWarning, DeprecationWarning)


def _quiet_parse(source: str) -> ast.Expression:
    """`ast.parse` without the warnings Python's parser writes about what it still accepts
    (`'\\d'`: invalid escape sequence; `0x1for`: invalid hexadecimal literal). They would reach
    the server's log once per request that sends such an expression, and they are not problems
    of the flow: the expression is accepted or refused exactly as Python parses it."""
    with _QUIET, warnings.catch_warnings():
        for category in _PARSER_WARNINGS:
            warnings.simplefilter("ignore", category)
        return ast.parse(source, mode="eval")


_LINE_BREAK = re.compile(r"\r\n|\r|\n")  # the only line breaks Python's tokenizer knows


def _line_start(source: str, lineno: int) -> int:
    """Character index where line `lineno` (1-based) of `source` starts."""
    if lineno <= 1:
        return 0
    breaks = itertools.islice(_LINE_BREAK.finditer(source), lineno - 2, None)
    found = next(breaks, None)
    return found.end() if found else len(source)


# ---------------------------------------------------------------------------------------------
# Compilation: syntax allowed, checked once, turned into closures


_REFUSED: Final[Mapping[type[ast.AST], str]] = {
    ast.Lambda: "lambda functions are not allowed",
    ast.ListComp: "comprehensions are not allowed",
    ast.SetComp: "comprehensions are not allowed",
    ast.DictComp: "comprehensions are not allowed",
    ast.GeneratorExp: "generator expressions are not allowed",
    ast.NamedExpr: "assignment expressions (:=) are not allowed",
    ast.JoinedStr: "f-strings are not allowed; use text around placeholders instead",
    ast.FormattedValue: "f-strings are not allowed; use text around placeholders instead",
    ast.Starred: "starred expressions (*x) are not allowed",
    ast.Await: "await is not allowed",
    ast.Yield: "yield is not allowed",
    ast.YieldFrom: "yield is not allowed",
    ast.Set: "set literals are not allowed; use a list such as [1, 2]",
    ast.Slice: "slices are only allowed inside [...]",
}
_REFUSED_OPERATORS: Final[Mapping[type[ast.AST], str]] = {
    ast.BitOr: "|",
    ast.BitAnd: "&",
    ast.BitXor: "^",
    ast.LShift: "<<",
    ast.RShift: ">>",
    ast.MatMult: "@",
    ast.Invert: "~",
}
# Parts of the tree that are not values: they add neither nodes nor depth worth counting.
_MARKERS = (ast.expr_context, ast.operator, ast.unaryop, ast.boolop, ast.cmpop)


class _Compiler:
    """Turns one parsed expression into closures, refusing anything outside the language."""

    def __init__(self, source: str, start: int) -> None:
        self._source = source
        self._start = start  # where `source` begins inside the text the caller gave
        self._single_line = None if _LINE_BREAK.search(source) else source.encode()
        # Whether some evaluator checks the clock or charges new values: the others need no
        # budget, which makes evaluating plain references cheaper.
        self.uses_budget = False

    def error(self, message: str, node: ast.AST) -> ExpressionSyntaxError:
        lineno = getattr(node, "lineno", None)
        column = getattr(node, "col_offset", None)
        return ExpressionSyntaxError(message, offset=self._offset(lineno, column))

    def _offset(self, lineno: int | None, column: int | None) -> int | None:
        if lineno is None or column is None:
            return None
        line_start = _line_start(self._source, lineno)
        # AST columns count UTF-8 bytes; callers want characters.
        line = self._source[line_start:].encode()
        return self._start + line_start + len(line[:column].decode(errors="ignore"))

    def _text(self, node: ast.expr) -> str:
        """The source of `node`, shortened for messages."""
        if node.lineno == node.end_lineno == 1 and self._single_line is not None:
            # The common case, without `ast.get_source_segment` splitting the source into
            # lines again for every node (AST columns count UTF-8 bytes).
            segment = self._single_line[node.col_offset : node.end_col_offset]
            return _shorten(segment.decode(errors="replace") or type(node).__name__)
        return _shorten(ast.get_source_segment(self._source, node) or type(node).__name__)

    def check_size(self, root: ast.expr) -> None:
        """Refuse trees too big or too deep, without recursion (the tree may be very deep)."""
        pending: list[tuple[ast.AST, int]] = [(root, 1)]
        count = 0
        while pending:
            node, depth = pending.pop()
            count += 1
            if count > MAX_NODES:
                raise self.error(f"the expression has more than {MAX_NODES} parts", node)
            if depth > MAX_DEPTH:
                raise self.error(
                    f"the expression is nested more than {MAX_DEPTH} levels deep", node
                )
            pending.extend(
                (child, depth + 1)
                for child in ast.iter_child_nodes(node)
                if not isinstance(child, _MARKERS)
            )

    def compile(self, node: ast.expr) -> _Evaluator:
        match node:
            case ast.Constant():
                return self._constant(node)
            case ast.Name():
                return self._name(node)
            case ast.Attribute():
                return self._path(node)
            case ast.Subscript():
                return self._subscript(node)
            case ast.List() | ast.Tuple():
                return self._sequence(node)
            case ast.Dict():
                return self._dict(node)
            case ast.BinOp():
                return self._binary(node)
            case ast.UnaryOp():
                return self._unary(node)
            case ast.BoolOp():
                return self._boolean(node)
            case ast.Compare():
                return self._compare(node)
            case ast.IfExp():
                return self._conditional(node)
            case ast.Call():
                return self._call(node)
        message = _REFUSED.get(type(node), f"{type(node).__name__} is not allowed")
        raise self.error(message, node)

    def _constant(self, node: ast.Constant) -> _Evaluator:
        value = node.value
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_INTEGER:
            raise self.error("integer literals larger than 10**100 are not allowed", node)
        if value is not None and not isinstance(value, str | int | float):
            raise self.error(f"{type(value).__name__} literals are not allowed", node)
        return _constant(value)

    def _name(self, node: ast.Name) -> _Evaluator:
        if node.id in _ALIASES:
            return _constant(_ALIASES[node.id])
        if node.id.startswith("__") and node.id.endswith("__"):
            raise self.error(f"the name {node.id!r} is not allowed", node)
        return _name(node.id)

    def _path(self, node: ast.Attribute | ast.Subscript) -> _Evaluator:
        """`a.b[0].c` as one evaluator walking a constant path: the most common expression."""
        links: list[ast.Attribute | ast.Subscript] = []
        base: ast.expr = node
        while isinstance(base, ast.Attribute) or (
            isinstance(base, ast.Subscript) and _constant_key(base.slice) is not None
        ):
            links.append(base)
            base = base.value
        steps: list[tuple[Any, bool, str]] = []  # (key, is an attribute, text of the container)
        for link in reversed(links):  # left to right, so the first private key is reported
            if isinstance(link, ast.Attribute):
                self._refuse_private_attribute(link)
                steps.append((link.attr, True, self._text(link.value)))
            else:
                key = _constant_key(link.slice)
                if isinstance(key, str) and key.startswith("_"):
                    raise self.error(_private_message(key), link.slice)
                steps.append((key, False, self._text(link.value)))
        if isinstance(base, ast.Name) and base.id not in _ALIASES:
            self._name(base)  # refuses a dunder name
            return _name_path(base.id, tuple(steps))
        return _path(self.compile(base), tuple(steps))

    def _refuse_private_attribute(self, node: ast.Attribute) -> None:
        if node.attr.startswith("_"):
            # Point at the attribute's name, which ends where the node ends.
            column = node.end_col_offset
            if column is not None:
                column -= len(node.attr.encode())
            raise ExpressionSyntaxError(
                _private_message(node.attr), offset=self._offset(node.end_lineno, column)
            )

    def _subscript(self, node: ast.Subscript) -> _Evaluator:
        if _constant_key(node.slice) is not None:
            return self._path(node)
        self.uses_budget = True
        container = self.compile(node.value)
        where = self._text(node.value)
        if isinstance(node.slice, ast.Slice):
            return _subscript(container, self._slice(node.slice), where)
        return _subscript(container, self.compile(node.slice), where)

    def _slice(self, node: ast.Slice) -> _Evaluator:
        bounds = tuple(
            None if bound is None else self.compile(bound)
            for bound in (node.lower, node.upper, node.step)
        )
        return _slice(*bounds)

    def _sequence(self, node: ast.List | ast.Tuple) -> _Evaluator:
        self.uses_budget = True
        elements = tuple(self.compile(element) for element in node.elts)
        return _list(elements) if isinstance(node, ast.List) else _tuple(elements)

    def _dict(self, node: ast.Dict) -> _Evaluator:
        self.uses_budget = True
        items: list[tuple[_Evaluator, _Evaluator]] = []
        for key, value in zip(node.keys, node.values, strict=True):
            if key is None:
                raise self.error("dict unpacking (**) is not allowed", value)
            items.append((self.compile(key), self.compile(value)))
        return _dict(tuple(items), self._text(node))

    def _binary(self, node: ast.BinOp) -> _Evaluator:
        found = _BINARY.get(type(node.op))
        if found is None:
            symbol = _REFUSED_OPERATORS.get(type(node.op), type(node.op).__name__)
            raise self.error(f"the operator {symbol!r} is not allowed", node)
        symbol, operation = found
        self.uses_budget = True
        left, right = self.compile(node.left), self.compile(node.right)
        return _binary(left, right, symbol, operation, self._text(node))

    def _unary(self, node: ast.UnaryOp) -> _Evaluator:
        operand = self.compile(node.operand)
        if isinstance(node.op, ast.Not):
            return _not(operand)
        if isinstance(node.op, ast.USub):
            return _unary(operand, "-", operator.neg, self._text(node))
        if isinstance(node.op, ast.UAdd):
            return _unary(operand, "+", operator.pos, self._text(node))
        symbol = _REFUSED_OPERATORS.get(type(node.op), type(node.op).__name__)
        raise self.error(f"the operator {symbol!r} is not allowed", node)

    def _boolean(self, node: ast.BoolOp) -> _Evaluator:
        operands = tuple(self.compile(value) for value in node.values)
        return _and(operands) if isinstance(node.op, ast.And) else _or(operands)

    def _compare(self, node: ast.Compare) -> _Evaluator:
        self.uses_budget = True
        steps: list[tuple[str, Callable[[Any, Any], Any], _Evaluator]] = []
        left_node = node.left
        for op, right_node in zip(node.ops, node.comparators, strict=True):
            symbol, comparison = _COMPARISONS[type(op)]
            if isinstance(op, ast.Is | ast.IsNot) and not (
                _is_none_literal(left_node) or _is_none_literal(right_node)
            ):
                raise self.error(
                    f"'{symbol}' is only allowed with None (x is None, x is not None); "
                    "use == or != to compare values",
                    right_node,
                )
            steps.append((symbol, comparison, self.compile(right_node)))
            left_node = right_node
        return _compare(self.compile(node.left), tuple(steps), self._text(node))

    def _conditional(self, node: ast.IfExp) -> _Evaluator:
        test, body, orelse = (self.compile(part) for part in (node.test, node.body, node.orelse))

        def evaluate(scope: Scope, budget: Budget) -> Any:
            return body(scope, budget) if test(scope, budget) else orelse(scope, budget)

        return evaluate

    def _call(self, node: ast.Call) -> _Evaluator:
        if not isinstance(node.func, ast.Name):
            if isinstance(node.func, ast.Attribute):
                raise self.error(
                    f"method calls such as `{self._text(node)}` are not allowed; the functions "
                    f"are {_FUNCTION_LIST} (for example upper(x) instead of x.upper())",
                    node,
                )
            raise self.error(f"only the functions {_FUNCTION_LIST} may be called", node)
        name = node.func.id
        function = _FUNCTIONS.get(name)
        if function is None:
            raise self.error(
                f"the function {name!r} is not allowed; the functions are {_FUNCTION_LIST}", node
            )
        if node.keywords:
            raise self.error(f"keyword arguments are not allowed (in {name}())", node)
        arguments = tuple(self.compile(argument) for argument in node.args)
        if not function.takes(len(arguments)):
            raise self.error(f"{name}() takes {function.arity_text()}, got {len(arguments)}", node)
        self.uses_budget = True
        return _call(name, function, arguments, self._text(node))


def _private_message(key: str) -> str:
    return f"{key!r} is not allowed: attributes and keys starting with '_' are private"


def _shorten(text: str, limit: int = 60) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _constant_key(node: ast.expr) -> str | int | None:
    """The key of `x[key]` when it is a literal string or integer (`x[-1]` included)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str | int):
        return None if isinstance(node.value, bool) else node.value
    if (
        isinstance(node, ast.UnaryOp)
        and isinstance(node.op, ast.USub)
        and isinstance(node.operand, ast.Constant)
        and type(node.operand.value) is int
    ):
        return -node.operand.value
    return None


def _is_none_literal(node: ast.expr) -> bool:
    return (isinstance(node, ast.Constant) and node.value is None) or (
        isinstance(node, ast.Name) and node.id == "null"
    )


# ---------------------------------------------------------------------------------------------
# References: what an expression reads, for dependency analysis


def _references_of(root: ast.expr) -> frozenset[Reference]:
    found: set[Reference] = set()
    _collect_references(root, found)
    return frozenset(found)


def _collect_references(node: ast.AST, found: set[Reference]) -> None:
    if isinstance(node, ast.Call):  # the function name is not a scope name
        for argument in node.args:
            _collect_references(argument, found)
        return
    if isinstance(node, ast.Name | ast.Attribute | ast.Subscript):
        reference = _reference_chain(node)
        if reference is not None:
            found.add(reference)
            return
    for child in ast.iter_child_nodes(node):
        _collect_references(child, found)


def _reference_chain(node: ast.expr) -> Reference | None:
    """`a.b[0]` -> Reference("a", ("b", 0)); None when the chain holds a computed key."""
    path: list[str | int] = []
    while True:
        if isinstance(node, ast.Attribute):
            path.append(node.attr)
            node = node.value
        elif isinstance(node, ast.Subscript) and (key := _constant_key(node.slice)) is not None:
            path.append(key)
            node = node.value
        elif isinstance(node, ast.Name) and node.id not in _ALIASES:
            return Reference(node.id, tuple(reversed(path)))
        else:
            return None


# ---------------------------------------------------------------------------------------------
# Evaluators: the closures a compiled expression is made of. Work-doing ones check the deadline
# first; names, constants and attribute reads are O(1) and skip it.


def _constant(value: Any) -> _Evaluator:
    def evaluate(scope: Scope, budget: Budget) -> Any:
        return value

    return evaluate


def _name(name: str) -> _Evaluator:
    def evaluate(scope: Scope, budget: Budget) -> Any:
        try:
            return scope[name]
        except KeyError:
            raise _undefined(name, scope) from None

    return evaluate


def _undefined(name: str, scope: Scope) -> ExpressionEvaluationError:
    return ExpressionEvaluationError(
        f"name {name!r} is not defined; {_listed_keys(scope, 'defined names')}"
    )


def _path(base: _Evaluator, steps: tuple[tuple[Any, bool, str], ...]) -> _Evaluator:
    def evaluate(scope: Scope, budget: Budget) -> Any:
        return _walk(base(scope, budget), steps, budget)

    return evaluate


def _name_path(name: str, steps: tuple[tuple[Any, bool, str], ...]) -> _Evaluator:
    """`name.a[0]`, the most common expression, as one closure: faster than a name evaluator
    under a path evaluator, and fewer objects for the collector to walk per definition."""

    def evaluate(scope: Scope, budget: Budget) -> Any:
        try:
            value = scope[name]
        except KeyError:
            raise _undefined(name, scope) from None
        return _walk(value, steps, budget)

    return evaluate


def _walk(value: Any, steps: tuple[tuple[Any, bool, str], ...], budget: Budget) -> Any:
    for key, is_attribute, where in steps:
        kind = type(value)
        if kind is dict or (kind is list and not is_attribute):
            try:
                value = value[key]
                continue
            except (KeyError, IndexError, TypeError):
                pass  # the general case below explains what went wrong
        if is_attribute:
            value = _attribute_of(value, key, where)
        else:
            value = _index(value, key, where, budget)
    return value


def _attribute_of(value: Any, key: str, where: str) -> Any:
    """`value.key`: a key of a mapping, read with __getitem__ (scope mappings may define it)."""
    if isinstance(value, _MAPPINGS):
        try:
            return value[key]
        except KeyError:
            raise _missing_key(where, key, value) from None
    raise ExpressionEvaluationError(
        f"cannot read {key!r} of `{where}`: it is {_a(type_name(value))}, not an object"
    )


def _subscript(target: _Evaluator, key_evaluator: _Evaluator, where: str) -> _Evaluator:
    def evaluate(scope: Scope, budget: Budget) -> Any:
        container = target(scope, budget)
        key = key_evaluator(scope, budget)
        if _clock() > budget[0]:
            raise _over_time()
        return _index(container, key, where, budget)

    return evaluate


def _index(container: Any, key: Any, where: str, budget: Budget) -> Any:
    """`container[key]` for the containers the language knows, with errors that explain."""
    if isinstance(container, _MAPPINGS):
        if isinstance(key, slice):
            raise ExpressionEvaluationError(f"cannot slice `{where}`: it is an object")
        try:
            return container[key]
        except KeyError:
            raise _missing_key(where, key, container) from None
        except TypeError:
            raise ExpressionEvaluationError(
                f"{_a(type_name(key))} cannot be a key of `{where}`"
            ) from None
    if isinstance(container, _INDEXABLE):
        if isinstance(key, slice):
            return _slice_of(container, key, where, budget)
        try:
            return container[key]
        except IndexError:
            raise ExpressionEvaluationError(
                f"index {key!r} is out of range for `{where}` "
                f"({_a(type_name(container))} of length {len(container)})"
            ) from None
        except TypeError:
            raise ExpressionEvaluationError(
                f"`{where}` is {_a(type_name(container))}: its index must be an integer, "
                f"not {_a(type_name(key))}"
            ) from None
    raise ExpressionEvaluationError(f"cannot index `{where}`: it is {_a(type_name(container))}")


def _slice_of(container: Sequence[Any], key: slice, where: str, budget: Budget) -> Any:
    try:
        length = len(range(*key.indices(len(container))))
    except (TypeError, ValueError) as error:
        raise ExpressionEvaluationError(f"bad slice of `{where}`: {error}") from None
    charge(budget, length if isinstance(container, str) else length * _SLOT_SIZE)
    return container[key]


def _slice(
    lower: _Evaluator | None, upper: _Evaluator | None, step: _Evaluator | None
) -> _Evaluator:
    def evaluate(scope: Scope, budget: Budget) -> slice:
        return slice(
            None if lower is None else lower(scope, budget),
            None if upper is None else upper(scope, budget),
            None if step is None else step(scope, budget),
        )

    return evaluate


def _list(elements: tuple[_Evaluator, ...]) -> _Evaluator:
    def evaluate(scope: Scope, budget: Budget) -> list[Any]:
        if _clock() > budget[0]:
            raise _over_time()
        values = [element(scope, budget) for element in elements]
        charge(budget, _items_size(values))
        return values

    return evaluate


def _tuple(elements: tuple[_Evaluator, ...]) -> _Evaluator:
    def evaluate(scope: Scope, budget: Budget) -> tuple[Any, ...]:
        if _clock() > budget[0]:
            raise _over_time()
        values = [element(scope, budget) for element in elements]
        charge(budget, _items_size(values))
        return tuple(values)

    return evaluate


def _dict(items: tuple[tuple[_Evaluator, _Evaluator], ...], where: str) -> _Evaluator:
    def evaluate(scope: Scope, budget: Budget) -> dict[Any, Any]:
        if _clock() > budget[0]:
            raise _over_time()
        result: dict[Any, Any] = {}
        for key_evaluator, value_evaluator in items:
            key = key_evaluator(scope, budget)
            value = value_evaluator(scope, budget)
            try:
                result[key] = value
            except TypeError:
                raise ExpressionEvaluationError(
                    f"{_a(type_name(key))} cannot be a key in `{where}`"
                ) from None
        charge(budget, estimated_size(result))
        return result

    return evaluate


def _items_size(values: list[Any]) -> int:
    """The estimated size of a new list or tuple of `values`: a slot each, plus each value as
    often as it appears (`[a.big, a.big]` writes `a.big` out twice); counting stops past the
    limit."""
    size = _SLOT_SIZE * len(values)
    for value in values:
        if size > MAX_VALUE_SIZE:
            break
        size += estimated_size(value, MAX_VALUE_SIZE - size)
    return size


def _binary(
    left: _Evaluator,
    right: _Evaluator,
    symbol: str,
    operation: Callable[[Any, Any, Budget], Any],
    where: str,
) -> _Evaluator:
    def evaluate(scope: Scope, budget: Budget) -> Any:
        left_value = left(scope, budget)
        right_value = right(scope, budget)
        if _clock() > budget[0]:
            raise _over_time()
        try:
            return operation(left_value, right_value, budget)
        except ExpressionError as error:
            raise type(error)(f"{error.message} (in `{where}`)") from None
        except ZeroDivisionError:
            raise ExpressionEvaluationError(f"division by zero in `{where}`") from None
        except TypeError:
            raise ExpressionEvaluationError(
                f"cannot apply '{symbol}' to {_a(type_name(left_value))} and "
                f"{_a(type_name(right_value))} in `{where}`"
            ) from None
        except (ValueError, ArithmeticError) as error:
            raise ExpressionEvaluationError(f"`{where}` failed: {error}") from None

    return evaluate


def _unary(
    operand: _Evaluator, symbol: str, operation: Callable[[Any], Any], where: str
) -> _Evaluator:
    def evaluate(scope: Scope, budget: Budget) -> Any:
        value = operand(scope, budget)
        try:
            return operation(value)
        except TypeError:
            raise ExpressionEvaluationError(
                f"cannot apply unary '{symbol}' to {_a(type_name(value))} in `{where}`"
            ) from None

    return evaluate


def _not(operand: _Evaluator) -> _Evaluator:
    def evaluate(scope: Scope, budget: Budget) -> bool:
        return not operand(scope, budget)

    return evaluate


def _and(operands: tuple[_Evaluator, ...]) -> _Evaluator:
    def evaluate(scope: Scope, budget: Budget) -> Any:
        value = None
        for operand in operands:
            value = operand(scope, budget)
            if not value:
                return value
        return value

    return evaluate


def _or(operands: tuple[_Evaluator, ...]) -> _Evaluator:
    def evaluate(scope: Scope, budget: Budget) -> Any:
        value = None
        for operand in operands:
            value = operand(scope, budget)
            if value:
                return value
        return value

    return evaluate


def _compare(
    first: _Evaluator,
    steps: tuple[tuple[str, Callable[[Any, Any], Any], _Evaluator], ...],
    where: str,
) -> _Evaluator:
    def evaluate(scope: Scope, budget: Budget) -> Any:
        left = first(scope, budget)
        result: Any = True
        for symbol, comparison, right_evaluator in steps:  # Python's chained semantics
            right = right_evaluator(scope, budget)
            if _clock() > budget[0]:
                raise _over_time()
            try:
                result = comparison(left, right)
            except TypeError:
                raise ExpressionEvaluationError(
                    f"cannot apply '{symbol}' to {_a(type_name(left))} and "
                    f"{_a(type_name(right))} in `{where}`"
                ) from None
            if not result:
                return result
            left = right
        return result

    return evaluate


def _call(
    name: str,
    function: _Function,
    arguments: tuple[_Evaluator, ...],
    where: str,
) -> _Evaluator:
    call, builds = function.call, function.builds

    def evaluate(scope: Scope, budget: Budget) -> Any:
        values = [argument(scope, budget) for argument in arguments]
        if _clock() > budget[0]:
            raise _over_time()
        expected = 0
        try:
            if builds is not None:  # charged before the text is made
                expected = builds(values[0])
                charge(budget, expected)
            result = call(*values)
        except ExpressionError as error:
            raise type(error)(f"{error.message} (in `{where}`)") from None
        except TypeError as error:
            kinds = ", ".join(type_name(value) for value in values)
            raise ExpressionEvaluationError(
                f"{name}() cannot take ({kinds}) in `{where}`: {error}"
            ) from None
        except (ValueError, ArithmeticError) as error:
            raise ExpressionEvaluationError(f"`{where}` failed: {error}") from None
        if type(result) is int:
            return _within_integer_limit(result)
        if type(result) is str and len(result) > expected:  # the estimate fell short
            charge(budget, len(result) - expected)
        return result

    return evaluate


def _missing_key(where: str, key: Any, mapping: Mapping[Any, Any]) -> ExpressionEvaluationError:
    return ExpressionEvaluationError(
        f"`{where}` has no key {key!r}; {_listed_keys(mapping, 'available keys')}"
    )


def _listed_keys(mapping: Mapping[Any, Any], label: str, shown: int = 10) -> str:
    keys = [_shorten(repr(key), 40) for key in itertools.islice(mapping, shown)]
    if not keys:
        return f"{label}: none"
    more = len(mapping) - len(keys)
    return f"{label}: {', '.join(keys)}" + (f" and {more} more" if more > 0 else "")


def type_name(value: Any) -> str:
    """The JSON name of a value's type, as flow authors know it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, Mapping):
        return "object"
    if isinstance(value, _ARRAYS):
        return "array"
    return type(value).__name__


def _a(noun: str) -> str:
    return noun if noun == "null" else ("an " if noun[0] in "aeiou" else "a ") + noun


# ---------------------------------------------------------------------------------------------
# Operators: each checks the size of what it would build before building it


def _within_integer_limit(value: Any) -> Any:
    if type(value) is int and not -MAX_INTEGER <= value <= MAX_INTEGER:
        raise ExpressionLimitError("the integer result is beyond ±10**100")
    return value


def estimated_size(value: Any, limit: int = MAX_VALUE_SIZE) -> int:
    """About how many bytes `value` stands for: string lengths, 8 per element, a share for large
    integers, counting a shared part every time it appears (as writing it out would). Counting
    stops past `limit`, so the cost is bounded however large the value is."""
    kind = type(value)
    if kind is str:
        return len(value)
    if value is None or kind is bool or kind is float:
        return 0
    size = 0
    pending = [value]
    while pending:
        item = pending.pop()
        kind = type(item)
        if kind is str:  # the common kinds first, by exact type: this runs per placed value
            size += len(item)
        elif kind is dict:
            size += 2 * _SLOT_SIZE * len(item)
            if size <= limit:
                pending += item.keys()
                pending += item.values()
        elif kind is list or kind is tuple:
            size += _SLOT_SIZE * len(item)
            if size <= limit:
                pending += item
        elif kind is int:
            size += item.bit_length() // 8
        elif item is None or kind is bool or kind is float:
            continue
        elif isinstance(item, _TEXTS):
            size += len(item)
        elif isinstance(item, int):
            size += item.bit_length() // 8
        elif isinstance(item, _ARRAYS):
            size += _SLOT_SIZE * len(item)
            if size <= limit:
                pending.extend(item)
        elif isinstance(item, _MAPPINGS):
            size += 2 * _SLOT_SIZE * len(item)
            if size <= limit:
                pending.extend(item.keys())
                pending.extend(item.values())
        if size > limit:
            break
    return size


def _add(left: Any, right: Any, budget: Budget) -> Any:
    if isinstance(left, _SEQUENCES) and isinstance(right, _SEQUENCES):
        charge(budget, estimated_size(left) + estimated_size(right))
        return operator.add(left, right)  # mixed kinds raise TypeError, as they should
    return _within_integer_limit(left + right)


def _subtract(left: Any, right: Any, budget: Budget) -> Any:
    return _within_integer_limit(left - right)


def _multiply(left: Any, right: Any, budget: Budget) -> Any:
    if isinstance(left, _SEQUENCES) and isinstance(right, int):
        charge(budget, estimated_size(left) * max(right, 0))
        return left * right
    if isinstance(right, _SEQUENCES) and isinstance(left, int):
        charge(budget, estimated_size(right) * max(left, 0))
        return left * right
    return _within_integer_limit(left * right)


def _divide(left: Any, right: Any, budget: Budget) -> Any:
    return left / right


def _floor_divide(left: Any, right: Any, budget: Budget) -> Any:
    return _within_integer_limit(left // right)


def _modulo(left: Any, right: Any, budget: Budget) -> Any:
    if isinstance(left, _TEXTS):
        # printf-style formatting can pad to any width: "%0999999999d" % 1
        raise ExpressionEvaluationError(
            "'%' formatting of strings is not supported; use text around placeholders"
        )
    return _within_integer_limit(left % right)


def _power(base: Any, exponent: Any, budget: Budget) -> Any:
    if (
        isinstance(base, int)
        and isinstance(exponent, int)
        and exponent > 0
        and abs(base) > 1
        # |base| >= 2 ** (bits - 1), so the result has at least (bits - 1) * exponent bits
        and (abs(base).bit_length() - 1) * exponent >= _MAX_INTEGER_BITS
    ):
        raise ExpressionLimitError("the integer result is beyond ±10**100")
    result = base**exponent
    if isinstance(result, complex):
        raise ExpressionEvaluationError("the result is a complex number")
    return _within_integer_limit(result)


_BINARY: Final[Mapping[type[ast.operator], tuple[str, Callable[[Any, Any, Budget], Any]]]] = {
    ast.Add: ("+", _add),
    ast.Sub: ("-", _subtract),
    ast.Mult: ("*", _multiply),
    ast.Div: ("/", _divide),
    ast.FloorDiv: ("//", _floor_divide),
    ast.Mod: ("%", _modulo),
    ast.Pow: ("**", _power),
}


def _contains(left: Any, right: Any) -> bool:
    return left in right


def _does_not_contain(left: Any, right: Any) -> bool:
    return left not in right


_COMPARISONS: Final[Mapping[type[ast.cmpop], tuple[str, Callable[[Any, Any], Any]]]] = {
    ast.Eq: ("==", operator.eq),
    ast.NotEq: ("!=", operator.ne),
    ast.Lt: ("<", operator.lt),
    ast.LtE: ("<=", operator.le),
    ast.Gt: (">", operator.gt),
    ast.GtE: (">=", operator.ge),
    ast.In: ("in", _contains),
    ast.NotIn: ("not in", _does_not_contain),
    ast.Is: ("is", operator.is_),
    ast.IsNot: ("is not", operator.is_not),
}


# ---------------------------------------------------------------------------------------------
# Functions


def format_value(value: Any) -> str:
    """How a value reads inside text (templates and `str()`): strings as they are, numbers via
    str(), true/false/null, objects and arrays as compact JSON. Refuses text over 1 MiB."""
    if isinstance(value, str):
        return value
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, _NUMBERS):
        try:
            return str(value)
        except ValueError as error:  # an integer of more than 4300 digits
            raise ExpressionLimitError(f"cannot write the number as text: {error}") from None
    size = estimated_size(value)
    if size > MAX_VALUE_SIZE:
        raise ExpressionLimitError(
            f"the value is about {size:,} bytes as text, over the limit of "
            f"{MAX_VALUE_SIZE:,} bytes (1 MiB)"
        )
    try:
        text = json.dumps(value, default=_json_default, ensure_ascii=False, separators=(",", ":"))
    except (TypeError, ValueError) as error:
        raise ExpressionEvaluationError(
            f"cannot write {_a(type_name(value))} as text: {error}"
        ) from None
    if len(text) > MAX_VALUE_SIZE:
        raise ExpressionLimitError(
            f"the value is {len(text):,} characters as text, over the limit of "
            f"{MAX_VALUE_SIZE:,} (1 MiB)"
        )
    return text


def _json_default(value: Any) -> Any:
    if isinstance(value, Mapping):
        return dict(value)
    return str(value)


def _sum(values: Any, start: Any = 0) -> Any:
    total = _number(start)
    for value in values:
        total += _number(value)
    return total


def _number(value: Any) -> int | float:
    if not isinstance(value, _NUMBERS):
        raise ExpressionEvaluationError(f"sum() adds numbers, not {_a(type_name(value))}")
    return value


def _round(number: Any, digits: Any = None) -> Any:
    if isinstance(digits, int) and abs(digits) > _MAX_ROUND_DIGITS:
        raise ExpressionLimitError(
            f"round() takes at most {_MAX_ROUND_DIGITS} digits either side of the point"
        )
    return round(number, digits)


def _lower(text: Any) -> str:
    if not isinstance(text, str):
        raise ExpressionEvaluationError(f"lower() takes a string, not {_a(type_name(text))}")
    return text.lower()


def _upper(text: Any) -> str:
    if not isinstance(text, str):
        raise ExpressionEvaluationError(f"upper() takes a string, not {_a(type_name(text))}")
    return text.upper()


def _text_length(value: Any) -> int:
    return len(value) if isinstance(value, str) else 0


@dataclass(frozen=True)
class _Function:
    call: Callable[..., Any]
    min_arguments: int = 1
    max_arguments: int | None = 1  # None: any number
    # For functions that make text: its size, from the first argument, before it is made.
    builds: Callable[[Any], int] | None = None

    def takes(self, count: int) -> bool:
        return count >= self.min_arguments and (
            self.max_arguments is None or count <= self.max_arguments
        )

    def arity_text(self) -> str:
        if self.max_arguments is None:
            return f"at least {self.min_arguments} argument"
        if self.max_arguments == self.min_arguments:
            return f"{self.min_arguments} argument"
        return f"{self.min_arguments} or {self.max_arguments} arguments"


_FUNCTIONS: Final[Mapping[str, _Function]] = {
    "len": _Function(len),
    "str": _Function(format_value, builds=estimated_size),
    "int": _Function(int, 1, 2),
    "float": _Function(float),
    "bool": _Function(bool),
    "min": _Function(min, 1, None),
    "max": _Function(max, 1, None),
    "sum": _Function(_sum, 1, 2),
    "abs": _Function(abs),
    "round": _Function(_round, 1, 2),
    "lower": _Function(_lower, builds=_text_length),
    "upper": _Function(_upper, builds=_text_length),
}
_FUNCTION_LIST: Final = ", ".join(sorted(_FUNCTIONS))
