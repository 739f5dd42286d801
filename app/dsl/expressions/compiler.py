"""Compiling an expression: parsing, checking against the language, building the closures.

An expression is parsed with `ast.parse(mode="eval")`, checked against an allow-list of syntax,
and compiled once into a tree of closures (`evaluation`). User text never reaches Python's
eval/exec/compile.
"""

from __future__ import annotations

import ast
import functools
import itertools
import operator
import re
import threading
import warnings
from collections.abc import Callable, Mapping
from typing import Any, Final

from app.dsl.expressions import evaluation
from app.dsl.expressions.evaluation import Evaluator, Expression, Reference, shorten
from app.dsl.expressions.functions import FUNCTION_LIST, FUNCTIONS
from app.dsl.expressions.kinds import type_name
from app.dsl.expressions.limits import (
    COMPILED_CACHE_SIZE,
    MAX_DEPTH,
    MAX_INTEGER,
    MAX_NODES,
    MAX_SOURCE_LENGTH,
)
from app.dsl.expressions.operators import BINARY_OPERATORS, COMPARISONS
from app.errors import ExpressionSyntaxError

_ALIASES: Final[Mapping[str, Any]] = {"true": True, "false": False, "null": None}


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
            return shorten(segment.decode(errors="replace") or type(node).__name__)
        return shorten(ast.get_source_segment(self._source, node) or type(node).__name__)

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

    def compile(self, node: ast.expr) -> Evaluator:
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

    def _constant(self, node: ast.Constant) -> Evaluator:
        value = node.value
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_INTEGER:
            raise self.error("integer literals larger than 10**100 are not allowed", node)
        if value is not None and not isinstance(value, str | int | float):
            raise self.error(f"{type(value).__name__} literals are not allowed", node)
        return evaluation.constant(value)

    def _name(self, node: ast.Name) -> Evaluator:
        if node.id in _ALIASES:
            return evaluation.constant(_ALIASES[node.id])
        if node.id.startswith("__") and node.id.endswith("__"):
            raise self.error(f"the name {node.id!r} is not allowed", node)
        return evaluation.read_name(node.id)

    def _path(self, node: ast.Attribute | ast.Subscript) -> Evaluator:
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
            return evaluation.read_name_path(base.id, tuple(steps))
        return evaluation.read_path(self.compile(base), tuple(steps))

    def _refuse_private_attribute(self, node: ast.Attribute) -> None:
        if node.attr.startswith("_"):
            # Point at the attribute's name, which ends where the node ends.
            column = node.end_col_offset
            if column is not None:
                column -= len(node.attr.encode())
            raise ExpressionSyntaxError(
                _private_message(node.attr), offset=self._offset(node.end_lineno, column)
            )

    def _subscript(self, node: ast.Subscript) -> Evaluator:
        if _constant_key(node.slice) is not None:
            return self._path(node)
        self.uses_budget = True
        container = self.compile(node.value)
        where = self._text(node.value)
        if isinstance(node.slice, ast.Slice):
            return evaluation.subscript(container, self._slice(node.slice), where)
        return evaluation.subscript(container, self.compile(node.slice), where)

    def _slice(self, node: ast.Slice) -> Evaluator:
        bounds = tuple(
            None if bound is None else self.compile(bound)
            for bound in (node.lower, node.upper, node.step)
        )
        return evaluation.make_slice(*bounds)

    def _sequence(self, node: ast.List | ast.Tuple) -> Evaluator:
        self.uses_budget = True
        elements = tuple(self.compile(element) for element in node.elts)
        return (
            evaluation.make_list(elements)
            if isinstance(node, ast.List)
            else evaluation.make_tuple(elements)
        )

    def _dict(self, node: ast.Dict) -> Evaluator:
        self.uses_budget = True
        items: list[tuple[Evaluator, Evaluator]] = []
        for key, value in zip(node.keys, node.values, strict=True):
            if key is None:
                raise self.error("dict unpacking (**) is not allowed", value)
            items.append((self.compile(key), self.compile(value)))
        return evaluation.make_dict(tuple(items), self._text(node))

    def _binary(self, node: ast.BinOp) -> Evaluator:
        found = BINARY_OPERATORS.get(type(node.op))
        if found is None:
            symbol = _REFUSED_OPERATORS.get(type(node.op), type(node.op).__name__)
            raise self.error(f"the operator {symbol!r} is not allowed", node)
        symbol, operation = found
        self.uses_budget = True
        left, right = self.compile(node.left), self.compile(node.right)
        return evaluation.binary(left, right, symbol, operation, self._text(node))

    def _unary(self, node: ast.UnaryOp) -> Evaluator:
        operand = self.compile(node.operand)
        if isinstance(node.op, ast.Not):
            return evaluation.logical_not(operand)
        if isinstance(node.op, ast.USub):
            return evaluation.unary(operand, "-", operator.neg, self._text(node))
        if isinstance(node.op, ast.UAdd):
            return evaluation.unary(operand, "+", operator.pos, self._text(node))
        symbol = _REFUSED_OPERATORS.get(type(node.op), type(node.op).__name__)
        raise self.error(f"the operator {symbol!r} is not allowed", node)

    def _boolean(self, node: ast.BoolOp) -> Evaluator:
        operands = tuple(self.compile(value) for value in node.values)
        return (
            evaluation.logical_and(operands)
            if isinstance(node.op, ast.And)
            else evaluation.logical_or(operands)
        )

    def _compare(self, node: ast.Compare) -> Evaluator:
        self.uses_budget = True
        steps: list[tuple[str, Callable[[Any, Any], Any], Evaluator]] = []
        left_node = node.left
        for op, right_node in zip(node.ops, node.comparators, strict=True):
            symbol, comparison = COMPARISONS[type(op)]
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
        return evaluation.compare(self.compile(node.left), tuple(steps), self._text(node))

    def _conditional(self, node: ast.IfExp) -> Evaluator:
        test, body, orelse = (self.compile(part) for part in (node.test, node.body, node.orelse))
        return evaluation.conditional(test, body, orelse)

    def _call(self, node: ast.Call) -> Evaluator:
        if not isinstance(node.func, ast.Name):
            if isinstance(node.func, ast.Attribute):
                raise self.error(
                    f"method calls such as `{self._text(node)}` are not allowed; the functions "
                    f"are {FUNCTION_LIST} (for example upper(x) instead of x.upper())",
                    node,
                )
            raise self.error(f"only the functions {FUNCTION_LIST} may be called", node)
        name = node.func.id
        function = FUNCTIONS.get(name)
        if function is None:
            raise self.error(
                f"the function {name!r} is not allowed; the functions are {FUNCTION_LIST}", node
            )
        if node.keywords:
            raise self.error(f"keyword arguments are not allowed (in {name}())", node)
        arguments = tuple(self.compile(argument) for argument in node.args)
        if not function.takes(len(arguments)):
            raise self.error(f"{name}() takes {function.arity_text()}, got {len(arguments)}", node)
        self.uses_budget = True
        return evaluation.call(name, function, arguments, self._text(node))


def _private_message(key: str) -> str:
    return f"{key!r} is not allowed: attributes and keys starting with '_' are private"


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
